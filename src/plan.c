/* plan.c */
#include "thingspace_fdw.h"
void ts_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid) {}
void ts_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid) {}
ForeignScan *ts_GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid, ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan) { return NULL; }
