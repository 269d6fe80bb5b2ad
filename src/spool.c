/* spool.c — the durable callback spool (stub). */
#include "thingspace_fdw.h"
#include "fmgr.h"

char *
ts_spool_dir(void)
{
	return pstrdup("pg_thingspace");
}

void
ts_spool_status(const char *request_id, TsSpoolStatus *out)
{
	memset(out, 0, sizeof(*out));
	out->state = TS_SPOOL_WAITING;
}

bool
ts_spool_valid_request_id(const char *request_id)
{
	return true;
}

PG_FUNCTION_INFO_V1(thingspace_callbacks);
Datum
thingspace_callbacks(PG_FUNCTION_ARGS)
{
	elog(ERROR, "not implemented");
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(thingspace_callback_payload);
Datum
thingspace_callback_payload(PG_FUNCTION_ARGS)
{
	elog(ERROR, "not implemented");
	PG_RETURN_NULL();
}
