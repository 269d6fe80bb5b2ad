/* callback_admin.c — SQL functions registering callbacks with the vendor (stub). */
#include "thingspace_fdw.h"
#include "fmgr.h"

PG_FUNCTION_INFO_V1(thingspace_register_callback);
Datum thingspace_register_callback(PG_FUNCTION_ARGS) { elog(ERROR, "not implemented"); PG_RETURN_NULL(); }
PG_FUNCTION_INFO_V1(thingspace_list_callbacks);
Datum thingspace_list_callbacks(PG_FUNCTION_ARGS) { elog(ERROR, "not implemented"); PG_RETURN_NULL(); }
PG_FUNCTION_INFO_V1(thingspace_delete_callback);
Datum thingspace_delete_callback(PG_FUNCTION_ARGS) { elog(ERROR, "not implemented"); PG_RETURN_NULL(); }
