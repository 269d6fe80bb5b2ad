/* option.c */
#include "thingspace_fdw.h"
#include "fmgr.h"
PG_FUNCTION_INFO_V1(thingspace_fdw_validator);
Datum thingspace_fdw_validator(PG_FUNCTION_ARGS) { PG_RETURN_VOID(); }
