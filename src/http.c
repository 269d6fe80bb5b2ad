/* http.c — libcurl layer (stub until the HTTP client issue lands). */
#include "thingspace_fdw.h"
