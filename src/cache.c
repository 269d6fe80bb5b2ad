/* cache.c — shared result cache and in-flight merging (stub: always a miss). */
#include "thingspace_fdw.h"
#include "fmgr.h"

Size ts_cache_shmem_size(void) { return 0; }
void ts_cache_shmem_init(void) { }

TsCacheResult
ts_cache_claim(uint64 identity, const char *body, int ttl_ms, int inflight_ms, char **request_id)
{
	*request_id = NULL;
	return TS_CACHE_MISS;
}

void ts_cache_store(uint64 identity, const char *body, const char *request_id) { }
void ts_cache_release(uint64 identity, const char *body) { }
void ts_cache_mark_complete(uint64 identity, const char *body) { }

PG_FUNCTION_INFO_V1(thingspace_cache_purge);
Datum thingspace_cache_purge(PG_FUNCTION_ARGS) { PG_RETURN_INT64(0); }
