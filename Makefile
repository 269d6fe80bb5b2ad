# thingspace_fdw — PGXS build.  `make test` and `make demo` are the README's commands.

EXTENSION = thingspace_fdw
MODULE_big = thingspace_fdw
DATA = thingspace_fdw--1.0.sql
PGFILEDESC = "thingspace_fdw - foreign data wrapper for Verizon ThingSpace billed usage"

OBJS = \
	src/thingspace_fdw.o \
	src/option.o \
	src/plan.o \
	src/request.o \
	src/scan.o \
	src/explain.o \
	src/tables.o \
	src/http.o \
	src/auth.o \
	src/spool.o \
	src/wake.o \
	src/listener.o \
	src/callback_admin.o \
	src/cache.o \
	src/tsjson.o \
	src/tsmap.o

REGRESS_OPTS = --inputdir=. --load-extension=thingspace_fdw
REGRESS = $(basename $(notdir $(wildcard sql/*.sql)))

PG_CONFIG ?= pg_config
TS_LIBS = libcurl jansson libmicrohttpd
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags $(TS_LIBS) 2>/dev/null)
SHLIB_LINK = $(shell pkg-config --libs $(TS_LIBS) 2>/dev/null)

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all:
	@echo "PostgreSQL server headers not found: run 'make test' as root, or" >&2
	@echo "  apt-get install postgresql-server-dev-15 libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev pkg-config" >&2
	@exit 1
endif

# PGXS tracks no header dependencies: a changed struct must rebuild every object.
$(OBJS): $(wildcard $(srcdir)/src/*.h)

.PHONY: test demo fuzz bench
test:
	test/run-tests.sh
demo:
	test/demo.sh
fuzz:
	test/fuzz/run-fuzz.sh
bench:
	test/bench/run-bench.sh
