/*
 * cache.c — shared result cache and in-flight merging (SPEC §2 cache_ttl).
 *
 * A request is identified by the credential identity (ts_vendor_identity: base URL and
 * every user-mapping secret, hashed) and the exact JSON body (two 64-bit hashes with
 * different seeds, plus its length and its account).  An entry remembers what became
 * of the last such request:
 *
 *   CLAIMED   a session promised to send it and has no requestId yet;
 *   SENT      the requestId is known, its callbacks are still expected;
 *   COMPLETE  a scan found every callback page in the spool.
 *
 * Results themselves are never copied here: a hit hands out the requestId and the
 * scan re-reads the pages from the spool, so a hit sends nothing at all.  A COMPLETE
 * entry is only a hit while the spool still holds the complete result (checked
 * outside the lock, since it reads a directory).
 *
 * With shared_preload_libraries the table lives in shared memory (fixed size, the
 * least recently used entry is evicted when full) under one LWLock, so all sessions of
 * the server share it; without it each backend has its own table and reuse only
 * happens within a session.  The table is not persisted: a restart (or a crash
 * restart) forgets it, and the next identical query sends a new request.
 */
#include "postgres.h"

#include <signal.h>

#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "thingspace_fdw.h"

#define TS_CACHE_ENTRIES 2048

/* A claim whose owner is alive but has not sent for this long is taken over. */
#define TS_CACHE_CLAIM_STALE_MS (5 * 60 * 1000)

#define TS_CACHE_SEED1 UINT64CONST(0x7468696e67737061)	/* "thingspa" */
#define TS_CACHE_SEED2 UINT64CONST(0x6365206361636865)	/* "ce cache" */

typedef enum TsCacheState
{
	TS_CE_FREE = 0,
	TS_CE_CLAIMED,
	TS_CE_SENT,
	TS_CE_COMPLETE
} TsCacheState;

typedef struct TsCacheKey
{
	uint64		identity;
	uint64		hash1;
	uint64		hash2;
	uint64		account_hash;
	uint32		body_len;
	uint32		account_len;
} TsCacheKey;

typedef struct TsCacheEntry
{
	TsCacheKey	key;
	TsCacheState state;
	int			owner_pid;		/* CLAIMED: the session that sends it */
	uint64		version;		/* changes whenever the entry changes hands or state */
	TimestampTz claimed_at;
	TimestampTz sent_at;
	TimestampTz completed_at;
	TimestampTz last_used;
	char		request_id[TS_REQUEST_ID_MAX + 1];
} TsCacheEntry;

typedef struct TsCacheTable
{
	uint64		next_version;
	int			nentries;
	TsCacheEntry entries[TS_CACHE_ENTRIES];
} TsCacheTable;

typedef struct TsCacheShared
{
	LWLock		lock;
	int			tranche_id;
	TsCacheTable table;
} TsCacheShared;

static TsCacheShared *ts_cache_shared = NULL;	/* with shared_preload_libraries */
static TsCacheTable *ts_cache_local = NULL; /* otherwise, this backend's own */

#define TS_CACHE_TRANCHE_NAME "thingspace_fdw_cache"

/* ---------------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------------
 */

Size
ts_cache_shmem_size(void)
{
	return MAXALIGN(sizeof(TsCacheShared));
}

void
ts_cache_shmem_init(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ts_cache_shared = ShmemInitStruct("thingspace_fdw cache", sizeof(TsCacheShared), &found);
	if (!found)
	{
		memset(ts_cache_shared, 0, sizeof(TsCacheShared));
		ts_cache_shared->tranche_id = LWLockNewTrancheId();
		LWLockInitialize(&ts_cache_shared->lock, ts_cache_shared->tranche_id);
		ts_cache_shared->table.nentries = TS_CACHE_ENTRIES;
		ts_cache_shared->table.next_version = 1;
	}
	LWLockRelease(AddinShmemInitLock);
	/* the name is backend-local: forked children inherit it, EXEC_BACKEND re-runs this */
	LWLockRegisterTranche(ts_cache_shared->tranche_id, TS_CACHE_TRANCHE_NAME);
}

/* The table to use, locked (exclusively: every access updates last_used). */
static TsCacheTable *
cache_lock(void)
{
	if (ts_shmem_available && ts_cache_shared != NULL)
	{
		LWLockAcquire(&ts_cache_shared->lock, LW_EXCLUSIVE);
		return &ts_cache_shared->table;
	}
	if (ts_cache_local == NULL)
	{
		ts_cache_local = MemoryContextAllocZero(TopMemoryContext, sizeof(TsCacheTable));
		ts_cache_local->nentries = TS_CACHE_ENTRIES;
		ts_cache_local->next_version = 1;
	}
	return ts_cache_local;
}

