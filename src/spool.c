/*
 * spool.c — the durable callback spool.
 *
 * Layout under thingspace_fdw.spool_directory (relative to the data directory):
 *
 *   <requestId>/p<page>-of-<total>.json    a result page (0 when the field was absent)
 *   <requestId>/failed.json                a failure status or faultResponse
 *   <requestId>/broken-<hash16>.json       not a usable callback, but its requestId is known
 *   _unrouted/broken-<hash16>.json         neither usable nor attributable
 *   .tmp-<pid>-<n>                         being written (removed at listener start)
 *
 * Bodies are stored with their credentials already redacted.  A file is written to a
 * temporary name, fsynced and hard-linked into place, so it appears complete or not
 * at all, and an existing file (a duplicate delivery) is never replaced.  Once the
 * directory is fsynced the callback is durable and may be acknowledged.
 *
 * The write side runs in the listener worker and reports failures at LOG (the caller
 * answers 500 and the vendor resends); the read side runs in backends.
 */
#include "postgres.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "thingspace_fdw.h"

#define TS_UNROUTED_DIR "_unrouted"
#define TS_TMP_PREFIX ".tmp-"

/* One file of a request directory, as told by its name. */
typedef struct TsSpoolEntry
{
	TsSpoolKind kind;
	long		page;			/* TS_SPOOL_PAGE only */
	long		total;
	char	   *name;
	TimestampTz mtime;			/* filled by ts_spool_collect(.., want_stat) */
	off_t		size;
} TsSpoolEntry;

char *
ts_spool_dir(void)
{
	const char *d = ts_guc_spool_directory;

	if (d == NULL || d[0] == '\0')
		d = "pg_thingspace";
	if (is_absolute_path(d))
		return pstrdup(d);
	return psprintf("%s/%s", DataDir, d);
}

bool
ts_spool_valid_request_id(const char *request_id)
{
	size_t		n = 0;
	const char *p;

	if (request_id == NULL || request_id[0] == '.' || request_id[0] == '_')
		return false;
	for (p = request_id; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return n >= 1 && n <= TS_REQUEST_ID_MAX;
}

/* Parse a decimal number that must fill [s, end). */
static bool
ts_spool_number(const char *s, const char *end, long *out)
{
	long		v = 0;

	if (s >= end || end - s > 9)	/* TS_SPOOL_MAX_PAGE */
		return false;
	for (; s < end; s++)
	{
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return true;
}

/* Recognise a spool file name; anything else (temporary files, strays) is ignored. */
static bool
ts_spool_parse_name(const char *name, TsSpoolEntry *e)
{
	size_t		n = strlen(name);
	const char *of;

	if (n < 6 || strcmp(name + n - 5, ".json") != 0)
		return false;
	e->page = e->total = -1;
	if (strcmp(name, "failed.json") == 0)
	{
		e->kind = TS_SPOOL_FAILURE;
		return true;
	}
	if (strncmp(name, "broken-", 7) == 0 && n == 7 + 16 + 5)
	{
		e->kind = TS_SPOOL_UNPARSED;
		return true;
	}
	if (name[0] == 'p' && (of = strstr(name, "-of-")) != NULL &&
		ts_spool_number(name + 1, of, &e->page) &&
		ts_spool_number(of + 4, name + n - 5, &e->total))
	{
		e->kind = TS_SPOOL_PAGE;
		return true;
	}
	return false;
}

/*
 * The recognised files of one directory, or NIL when it does not exist.  With
 * want_stat, mtime and size are filled too (files that vanish meanwhile are skipped).
 */
static List *
ts_spool_collect(const char *dirpath, bool want_stat, int elevel)
{
	List	   *result = NIL;
	DIR		   *dir;
	struct dirent *de;

	dir = AllocateDir(dirpath);
	if (dir == NULL && errno == ENOENT)
		return NIL;
	while ((de = ReadDirExtended(dir, dirpath, elevel)) != NULL)
	{
		TsSpoolEntry e;

		if (!ts_spool_parse_name(de->d_name, &e))
			continue;
		e.name = pstrdup(de->d_name);
		e.mtime = 0;
		e.size = 0;
		if (want_stat)
		{
			char	   *path = psprintf("%s/%s", dirpath, de->d_name);
			struct stat st;

			if (stat(path, &st) != 0)
			{
				if (errno != ENOENT)
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not stat file \"%s\": %m", path)));
				continue;
			}
			e.mtime = time_t_to_timestamptz(st.st_mtim.tv_sec) +
				st.st_mtim.tv_nsec / 1000;
			e.size = st.st_size;
		}
		result = lappend(result, memcpy(palloc(sizeof(e)), &e, sizeof(e)));
	}
	if (dir)
		FreeDir(dir);
	return result;
}

