/* tsjson.c — JSON reader (stub). */
#include <stdlib.h>
#include "tsjson.h"

TsjDoc *tsj_parse(const char *buf, size_t len, TsjError *err) { return NULL; }
const TsjNode *tsj_root(const TsjDoc *doc) { return NULL; }
void tsj_free(TsjDoc *doc) { }
const TsjNode *tsj_get(const TsjNode *obj, const char *key) { return NULL; }
const TsjNode *tsj_get_ci(const TsjNode *obj, const char *key) { return NULL; }
