/*
 * auth.c — OAuth token, M2M session, login lockout protection, and the driver that
 * sends vendor calls with retries, token renewal and re-login.
 *
 * Tokens, session tokens and failed-login marks live in a small table of slots keyed
 * by SHA-256 hashes of the credentials (never the credentials themselves).  When the
 * library is preloaded the table is in shared memory, so all backends share one token
 * and one session per credential set, and a backend that finds another one fetching
 * waits for it instead of fetching too; otherwise each backend has its own table.
 *
 * Secrets never go into a message: vendor texts are redacted against the known secrets
 * before they are shown, and only paths (never query strings) name endpoints.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "catalog/pg_type.h"
#if PG_VERSION_NUM >= 140000
#include "common/cryptohash.h"
#else
#include "common/sha2.h"
#endif
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "thingspace_fdw.h"
#include "tsjson.h"

#define TS_TOKEN_PATH	"/api/ts/v1/oauth2/token"
#define TS_LOGIN_PATH	"/api/m2m/v1/session/login"
#define TS_BILLED_PATH	"/api/m2m/v2/devices/usage/actions/billed"

#define TS_AUTH_SLOTS		64
#define TS_AUTH_VALUE_LEN	2048
#define TS_AUTH_NOTE_LEN	256
#define TS_KEY_LEN			32
#define TS_LOCKOUT_MS		(15 * 60 * 1000)
#define TS_SESSION_IDLE_MS	(19 * 60 * 1000)	/* the vendor drops sessions after 20 min idle */
#define TS_TOKEN_MARGIN_MS	(60 * 1000)
#define TS_BACKOFF_BASE_MS	200
#define TS_BACKOFF_MAX_MS	30000
#define TS_RETRY_AFTER_MAX_S 120

typedef enum TsSlotKind
{
	TS_KIND_FREE = 0,
	TS_KIND_TOKEN,
	TS_KIND_SESSION,
	TS_KIND_LOCKOUT
} TsSlotKind;

typedef struct TsAuthSlot
{
	TsSlotKind	kind;
	uint8		key[TS_KEY_LEN];
	int			busy_pid;		/* backend fetching this value now; 0 = none */
	TimestampTz busy_until;		/* waiters take over after this */
	TimestampTz refresh_at;		/* token: fetch a new one from here on */
	TimestampTz expires_at;		/* token: hard expiry; lockout: end of lockout */
	TimestampTz last_used;		/* session: idle clock; lockout: when the login failed */
	char		value[TS_AUTH_VALUE_LEN];	/* token / session token; "" = none */
	char		note[TS_AUTH_NOTE_LEN]; /* lockout: the vendor's answer, redacted */
} TsAuthSlot;

typedef struct TsAuthShared
{
	LWLock		lock;
	int			tranche_id;
	ConditionVariable cv;		/* broadcast when a fetch ends */
	TsAuthSlot	slots[TS_AUTH_SLOTS];
} TsAuthShared;

static TsAuthShared *ts_auth = NULL;
static bool ts_auth_shared = false;
static bool ts_auth_exit_registered = false;

struct TsVendor
{
	TsServerOptions srv;
	TsUserOptions um;
	const char *server_name;
	uint8		token_key[TS_KEY_LEN];
	uint8		session_key[TS_KEY_LEN];
	uint8		lock_key[TS_KEY_LEN];
	char	   *token;			/* last values used, for redaction and renewal */
	char	   *session;
	TsScanStats *stats;			/* of the running call, may be NULL */
};

typedef enum TsCallKind
{
	TS_CALL_TOKEN,
	TS_CALL_LOGIN,
	TS_CALL_API
} TsCallKind;

/* One vendor call with its retry state.  http must stay first (cast in ts_call_done). */
typedef struct TsCall
{
	TsHttpRequest http;
	TsCallKind	kind;
	const char *label;			/* which request, for messages; NULL for a lone call */
	int			retries;
	bool		renewed_token;
	bool		renewed_session;
	bool		done;
} TsCall;

typedef struct TsRun
{
	TsVendor   *v;
	bool		need_token;		/* a call was refused for its token */
	bool		need_session;	/* a call was refused for its session */
} TsRun;

typedef struct TsVendorError
{
	char	   *code;			/* errorCode or fault.code; NULL when neither */
	char	   *message;
	bool		gateway;		/* the {"fault": {...}} shape */
} TsVendorError;

typedef enum TsOutcome
{
	TS_OUT_OK,
	TS_OUT_RETRY,
	TS_OUT_RENEW_TOKEN,
	TS_OUT_RENEW_SESSION,
	TS_OUT_FAIL
} TsOutcome;

static void ts_run_calls(TsVendor *v, int n, TsCall *calls);

/* ---- hashing ---- */

