/*
 * http.c — the one libcurl layer every vendor call goes through.
 *
 * One CURLM per backend holds the connection cache, so calls reuse connections
 * (keep-alive); a few easy handles are pooled and reused.  The transfers of a batch run
 * concurrently, at most TS_HTTP_MAX_ACTIVE at once.  We learn curl's sockets and timer
 * through its callbacks and wait on them together with the process latch, so Ctrl-C,
 * statement_timeout and pg_terminate_backend end any wait at once.
 *
 * Everything curl allocates for a batch (easy handles in flight, header lists, answer
 * buffers) is released by one idempotent function, called at the normal end, from a
 * PG_CATCH, and as a reset callback of the batch's memory context (a child of the
 * context current at the call); on_proc_exit cleans the multi handle.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "thingspace_fdw.h"

#define TS_HTTP_MAX_ACTIVE	8	/* transfers at once, per backend */
#define TS_HTTP_MAX_SOCKETS 64
#define TS_HTTP_MAX_BODY	(16 * 1024 * 1024)	/* answers are small; refuse floods */
#define TS_HTTP_MAX_POLL_MS 1000	/* wake up at least this often, as a safety net */

typedef enum TsSlotState
{
	TS_SLOT_WAITING,			/* not started (or waiting for its retry time) */
	TS_SLOT_RUNNING,
	TS_SLOT_DONE
} TsSlotState;

/* One transfer of a batch.  curl callbacks touch only malloc'd fields: no ereport there. */
typedef struct TsHttpSlot
{
	TsHttpRequest *req;
	TsSlotState state;
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *buf;			/* malloc'd answer body */
	size_t		len;
	size_t		cap;
	bool		too_big;
	int			retry_after_s;
	TimestampTz started;
	char		errbuf[CURL_ERROR_SIZE];
} TsHttpSlot;

typedef struct TsHttpBatch
{
	MemoryContextCallback cb;
	int			n;
	TsHttpSlot *slots;
	bool		cleaned;
} TsHttpBatch;

typedef struct TsSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / _OUT / _INOUT */
} TsSocket;

static CURLM *ts_multi = NULL;
static CURL *ts_easy_pool[TS_HTTP_MAX_ACTIVE];
static int	ts_easy_pool_n = 0;
static TsHttpBatch *ts_active_batch = NULL;
static TsSocket ts_sockets[TS_HTTP_MAX_SOCKETS];
static int	ts_nsockets = 0;
static bool ts_timer_set = false;
static TimestampTz ts_timer_at = 0;

/* ---- curl callbacks: no palloc, no ereport ---- */

static int
ts_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < ts_nsockets; i++)
		if (ts_sockets[i].fd == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < ts_nsockets)
			ts_sockets[i] = ts_sockets[--ts_nsockets];
		return 0;
	}
	if (i == ts_nsockets)
	{
		if (ts_nsockets >= TS_HTTP_MAX_SOCKETS)
			return -1;			/* curl fails the transfer */
		ts_sockets[ts_nsockets++].fd = fd;
	}
	ts_sockets[i].what = what;
	return 0;
}

static int
ts_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	ts_timer_set = (timeout_ms >= 0);
	if (ts_timer_set)
		ts_timer_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

static size_t
ts_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	TsHttpSlot *slot = (TsHttpSlot *) userp;
	size_t		n = size * nmemb;

	if (slot->len + n + 1 > slot->cap)
	{
		size_t		cap = Max(slot->cap * 2, slot->len + n + 1);
		char	   *p;

		if (cap < 4096)
			cap = 4096;
		if (slot->len + n > TS_HTTP_MAX_BODY || (p = realloc(slot->buf, cap)) == NULL)
		{
			slot->too_big = true;
			return 0;			/* aborts the transfer with CURLE_WRITE_ERROR */
		}
		slot->buf = p;
		slot->cap = cap;
	}
	memcpy(slot->buf + slot->len, data, n);
	slot->len += n;
	slot->buf[slot->len] = '\0';
	return n;
}

static size_t
ts_header_cb(char *line, size_t size, size_t nitems, void *userp)
{
	TsHttpSlot *slot = (TsHttpSlot *) userp;
	size_t		n = size * nitems;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) && pg_strncasecmp(line, name, sizeof(name) - 1) == 0)
	{
		const char *p = line + sizeof(name) - 1;
		const char *end = line + n;
		long		secs = 0;
		bool		digits = false;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		/* Only the delta-seconds form; an HTTP date falls back to our backoff. */
		while (p < end && *p >= '0' && *p <= '9' && secs < 100000)
		{
			secs = secs * 10 + (*p++ - '0');
			digits = true;
		}
		if (digits)
			slot->retry_after_s = (int) secs;
	}
	return n;
}

/* ---- handles ---- */