/* Page order: pages by number, then the failure, then unparsed bodies by name. */
static int
ts_spool_order(const TsSpoolEntry *x, const TsSpoolEntry *y)
{
	if (x->kind != y->kind)
		return (int) x->kind - (int) y->kind;
	if (x->page != y->page)
		return x->page < y->page ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
ts_spool_entry_cmp(const ListCell *a, const ListCell *b)
{
	return ts_spool_order(lfirst(a), lfirst(b));
}

/* Read a whole spool file; NULL (with *err set to errno) when it cannot be read. */
static char *
ts_spool_read_file(const char *path, size_t *len, int *err)
{
	int			fd;
	struct stat st;
	char	   *buf;
	size_t		done = 0;

	*err = 0;
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		*err = errno;
		return NULL;
	}
	if (fstat(fd, &st) != 0 || st.st_size >= (off_t) MaxAllocSize)
	{
		*err = errno ? errno : EFBIG;
		CloseTransientFile(fd);
		return NULL;
	}
	buf = palloc(st.st_size + 1);
	while (done < (size_t) st.st_size)
	{
		ssize_t		r = read(fd, buf + done, st.st_size - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += r;
	}
	if (done < (size_t) st.st_size)
		*err = errno ? errno : EIO;
	CloseTransientFile(fd);
	if (*err)
	{
		pfree(buf);
		return NULL;
	}
	buf[done] = '\0';
	*len = done;
	return buf;
}

static char *
ts_strndup(TsStr s)
{
	return s.p ? pnstrdup(s.p, s.len) : NULL;
}

/* errmsg/errdetail text for a stored failure callback. */
static void
ts_spool_describe_failure(const char *request_id, const char *path, TsSpoolStatus *out)
{
	size_t		len;
	int			err;
	char	   *body = ts_spool_read_file(path, &len, &err);
	TsjError	jerr;
	TsjDoc	   *doc = body ? tsj_parse(body, len, &jerr) : NULL;
	TsEnvelope	env;
	TsMapError	merr;

	if (doc && ts_envelope_read(tsj_root(doc), &env, &merr) == 0)
	{
		char	   *code = ts_strndup(env.fault_code);
		char	   *text = ts_strndup(env.fault_string);
		char	   *status = ts_strndup(env.status);

		if (code)
			out->message = psprintf("ThingSpace request \"%s\" failed with fault code %s",
									request_id, code);
		else
			out->message = psprintf("ThingSpace request \"%s\" failed with status \"%s\"",
									request_id, status ? status : "");
		if (text)
			out->detail = psprintf("ThingSpace said: %s", text);
		else
			out->detail = psprintf("The failure callback has no faultResponse; its status is \"%s\".",
								   status ? status : "");
	}
	else
	{
		out->message = psprintf("ThingSpace request \"%s\" failed", request_id);
		out->detail = psprintf("The stored failure callback \"%s\" could not be read again.", path);
	}
	if (doc)
		tsj_free(doc);
}

/* errmsg/errdetail text for a stored body that is not a usable callback. */
static void
ts_spool_describe_unparsed(const char *request_id, const char *path, TsSpoolStatus *out)
{
	size_t		len;
	int			err;
	char	   *body = ts_spool_read_file(path, &len, &err);
	TsjError	jerr;
	TsjDoc	   *doc;
	TsEnvelope	env;
	TsMapError	merr;

	out->message = psprintf("callback for ThingSpace request \"%s\" is not valid JSON", request_id);
	if (body == NULL)
	{
		out->detail = psprintf("The stored body \"%s\" could not be read: %s.", path, strerror(err));
		return;
	}
	memset(&jerr, 0, sizeof(jerr));
	doc = tsj_parse(body, len, &jerr);
	if (doc == NULL)
	{
		out->detail = psprintf("JSON error at line %d, column %d: %s.  The body is stored as \"%s\".",
							   jerr.line, jerr.column, jerr.message, path);
		return;
	}
	/* Valid JSON of the wrong shape, or page numbers out of range. */
	memset(&merr, 0, sizeof(merr));
	if (ts_envelope_read(tsj_root(doc), &env, &merr) == 0)
		snprintf(merr.message, sizeof(merr.message),
				 "pageNumber %ld or totalPages %ld is out of range", env.page_number, env.total_pages);
	tsj_free(doc);
	out->message = psprintf("callback for ThingSpace request \"%s\" has an unexpected shape", request_id);
	out->detail = psprintf("At %s: %s.  The body is stored as \"%s\".",
						   merr.field[0] ? merr.field : "the top level",
						   merr.message[0] ? merr.message : "not a callback message", path);
}

void
ts_spool_status(const char *request_id, TsSpoolStatus *out)
{
	char	   *dirpath;
	List	   *entries;
	ListCell   *lc;
	TsSpoolEntry *failure = NULL;
	TsSpoolEntry *unparsed = NULL;
	bool		untotalled = false;
	long		prev = -1;

	memset(out, 0, sizeof(*out));
	out->state = TS_SPOOL_WAITING;
	if (!ts_spool_valid_request_id(request_id))
		return;

	dirpath = psprintf("%s/%s", ts_spool_dir(), request_id);
	entries = ts_spool_collect(dirpath, false, ERROR);
	list_sort(entries, ts_spool_entry_cmp);

	foreach(lc, entries)
	{
		TsSpoolEntry *e = lfirst(lc);

		if (e->kind == TS_SPOOL_FAILURE)
			failure = e;
		else if (e->kind == TS_SPOOL_UNPARSED)
		{
			if (unparsed == NULL)
				unparsed = e;
		}
		else if (e->page != prev)	/* sorted: a repeated page number is a duplicate */
		{
			prev = e->page;
			out->pages_in++;
			out->total_pages = Max(out->total_pages, (int) e->total);
			if (e->total == 0)
				untotalled = true;
			out->page_paths = lappend(out->page_paths,
									  psprintf("%s/%s", dirpath, e->name));
		}
	}

	if (failure)
	{
		out->state = TS_SPOOL_FAILED;
		ts_spool_describe_failure(request_id, psprintf("%s/%s", dirpath, failure->name), out);
	}
	else if (unparsed)
	{
		out->state = TS_SPOOL_BROKEN;
		ts_spool_describe_unparsed(request_id, psprintf("%s/%s", dirpath, unparsed->name), out);
	}
	else if (out->pages_in > 0 &&
			 (untotalled || out->pages_in >= out->total_pages))
		out->state = TS_SPOOL_COMPLETE;

	if (out->state != TS_SPOOL_COMPLETE)
	{
		list_free_deep(out->page_paths);
		out->page_paths = NIL;
	}
}

/* ---------------------------------------------------------------------------
 * Write side (listener worker)
 * ---------------------------------------------------------------------------
 */

static bool
ts_spool_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
		{
			if (w == 0)
				errno = ENOSPC;
			return false;
		}
		buf += w;
		len -= w;
	}
	return true;
}