/* SHA-256 over a tag and length-prefixed fields, so ("ab","c") != ("a","bc"). */
static void
ts_hash_fields(uint8 *out, const char *tag, int n, const char *const *fields)
{
#if PG_VERSION_NUM >= 140000
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

#define TS_SHA_UPDATE(p, l) \
	if (pg_cryptohash_update(ctx, (const uint8 *) (p), (l)) < 0) goto fail
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		goto fail;
#else
	pg_sha256_ctx ctx;

#define TS_SHA_UPDATE(p, l) pg_sha256_update(&ctx, (const uint8 *) (p), (l))
	pg_sha256_init(&ctx);
#endif
	TS_SHA_UPDATE(tag, strlen(tag) + 1);
	for (int i = 0; i < n; i++)
	{
		const char *f = fields[i] ? fields[i] : "";
		uint32		len = (uint32) strlen(f);

		TS_SHA_UPDATE(&len, sizeof(len));
		TS_SHA_UPDATE(f, len);
	}
#if PG_VERSION_NUM >= 150000
	if (pg_cryptohash_final(ctx, out, TS_KEY_LEN) < 0)
		goto fail;
	pg_cryptohash_free(ctx);
	return;
fail:
	pg_cryptohash_free(ctx);
	elog(ERROR, "thingspace_fdw: could not compute a SHA-256 hash");
#elif PG_VERSION_NUM >= 140000
	if (pg_cryptohash_final(ctx, out) < 0)
		goto fail;
	pg_cryptohash_free(ctx);
	return;
fail:
	pg_cryptohash_free(ctx);
	elog(ERROR, "thingspace_fdw: could not compute a SHA-256 hash");
#else
	pg_sha256_final(&ctx, out);
#endif
#undef TS_SHA_UPDATE
}

uint64
ts_vendor_identity(const TsServerOptions *srv, const TsUserOptions *um)
{
	/* All credentials: a mapping with a wrong secret must not see another's cache. */
	const char *f[] = {srv->base_url, um->client_id, um->client_secret, um->username,
	um->password};
	uint8		h[TS_KEY_LEN];
	uint64		id;

	ts_hash_fields(h, "identity", lengthof(f), f);
	memcpy(&id, h, sizeof(id));
	return id;
}

/* ---- the slot table ---- */

Size
ts_auth_shmem_size(void)
{
	return MAXALIGN(sizeof(TsAuthShared));
}

void
ts_auth_shmem_init(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ts_auth = ShmemInitStruct("thingspace_fdw auth", sizeof(TsAuthShared), &found);
	if (!found)
	{
		memset(ts_auth, 0, sizeof(TsAuthShared));
		ts_auth->tranche_id = LWLockNewTrancheId();
		LWLockInitialize(&ts_auth->lock, ts_auth->tranche_id);
		ConditionVariableInit(&ts_auth->cv);
	}
	LWLockRelease(AddinShmemInitLock);
	LWLockRegisterTranche(ts_auth->tranche_id, "thingspace_fdw_auth");
	ts_auth_shared = true;
}

static void
ts_auth_attach(void)
{
	if (ts_auth == NULL)
	{
		/* Not preloaded: a table of our own. */
		ts_auth = MemoryContextAllocZero(TopMemoryContext, sizeof(TsAuthShared));
		ts_auth_shared = false;
	}
}

static void
ts_lock(void)
{
	if (ts_auth_shared)
		LWLockAcquire(&ts_auth->lock, LW_EXCLUSIVE);
}

static void
ts_unlock(void)
{
	if (ts_auth_shared)
		LWLockRelease(&ts_auth->lock);
}

static void
ts_wake_waiters(void)
{
	if (ts_auth_shared)
		ConditionVariableBroadcast(&ts_auth->cv);
}

static TsAuthSlot *
ts_slot_find(TsSlotKind kind, const uint8 *key)
{
	for (int i = 0; i < TS_AUTH_SLOTS; i++)
	{
		TsAuthSlot *s = &ts_auth->slots[i];

		if (s->kind == kind && memcmp(s->key, key, TS_KEY_LEN) == 0)
			return s;
	}
	return NULL;
}

/*
 * A free slot: an empty one, else an ended lockout or expired token, else the least
 * recently used token or session.  Busy slots and running lockouts are kept.
 */
static TsAuthSlot *
ts_slot_alloc(TsSlotKind kind, const uint8 *key, TimestampTz now)
{
	TsAuthSlot *best = NULL;
	int			best_rank = 0;

	for (int i = 0; i < TS_AUTH_SLOTS; i++)
	{
		TsAuthSlot *s = &ts_auth->slots[i];
		int			rank;

		if (s->busy_pid != 0)
			continue;
		if (s->kind == TS_KIND_FREE)
			rank = 4;
		else if (s->kind != TS_KIND_SESSION && s->expires_at <= now)
			rank = 3;
		else if (s->kind != TS_KIND_LOCKOUT)
			rank = 2;
		else
			continue;
		if (rank > best_rank || (rank == best_rank && s->last_used < best->last_used))
		{
			best = s;
			best_rank = rank;
		}
	}
	if (best)
	{
		memset(best, 0, sizeof(TsAuthSlot));
		best->kind = kind;
		memcpy(best->key, key, TS_KEY_LEN);
		best->last_used = now;
	}
	return best;
}

/* At backend exit: no slot may stay marked as being fetched by us. */
static void
ts_auth_exit(int code, Datum arg)
{
	if (ts_auth == NULL)
		return;
	ts_lock();
	for (int i = 0; i < TS_AUTH_SLOTS; i++)
		if (ts_auth->slots[i].busy_pid == MyProcPid)
			ts_auth->slots[i].busy_pid = 0;
	ts_unlock();
	ts_wake_waiters();
}

/* ---- messages ---- */

