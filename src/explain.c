/* explain.c */
#include "thingspace_fdw.h"
void ts_ExplainForeignScan(ForeignScanState *node, struct ExplainState *es) {}