int
ts_spool_store(const char *request_id, TsSpoolKind kind, long page, long total,
			   const char *body, size_t len)
{
	static uint64 seq = 0;
	char	   *spool = ts_spool_dir();
	char	   *dirpath;
	char	   *name;
	char	   *final;
	char	   *tmp;
	bool		created = false;
	bool		duplicate = false;
	int			fd;
	struct stat st;

	dirpath = psprintf("%s/%s", spool, request_id ? request_id : TS_UNROUTED_DIR);
	if (kind == TS_SPOOL_PAGE)
		name = psprintf("p%ld-of-%ld.json", Max(page, 0), Max(total, 0));
	else if (kind == TS_SPOOL_FAILURE)
		name = pstrdup("failed.json");
	else
		name = psprintf("broken-%016llx.json",
						(unsigned long long) hash_bytes_extended((const unsigned char *) body,
																 (int) len, 0));
	final = psprintf("%s/%s", dirpath, name);

	/* A resend of something already stored: no need to write it again. */
	if (stat(final, &st) == 0)
		duplicate = true;
	else
	{
		if (MakePGDirectory(dirpath) == 0)
			created = true;
		else if (errno != EEXIST)
		{
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not create spool directory \"%s\": %m", dirpath)));
			return -1;
		}

		tmp = psprintf("%s/" TS_TMP_PREFIX "%d-" UINT64_FORMAT, spool, MyProcPid, ++seq);
		fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY);
		if (fd < 0)
		{
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not create file \"%s\": %m", tmp)));
			return -1;
		}
		if (!ts_spool_write_all(fd, body, len) || pg_fsync(fd) != 0)
		{
			int			save = errno;

			CloseTransientFile(fd);
			unlink(tmp);
			errno = save;
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", tmp)));
			return -1;
		}
		if (CloseTransientFile(fd) != 0)
		{
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not close file \"%s\": %m", tmp)));
			unlink(tmp);
			return -1;
		}

		/* link() never replaces: a concurrent or earlier copy wins. */
		if (link(tmp, final) != 0)
		{
			if (errno != EEXIST)
			{
				ereport(LOG,
						(errcode_for_file_access(),
						 errmsg("could not link file \"%s\" to \"%s\": %m", tmp, final)));
				unlink(tmp);
				return -1;
			}
			duplicate = true;
		}
		unlink(tmp);
	}

	/*
	 * Also for a duplicate: the earlier delivery may have failed before this point,
	 * and the vendor only stops resending once we say 200.
	 */
	if (fsync_fname_ext(dirpath, true, false, LOG) != 0)
		return -1;
	if (created && fsync_fname_ext(spool, true, false, LOG) != 0)
		return -1;
	return duplicate ? 0 : 1;
}