/* Replace every occurrence of a known secret in vendor text. */
static char *
ts_redact(TsVendor *v, const char *text)
{
	const char *secrets[] = {v->um.client_secret, v->um.password, v->token, v->session};
	char	   *out = pstrdup(text ? text : "");

	for (int i = 0; i < lengthof(secrets); i++)
	{
		const char *sec = secrets[i];
		size_t		len = sec ? strlen(sec) : 0;
		StringInfoData buf;
		const char *p;
		const char *hit;

		if (len < 3 || strstr(out, sec) == NULL)
			continue;
		initStringInfo(&buf);
		for (p = out; (hit = strstr(p, sec)) != NULL; p = hit + len)
		{
			appendBinaryStringInfo(&buf, p, hit - p);
			appendStringInfoString(&buf, "********");
		}
		appendStringInfoString(&buf, p);
		out = buf.data;
	}
	return out;
}

/* Printable, bounded excerpt of a non-JSON answer. */
static char *
ts_excerpt(const char *body, size_t len)
{
	StringInfoData buf;
	size_t		n = Min(len, 200);

	initStringInfo(&buf);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) body[i];

		appendStringInfoChar(&buf, (c >= 0x20 && c < 0x7f) ? (char) c : ' ');
	}
	if (len > n)
		appendStringInfoString(&buf, "...");
	return buf.data;
}

/* "Sentence" → "Sentence." without doubling a final period. */
static const char *
ts_sentence(const char *s)
{
	size_t		len = strlen(s);

	if (len > 0 && (s[len - 1] == '.' || s[len - 1] == '!' || s[len - 1] == '?'))
		return s;
	return psprintf("%s.", s);
}

/* ---- JSON ---- */

/*
 * Extract fields ("name" or "outer.inner") of a JSON object as text; out[i] = NULL when
 * missing.  Outputs are allocated before parsing so that nothing between tsj_parse and
 * tsj_free can ereport (the parser's malloc'd arena cannot leak).
 */
static bool
ts_json_fields(const char *body, size_t len, int n, const char *const *paths, char **out)
{
	TsjDoc	   *doc;
	TsjError	jerr;
	const TsjNode *root;

	for (int i = 0; i < n; i++)
		out[i] = palloc(len + 1);
	doc = (body && len > 0) ? tsj_parse(body, len, &jerr) : NULL;
	root = doc ? tsj_root(doc) : NULL;
	if (root == NULL || root->type != TSJ_OBJECT)
	{
		if (doc)
			tsj_free(doc);
		for (int i = 0; i < n; i++)
			out[i] = NULL;
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		const char *dot = strchr(paths[i], '.');
		const TsjNode *node;

		if (dot)
		{
			char		outer[64];

			strlcpy(outer, paths[i], Min(sizeof(outer), (size_t) (dot - paths[i] + 1)));
			node = tsj_get(tsj_get(root, outer), dot + 1);
		}
		else
			node = tsj_get(root, paths[i]);

		/* Strings and numbers as text; a string's value cannot outgrow its source. */
		if (node && (node->type == TSJ_STRING || node->type == TSJ_NUMBER) && node->len <= len)
		{
			memcpy(out[i], node->str, node->len);
			out[i][node->len] = '\0';
		}
		else
			out[i] = NULL;
	}
	tsj_free(doc);
	return true;
}

static char *
ts_json_field(const char *body, size_t len, const char *path)
{
	char	   *out;

	ts_json_fields(body, len, 1, &path, &out);
	return out;
}

static void
ts_parse_error(const TsHttpResult *r, TsVendorError *e)
{
	static const char *const paths[] = {"errorCode", "errorMessage", "fault.code",
	"fault.message", "fault.description", "error", "error_description"};
	char	   *f[lengthof(paths)];

	memset(e, 0, sizeof(*e));
	if (r->body == NULL || !ts_json_fields(r->body, r->len, lengthof(paths), paths, f))
		return;
	if (f[0])
	{
		e->code = f[0];
		e->message = f[1];
	}
	else if (f[2])
	{
		e->gateway = true;
		e->code = f[2];
		if (f[3] && f[4])
			e->message = psprintf("%s: %s", f[3], f[4]);
		else
			e->message = f[3] ? f[3] : f[4];
	}
	else if (f[5])
	{
		/* OAuth servers answer {"error", "error_description"} (RFC 6749). */
		e->code = f[5];
		e->message = f[6];
	}
}

static bool
ts_ends_with(const char *s, const char *suffix)
{
	size_t		a = strlen(s);
	size_t		b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- lockout ---- */

typedef struct TsLockout
{
	TimestampTz failed_at;
	TimestampTz until;
	char		note[TS_AUTH_NOTE_LEN];
} TsLockout;

/* Caller holds the lock. */
static bool
ts_lockout_find(TsVendor *v, TimestampTz now, TsLockout *out)
{
	TsAuthSlot *s = ts_slot_find(TS_KIND_LOCKOUT, v->lock_key);

	if (s == NULL)
		return false;
	if (s->expires_at <= now)
	{
		s->kind = TS_KIND_FREE;
		return false;
	}
	out->failed_at = s->last_used;
	out->until = s->expires_at;
	memcpy(out->note, s->note, TS_AUTH_NOTE_LEN);
	return true;
}

static void
ts_lockout_report(TsVendor *v, const TsLockout *lk)
{
	char	   *until = pstrdup(timestamptz_to_str(lk->until));

	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("thingspace login not attempted because the last login with these credentials failed"),
			 errdetail("The login at %s was refused (%s).  The vendor locks the account after five failed logins, so no login with the same user name and password is tried again until %s.",
					   timestamptz_to_str(lk->failed_at), lk->note, until),
			 errhint("Correct the password in the user mapping for server \"%s\" (ALTER USER MAPPING ... OPTIONS (SET password '...')), or wait until %s.",
					 v->server_name, until)));
}