static void
ts_http_atexit(int code, Datum arg)
{
	int			i;

	if (ts_active_batch)
	{
		for (i = 0; i < ts_active_batch->n; i++)
		{
			TsHttpSlot *slot = &ts_active_batch->slots[i];

			if (slot->easy)
			{
				curl_multi_remove_handle(ts_multi, slot->easy);
				curl_easy_cleanup(slot->easy);
				slot->easy = NULL;
			}
		}
		ts_active_batch = NULL;
	}
	while (ts_easy_pool_n > 0)
		curl_easy_cleanup(ts_easy_pool[--ts_easy_pool_n]);
	if (ts_multi)
		curl_multi_cleanup(ts_multi);
	ts_multi = NULL;
}

static void
ts_http_init(void)
{
	if (ts_multi)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not initialize libcurl")));
	ts_multi = curl_multi_init();
	if (ts_multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(ts_multi, CURLMOPT_SOCKETFUNCTION, ts_socket_cb);
	curl_multi_setopt(ts_multi, CURLMOPT_TIMERFUNCTION, ts_timer_cb);
	curl_multi_setopt(ts_multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) TS_HTTP_MAX_ACTIVE);
	on_proc_exit(ts_http_atexit, (Datum) 0);
}

static CURL *
ts_easy_get(void)
{
	CURL	   *easy;

	if (ts_easy_pool_n > 0)
		return ts_easy_pool[--ts_easy_pool_n];
	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	return easy;
}

static void
ts_easy_put(CURL *easy)
{
	curl_easy_reset(easy);		/* forgets options (and the secrets in them) */
	if (ts_easy_pool_n < TS_HTTP_MAX_ACTIVE)
		ts_easy_pool[ts_easy_pool_n++] = easy;
	else
		curl_easy_cleanup(easy);
}

/* Detach a slot from curl and free what curl-side memory it holds. */
static void
ts_slot_release(TsHttpSlot *slot)
{
	if (slot->easy)
	{
		curl_multi_remove_handle(ts_multi, slot->easy);
		ts_easy_put(slot->easy);
		slot->easy = NULL;
	}
	if (slot->headers)
	{
		curl_slist_free_all(slot->headers);
		slot->headers = NULL;
	}
	free(slot->buf);
	slot->buf = NULL;
	slot->len = slot->cap = 0;
}

static void
ts_batch_cleanup(void *arg)
{
	TsHttpBatch *batch = (TsHttpBatch *) arg;
	int			i;

	if (batch->cleaned)
		return;
	batch->cleaned = true;
	for (i = 0; i < batch->n; i++)
		ts_slot_release(&batch->slots[i]);
	if (ts_active_batch == batch)
		ts_active_batch = NULL;
}

/* ---- one transfer ---- */

#define TS_SETOPT(easy, opt, val) \
	do { \
		if (curl_easy_setopt((easy), (opt), (val)) != CURLE_OK) \
			elog(ERROR, "thingspace_fdw: curl_easy_setopt(%s) failed", #opt); \
	} while (0)

static void
ts_slot_start(const TsServerOptions *srv, TsHttpSlot *slot)
{
	TsHttpRequest *req = slot->req;
	CURL	   *easy;
	int			i;
	long		timeout = Max(srv->request_timeout_ms, 1);

	slot->retry_after_s = -1;
	slot->too_big = false;
	slot->errbuf[0] = '\0';
	slot->easy = easy = ts_easy_get();

	TS_SETOPT(easy, CURLOPT_PRIVATE, slot);
	TS_SETOPT(easy, CURLOPT_URL, req->url);
	TS_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);	/* never SIGALRM inside a backend */
	TS_SETOPT(easy, CURLOPT_TIMEOUT_MS, timeout);
	TS_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	TS_SETOPT(easy, CURLOPT_USERAGENT, TS_USER_AGENT);
	TS_SETOPT(easy, CURLOPT_ERRORBUFFER, slot->errbuf);
	TS_SETOPT(easy, CURLOPT_WRITEFUNCTION, ts_write_cb);
	TS_SETOPT(easy, CURLOPT_WRITEDATA, slot);
	TS_SETOPT(easy, CURLOPT_HEADERFUNCTION, ts_header_cb);
	TS_SETOPT(easy, CURLOPT_HEADERDATA, slot);
#if LIBCURL_VERSION_NUM >= 0x075500
	TS_SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	TS_SETOPT(easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	TS_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, srv->verify_tls ? 1L : 0L);
	TS_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, srv->verify_tls ? 2L : 0L);
	if (srv->ca_file)
		TS_SETOPT(easy, CURLOPT_CAINFO, srv->ca_file);
	if (srv->proxy)
		TS_SETOPT(easy, CURLOPT_PROXY, srv->proxy);
	if (req->basic_user)
	{
		TS_SETOPT(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		TS_SETOPT(easy, CURLOPT_USERNAME, req->basic_user);
		TS_SETOPT(easy, CURLOPT_PASSWORD, req->basic_password);
	}

	if (strcmp(req->method, "GET") == 0)
		TS_SETOPT(easy, CURLOPT_HTTPGET, 1L);
	else
	{
		if (strcmp(req->method, "POST") != 0)
			TS_SETOPT(easy, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body || strcmp(req->method, "POST") == 0)
		{
			const char *body = req->body ? req->body : "";

			TS_SETOPT(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
			TS_SETOPT(easy, CURLOPT_POSTFIELDS, body);
		}
	}

	/* An empty "Expect:" stops curl from waiting for 100-continue on larger bodies. */
	for (i = 0; i <= TS_HTTP_MAX_HEADERS; i++)
	{
		const char *h = (i < TS_HTTP_MAX_HEADERS) ? req->headers[i] : "Expect:";
		struct curl_slist *l;

		if (h == NULL)
			continue;
		l = curl_slist_append(slot->headers, h);
		if (l == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
					 errmsg("out of memory building an HTTP request")));
		slot->headers = l;
	}
	TS_SETOPT(easy, CURLOPT_HTTPHEADER, slot->headers);

	if (curl_multi_add_handle(ts_multi, easy) != CURLM_OK)
		elog(ERROR, "thingspace_fdw: curl_multi_add_handle failed");
	slot->state = TS_SLOT_RUNNING;
	slot->started = GetCurrentTimestamp();
	elog(DEBUG2, "thingspace_fdw: %s %s", req->method, req->path);
}

