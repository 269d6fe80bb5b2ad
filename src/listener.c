/*
 * listener.c — the callback listener background worker and its settings.
 *
 * ThingSpace delivers results as JSON POSTs to a registered URL.  This worker
 * receives them with libmicrohttpd, checks where they come from and the credentials
 * the vendor puts in the body, stores them durably in the spool (spool.c) and only
 * then answers 200, and wakes the scans waiting for them (wake.c).
 *
 * libmicrohttpd runs without threads of its own: each daemon is in external epoll
 * mode, its epoll descriptor sits in a WaitEventSet next to our latch, and MHD_run is
 * called from this loop.  So every callback below runs in the worker's main thread
 * and may use PostgreSQL functions; errors inside a request are caught there, since
 * longjmp must not cross the library's frames.
 *
 * Settings: callback_username, allowed_sources, callback_path, spool_retention
 * and max_callback_size apply at the next request after a reload;
 * callback_password needs a restart (a reload would log its value); a changed
 * listen_addresses / listen_port makes the worker close and rebind its sockets
 * (in-flight requests are dropped; the vendor resends).  Whether the worker runs at
 * all is decided at server start: it is registered only when listen_addresses is
 * non-empty then.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "thingspace_fdw.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result TsMhdResult;
#else
typedef int TsMhdResult;
#endif

#ifndef MHD_HTTP_CONTENT_TOO_LARGE
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

#if PG_VERSION_NUM >= 170000
#define ts_create_wait_event_set(n) CreateWaitEventSet(NULL, (n))
#else
#define ts_create_wait_event_set(n) CreateWaitEventSet(TopMemoryContext, (n))
#endif

#define TS_MAX_LISTEN 16		/* listening sockets (addresses x families) */
#define TS_BIND_RETRY_MS 5000
#define TS_PURGE_EVERY_MS 60000

/* ---- settings ---- */
static char *ts_listen_addresses;
static int	ts_listen_port;
static char *ts_callback_path;
char	   *ts_guc_callback_username;
char	   *ts_guc_callback_password;
static char *ts_allowed_sources;
char	   *ts_guc_spool_directory;
static int	ts_spool_retention;	/* seconds, 0 = keep forever */
static int	ts_max_callback_size;	/* kB */

/* allowed_sources, parsed by its check hook */
typedef struct TsCidr
{
	int			family;
	int			bits;
	unsigned char addr[16];
} TsCidr;

typedef struct TsCidrList
{
	int			n;
	TsCidr		items[FLEXIBLE_ARRAY_MEMBER];
} TsCidrList;

static const TsCidrList *ts_allowed = NULL;	/* NULL or n == 0: any source */

/* ---- worker state ---- */
typedef struct TsListenSocket
{
	struct MHD_Daemon *daemon;
	char		label[NI_MAXHOST + 8];
} TsListenSocket;

static TsListenSocket ts_socks[TS_MAX_LISTEN];
static int	ts_nsocks = 0;
static WaitEventSet *ts_wes = NULL;

/* One HTTP request in progress; malloc'd because it outlives a loop iteration. */
typedef struct TsConn
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		too_large;
	bool		responded;
} TsConn;

/* ---------------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------------
 */

static bool
ts_parse_cidr(const char *s, TsCidr *out)
{
	char		host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t		hl = slash ? (size_t) (slash - s) : strlen(s);
	int			maxbits;

	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1)
		out->family = AF_INET, maxbits = 32;
	else if (inet_pton(AF_INET6, host, out->addr) == 1)
		out->family = AF_INET6, maxbits = 128;
	else
		return false;
	out->bits = maxbits;
	if (slash)
	{
		char	   *end;
		long		b = strtol(slash + 1, &end, 10);

		if (slash[1] == '\0' || *end != '\0' || b < 0 || b > maxbits)
			return false;
		out->bits = (int) b;
	}
	return true;
}

