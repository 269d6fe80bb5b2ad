/*
 * compat.h — the few differences between PostgreSQL 13 and 17 that we meet.
 */
#ifndef TS_COMPAT_H
#define TS_COMPAT_H

#if PG_VERSION_NUM < 130000
#error "thingspace_fdw needs PostgreSQL 13 or later"
#endif

/* PG 15 added shmem_request_hook; before it, shared memory is requested in _PG_init. */
#if PG_VERSION_NUM >= 150000
#define TS_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* PG 15 renamed EmitWarningsOnPlaceholders and made it reserve the prefix. */
#if PG_VERSION_NUM >= 150000
#define TS_MARK_GUC_PREFIX_RESERVED(p) MarkGUCPrefixReserved(p)
#else
#define TS_MARK_GUC_PREFIX_RESERVED(p) EmitWarningsOnPlaceholders(p)
#endif

/* PG 14 made wait_event_info arguments mandatory in WaitLatch calls with names. */
#ifndef PG_WAIT_EXTENSION
#define PG_WAIT_EXTENSION 0x07000000U
#endif

/* PG 17 added fdw_restrictinfo to create_foreignscan_path. */
#if PG_VERSION_NUM >= 170000
#define ts_create_foreignscan_path(root, rel, rows, startup, total) \
	create_foreignscan_path(root, rel, NULL, rows, startup, total, NIL, NULL, NULL, NIL, NIL)
#else
#define ts_create_foreignscan_path(root, rel, rows, startup, total) \
	create_foreignscan_path(root, rel, NULL, rows, startup, total, NIL, NULL, NULL, NIL)
#endif

#endif							/* TS_COMPAT_H */