/* Remember a refused login; returns when the lockout ends. */
static TimestampTz
ts_lockout_record(TsVendor *v, const char *note)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz until = TimestampTzPlusMilliseconds(now, TS_LOCKOUT_MS);
	TsAuthSlot *s;

	ts_lock();
	s = ts_slot_find(TS_KIND_LOCKOUT, v->lock_key);
	if (s == NULL)
		s = ts_slot_alloc(TS_KIND_LOCKOUT, v->lock_key, now);
	if (s)
	{
		s->last_used = now;
		s->expires_at = until;
		strlcpy(s->note, note, TS_AUTH_NOTE_LEN);
	}
	ts_unlock();
	if (s == NULL)
		elog(WARNING, "thingspace_fdw: no free slot to remember a failed login");
	return until;
}

/* ---- errors of calls ---- */

static bool
ts_curl_retryable(int code)
{
	/* Configuration problems do not heal by themselves; network trouble may. */
	switch (code)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_WRITE_ERROR:	/* the answer was too large */
		case CURLE_OUT_OF_MEMORY:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
			return false;
		default:
			return true;
	}
}

static int
ts_curl_sqlstate(int code)
{
	switch (code)
	{
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
			return ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

static void ts_call_fail(TsVendor *v, TsCall *c, const TsVendorError *e, const char *hint)
			pg_attribute_noreturn();

static void
ts_call_fail(TsVendor *v, TsCall *c, const TsVendorError *e, const char *hint)
{
	TsHttpRequest *r = &c->http;
	StringInfoData where;
	int			sqlstate;

	/* "request 2 of 5 (account X) got HTTP status 503 from POST /path after 3 retries" */
	initStringInfo(&where);
	if (c->label)
		appendStringInfo(&where, "%s ", c->label);
	else
		appendStringInfoString(&where, "The call ");
	if (r->curl_code)
		appendStringInfo(&where, "failed: %s %s (%s)", r->method, r->path,
						 ts_redact(v, r->errmsg));
	else
		appendStringInfo(&where, "got HTTP status %ld from %s %s", r->result.status,
						 r->method, r->path);
	if (c->retries > 0)
		appendStringInfo(&where, " after %d %s", c->retries, c->retries == 1 ? "retry" : "retries");
	appendStringInfoChar(&where, '.');
	where.data[0] = pg_toupper((unsigned char) where.data[0]);

	if (r->curl_code)
		ereport(ERROR,
				(errcode(ts_curl_sqlstate(r->curl_code)),
				 errmsg("could not reach thingspace: %s",
						curl_easy_strerror((CURLcode) r->curl_code)),
				 errdetail("%s", where.data),
				 hint ? errhint("%s", hint) : 0));

	sqlstate = (c->kind == TS_CALL_API) ? ERRCODE_FDW_ERROR
		: ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
	if (e->code)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg(e->gateway ? "thingspace gateway fault %s" : "thingspace error %s",
						ts_redact(v, e->code)),
				 e->message
				 ? errdetail("%s %s", ts_sentence(ts_redact(v, e->message)), where.data)
				 : errdetail("The vendor gave no message.  %s", where.data),
				 hint ? errhint("%s", hint) : 0));
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("thingspace answered with HTTP status %ld", r->result.status),
			 r->result.len > 0
			 ? errdetail("%s The answer began: %s", where.data,
						 ts_redact(v, ts_excerpt(r->result.body, r->result.len)))
			 : errdetail("%s The answer was empty.", where.data),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* ---- classifying answers ---- */

static TsOutcome
ts_classify(const TsCall *c, TsVendorError *e)
{
	const TsHttpRequest *r = &c->http;
	long		st = r->result.status;

	memset(e, 0, sizeof(*e));
	if (r->curl_code != 0)
		return ts_curl_retryable(r->curl_code) ? TS_OUT_RETRY : TS_OUT_FAIL;
	if (st >= 200 && st < 300)
		return TS_OUT_OK;
	ts_parse_error(&r->result, e);

	if (e->gateway && strcmp(e->code, "900800") == 0)
		return TS_OUT_RETRY;	/* throttled */
	if (c->kind == TS_CALL_API &&
		(st == 401 || (e->gateway && strcmp(e->code, "900901") == 0)))
		return TS_OUT_RENEW_TOKEN;
	/* A login refused for its bearer token, not for its password. */
	if (c->kind == TS_CALL_LOGIN && e->gateway &&
		(strcmp(e->code, "900901") == 0 || strcmp(e->code, "900902") == 0))
		return TS_OUT_RENEW_TOKEN;
	if (c->kind == TS_CALL_API && e->code && !e->gateway &&
		(ts_ends_with(e->code, "SessionToken.Expired") ||
		 ts_ends_with(e->code, "SessionToken.Invalid")))
		return TS_OUT_RENEW_SESSION;
	if (st == 429 || st >= 500)
		return TS_OUT_RETRY;
	return TS_OUT_FAIL;
}

static int
ts_backoff_ms(int attempt, int retry_after_s)
{
	int			ms = TS_BACKOFF_BASE_MS << Min(attempt, 10);

	ms = Min(ms, TS_BACKOFF_MAX_MS);
	ms += (int) (random() % (ms / 2 + 1));	/* jitter: concurrent retries spread out */
	if (retry_after_s >= 0)
		ms = Max(ms, Min(retry_after_s, TS_RETRY_AFTER_MAX_S) * 1000);
	return ms;
}

/* A transfer ended: decide its fate.  Runs outside curl, so it may ereport. */
static TsHttpNext
ts_call_done(TsHttpRequest *req, void *arg)
{
	TsRun	   *run = (TsRun *) arg;
	TsVendor   *v = run->v;
	TsCall	   *c = (TsCall *) req;
	TsVendorError e;

	switch (ts_classify(c, &e))
	{
		case TS_OUT_OK:
			c->done = true;
			return TS_HTTP_FINISHED;

		case TS_OUT_RETRY:
			if (c->retries < v->srv.max_retries)
			{
				int			delay = ts_backoff_ms(c->retries, req->retry_after_s);

				c->retries++;
				if (v->stats)
					v->stats->retries++;
				req->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
				elog(DEBUG1, "thingspace_fdw: %s %s: %s, retry %d of %d in %d ms",
					 req->method, req->path,
					 req->curl_code ? "network error" : psprintf("HTTP status %ld", req->result.status),
					 c->retries, v->srv.max_retries, delay);
				return TS_HTTP_REQUEUE;
			}
			break;

		case TS_OUT_RENEW_TOKEN:
			if (!c->renewed_token)
			{
				c->renewed_token = true;
				run->need_token = true;
				return TS_HTTP_FINISHED;	/* sent again after the renewal */
			}
			break;

		case TS_OUT_RENEW_SESSION:
			if (!c->renewed_session)
			{
				c->renewed_session = true;
				run->need_session = true;
				return TS_HTTP_FINISHED;
			}
			break;

		case TS_OUT_FAIL:
			if (c->kind == TS_CALL_LOGIN && req->curl_code == 0 &&
				req->result.status >= 400 && req->result.status < 500)
			{
				char	   *note = e.code
					? psprintf("thingspace error %s%s%s", ts_redact(v, e.code),
							   e.message ? ": " : "", e.message ? ts_redact(v, e.message) : "")
					: psprintf("HTTP status %ld", req->result.status);
				TimestampTz until = ts_lockout_record(v, note);

				ts_call_fail(v, c, &e,
							 psprintf("No further login with these credentials is tried until %s, to protect the account from the vendor's lockout after five failed logins.  Correct the password in the user mapping for server \"%s\" to try again sooner.",
									  timestamptz_to_str(until), v->server_name));
			}
			if (c->kind == TS_CALL_TOKEN && req->curl_code == 0 &&
				req->result.status >= 400 && req->result.status < 500)
				ts_call_fail(v, c, &e,
							 psprintf("Check client_id and client_secret in the user mapping for server \"%s\".",
									  v->server_name));
			break;
	}
	ts_call_fail(v, c, &e, NULL);
}

/* ---- token and session ---- */

typedef struct TsFetched
{
	char	   *value;
	int			ttl_s;			/* token lifetime, 0 for sessions */
} TsFetched;

static TsFetched
ts_fetch_token(TsVendor *v)
{
	TsCall		c;
	TsFetched	f = {0};
	char	   *fields[2];
	static const char *const paths[] = {"access_token", "expires_in"};

	memset(&c, 0, sizeof(c));
	c.kind = TS_CALL_TOKEN;
	c.label = "The token request";
	c.http.method = "POST";
	c.http.path = TS_TOKEN_PATH;
	c.http.url = psprintf("%s%s", v->srv.base_url, TS_TOKEN_PATH);
	c.http.basic_user = v->um.client_id;
	c.http.basic_password = v->um.client_secret;
	c.http.headers[0] = "Content-Type: application/x-www-form-urlencoded";
	c.http.headers[1] = "Accept: application/json";
	c.http.body = "grant_type=client_credentials";
	ts_run_calls(v, 1, &c);

	ts_json_fields(c.http.result.body, c.http.result.len, 2, paths, fields);
	if (fields[0] == NULL || fields[0][0] == '\0' || strlen(fields[0]) >= TS_AUTH_VALUE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("thingspace token answer has no usable access_token"),
				 errdetail("POST %s answered HTTP status %ld without an access_token of at most %d bytes.",
						   TS_TOKEN_PATH, c.http.result.status, TS_AUTH_VALUE_LEN - 1)));
	f.value = fields[0];
	f.ttl_s = fields[1] ? atoi(fields[1]) : 0;
	if (f.ttl_s <= 0)
		f.ttl_s = 3600;			/* the vendor's documented lifetime */
	return f;
}