static bool
ts_check_allowed_sources(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *items;
	ListCell   *lc;
	TsCidrList *list;
	int			i = 0;

	if (!SplitGUCList(raw, ',', &items))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	/* The extra must be malloc'd: GUC code frees it with free(). */
	list = malloc(offsetof(TsCidrList, items) + sizeof(TsCidr) * Max(list_length(items), 1));
	if (list == NULL)
		return false;
	foreach(lc, items)
	{
		if (!ts_parse_cidr(lfirst(lc), &list->items[i]))
		{
			GUC_check_errdetail("\"%s\" is not an IP address or CIDR block such as 192.0.2.0/24.",
								(char *) lfirst(lc));
			free(list);
			return false;
		}
		i++;
	}
	list->n = i;
	*extra = list;
	list_free(items);
	pfree(raw);
	return true;
}

static void
ts_assign_allowed_sources(const char *newval, void *extra)
{
	ts_allowed = extra;
}

static bool
ts_check_callback_path(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] != '/')
	{
		GUC_check_errdetail("The callback path must start with \"/\".");
		return false;
	}
	return true;
}

static bool
ts_check_listen_addresses(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *items;

	if (!SplitGUCList(raw, ',', &items))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	if (list_length(items) > TS_MAX_LISTEN / 2)
	{
		GUC_check_errdetail("At most %d addresses can be listed.", TS_MAX_LISTEN / 2);
		return false;
	}
	list_free(items);
	pfree(raw);
	return true;
}

