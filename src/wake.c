/* wake.c — waking scans when a callback lands (stub). */
#include "thingspace_fdw.h"

Size ts_wake_shmem_size(void) { return 0; }
void ts_wake_shmem_init(void) { }
void ts_wake_register(void) { }
void ts_wake_unregister(void) { }
void ts_wake_all(void) { }
