/* tsmap.c — payload to rows (stub). */
#include <string.h>
#include "tsmap.h"

int ts_envelope_read(const TsjNode *root, TsEnvelope *env, TsMapError *err) { return -1; }
size_t ts_sniff_request_id(const char *buf, size_t len, char *out, size_t outsize) { return 0; }
char *ts_redact_credentials(const char *buf, size_t len, size_t *outlen) { return NULL; }
void ts_map_begin(TsMapCursor *cur, const TsjNode *root, TsResource resource) { memset(cur, 0, sizeof(*cur)); }
TsMapStatus ts_map_next(TsMapCursor *cur, TsRow *row, TsMapError *err) { return TS_MAP_END; }