static char *ts_obtain(TsVendor *v, TsSlotKind kind, const char *stale);

static TsFetched
ts_fetch_session(TsVendor *v)
{
	TsCall		c;
	TsFetched	f = {0};
	StringInfoData body;
	char	   *auth;
	char	   *sid;
	char	   *stale = NULL;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"username\": ");
	escape_json(&body, v->um.username);
	appendStringInfoString(&body, ", \"password\": ");
	escape_json(&body, v->um.password);
	appendStringInfoChar(&body, '}');

	memset(&c, 0, sizeof(c));
	c.kind = TS_CALL_LOGIN;
	c.label = "The login";
	c.http.method = "POST";
	c.http.path = TS_LOGIN_PATH;
	c.http.url = psprintf("%s%s", v->srv.base_url, TS_LOGIN_PATH);
	c.http.headers[1] = "Content-Type: application/json";
	c.http.headers[2] = "Accept: application/json";
	c.http.body = body.data;

	/* At most two attempts: the second one only when the first was refused for its token. */
	for (;;)
	{
		TsRun		run;

		v->token = ts_obtain(v, TS_KIND_TOKEN, stale);
		auth = psprintf("Authorization: Bearer %s", v->token);
		c.http.headers[0] = auth;
		c.done = false;
		memset(&run, 0, sizeof(run));
		run.v = v;
		ts_http_perform(&v->srv, 1, (TsHttpRequest *[]) {&c.http}, ts_call_done, &run);
		explicit_bzero(auth, strlen(auth));
		if (c.done)
			break;
		Assert(run.need_token);
		stale = v->token;
	}
	explicit_bzero(body.data, body.len);

	sid = ts_json_field(c.http.result.body, c.http.result.len, "sessionToken");
	if (sid == NULL || sid[0] == '\0' || strlen(sid) >= TS_AUTH_VALUE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("thingspace login answer has no usable sessionToken"),
				 errdetail("POST %s answered HTTP status %ld without a sessionToken of at most %d bytes.",
						   TS_LOGIN_PATH, c.http.result.status, TS_AUTH_VALUE_LEN - 1)));
	f.value = sid;
	return f;
}