void
ts_listener_define_gucs(void)
{
	/*
	 * PostgreSQL only accepts restart-only settings from a preloaded library; loaded
	 * later (no listener then), they are simply read like reloadable ones.
	 */
	GucContext	startup_context = process_shared_preload_libraries_in_progress ?
		PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomStringVariable("thingspace_fdw.listen_addresses",
							   "Addresses the callback listener binds to.",
							   "Comma-separated host names or IP addresses; \"*\" means all; empty disables the listener.",
							   &ts_listen_addresses, "localhost",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   ts_check_listen_addresses, NULL, NULL);
	DefineCustomIntVariable("thingspace_fdw.listen_port",
							"TCP port of the callback listener.",
							"ThingSpace delivers only to ports 80, 443, 9001-9006, 50551-50559 and 28200-28220.",
							&ts_listen_port, 9001, 1, 65535,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("thingspace_fdw.callback_path",
							   "URL path on which the listener accepts callbacks.",
							   NULL,
							   &ts_callback_path, "/",
							   PGC_SIGHUP, 0,
							   ts_check_callback_path, NULL, NULL);
	DefineCustomStringVariable("thingspace_fdw.callback_username",
							   "User name ThingSpace must send in each callback body.",
							   "Empty accepts any.",
							   &ts_guc_callback_username, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	/*
	 * Not reloadable on purpose: on a reload the postmaster logs every changed
	 * setting with its new value, and this one is a secret.
	 */
	DefineCustomStringVariable("thingspace_fdw.callback_password",
							   "Password ThingSpace must send in each callback body.",
							   "Empty accepts any.",
							   &ts_guc_callback_password, "",
							   startup_context, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("thingspace_fdw.allowed_sources",
							   "Client addresses the listener accepts callbacks from.",
							   "Comma-separated IP addresses or CIDR blocks; empty accepts any.",
							   &ts_allowed_sources, "",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   ts_check_allowed_sources, ts_assign_allowed_sources, NULL);
	DefineCustomStringVariable("thingspace_fdw.spool_directory",
							   "Directory where received callbacks are stored.",
							   "A relative path is taken from the data directory.",
							   &ts_guc_spool_directory, "pg_thingspace",
							   startup_context, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("thingspace_fdw.spool_retention",
							"How long stored callbacks of a request are kept after its last one.",
							"0 keeps them forever.",
							&ts_spool_retention, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("thingspace_fdw.max_callback_size",
							"Largest callback body the listener accepts.",
							"Larger callbacks are refused with HTTP 413.",
							&ts_max_callback_size, 64 * 1024, 1, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);

	/* Other files may define thingspace_fdw.* settings: they must do so before this. */
	TS_MARK_GUC_PREFIX_RESERVED("thingspace_fdw");
}

void
ts_listener_register_worker(void)
{
	BackgroundWorker worker;

	if (ts_listen_addresses == NULL || ts_listen_addresses[0] == '\0')
		return;

	memset(&worker, 0, sizeof(worker));
	/* A connection to no database puts the worker in pg_stat_activity. */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "thingspace_fdw");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ts_listener_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "thingspace_fdw listener");
	snprintf(worker.bgw_type, BGW_MAXLEN, "thingspace_fdw listener");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------------------
 * Request handling
 * ---------------------------------------------------------------------------
 */

static TsMhdResult
ts_respond(struct MHD_Connection *c, TsConn *conn, unsigned int status, const char *json)
{
	struct MHD_Response *r;
	TsMhdResult ret;

	conn->responded = true;
	r = MHD_create_response_from_buffer(strlen(json), (void *) json, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static const char *ts_client_name(struct MHD_Connection *c);

static TsMhdResult
ts_refuse_too_large(struct MHD_Connection *c, TsConn *conn)
{
	ereport(LOG,
			(errmsg("thingspace_fdw: refused a callback from %s: larger than thingspace_fdw.max_callback_size (%d kB)",
					ts_client_name(c), ts_max_callback_size),
			 errhint("Raise thingspace_fdw.max_callback_size; ThingSpace will resend.")));
	return ts_respond(c, conn, MHD_HTTP_CONTENT_TOO_LARGE, "{\"error\":\"body too large\"}");
}

static const struct sockaddr *
ts_client_addr(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci ? ci->client_addr : NULL;
}

/* Numeric client address for log messages. */
static const char *
ts_client_name(struct MHD_Connection *c)
{
	static char host[NI_MAXHOST];
	const struct sockaddr *sa = ts_client_addr(c);
	socklen_t	len = sa && sa->sa_family == AF_INET6 ?
		sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	if (sa == NULL ||
		getnameinfo(sa, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
		return "unknown";
	return host;
}

static bool
ts_prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int			whole = bits / 8;
	int			rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	return rest == 0 || ((a[whole] ^ b[whole]) & (0xFF << (8 - rest)) & 0xFF) == 0;
}

static bool
ts_source_allowed(const struct sockaddr *sa)
{
	const unsigned char *addr;
	int			family;
	int			i;

	if (ts_allowed == NULL || ts_allowed->n == 0)
		return true;
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
	{
		family = AF_INET;
		addr = (const unsigned char *) &((const struct sockaddr_in *) sa)->sin_addr;
	}
	else if (sa->sa_family == AF_INET6)
	{
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;

		/* An IPv4 client on a dual-stack socket is matched as IPv4. */
		family = IN6_IS_ADDR_V4MAPPED(a6) ? AF_INET : AF_INET6;
		addr = (const unsigned char *) a6 + (family == AF_INET ? 12 : 0);
	}
	else
		return false;

	for (i = 0; i < ts_allowed->n; i++)
		if (ts_allowed->items[i].family == family &&
			ts_prefix_match(ts_allowed->items[i].addr, addr, ts_allowed->items[i].bits))
			return true;
	return false;
}

/* Compare a received secret with the configured one; time depends on the latter only. */
static bool
ts_secret_equal(const char *given, size_t glen, const char *expected)
{
	size_t		elen = strlen(expected);
	unsigned int diff = (glen != elen);
	size_t		i;

	for (i = 0; i < elen; i++)
		diff |= (unsigned char) expected[i] ^ (i < glen ? (unsigned char) given[i] : 0);
	return diff == 0;
}

static bool
ts_credentials_ok(TsStr user, TsStr pass)
{
	bool		ok = true;

	/* '&', not '&&': do not reveal which of the two was wrong by timing. */
	if (ts_guc_callback_username[0] != '\0')
		ok = ok & ts_secret_equal(user.p, user.p ? user.len : 0, ts_guc_callback_username);
	if (ts_guc_callback_password[0] != '\0')
		ok = ok & ts_secret_equal(pass.p, pass.p ? pass.len : 0, ts_guc_callback_password);
	return ok;
}

/*
 * The string value of the first member named key, found lexically so that it works
 * on bodies that are not valid JSON.  Like the envelope reader, an exact name wins
 * over one in another case.  Simple escapes are decoded; \u escapes are kept as
 * written.  Result is palloc'd; p == NULL when there is no such member.
 */
static TsStr ts_lex_member_1(const char *buf, size_t len, const char *key, bool ci);

static TsStr
ts_lex_member(const char *buf, size_t len, const char *key)
{
	TsStr		res = ts_lex_member_1(buf, len, key, false);

	return res.p ? res : ts_lex_member_1(buf, len, key, true);
}

static TsStr
ts_lex_member_1(const char *buf, size_t len, const char *key, bool ci)
{
	TsStr		res = {NULL, 0};
	size_t		klen = strlen(key);
	const char *end = buf + len;
	const char *p = buf;

	while ((p = memchr(p, '"', end - p)) != NULL)
	{
		const char *q = p + 1 + klen;
		StringInfoData out;

		if (q >= end || *q != '"' ||
			(ci ? pg_strncasecmp(p + 1, key, klen) : memcmp(p + 1, key, klen)) != 0 ||
			(p > buf && p[-1] == '\\'))
		{
			p++;
			continue;
		}
		for (q++; q < end && isspace((unsigned char) *q); q++);
		if (q >= end || *q != ':')
		{
			p++;
			continue;
		}
		for (q++; q < end && isspace((unsigned char) *q); q++);
		if (q >= end || *q != '"')
		{
			p++;
			continue;
		}
		initStringInfo(&out);
		for (q++; q < end && *q != '"'; q++)
		{
			if (*q == '\\' && q + 1 < end)
			{
				const char *esc = strchr("\"\\/bfnrt", q[1]);

				if (esc)
				{
					appendStringInfoChar(&out, "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"]);
					q++;
					continue;
				}
			}
			appendStringInfoChar(&out, *q);
		}
		if (q >= end)
			return res;			/* unterminated */
		res.p = out.data;
		res.len = out.len;
		return res;
	}
	return res;
}

/* A request id from a TsStr, or NULL when it cannot name a spool directory. */
static char *
ts_routable_id(const char *p, size_t len)
{
	char	   *id;

	if (p == NULL || len == 0 || len > TS_REQUEST_ID_MAX)
		return NULL;
	id = pnstrdup(p, len);
	return ts_spool_valid_request_id(id) ? id : NULL;
}

/*
 * A complete body: classify, authenticate, store, wake.  Returns the HTTP status;
 * *reply is the JSON to send.  May throw (caught by the caller).
 */
static unsigned int
ts_handle_callback(struct MHD_Connection *c, const char *body, size_t len, const char **reply)
{
	TsjError	jerr;
	TsjDoc	   *doc;
	TsEnvelope	env;
	TsMapError	merr;
	TsSpoolKind kind = TS_SPOOL_UNPARSED;
	char	   *request_id = NULL;
	long		page = 0;
	long		total = 0;
	TsStr		user;
	TsStr		pass;
	char	   *redacted;
	size_t		rlen;
	int			rc;

	memset(&env, 0, sizeof(env));
	doc = tsj_parse(body, len, &jerr);
	if (doc && ts_envelope_read(tsj_root(doc), &env, &merr) == 0)
	{
		kind = env.failed ? TS_SPOOL_FAILURE : TS_SPOOL_PAGE;
		request_id = ts_routable_id(env.request_id.p, env.request_id.len);
		page = env.page_number;
		total = env.total_pages;
		user = env.username;
		pass = env.password;
	}
	else
	{
		char		sniffed[TS_REQUEST_ID_MAX + 2];
		size_t		n = ts_sniff_request_id(body, len, sniffed, sizeof(sniffed));

		request_id = ts_routable_id(n > 0 ? sniffed : NULL, n);
		user = ts_lex_member(body, len, "username");
		pass = ts_lex_member(body, len, "password");
	}

	if (!ts_credentials_ok(user, pass))
	{
		if (doc)
			tsj_free(doc);
		ereport(LOG,
				(errmsg("thingspace_fdw: refused a callback from %s: wrong credentials",
						ts_client_name(c)),
				 errhint("The username and password in the body must match thingspace_fdw.callback_username and thingspace_fdw.callback_password.")));
		*reply = "{\"error\":\"invalid credentials\"}";
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (doc)
		tsj_free(doc);			/* env's views are not needed any more */

	/*
	 * A page or failure that cannot be routed is kept as an unrouted body; page
	 * numbers that cannot name a spool file make the callback unusable.
	 */
	if (request_id == NULL)
		kind = TS_SPOOL_UNPARSED;
	else if (kind == TS_SPOOL_PAGE &&
			 (page < -1 || page > TS_SPOOL_MAX_PAGE || total < -1 || total > TS_SPOOL_MAX_PAGE))
		kind = TS_SPOOL_UNPARSED;

	redacted = ts_redact_credentials(body, len, &rlen);
	if (redacted == NULL)
	{
		ereport(LOG,
				(errmsg("thingspace_fdw: could not prepare a callback for storage: out of memory")));
		*reply = "{\"error\":\"could not store\"}";
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	rc = ts_spool_store(request_id, kind, page, total, redacted, rlen);
	free(redacted);
	if (rc < 0)
	{
		*reply = "{\"error\":\"could not store\"}";
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}

	ts_wake_all();
	elog(DEBUG1, "thingspace_fdw: %s callback for request \"%s\" page %ld of %ld",
		 rc > 0 ? "stored" : "duplicate", request_id ? request_id : "(unrouted)", page, total);
	*reply = rc > 0 ? "{\"status\":\"stored\"}" : "{\"status\":\"duplicate\"}";
	return MHD_HTTP_OK;
}

static TsMhdResult
ts_access_handler(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	TsConn	   *conn = *con_cls;
	size_t		limit = (size_t) ts_max_callback_size * 1024;

	if (conn == NULL)
	{
		/* Headers are in: decide what we can before reading the body. */
		const char *clen;

		conn = calloc(1, sizeof(TsConn));
		if (conn == NULL)
			return MHD_NO;
		*con_cls = conn;

		if (!ts_source_allowed(ts_client_addr(c)))
		{
			ereport(LOG,
					(errmsg("thingspace_fdw: refused a callback from %s: not in thingspace_fdw.allowed_sources",
							ts_client_name(c))));
			return ts_respond(c, conn, MHD_HTTP_FORBIDDEN, "{\"error\":\"source not allowed\"}");
		}
		if (strcmp(url, ts_callback_path) != 0)
			return ts_respond(c, conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}");
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return ts_respond(c, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"only POST\"}");
		clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		/* Declared too large: answer now; the library drops the body and the connection. */
		if (clen && strtoull(clen, NULL, 10) > limit)
			return ts_refuse_too_large(c, conn);
		return MHD_YES;
	}

	if (conn->responded)
	{
		*upload_data_size = 0;
		return MHD_YES;
	}

	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		*upload_data_size = 0;
		if (conn->too_large || conn->len + n > limit)
		{
			/* Chunked and too large: read and drop the rest, then answer 413. */
			conn->too_large = true;
			free(conn->buf);
			conn->buf = NULL;
			conn->len = conn->cap = 0;
			return MHD_YES;
		}
		if (conn->len + n + 1 > conn->cap)
		{
			size_t		cap = Max(conn->cap * 2, Max(conn->len + n + 1, 8192));
			char	   *nb = realloc(conn->buf, cap);

			if (nb == NULL)
				return MHD_NO;
			conn->buf = nb;
			conn->cap = cap;
		}
		memcpy(conn->buf + conn->len, upload_data, n);
		conn->len += n;
		return MHD_YES;
	}

	/* The whole body is in. */
	if (conn->too_large)
		return ts_refuse_too_large(c, conn);
	else
	{
		MemoryContext cxt = CurrentMemoryContext;
		const char *reply = NULL;
		volatile unsigned int status = MHD_HTTP_INTERNAL_SERVER_ERROR;

		PG_TRY();
		{
			status = ts_handle_callback(c, conn->buf ? conn->buf : "", conn->len, &reply);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			reply = NULL;
		}
		PG_END_TRY();
		return ts_respond(c, conn, status, reply ? reply : "{\"error\":\"internal error\"}");
	}
}

static void
ts_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
					 enum MHD_RequestTerminationCode toe)
{
	TsConn	   *conn = *con_cls;

	if (conn)
	{
		free(conn->buf);
		free(conn);
		*con_cls = NULL;
	}
}

static void
ts_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char		msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	ereport(LOG, (errmsg("thingspace_fdw listener: %s", msg)));
}

/* ---------------------------------------------------------------------------
 * Sockets
 * ---------------------------------------------------------------------------
 */

static void
ts_listener_close(void)
{
	int			i;

	for (i = 0; i < ts_nsocks; i++)
		MHD_stop_daemon(ts_socks[i].daemon);	/* also closes the socket */
	ts_nsocks = 0;
	if (ts_wes)
	{
		FreeWaitEventSet(ts_wes);
		ts_wes = NULL;
	}
}

/* Bind one resolved address.  Returns false, with errno, when it cannot. */
static bool
ts_listen_one(const struct addrinfo *ai, const char *label)
{
	int			fd;
	int			one = 1;
	struct MHD_Daemon *d;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return false;
	(void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		(void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
		fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
	{
		int			save = errno;

		close(fd);
		errno = save;
		return false;
	}
	d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
						 NULL, NULL, ts_access_handler, NULL,
						 MHD_OPTION_EXTERNAL_LOGGER, ts_mhd_log, NULL,
						 MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
						 MHD_OPTION_NOTIFY_COMPLETED, ts_request_completed, NULL,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 60,
						 MHD_OPTION_END);
	if (d == NULL)
	{
		close(fd);
		errno = EINVAL;
		return false;
	}
	ts_socks[ts_nsocks].daemon = d;
	strlcpy(ts_socks[ts_nsocks].label, label, sizeof(ts_socks[ts_nsocks].label));
	ts_nsocks++;
	return true;
}

/*
 * Bind every configured address; true when at least one socket listens.
 * Failed attempts are repeated every few seconds: logged at once, then once a minute.
 */
static bool
ts_listener_open(void)
{
	static int	failures = 0;
	int			elevel = (failures % (60000 / TS_BIND_RETRY_MS) == 0) ? LOG : DEBUG1;
	char	   *raw = pstrdup(ts_listen_addresses);
	List	   *items;
	ListCell   *lc;
	char		port[8];
	bool		in_use = false;

	snprintf(port, sizeof(port), "%d", ts_listen_port);
	if (!SplitGUCList(raw, ',', &items))
		return false;
	foreach(lc, items)
	{
		const char *host = lfirst(lc);
		struct addrinfo hints;
		struct addrinfo *res;
		struct addrinfo *ai;
		int			rc;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
		if (rc != 0)
		{
			ereport(elevel,
					(errmsg("thingspace_fdw listener: could not resolve \"%s\": %s",
							host, gai_strerror(rc))));
			continue;
		}
		for (ai = res; ai && ts_nsocks < TS_MAX_LISTEN; ai = ai->ai_next)
		{
			char		num[NI_MAXHOST];
			char		label[NI_MAXHOST + 8];

			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof(num), NULL, 0,
							NI_NUMERICHOST) != 0)
				strlcpy(num, host, sizeof(num));
			snprintf(label, sizeof(label), ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
					 num, port);
			if (ts_listen_one(ai, label))
				ereport(LOG, (errmsg("thingspace_fdw listener: listening on %s", label)));
			else
			{
				bool		busy = (errno == EADDRINUSE);

				in_use |= busy;
				ereport(elevel,
						(errcode_for_socket_access(),
						 errmsg("thingspace_fdw listener: could not listen on %s: %m", label),
						 busy ?
						 errhint("Another program uses port %d; change thingspace_fdw.listen_port or stop it.  Retrying every %d seconds.",
								 ts_listen_port, TS_BIND_RETRY_MS / 1000) : 0));
			}
		}
		freeaddrinfo(res);
	}
	/* A busy port is retried as a whole, so that no address is left out. */
	if (in_use && ts_nsocks > 0)
		ts_listener_close();
	failures = ts_nsocks > 0 ? 0 : failures + 1;
	return ts_nsocks > 0;
}

static void
ts_build_wait_set(void)
{
	int			i;

	ts_wes = ts_create_wait_event_set(ts_nsocks + 2);
	AddWaitEventToSet(ts_wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(ts_wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < ts_nsocks; i++)
	{
		const union MHD_DaemonInfo *di =
			MHD_get_daemon_info(ts_socks[i].daemon, MHD_DAEMON_INFO_EPOLL_FD);

		AddWaitEventToSet(ts_wes, WL_SOCKET_READABLE, di->epoll_fd, NULL, NULL);
	}
}

static long
ts_ms_until(TimestampTz now, TimestampTz when)
{
	return when <= now ? 0 : (long) ((when - now + 999) / 1000);
}

/* ---------------------------------------------------------------------------
 * Worker
 * ---------------------------------------------------------------------------
 */

void
ts_listener_main(Datum arg)
{
	MemoryContext loop_cxt;
	TimestampTz next_bind = 0;
	TimestampTz next_purge = 0;
	char	   *bound_addresses = NULL;
	int			bound_port = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "thingspace_fdw listener loop",
									 ALLOCSET_DEFAULT_SIZES);
	ts_spool_prepare();

	for (;;)
	{
		WaitEvent	events[TS_MAX_LISTEN + 2];
		long		timeout;
		TimestampTz now;
		int			i;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_purge = 0;		/* a new retention applies at once */
		}
		if (bound_addresses &&
			(strcmp(bound_addresses, ts_listen_addresses) != 0 || bound_port != ts_listen_port))
		{
			ereport(LOG, (errmsg("thingspace_fdw listener: listen address changed, rebinding")));
			ts_listener_close();
			pfree(bound_addresses);
			bound_addresses = NULL;
			next_bind = 0;
		}

		now = GetCurrentTimestamp();
		if (ts_nsocks == 0 && ts_listen_addresses[0] != '\0' && now >= next_bind)
		{
			if (ts_wes)
			{
				FreeWaitEventSet(ts_wes);	/* rebuilt below with the new sockets */
				ts_wes = NULL;
			}
			if (ts_listener_open())
			{
				bound_addresses = MemoryContextStrdup(TopMemoryContext, ts_listen_addresses);
				bound_port = ts_listen_port;
				pgstat_report_activity(STATE_RUNNING, psprintf("listening on port %d", bound_port));
			}
			else
				next_bind = now + (TimestampTz) TS_BIND_RETRY_MS * 1000;
		}
		if (now >= next_purge)
		{
			ts_spool_purge(ts_spool_retention);
			next_purge = now + (TimestampTz) TS_PURGE_EVERY_MS * 1000;
		}
		if (ts_wes == NULL)
			ts_build_wait_set();

		timeout = ts_ms_until(now, next_purge);
		if (ts_nsocks == 0 && ts_listen_addresses[0] != '\0')
			timeout = Min(timeout, ts_ms_until(now, next_bind));
		for (i = 0; i < ts_nsocks; i++)
		{
			MHD_UNSIGNED_LONG_LONG mhd_ms;

			if (MHD_get_timeout(ts_socks[i].daemon, &mhd_ms) == MHD_YES)
				timeout = Min(timeout, (long) Min(mhd_ms, (MHD_UNSIGNED_LONG_LONG) LONG_MAX));
		}

		(void) WaitEventSetWait(ts_wes, timeout, events, lengthof(events), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		/* Cheap when idle; also serves connection timeouts. */
		for (i = 0; i < ts_nsocks; i++)
			MHD_run(ts_socks[i].daemon);
	}
}
