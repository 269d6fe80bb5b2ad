/* cache.c — shared result cache and in-flight merging (stub). */
#include "thingspace_fdw.h"
#include "fmgr.h"

Size ts_cache_shmem_size(void) { return 0; }
void ts_cache_shmem_init(void) { }

PG_FUNCTION_INFO_V1(thingspace_cache_purge);
Datum thingspace_cache_purge(PG_FUNCTION_ARGS) { PG_RETURN_INT64(0); }
