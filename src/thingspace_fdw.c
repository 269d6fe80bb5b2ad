/*
 * thingspace_fdw.c — module entry: _PG_init, shared memory hooks, FDW handler.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "thingspace_fdw.h"

PG_MODULE_MAGIC;

bool		ts_shmem_available = false;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#ifdef TS_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

void		_PG_init(void);

static Size
ts_shmem_size(void)
{
	return add_size(add_size(ts_auth_shmem_size(), ts_wake_shmem_size()),
					ts_cache_shmem_size());
}

static void
ts_shmem_request(void)
{
#ifdef TS_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(ts_shmem_size());
}

static void
ts_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	ts_auth_shmem_init();
	ts_wake_shmem_init();
	ts_cache_shmem_init();
}

void
_PG_init(void)
{
	ts_listener_define_gucs();

	/* Shared state (tokens, lockouts, wakeups, result cache) needs preloading. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	ts_shmem_available = true;
#ifdef TS_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ts_shmem_request;
#else
	ts_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ts_shmem_startup;

	ts_listener_register_worker();
}

PG_FUNCTION_INFO_V1(thingspace_fdw_handler);

Datum
thingspace_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = ts_GetForeignRelSize;
	routine->GetForeignPaths = ts_GetForeignPaths;
	routine->GetForeignPlan = ts_GetForeignPlan;
	routine->BeginForeignScan = ts_BeginForeignScan;
	routine->IterateForeignScan = ts_IterateForeignScan;
	routine->ReScanForeignScan = ts_ReScanForeignScan;
	routine->EndForeignScan = ts_EndForeignScan;
	routine->ExplainForeignScan = ts_ExplainForeignScan;
	routine->ImportForeignSchema = ts_ImportForeignSchema;

	PG_RETURN_POINTER(routine);
}