static bool
ts_slot_usable(const TsAuthSlot *s, TimestampTz now)
{
	if (s->value[0] == '\0')
		return false;
	if (s->kind == TS_KIND_TOKEN)
		return now < s->refresh_at;
	return now < TimestampTzPlusMilliseconds(s->last_used, TS_SESSION_IDLE_MS);
}

/* Forget what we were fetching (error path): waiters then try themselves. */
static void
ts_slot_abandon(TsSlotKind kind, const uint8 *key)
{
	TsAuthSlot *s;

	ts_lock();
	s = ts_slot_find(kind, key);
	if (s && s->busy_pid == MyProcPid)
	{
		s->busy_pid = 0;
		s->value[0] = '\0';
	}
	ts_unlock();
	ts_wake_waiters();
}

/*
 * A usable token or session token for v: the shared one, unless it is missing, due for
 * renewal, or equal to stale (the one the vendor just refused).  Only one backend
 * fetches per key at a time; the others wait for its result.  Sessions are refused at
 * once while a failed login with the same credentials is remembered.
 */
static char *
ts_obtain(TsVendor *v, TsSlotKind kind, const char *stale)
{
	const uint8 *key = (kind == TS_KIND_TOKEN) ? v->token_key : v->session_key;
	char		value[TS_AUTH_VALUE_LEN];
	bool		slept = false;
	TsAuthSlot *s;
	TsFetched	f;
	TimestampTz now;
	int			window_ms;

	ts_auth_attach();
	for (;;)
	{
		TsLockout	lk;

		now = GetCurrentTimestamp();
		ts_lock();
		if (kind == TS_KIND_SESSION && ts_lockout_find(v, now, &lk))
		{
			ts_unlock();
			if (slept)
				ConditionVariableCancelSleep();
			ts_lockout_report(v, &lk);
		}
		s = ts_slot_find(kind, key);
		if (s && ts_slot_usable(s, now) && (stale == NULL || strcmp(s->value, stale) != 0))
		{
			memcpy(value, s->value, TS_AUTH_VALUE_LEN);
			ts_unlock();
			if (slept)
				ConditionVariableCancelSleep();
			return pstrdup(value);
		}
		if (s && s->busy_pid != 0 && s->busy_pid != MyProcPid && now < s->busy_until)
		{
			/* Another backend is fetching it: wait for its result (interruptible). */
			ts_unlock();
			ConditionVariableTimedSleep(&ts_auth->cv, 100, PG_WAIT_EXTENSION);
			slept = true;
			continue;
		}
		if (s == NULL)
			s = ts_slot_alloc(kind, key, now);
		if (s == NULL)
		{
			ts_unlock();
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many thingspace logins in progress at once"),
					 errdetail("All %d credential slots are busy.", TS_AUTH_SLOTS)));
		}
		/* Long enough for the fetch with all its retries (a login may fetch a token). */
		window_ms = 2 * (v->srv.max_retries + 1) * (v->srv.request_timeout_ms + TS_BACKOFF_MAX_MS) + 5000;
		if (s->value[0] != '\0')
			memcpy(value, s->value, TS_AUTH_VALUE_LEN);
		else
			value[0] = '\0';
		s->busy_pid = MyProcPid;
		s->busy_until = TimestampTzPlusMilliseconds(now, window_ms);
		ts_unlock();
		break;
	}
	if (slept)
		ConditionVariableCancelSleep();
	if (ts_auth_shared && !ts_auth_exit_registered)
	{
		before_shmem_exit(ts_auth_exit, (Datum) 0);
		ts_auth_exit_registered = true;
	}

	PG_TRY();
	{
		f = (kind == TS_KIND_TOKEN) ? ts_fetch_token(v) : ts_fetch_session(v);
	}
	PG_CATCH();
	{
		ts_slot_abandon(kind, key);
		PG_RE_THROW();
	}
	PG_END_TRY();

	now = GetCurrentTimestamp();
	ts_lock();
	s = ts_slot_find(kind, key);	/* busy slots are never reused */
	Assert(s != NULL);
	if (s)
	{
		if (kind == TS_KIND_TOKEN)
		{
			int			ttl_ms = (int) Min((int64) f.ttl_s * 1000, (int64) INT_MAX);
			int			margin = Min(TS_TOKEN_MARGIN_MS, ttl_ms / 4);

			s->expires_at = TimestampTzPlusMilliseconds(now, ttl_ms);
			s->refresh_at = TimestampTzPlusMilliseconds(now, ttl_ms - margin);
			/*
			 * Asked again within its hour, the vendor hands back the same token with
			 * what is left of its life; do not ask again on every call until then.
			 */
			if (strcmp(value, f.value) == 0)
				s->refresh_at = Max(s->refresh_at,
									TimestampTzPlusMilliseconds(now, Min(10000, ttl_ms / 2)));
		}
		strlcpy(s->value, f.value, TS_AUTH_VALUE_LEN);
		s->last_used = now;
		s->busy_pid = 0;
	}
	ts_unlock();
	ts_wake_waiters();
	elog(DEBUG1, "thingspace_fdw: new %s for server \"%s\"",
		 kind == TS_KIND_TOKEN ? "access token" : "session", v->server_name);
	return f.value;
}

