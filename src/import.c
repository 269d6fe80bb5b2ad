/* import.c */
#include "thingspace_fdw.h"
List *ts_ImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid) { return NIL; }