/* A transfer ended: fill the request's result, give the handle back, ask the caller. */
static void
ts_slot_finish(TsHttpSlot *slot, CURLcode code, MemoryContext resultcxt,
			   TsHttpDoneFn done, void *arg)
{
	TsHttpRequest *req = slot->req;
	long		status = 0;

	curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
	req->curl_code = (int) code;
	req->result.status = (code == CURLE_OK) ? status : 0;
	req->retry_after_s = slot->retry_after_s;
	req->elapsed_ms = (double) (GetCurrentTimestamp() - slot->started) / 1000.0;
	if (code == CURLE_OK)
		req->errmsg[0] = '\0';
	else if (slot->too_big)
		snprintf(req->errmsg, sizeof(req->errmsg),
				 "the answer is larger than %d bytes", TS_HTTP_MAX_BODY);
	else
		strlcpy(req->errmsg, slot->errbuf[0] ? slot->errbuf : curl_easy_strerror(code),
				sizeof(req->errmsg));
	if (req->result.body)
		pfree(req->result.body);
	req->result.body = MemoryContextAlloc(resultcxt, slot->len + 1);
	if (slot->len > 0)
		memcpy(req->result.body, slot->buf, slot->len);
	req->result.body[slot->len] = '\0';
	req->result.len = slot->len;

	ts_slot_release(slot);
	slot->state = TS_SLOT_DONE;
	elog(DEBUG2, "thingspace_fdw: %s %s -> %ld (%.0f ms)%s%s", req->method, req->path,
		 req->result.status, req->elapsed_ms, code != CURLE_OK ? ": " : "", req->errmsg);

	/* The callback may ereport: our caller's PG_CATCH cleans the other slots up. */
	if (done && done(req, arg) == TS_HTTP_REQUEUE)
		slot->state = TS_SLOT_WAITING;
}

static void
ts_drain_messages(TsHttpBatch *batch, MemoryContext resultcxt, TsHttpDoneFn done, void *arg)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(ts_multi, &left)) != NULL)
	{
		TsHttpSlot *slot = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
		if (slot == NULL || slot->easy != msg->easy_handle)
		{
			/* Not ours (cannot happen: batches do not nest); keep the multi clean. */
			curl_multi_remove_handle(ts_multi, msg->easy_handle);
			continue;
		}
		ts_slot_finish(slot, msg->data.result, resultcxt, done, arg);
	}
}

static void
ts_socket_action(curl_socket_t fd, int flags)
{
	int			running;
	CURLMcode	rc = curl_multi_socket_action(ts_multi, fd, flags, &running);

	if (rc != CURLM_OK)
		elog(ERROR, "thingspace_fdw: curl_multi_socket_action failed: %s",
			 curl_multi_strerror(rc));
}

