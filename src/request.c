/* request.c */
#include "thingspace_fdw.h"
