/* listener.c — callback listener background worker (stub). */
#include "thingspace_fdw.h"

void ts_listener_define_gucs(void) { }
void ts_listener_register_worker(void) { }
void ts_listener_main(Datum arg) { }