/* The session was just used successfully: the vendor's idle clock restarted. */
static void
ts_session_touch(TsVendor *v, const char *session)
{
	TsAuthSlot *s;

	ts_lock();
	s = ts_slot_find(TS_KIND_SESSION, v->session_key);
	if (s && strcmp(s->value, session) == 0)
		s->last_used = GetCurrentTimestamp();
	ts_unlock();
}

/* ---- the driver ---- */

/*
 * Send calls until each has succeeded; any failure is an ERROR.  Network errors, 429,
 * 5xx and throttling are retried inside ts_http_perform (with backoff); a refused token
 * or session ends the round, is renewed once for all calls of the round, and the
 * calls concerned are sent once more.
 */
static void
ts_run_calls(TsVendor *v, int n, TsCall *calls)
{
	TsHttpRequest **reqs = palloc(sizeof(TsHttpRequest *) * n);
	char	   *stale_token = NULL;
	char	   *stale_session = NULL;

	for (;;)
	{
		TsRun		run;
		int			m = 0;
		bool		any_api = false;
		char	   *auth = NULL;
		char	   *sess = NULL;

		for (int i = 0; i < n; i++)
			if (!calls[i].done)
			{
				reqs[m++] = &calls[i].http;
				any_api |= (calls[i].kind == TS_CALL_API);
			}
		if (m == 0)
			break;

		if (any_api)
		{
			v->token = ts_obtain(v, TS_KIND_TOKEN, stale_token);
			v->session = ts_obtain(v, TS_KIND_SESSION, stale_session);
			auth = psprintf("Authorization: Bearer %s", v->token);
			sess = psprintf("VZ-M2M-Token: %s", v->session);
			for (int i = 0; i < m; i++)
			{
				reqs[i]->headers[0] = auth;
				reqs[i]->headers[1] = sess;
				reqs[i]->not_before = 0;
			}
		}

		memset(&run, 0, sizeof(run));
		run.v = v;
		ts_http_perform(&v->srv, m, reqs, ts_call_done, &run);

		if (any_api)
		{
			explicit_bzero(auth, strlen(auth));
			explicit_bzero(sess, strlen(sess));
			if (!run.need_session)
				ts_session_touch(v, v->session);
		}
		stale_token = run.need_token ? v->token : NULL;
		stale_session = run.need_session ? v->session : NULL;
		if (!any_api && (run.need_token || run.need_session))
			break;				/* a login's token renewal is its caller's business */
	}
	pfree(reqs);
}

/* ---- API ---- */

TsVendor *
ts_vendor_open(const TsServerOptions *srv, const TsUserOptions *um)
{
	TsVendor   *v = palloc0(sizeof(TsVendor));
	const char *required[] = {um->client_id, um->client_secret, um->username, um->password};
	static const char *const names[] = {"client_id", "client_secret", "username", "password"};
	ForeignServer *server = OidIsValid(srv->serverid) ? GetForeignServer(srv->serverid) : NULL;
	TsLockout	lk;
	bool		locked;

	v->server_name = server ? server->servername : "?";
	for (int i = 0; i < lengthof(required); i++)
		if (required[i] == NULL || required[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("user mapping for server \"%s\" lacks the option \"%s\"",
							v->server_name, names[i]),
					 errhint("ThingSpace needs client_id and client_secret (OAuth) and username and password (M2M session).")));

	v->srv = *srv;
	v->srv.base_url = pstrdup(srv->base_url);
	/* A trailing slash would double in "{base_url}/api/...". */
	while (strlen(v->srv.base_url) > 0 && v->srv.base_url[strlen(v->srv.base_url) - 1] == '/')
		v->srv.base_url[strlen(v->srv.base_url) - 1] = '\0';
	v->srv.ca_file = srv->ca_file ? pstrdup(srv->ca_file) : NULL;
	v->srv.proxy = srv->proxy ? pstrdup(srv->proxy) : NULL;
	v->srv.account = srv->account ? pstrdup(srv->account) : NULL;
	v->um = *um;
	v->um.client_id = pstrdup(um->client_id);
	v->um.client_secret = pstrdup(um->client_secret);
	v->um.username = pstrdup(um->username);
	v->um.password = pstrdup(um->password);

	{
		const char *tf[] = {v->srv.base_url, um->client_id, um->client_secret};
		const char *sf[] = {v->srv.base_url, um->client_id, um->client_secret, um->username,
		um->password};
		const char *lf[] = {v->srv.base_url, um->username, um->password};

		ts_hash_fields(v->token_key, "token", lengthof(tf), tf);
		ts_hash_fields(v->session_key, "session", lengthof(sf), sf);
		ts_hash_fields(v->lock_key, "lockout", lengthof(lf), lf);
	}

	/* Fail at once, without contacting the vendor, while a failed login is remembered. */
	ts_auth_attach();
	ts_lock();
	locked = ts_lockout_find(v, GetCurrentTimestamp(), &lk);
	ts_unlock();
	if (locked)
		ts_lockout_report(v, &lk);
	return v;
}