static void
cache_unlock(void)
{
	if (ts_shmem_available && ts_cache_shared != NULL)
		LWLockRelease(&ts_cache_shared->lock);
}

/* ---------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------------
 */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
append_utf8(StringInfo buf, uint32 cp)
{
	if (cp < 0x80)
		appendStringInfoChar(buf, (char) cp);
	else if (cp < 0x800)
	{
		appendStringInfoChar(buf, (char) (0xC0 | (cp >> 6)));
		appendStringInfoChar(buf, (char) (0x80 | (cp & 0x3F)));
	}
	else if (cp < 0x10000)
	{
		appendStringInfoChar(buf, (char) (0xE0 | (cp >> 12)));
		appendStringInfoChar(buf, (char) (0x80 | ((cp >> 6) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | (cp & 0x3F)));
	}
	else
	{
		appendStringInfoChar(buf, (char) (0xF0 | (cp >> 18)));
		appendStringInfoChar(buf, (char) (0x80 | ((cp >> 12) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | ((cp >> 6) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | (cp & 0x3F)));
	}
}

/*
 * The accountName of a request body, unescaped.  Our request builder writes it first
 * ({"accountName":"..."), but any position is accepted.  "" when there is none.
 */
static char *
body_account(const char *body)
{
	static const char marker[] = "\"accountName\":\"";
	const char *p = strstr(body, marker);
	StringInfoData buf;

	initStringInfo(&buf);
	if (p == NULL)
		return buf.data;
	for (p += sizeof(marker) - 1; *p && *p != '"'; p++)
	{
		if (*p != '\\')
		{
			appendStringInfoChar(&buf, *p);
			continue;
		}
		p++;
		switch (*p)
		{
			case 'b':
				appendStringInfoChar(&buf, '\b');
				break;
			case 'f':
				appendStringInfoChar(&buf, '\f');
				break;
			case 'n':
				appendStringInfoChar(&buf, '\n');
				break;
			case 'r':
				appendStringInfoChar(&buf, '\r');
				break;
			case 't':
				appendStringInfoChar(&buf, '\t');
				break;
			case 'u':
				{
					uint32		cp = 0;
					int			i;

					for (i = 1; i <= 4 && hexval(p[i]) >= 0; i++)
						cp = cp * 16 + hexval(p[i]);
					if (i <= 4)
						return buf.data;	/* malformed: keep what we have */
					p += 4;
					/* a surrogate pair */
					if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u')
					{
						uint32		lo = 0;

						for (i = 3; i <= 6 && hexval(p[i]) >= 0; i++)
							lo = lo * 16 + hexval(p[i]);
						if (i > 6 && lo >= 0xDC00 && lo < 0xE000)
						{
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
							p += 6;
						}
					}
					append_utf8(&buf, cp);
					break;
				}
			case '\0':
				return buf.data;
			default:			/* \" \\ \/ */
				appendStringInfoChar(&buf, *p);
				break;
		}
	}
	return buf.data;
}

static uint64
hash_account(const char *account, size_t len)
{
	return hash_bytes_extended((const unsigned char *) account, (int) len, TS_CACHE_SEED1);
}

static void
make_key(uint64 identity, const char *body, TsCacheKey *key)
{
	size_t		len = strlen(body);
	char	   *account = body_account(body);

	memset(key, 0, sizeof(*key));
	key->identity = identity;
	key->hash1 = hash_bytes_extended((const unsigned char *) body, (int) len, TS_CACHE_SEED1);
	key->hash2 = hash_bytes_extended((const unsigned char *) body, (int) len, TS_CACHE_SEED2);
	key->body_len = (uint32) len;
	key->account_len = (uint32) strlen(account);
	key->account_hash = hash_account(account, key->account_len);
	pfree(account);
}

static inline bool
key_equal(const TsCacheKey *a, const TsCacheKey *b)
{
	return a->identity == b->identity && a->hash1 == b->hash1 && a->hash2 == b->hash2 &&
		a->body_len == b->body_len && a->account_hash == b->account_hash &&
		a->account_len == b->account_len;
}

/* ---------------------------------------------------------------------------
 * Table operations (caller holds the lock)
 * ---------------------------------------------------------------------------
 */

static TsCacheEntry *
find_entry(TsCacheTable *t, const TsCacheKey *key)
{
	for (int i = 0; i < t->nentries; i++)
	{
		TsCacheEntry *e = &t->entries[i];

		if (e->state != TS_CE_FREE && e->key.hash1 == key->hash1 && key_equal(&e->key, key))
			return e;
	}
	return NULL;
}

/* Eviction order: free slots, then completed results, then sent, then claimed; LRU within. */
static TsCacheEntry *
new_entry(TsCacheTable *t, const TsCacheKey *key)
{
	TsCacheEntry *victim = NULL;

	for (int i = 0; i < t->nentries; i++)
	{
		TsCacheEntry *e = &t->entries[i];

		if (e->state == TS_CE_FREE)
		{
			victim = e;
			break;
		}
		if (victim == NULL ||
			(e->state == TS_CE_COMPLETE) > (victim->state == TS_CE_COMPLETE) ||
			((e->state == TS_CE_COMPLETE) == (victim->state == TS_CE_COMPLETE) &&
			 ((e->state == TS_CE_SENT) > (victim->state == TS_CE_SENT) ||
			  ((e->state == TS_CE_SENT) == (victim->state == TS_CE_SENT) &&
			   e->last_used < victim->last_used))))
			victim = e;
	}
	if (victim->state != TS_CE_FREE)
		elog(DEBUG1, "thingspace_fdw: result cache full, forgetting request %s",
			 victim->request_id[0] ? victim->request_id : "(claimed)");
	memset(victim, 0, sizeof(*victim));
	victim->key = *key;
	return victim;
}

static void
set_claimed(TsCacheTable *t, TsCacheEntry *e, TimestampTz now)
{
	e->state = TS_CE_CLAIMED;
	e->owner_pid = MyProcPid;
	e->version = t->next_version++;
	e->claimed_at = now;
	e->sent_at = 0;
	e->completed_at = 0;
	e->last_used = now;
	e->request_id[0] = '\0';
}

static void
free_entry(TsCacheEntry *e)
{
	memset(e, 0, sizeof(*e));
}

static bool
older_than(TimestampTz then, TimestampTz now, long ms)
{
	return TimestampDifferenceExceeds(then, now, (int) Min(ms, (long) PG_INT32_MAX));
}

/* Is the session holding a claim still there?  (Its claim is released on error.) */
static bool
owner_alive(int pid)
{
	if (pid == MyProcPid)
		return true;
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* What the spool holds for a request; its listing is freed at once. */
static TsSpoolState
spool_state(const char *request_id)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "thingspace_fdw cache check",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TsSpoolStatus st;

	ts_spool_status(request_id, &st);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return st.state;
}

/* ---------------------------------------------------------------------------
 * The API used by scan.c
 * ---------------------------------------------------------------------------
 */

TsCacheResult
ts_cache_claim(uint64 identity, const char *body, int ttl_ms, int inflight_ms, char **request_id)
{
	TsCacheKey	key;

	*request_id = NULL;
	if (ttl_ms <= 0)
		return TS_CACHE_MISS;	/* cache_ttl 0: no reuse at all */
	make_key(identity, body, &key);

	for (int attempt = 0;; attempt++)
	{
		TsCacheTable *t = cache_lock();
		TsCacheEntry *e = find_entry(t, &key);
		TimestampTz now = GetCurrentTimestamp();
		TsCacheState seen;
		uint64		version;
		char		id[TS_REQUEST_ID_MAX + 1];
		TsSpoolState spool;

		if (e == NULL)
		{
			set_claimed(t, new_entry(t, &key), now);
			cache_unlock();
			return TS_CACHE_MISS;
		}
		e->last_used = now;
		if (attempt >= 3 ||
			(e->state == TS_CE_CLAIMED &&
			 (!owner_alive(e->owner_pid) || older_than(e->claimed_at, now, TS_CACHE_CLAIM_STALE_MS))) ||
			(e->state == TS_CE_SENT && older_than(e->sent_at, now, inflight_ms)) ||
			(e->state == TS_CE_COMPLETE && older_than(e->completed_at, now, ttl_ms)))
		{
			/* nothing usable: the caller sends it */
			set_claimed(t, e, now);
			cache_unlock();
			return TS_CACHE_MISS;
		}
		if (e->state == TS_CE_CLAIMED)
		{
			cache_unlock();
			return TS_CACHE_INFLIGHT;	/* the sender has no requestId yet: ask again */
		}
		seen = e->state;
		version = e->version;
		strlcpy(id, e->request_id, sizeof(id));
		cache_unlock();

		/* the spool decides whether the result is (still) there */
		spool = spool_state(id);
		if (spool == TS_SPOOL_COMPLETE)
		{
			if (seen == TS_CE_SENT)
				ts_cache_mark_complete(identity, body);
			*request_id = pstrdup(id);
			return TS_CACHE_HIT;
		}
		if (seen == TS_CE_SENT && spool == TS_SPOOL_WAITING)
		{
			*request_id = pstrdup(id);
			return TS_CACHE_INFLIGHT;
		}

		/*
		 * A failed result (send again rather than repeat the failure) or a completed
		 * one the spool no longer holds: claim it, unless it changed meanwhile.
		 */
		t = cache_lock();
		e = find_entry(t, &key);
		if (e != NULL && e->version == version)
		{
			set_claimed(t, e, GetCurrentTimestamp());
			cache_unlock();
			return TS_CACHE_MISS;
		}
		cache_unlock();
	}
}

void
ts_cache_store(uint64 identity, const char *body, const char *request_id)
{
	TsCacheKey	key;
	TsCacheTable *t;
	TsCacheEntry *e;

	make_key(identity, body, &key);
	t = cache_lock();
	e = find_entry(t, &key);

	/*
	 * Only our own claim becomes SENT.  No entry: cache_ttl is 0, or the claim was
	 * purged or evicted meanwhile; an entry someone else holds: they took it over.
	 */
	if (e != NULL && e->state == TS_CE_CLAIMED && e->owner_pid == MyProcPid)
	{
		TimestampTz now = GetCurrentTimestamp();

		e->state = TS_CE_SENT;
		e->owner_pid = 0;
		e->version = t->next_version++;
		e->sent_at = now;
		e->last_used = now;
		strlcpy(e->request_id, request_id, sizeof(e->request_id));
	}
	cache_unlock();
}

void
ts_cache_release(uint64 identity, const char *body)
{
	TsCacheKey	key;
	TsCacheTable *t;
	TsCacheEntry *e;

	make_key(identity, body, &key);
	t = cache_lock();
	e = find_entry(t, &key);
	if (e != NULL && e->state == TS_CE_CLAIMED && e->owner_pid == MyProcPid)
		free_entry(e);
	cache_unlock();
}

void
ts_cache_mark_complete(uint64 identity, const char *body)
{
	TsCacheKey	key;
	TsCacheTable *t;
	TsCacheEntry *e;

	make_key(identity, body, &key);
	t = cache_lock();
	e = find_entry(t, &key);

	/* cache_ttl counts from the first time the result was seen complete */
	if (e != NULL && e->state == TS_CE_SENT)
	{
		TimestampTz now = GetCurrentTimestamp();

		e->state = TS_CE_COMPLETE;
		e->version = t->next_version++;
		e->completed_at = now;
		e->last_used = now;
	}
	cache_unlock();
}

/*
 * thingspace_cache_purge(account text DEFAULT NULL) → bigint
 *
 * Forgets the results (complete or still awaited) of one account, or of all accounts
 * when NULL.  Requests that a session is sending right now (no requestId yet) are
 * kept: their result is computed after this call, and sessions merged with them are
 * waiting for it.  Returns how many entries were forgotten.
 */
PG_FUNCTION_INFO_V1(thingspace_cache_purge);

Datum
thingspace_cache_purge(PG_FUNCTION_ARGS)
{
	bool		all = PG_ARGISNULL(0);
	uint64		account_hash = 0;
	uint32		account_len = 0;
	TsCacheTable *t;
	int64		dropped = 0;

	if (!all)
	{
		char	   *account = text_to_cstring(PG_GETARG_TEXT_PP(0));

		account_len = (uint32) strlen(account);
		account_hash = hash_account(account, account_len);
	}

	t = cache_lock();
	for (int i = 0; i < t->nentries; i++)
	{
		TsCacheEntry *e = &t->entries[i];

		if (e->state == TS_CE_FREE || e->state == TS_CE_CLAIMED)
			continue;
		if (!all && (e->key.account_hash != account_hash || e->key.account_len != account_len))
			continue;
		free_entry(e);
		dropped++;
	}
	cache_unlock();

	PG_RETURN_INT64(dropped);
}
