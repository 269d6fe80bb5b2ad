/*
 * thingspace_fdw.h — internal declarations shared by the PostgreSQL-side files.
 *
 * Prototypes are grouped by the file that defines them.
 */
#ifndef THINGSPACE_FDW_H
#define THINGSPACE_FDW_H

#include "postgres.h"

#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "tsjson.h"
#include "utils/relcache.h"

#include "compat.h"
#include "tsmap.h"

#define TS_EXTENSION_VERSION "1.0"
#define TS_USER_AGENT "thingspace_fdw/" TS_EXTENSION_VERSION

/* Server options (SPEC §2), parsed once. Durations in milliseconds. */
typedef struct TsServerOptions
{
	Oid			serverid;
	char	   *base_url;
	char	   *account;		/* NULL when unset */
	int			request_timeout_ms;
	int			callback_timeout_ms;
	int			max_retries;
	int			max_devices_per_request;
	int			cache_ttl_ms;
	char	   *ca_file;		/* superuser-only; NULL = system trust store */
	char	   *proxy;			/* superuser-only; NULL = none (curl's env rules apply) */
	bool		verify_tls;		/* superuser-only to turn off */
} TsServerOptions;

/* User mapping options: the secrets.  Never printed anywhere. */
typedef struct TsUserOptions
{
	Oid			umid;			/* pg_user_mapping oid, InvalidOid for PUBLIC-less */
	char	   *client_id;
	char	   *client_secret;
	char	   *username;
	char	   *password;
} TsUserOptions;

typedef struct TsTableOptions
{
	TsResource	resource;
	char	   *account;		/* NULL when unset */
	char	   *device_kind;	/* NULL when unset; lower case */
} TsTableOptions;

/* What a scan did, for EXPLAIN ANALYZE. */
typedef struct TsScanStats
{
	int			requests_sent;
	int			cache_hits;
	int			merged_inflight;
	int			pages_read;
	int			retries;
	double		wait_ms;		/* time spent waiting for callbacks */
} TsScanStats;

/* ---- in thingspace_fdw.c ---- */
extern PGDLLIMPORT bool ts_shmem_available;	/* loaded via shared_preload_libraries */

/* ---- in plan.c : FDW planning callbacks ---- */
extern void ts_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid);
extern void ts_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid);
extern ForeignScan *ts_GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
									  Oid foreigntableid, ForeignPath *best_path,
									  List *tlist, List *scan_clauses, Plan *outer_plan);

/* ---- in scan.c : FDW execution callbacks ---- */
extern void ts_BeginForeignScan(ForeignScanState *node, int eflags);
extern TupleTableSlot *ts_IterateForeignScan(ForeignScanState *node);
extern void ts_ReScanForeignScan(ForeignScanState *node);
extern void ts_EndForeignScan(ForeignScanState *node);

typedef struct TsRequest TsRequest;	/* in request.c, below */

/* Execution state of one request of a scan. */
typedef enum TsReqPhase
{
	TS_REQ_NEW,					/* not sent yet */
	TS_REQ_CLAIMED_ELSEWHERE,	/* another session is sending the same request */
	TS_REQ_WAITING,				/* has a requestId, waiting for its callbacks */
	TS_REQ_DONE					/* rows emitted */
} TsReqPhase;

typedef struct TsReqExec
{
	TsRequest  *req;
	TsReqPhase	phase;
	char	   *request_id;
	bool		owns_cache_claim;	/* we promised the cache to send it */
	TimestampTz since;			/* sent (or first seen in flight) */
} TsReqExec;

typedef struct TsScanState
{
	Relation	rel;
	TsServerOptions srv;
	TsTableOptions tbl;
	int		   *attcols;		/* contract column per attribute */
	List	   *attnos;			/* attributes to fill */
	List	   *cond_columns;
	List	   *cond_ops;
	List	   *cond_arrays;
	List	   *cond_states;	/* ExprState per condition value */
	bool		requests_known; /* false in EXPLAIN when values need execution */
	bool		started;
	int			nreq;
	TsReqExec  *reqs;
	uint64		identity;		/* credential identity for the cache */
	/* emission */
	int			current;		/* index of the request being emitted, -1 none */
	List	   *pages;			/* file paths of the current request */
	int			next_page;
	MemoryContext scan_cxt;		/* lives as long as the scan */
	MemoryContext poll_cxt;		/* spool listings while waiting, reset every round */
	MemoryContext page_cxt;		/* the current page: its text and parsed document */
	TsjDoc	   *doc;
	bool		have_cursor;
	TsMapCursor cursor;
	MemoryContext tuple_cxt;
	FmgrInfo   *in_funcs;
	Oid		   *typioparams;
	int32	   *typmods;
	TsScanStats stats;
} TsScanState;

