/* auth.c — OAuth token and M2M session (stub). */
#include "thingspace_fdw.h"
#include "utils/builtins.h"

TsVendor *
ts_vendor_open(const TsServerOptions *srv, const TsUserOptions *um)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("vendor calls are not implemented yet")));
	return NULL;
}

void
ts_vendor_submit_billed(TsVendor *v, int n, char *const *bodies, char **request_ids, TsScanStats *stats)
{
	elog(ERROR, "not implemented");
}

TsHttpResult
ts_vendor_call(TsVendor *v, const char *method, const char *path, const char *body)
{
	TsHttpResult r = {0};

	elog(ERROR, "not implemented");
	return r;
}

uint64
ts_vendor_identity(const TsServerOptions *srv, const TsUserOptions *um)
{
	return 0;
}

Size ts_auth_shmem_size(void) { return 0; }
void ts_auth_shmem_init(void) { }
