/* scan.c */
#include "thingspace_fdw.h"
void ts_BeginForeignScan(ForeignScanState *node, int eflags) {}
TupleTableSlot *ts_IterateForeignScan(ForeignScanState *node) { return NULL; }
void ts_ReScanForeignScan(ForeignScanState *node) {}
void ts_EndForeignScan(ForeignScanState *node) {}