/* ---- in explain.c ---- */
extern void ts_ExplainForeignScan(ForeignScanState *node, struct ExplainState *es);

/* ---- in request.c : WHERE conditions → vendor requests (SPEC §4) ---- */
typedef enum TsCondOp
{
	TS_OP_EQ,					/* col = v, col IN (...), col = ANY(...) */
	TS_OP_LT,
	TS_OP_LE,
	TS_OP_GT,
	TS_OP_GE
} TsCondOp;

/* One usable condition after evaluation: its values as text (dates as YYYY-MM-DD). */
typedef struct TsCondValues
{
	TsColumn	column;
	TsCondOp	op;
	List	   *values;			/* of char *; SQL NULLs left out */
} TsCondValues;

struct TsRequest
{
	char	   *account;
	int			from_year;
	int			from_month;
	int			to_year;
	int			to_month;
	bool		line_level;
	char	   *device_kind;	/* with device_id, or the kind of device_ids */
	char	   *device_id;		/* single deviceId */
	List	   *device_ids;		/* deviceIds batch (char *) */
	char	   *label_name;
	char	   *label_value;
	char	   *body;			/* JSON request body, deterministic */
};

#define TS_MAX_REQUESTS_PER_SCAN 10000

extern List *ts_build_requests(List *conds, const TsServerOptions *srv,
							   const TsTableOptions *tbl, const char *relname);

/* ---- in tables.c : the contract's three tables (SPEC §3) ---- */
extern int	ts_column_by_name(const char *name);	/* TsColumn or -1 */
extern const char *ts_column_name(TsColumn col);
extern char *ts_all_column_names(void);
extern bool ts_resource_has_column(TsResource resource, TsColumn col);
extern char *ts_resource_column_names(TsResource resource);
extern int *ts_attr_columns(Relation rel, TsResource resource);
extern List *ts_ImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid);

/* ---- in option.c ---- */
extern void ts_get_server_options(Oid serverid, TsServerOptions *out);
extern void ts_get_user_options(Oid serverid, Oid userid, TsUserOptions *out);
extern void ts_get_table_options(Oid foreigntableid, TsTableOptions *out);
extern bool ts_parse_duration_ms(const char *value, int *out_ms);
extern const char *ts_resource_name(TsResource resource);
extern bool ts_is_valid_device_kind(const char *kind);

/* ---- in http.c : one libcurl layer for every vendor call ---- */
typedef struct TsHttpResult
{
	long		status;			/* HTTP status */
	char	   *body;			/* palloc'd, NUL-terminated */
	size_t		len;
} TsHttpResult;

#define TS_HTTP_MAX_HEADERS 4

/* One HTTP transfer: filled by the caller, results filled by ts_http_perform. */
typedef struct TsHttpRequest
{
	const char *method;			/* "GET", "POST", "DELETE", ... */
	const char *url;
	const char *path;			/* for messages: path only, never a query string */
	const char *headers[TS_HTTP_MAX_HEADERS];	/* "Name: value", NULL = unused */
	const char *basic_user;		/* HTTP Basic credentials, or NULL */
	const char *basic_password;
	const char *body;			/* NULL = none */
	TimestampTz not_before;		/* do not start before (retry backoff); 0 = now */
	/* results */
	TsHttpResult result;		/* status 0 when no HTTP answer arrived */
	int			curl_code;		/* CURLE_OK (0) when an answer arrived */
	char		errmsg[256];	/* curl's text when curl_code != 0 */
	int			retry_after_s;	/* Retry-After in seconds, -1 when absent */
	double		elapsed_ms;
} TsHttpRequest;

typedef enum TsHttpNext
{
	TS_HTTP_FINISHED,			/* leave the request as it is */
	TS_HTTP_REQUEUE				/* send it again once req->not_before has passed */
} TsHttpNext;

/* Called as each transfer ends (not inside curl); may ereport. */
typedef TsHttpNext (*TsHttpDoneFn) (TsHttpRequest *req, void *arg);

/*
 * Run n transfers concurrently (at most 8 at once) over the backend's connection
 * cache; returns when all are finished.  Interruptible at any time; nothing leaks on
 * error.  Result bodies are palloc'd in the current memory context.
 */
extern void ts_http_perform(const TsServerOptions *srv, int n, TsHttpRequest **reqs,
							TsHttpDoneFn done, void *arg);
extern const char *ts_http_path_only(const char *path);

/* ---- in auth.c : OAuth token + M2M session, shared across backends ---- */
typedef struct TsVendor TsVendor;	/* a server + user mapping ready to call the API */

extern TsVendor *ts_vendor_open(const TsServerOptions *srv, const TsUserOptions *um);