void
ts_spool_prepare(void)
{
	char	   *spool = ts_spool_dir();
	DIR		   *dir;
	struct dirent *de;

	if (MakePGDirectory(spool) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create spool directory \"%s\": %m", spool),
				 errhint("Check thingspace_fdw.spool_directory and the permissions of its parent directory.")));

	/* Temporary files of a listener that died mid-write: never acknowledged. */
	dir = AllocateDir(spool);
	while ((de = ReadDirExtended(dir, spool, LOG)) != NULL)
	{
		if (strncmp(de->d_name, TS_TMP_PREFIX, strlen(TS_TMP_PREFIX)) == 0)
		{
			char	   *path = psprintf("%s/%s", spool, de->d_name);

			if (unlink(path) != 0 && errno != ENOENT)
				ereport(LOG,
						(errcode_for_file_access(),
						 errmsg("could not remove file \"%s\": %m", path)));
		}
	}
	if (dir)
		FreeDir(dir);
}

void
ts_spool_purge(int retention_s)
{
	char	   *spool = ts_spool_dir();
	TimestampTz cutoff;
	DIR		   *dir;
	struct dirent *de;

	if (retention_s <= 0)
		return;
	cutoff = GetCurrentTimestamp() - (TimestampTz) retention_s * USECS_PER_SEC;

	dir = AllocateDir(spool);
	if (dir == NULL && errno == ENOENT)
		return;
	while ((de = ReadDirExtended(dir, spool, LOG)) != NULL)
	{
		bool		unrouted = strcmp(de->d_name, TS_UNROUTED_DIR) == 0;
		char	   *dirpath;
		List	   *entries;
		ListCell   *lc;
		TimestampTz newest = 0;
		int			removed = 0;

		if (!unrouted && !ts_spool_valid_request_id(de->d_name))
			continue;
		dirpath = psprintf("%s/%s", spool, de->d_name);
		entries = ts_spool_collect(dirpath, true, LOG);
		foreach(lc, entries)
			newest = Max(newest, ((TsSpoolEntry *) lfirst(lc))->mtime);

		/* A request goes as a whole; unrelated unrouted bodies one by one. */
		if (!unrouted && newest >= cutoff)
			continue;
		foreach(lc, entries)
		{
			TsSpoolEntry *e = lfirst(lc);
			char	   *path = psprintf("%s/%s", dirpath, e->name);

			if (unrouted && e->mtime >= cutoff)
				continue;
			if (unlink(path) == 0)
				removed++;
			else if (errno != ENOENT)
				ereport(LOG,
						(errcode_for_file_access(),
						 errmsg("could not remove file \"%s\": %m", path)));
		}
		if (!unrouted && rmdir(dirpath) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove directory \"%s\": %m", dirpath)));
		if (removed > 0)
			elog(DEBUG1, "thingspace_fdw: purged %d spool files of \"%s\"", removed, de->d_name);
	}
	if (dir)
		FreeDir(dir);
}

/* ---------------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------------
 */

/* Set up a materialized set-returning call; portable to PostgreSQL 13. */
static Tuplestorestate *
ts_materialize(FunctionCallInfo fcinfo, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	Tuplestorestate *ts;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, tupdesc) != TYPEFUNC_COMPOSITE)
	{
		/* SETOF text */
		*tupdesc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(*tupdesc, (AttrNumber) 1, "payload", TEXTOID, -1, 0);
	}
	*tupdesc = BlessTupleDesc(*tupdesc);
	ts = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = *tupdesc;
	MemoryContextSwitchTo(old);
	return ts;
}

typedef struct TsListed
{
	char	   *request_id;
	TsSpoolEntry *e;
} TsListed;