static void
ts_call_init(TsVendor *v, TsCall *c, const char *method, const char *path, const char *body)
{
	memset(c, 0, sizeof(*c));
	c->kind = TS_CALL_API;
	c->http.method = method;
	c->http.path = ts_http_path_only(path);
	c->http.url = psprintf("%s%s%s", v->srv.base_url, path[0] == '/' ? "" : "/", path);
	c->http.headers[2] = "Accept: application/json";
	if (body)
		c->http.headers[3] = "Content-Type: application/json";
	c->http.body = body;
}

void
ts_vendor_submit_billed(TsVendor *v, int n, char *const *bodies, char **request_ids,
						TsScanStats *stats)
{
	TsCall	   *calls;

	if (n <= 0)
		return;
	calls = palloc(sizeof(TsCall) * n);
	for (int i = 0; i < n; i++)
	{
		char	   *account = ts_json_field(bodies[i], strlen(bodies[i]), "accountName");

		ts_call_init(v, &calls[i], "POST", TS_BILLED_PATH, bodies[i]);
		calls[i].label = account
			? psprintf("billed-usage request %d of %d (account %s)", i + 1, n, account)
			: psprintf("billed-usage request %d of %d", i + 1, n);
	}
	v->stats = stats;
	ts_run_calls(v, n, calls);
	v->stats = NULL;

	for (int i = 0; i < n; i++)
	{
		TsHttpResult *r = &calls[i].http.result;
		char	   *rid = ts_json_field(r->body, r->len, "requestId");

		if (rid == NULL || rid[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("thingspace answer has no requestId"),
					 errdetail("The answer to %s (HTTP status %ld from POST %s) began: %s",
							   calls[i].label, r->status, TS_BILLED_PATH,
							   ts_redact(v, ts_excerpt(r->body, r->len)))));
		request_ids[i] = rid;
	}
}

TsHttpResult
ts_vendor_call(TsVendor *v, const char *method, const char *path, const char *body)
{
	TsCall		c;

	ts_call_init(v, &c, method, path, body);
	ts_run_calls(v, 1, &c);
	return c.http.result;
}

/* ---- test hooks ---- */

/*
 * Direct access to this layer for the tests, before and besides foreign-table scans.
 * Not in the install script: a test creates them with
 *   CREATE FUNCTION ... AS 'thingspace_fdw', 'ts_test_hook_...' LANGUAGE C;
 * which only a superuser can do.
 */
static TsVendor *
ts_test_open(Name server)
{
	ForeignServer *fs = GetForeignServerByName(NameStr(*server), false);
	TsServerOptions srv;
	TsUserOptions um;

	ts_get_server_options(fs->serverid, &srv);
	ts_get_user_options(fs->serverid, GetUserId(), &um);
	return ts_vendor_open(&srv, &um);
}

/* ts_test_hook_vendor_call(server name, method text, path text, body text) → text */
PG_FUNCTION_INFO_V1(ts_test_hook_vendor_call);
Datum
ts_test_hook_vendor_call(PG_FUNCTION_ARGS)
{
	TsVendor   *v = ts_test_open(PG_GETARG_NAME(0));
	TsHttpResult r = ts_vendor_call(v, text_to_cstring(PG_GETARG_TEXT_PP(1)),
									text_to_cstring(PG_GETARG_TEXT_PP(2)),
									PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)));

	PG_RETURN_TEXT_P(cstring_to_text_with_len(r.body, r.len));
}

/* ts_test_hook_submit_billed(server name, bodies text[]) → text[] of request ids */
PG_FUNCTION_INFO_V1(ts_test_hook_submit_billed);
Datum
ts_test_hook_submit_billed(PG_FUNCTION_ARGS)
{
	TsVendor   *v = ts_test_open(PG_GETARG_NAME(0));
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **bodies;
	char	  **ids;
	Datum	   *out;
	TsScanStats stats = {0};

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	bodies = palloc(sizeof(char *) * Max(n, 1));
	ids = palloc0(sizeof(char *) * Max(n, 1));
	out = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			elog(ERROR, "request bodies must not be null");
		bodies[i] = TextDatumGetCString(elems[i]);
	}
	ts_vendor_submit_billed(v, n, bodies, ids, &stats);
	for (int i = 0; i < n; i++)
		out[i] = CStringGetTextDatum(ids[i]);
	if (stats.retries > 0)
		elog(NOTICE, "thingspace_fdw test hook: %d %s", stats.retries,
			 stats.retries == 1 ? "retry" : "retries");
	PG_RETURN_ARRAYTYPE_P(construct_array(out, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* ts_test_hook_identity(server name) → bigint: ts_vendor_identity of the caller's mapping */
PG_FUNCTION_INFO_V1(ts_test_hook_identity);
Datum
ts_test_hook_identity(PG_FUNCTION_ARGS)
{
	ForeignServer *fs = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	TsServerOptions srv;
	TsUserOptions um;

	ts_get_server_options(fs->serverid, &srv);
	ts_get_user_options(fs->serverid, GetUserId(), &um);
	PG_RETURN_INT64((int64) ts_vendor_identity(&srv, &um));
}