/*
 * Send n billed-usage request bodies (JSON text) concurrently; store each answer's
 * requestId (palloc'd) in request_ids[i].  Retries, token renewal and re-login are
 * handled inside; any failure is an ereport(ERROR).
 */
extern void ts_vendor_submit_billed(TsVendor *v, int n, char *const *bodies,
									char **request_ids, TsScanStats *stats);

/*
 * One vendor call with the session headers (used for callback registration).
 * path is relative to base_url.  Returns the result; 4xx/5xx are ereport(ERROR).
 */
extern TsHttpResult ts_vendor_call(TsVendor *v, const char *method, const char *path,
								   const char *body);

/* Credential identity for cache keys: never the secret itself. */
extern uint64 ts_vendor_identity(const TsServerOptions *srv, const TsUserOptions *um);

extern Size ts_auth_shmem_size(void);
extern void ts_auth_shmem_init(void);

/* ---- in spool.c : the durable callback spool ---- */
extern char *ts_spool_dir(void);	/* absolute path */

typedef enum TsSpoolState
{
	TS_SPOOL_WAITING,			/* not all pages in yet */
	TS_SPOOL_COMPLETE,
	TS_SPOOL_FAILED,			/* a callback with a failure status / faultResponse */
	TS_SPOOL_BROKEN				/* a callback for this request was not valid JSON */
} TsSpoolState;

typedef struct TsSpoolStatus
{
	TsSpoolState state;
	int			pages_in;
	int			total_pages;	/* 0 when not known */
	char	   *message;		/* FAILED/BROKEN: vendor fault or JSON error position */
	char	   *detail;
	List	   *page_paths;		/* COMPLETE: file paths in page order */
} TsSpoolStatus;

extern void ts_spool_status(const char *request_id, TsSpoolStatus *out);
extern bool ts_spool_valid_request_id(const char *request_id);

#define TS_REQUEST_ID_MAX 128
#define TS_SPOOL_MAX_PAGE 999999999	/* pageNumber / totalPages that name a file */

/* What a stored callback file is; also the order of files within a request. */
typedef enum TsSpoolKind
{
	TS_SPOOL_PAGE,				/* p<page>-of-<total>.json */
	TS_SPOOL_FAILURE,			/* failed.json */
	TS_SPOOL_UNPARSED			/* broken-<hash16>.json: not a usable callback */
} TsSpoolKind;

/*
 * Durably store one (already redacted) callback body; request_id NULL = unrouted.
 * Returns 1 when stored, 0 when it was there already, -1 on failure (logged).
 * Never throws for I/O trouble: the listener answers 500 and the vendor resends.
 */
extern int	ts_spool_store(const char *request_id, TsSpoolKind kind, long page, long total,
						   const char *body, size_t len);
extern void ts_spool_prepare(void);	/* listener start: create dir, drop temp files */
extern void ts_spool_purge(int retention_s);

/* ---- in wake.c : waking scans when a callback lands ---- */
extern Size ts_wake_shmem_size(void);
extern void ts_wake_shmem_init(void);
extern void ts_wake_register(void);
extern void ts_wake_unregister(void);
extern void ts_wake_all(void);
/* false when there is no shared memory or no free slot: the waiter must poll. */
extern bool ts_wake_registered(void);
/* Bumped by every ts_wake_all(); 0 without shared memory. */
extern uint64 ts_wake_generation(void);

/* ---- in listener.c : the callback listener background worker ---- */
extern void ts_listener_define_gucs(void);
extern void ts_listener_register_worker(void);
extern PGDLLEXPORT void ts_listener_main(Datum arg);
extern PGDLLIMPORT char *ts_guc_spool_directory;
extern PGDLLIMPORT char *ts_guc_callback_username;
extern PGDLLIMPORT char *ts_guc_callback_password;

/* ---- in cache.c : shared result cache with in-flight merging ---- */
typedef enum TsCacheResult
{
	TS_CACHE_MISS,				/* caller now owns sending it, then ts_cache_store/release */
	TS_CACHE_HIT,				/* complete result within cache_ttl: *request_id set */
	TS_CACHE_INFLIGHT			/* another session sends it: *request_id set once known */
} TsCacheResult;

extern Size ts_cache_shmem_size(void);
extern void ts_cache_shmem_init(void);
extern TsCacheResult ts_cache_claim(uint64 identity, const char *body, int ttl_ms,
									int inflight_ms, char **request_id);
extern void ts_cache_store(uint64 identity, const char *body, const char *request_id);
extern void ts_cache_release(uint64 identity, const char *body);
extern void ts_cache_mark_complete(uint64 identity, const char *body);

#endif							/* THINGSPACE_FDW_H */