static int
ts_listed_cmp(const ListCell *a, const ListCell *b)
{
	const TsListed *x = lfirst(a);
	const TsListed *y = lfirst(b);
	int			c;

	if (x->e->mtime != y->e->mtime)
		return x->e->mtime < y->e->mtime ? -1 : 1;
	if ((c = strcmp(x->request_id, y->request_id)) != 0)
		return c;
	return ts_spool_order(x->e, y->e);
}

PG_FUNCTION_INFO_V1(thingspace_callbacks);

/*
 * One row per stored file, oldest first.  Bodies that could not be attributed to a
 * request are listed under the reserved request id "_unrouted".
 */
Datum
thingspace_callbacks(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tstore = ts_materialize(fcinfo, &tupdesc);
	char	   *spool = ts_spool_dir();
	List	   *rows = NIL;
	ListCell   *lc;
	DIR		   *dir;
	struct dirent *de;

	dir = AllocateDir(spool);
	if (dir == NULL && errno == ENOENT)
		PG_RETURN_NULL();		/* nothing received yet */
	while ((de = ReadDir(dir, spool)) != NULL)
	{
		List	   *entries;
		ListCell   *lc2;

		if (strcmp(de->d_name, TS_UNROUTED_DIR) != 0 &&
			!ts_spool_valid_request_id(de->d_name))
			continue;
		entries = ts_spool_collect(psprintf("%s/%s", spool, de->d_name), true, ERROR);
		foreach(lc2, entries)
		{
			TsListed   *r = palloc(sizeof(TsListed));

			r->request_id = pstrdup(de->d_name);
			r->e = lfirst(lc2);
			rows = lappend(rows, r);
		}
	}
	FreeDir(dir);
	list_sort(rows, ts_listed_cmp);

	foreach(lc, rows)
	{
		TsListed   *r = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false};
		bool		is_page = r->e->kind == TS_SPOOL_PAGE;

		values[0] = CStringGetTextDatum(r->request_id);
		values[1] = Int32GetDatum((int32) r->e->page);
		nulls[1] = !is_page;
		values[2] = Int32GetDatum((int32) r->e->total);
		nulls[2] = !is_page || r->e->total == 0;
		values[3] = CStringGetTextDatum(is_page ? "page" :
										r->e->kind == TS_SPOOL_FAILURE ? "failed" : "broken");
		values[4] = TimestampTzGetDatum(r->e->mtime);
		values[5] = Int64GetDatum((int64) r->e->size);
		values[6] = BoolGetDatum(r->e->kind != TS_SPOOL_UNPARSED);
		tuplestore_putvalues(tstore, tupdesc, values, nulls);
	}
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(thingspace_callback_payload);

/* The stored bodies of a request (or one page of it), in page order. */
Datum
thingspace_callback_payload(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tstore;
	char	   *request_id;
	char	   *dirpath;
	List	   *entries;
	ListCell   *lc;
	bool		one_page = !PG_ARGISNULL(1);
	int32		page = one_page ? PG_GETARG_INT32(1) : 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("request_id must not be null")));
	request_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strcmp(request_id, TS_UNROUTED_DIR) != 0 && !ts_spool_valid_request_id(request_id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ThingSpace request id \"%s\"", request_id),
				 errdetail("A request id has 1 to %d characters among letters, digits, \".\", \"_\" and \"-\", and does not start with \".\" or \"_\".",
						   TS_REQUEST_ID_MAX)));
	if (one_page && page < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page must not be negative")));

	tstore = ts_materialize(fcinfo, &tupdesc);
	dirpath = psprintf("%s/%s", ts_spool_dir(), request_id);
	entries = ts_spool_collect(dirpath, false, ERROR);
	list_sort(entries, ts_spool_entry_cmp);

	foreach(lc, entries)
	{
		TsSpoolEntry *e = lfirst(lc);
		char	   *path;
		char	   *body;
		size_t		len;
		int			err;
		Datum		value;
		bool		isnull = false;

		if (one_page && (e->kind != TS_SPOOL_PAGE || e->page != page))
			continue;
		path = psprintf("%s/%s", dirpath, e->name);
		body = ts_spool_read_file(path, &len, &err);
		if (body == NULL)
		{
			if (err == ENOENT)
				continue;		/* purged meanwhile */
			errno = err;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", path)));
		}
		/* Vendor bodies are UTF-8; broken ones may not even be that. */
		value = CStringGetTextDatum(pg_any_to_server(body, (int) len, PG_UTF8));
		tuplestore_putvalues(tstore, tupdesc, &value, &isnull);
	}
	PG_RETURN_NULL();
}