/* Wait for curl's sockets, the latch or the timeout; then let curl work. */
static void
ts_wait_and_act(long timeout_ms)
{
	WaitEvent	events[TS_HTTP_MAX_SOCKETS + 2];
	TsSocket	socks[TS_HTTP_MAX_SOCKETS];
	int			nsocks = ts_nsockets;
	int			nev = 0;
	int			i;
	WaitEventSet *volatile set = NULL;

	memcpy(socks, ts_sockets, sizeof(TsSocket) * nsocks);

	PG_TRY();
	{
#if PG_VERSION_NUM >= 170000
		set = CreateWaitEventSet(NULL, nsocks + 2);
#else
		set = CreateWaitEventSet(CurrentMemoryContext, nsocks + 2);
#endif
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (i = 0; i < nsocks; i++)
		{
			uint32		ev = 0;

			if (socks[i].what & CURL_POLL_IN)
				ev |= WL_SOCKET_READABLE;
			if (socks[i].what & CURL_POLL_OUT)
				ev |= WL_SOCKET_WRITEABLE;
			if (ev)
				AddWaitEventToSet(set, ev, socks[i].fd, NULL, NULL);
		}
		nev = WaitEventSetWait(set, timeout_ms, events, lengthof(events), PG_WAIT_EXTENSION);
	}
	PG_FINALLY();
	{
		if (set)
			FreeWaitEventSet(set);
	}
	PG_END_TRY();

	for (i = 0; i < nev; i++)
	{
		int			flags = 0;

		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			continue;
		}
		if (events[i].events & WL_SOCKET_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			flags |= CURL_CSELECT_OUT;
		if (flags)
			ts_socket_action(events[i].fd, flags);
	}
	if (ts_timer_set && GetCurrentTimestamp() >= ts_timer_at)
	{
		ts_timer_set = false;
		ts_socket_action(CURL_SOCKET_TIMEOUT, 0);
	}
}

static long
ms_until(TimestampTz now, TimestampTz t)
{
	if (t <= now)
		return 0;
	return (long) Min((t - now + 999) / 1000, (TimestampTz) LONG_MAX);
}

static void
ts_batch_run(const TsServerOptions *srv, TsHttpBatch *batch, MemoryContext resultcxt,
			 TsHttpDoneFn done, void *arg)
{
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		int			running = 0;
		bool		waiting = false;
		long		timeout = TS_HTTP_MAX_POLL_MS;
		int			i;

		CHECK_FOR_INTERRUPTS();

		for (i = 0; i < batch->n; i++)
			if (batch->slots[i].state == TS_SLOT_RUNNING)
				running++;
		for (i = 0; i < batch->n; i++)
		{
			TsHttpSlot *slot = &batch->slots[i];

			if (slot->state != TS_SLOT_WAITING)
				continue;
			if (running < TS_HTTP_MAX_ACTIVE && slot->req->not_before <= now)
			{
				ts_slot_start(srv, slot);
				running++;
				continue;
			}
			waiting = true;
			if (running < TS_HTTP_MAX_ACTIVE)
				timeout = Min(timeout, ms_until(now, slot->req->not_before));
		}
		if (running == 0 && !waiting)
			break;
		if (ts_timer_set)
			timeout = Min(timeout, ms_until(now, ts_timer_at));

		ts_wait_and_act(timeout);
		ts_drain_messages(batch, resultcxt, done, arg);
	}
}

void
ts_http_perform(const TsServerOptions *srv, int n, TsHttpRequest **reqs,
				TsHttpDoneFn done, void *arg)
{
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext batchcxt;
	TsHttpBatch *batch;
	int			i;

	if (n <= 0)
		return;
	if (ts_active_batch != NULL)
		elog(ERROR, "thingspace_fdw: nested HTTP batches are not supported");
	ts_http_init();

	/* The batch lives in a child context: deleting or resetting it releases curl state. */
	batchcxt = AllocSetContextCreate(resultcxt, "thingspace_fdw http batch",
									 ALLOCSET_SMALL_SIZES);
	batch = MemoryContextAllocZero(batchcxt, sizeof(TsHttpBatch));
	batch->n = n;
	batch->slots = MemoryContextAllocZero(batchcxt, sizeof(TsHttpSlot) * n);
	for (i = 0; i < n; i++)
	{
		batch->slots[i].req = reqs[i];
		batch->slots[i].state = TS_SLOT_WAITING;
	}
	batch->cb.func = ts_batch_cleanup;
	batch->cb.arg = batch;
	MemoryContextRegisterResetCallback(batchcxt, &batch->cb);
	ts_active_batch = batch;

	PG_TRY();
	{
		ts_batch_run(srv, batch, resultcxt, done, arg);
	}
	PG_CATCH();
	{
		ts_batch_cleanup(batch);
		PG_RE_THROW();
	}
	PG_END_TRY();

	MemoryContextDelete(batchcxt);	/* runs ts_batch_cleanup */
}

/* The path of a URL without query string or fragment, for messages. */
const char *
ts_http_path_only(const char *path)
{
	size_t		len = strcspn(path, "?#");

	return (path[len] == '\0') ? path : pnstrdup(path, len);
}
