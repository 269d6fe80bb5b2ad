/*
 * scan.c — execution: evaluate the conditions, send the requests, wait for their
 * callbacks in the spool, and turn each stored page into rows.
 *
 * Rows are produced page by page: only one page's text and parsed document are in
 * memory at a time, whatever the size of the whole result.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "thingspace_fdw.h"

/* How often a waiting scan re-reads the spool when no wakeup comes. */
#define TS_POLL_MS_SHARED 1000
#define TS_POLL_MS_LOCAL 100

static bool
contains_exec_param_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXEC)
		return true;
	return expression_tree_walker(node, contains_exec_param_walker, context);
}

/* A billing date condition value as YYYY-MM-DD, whatever its type and DateStyle. */
static char *
date_text(Datum value, Oid type)
{
	DateADT		date;
	int			y,
				m,
				d;

	if (type == DATEOID)
		date = DatumGetDateADT(value);
	else if (type == TIMESTAMPOID)
		date = DatumGetDateADT(DirectFunctionCall1(timestamp_date, value));
	else if (type == TIMESTAMPTZOID)
		date = DatumGetDateADT(DirectFunctionCall1(timestamptz_date, value));
	else
	{
		Oid			out;
		bool		varlena;

		getTypeOutputInfo(type, &out, &varlena);
		date = DatumGetDateADT(DirectFunctionCall1(date_in,
												   CStringGetDatum(OidOutputFunctionCall(out, value))));
	}
	if (DATE_NOT_FINITE(date))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("billing cycle dates must be finite")));
	j2date(date + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	return psprintf("%04d-%02d-%02d", y, m, d);
}

static char *
value_text(TsColumn col, Datum value, Oid type)
{
	Oid			out;
	bool		varlena;

	if (col == TSC_BILLING_FROM || col == TSC_BILLING_TO)
		return date_text(value, type);
	if (type == BOOLOID)
		return pstrdup(DatumGetBool(value) ? "true" : "false");
	getTypeOutputInfo(type, &out, &varlena);
	return OidOutputFunctionCall(out, value);
}

/*
 * Evaluate every condition value and build the requests.  Expressions run in the
 * per-tuple memory; the values kept (they end up in the requests) are copied into the
 * caller's context, which lives as long as the scan.
 */
static void
build_requests(ForeignScanState *node, TsScanState *ss)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	List	   *conds = NIL;
	List	   *requests;
	ListCell   *lc1,
			   *lc2,
			   *lc3,
			   *lc4;

	forfour(lc1, ss->cond_columns, lc2, ss->cond_ops, lc3, ss->cond_arrays, lc4, ss->cond_states)
	{
		TsCondValues *c = palloc0(sizeof(TsCondValues));
		ExprState  *state = lfirst(lc4);
		Oid			type = exprType((Node *) state->expr);
		bool		isnull;
		Datum		value;
		Datum	   *elems = &value;
		bool	   *nulls = &isnull;
		int			n = 1;
		MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);

		value = ExecEvalExpr(state, econtext, &isnull);
		if (!isnull && lfirst_int(lc3))
		{
			ArrayType  *arr = DatumGetArrayTypeP(value);
			int16		typlen;
			bool		typbyval;
			char		typalign;

			type = ARR_ELEMTYPE(arr);
			get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
			deconstruct_array(arr, type, typlen, typbyval, typalign, &elems, &nulls, &n);
		}
		MemoryContextSwitchTo(old);

		c->column = lfirst_int(lc1);
		c->op = lfirst_int(lc2);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				c->values = lappend(c->values, value_text(c->column, elems[i], type));
		conds = lappend(conds, c);
	}
	ResetExprContext(econtext);

	requests = ts_build_requests(conds, &ss->srv, &ss->tbl, RelationGetRelationName(ss->rel));
	ss->nreq = list_length(requests);
	ss->reqs = palloc0(sizeof(TsReqExec) * Max(ss->nreq, 1));
	for (int i = 0; i < ss->nreq; i++)
		ss->reqs[i].req = list_nth(requests, i);
	ss->requests_known = true;
}

static void
release_claims(TsScanState *ss)
{
	for (int i = 0; i < ss->nreq; i++)
		if (ss->reqs[i].owns_cache_claim)
		{
			ts_cache_release(ss->identity, ss->reqs[i].req->body);
			ss->reqs[i].owns_cache_claim = false;
		}
}

/* Runs when the scan's memory goes away, also after an error: no stale wakeups or claims. */
static void
scan_cleanup_callback(void *arg)
{
	TsScanState *ss = arg;

	ts_wake_unregister();
	release_claims(ss);
}

void
ts_BeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	TsScanState *ss = palloc0(sizeof(TsScanState));
	TupleDesc	desc;
	MemoryContextCallback *cb;
	ListCell   *lc;

	node->fdw_state = ss;
	ss->rel = node->ss.ss_currentRelation;
	ts_get_table_options(RelationGetRelid(ss->rel), &ss->tbl);
	ts_get_server_options(GetForeignTable(RelationGetRelid(ss->rel))->serverid, &ss->srv);
	ss->attcols = ts_attr_columns(ss->rel, ss->tbl.resource);
	ss->cond_columns = linitial(fsplan->fdw_private);
	ss->cond_ops = lsecond(fsplan->fdw_private);
	ss->cond_arrays = lthird(fsplan->fdw_private);
	ss->attnos = lfourth(fsplan->fdw_private);
	foreach(lc, fsplan->fdw_exprs)
		ss->cond_states = lappend(ss->cond_states, ExecInitExpr(lfirst(lc), (PlanState *) node));
	ss->current = -1;

	desc = RelationGetDescr(ss->rel);
	ss->in_funcs = palloc0(sizeof(FmgrInfo) * Max(desc->natts, 1));
	ss->typioparams = palloc0(sizeof(Oid) * Max(desc->natts, 1));
	ss->typmods = palloc0(sizeof(int32) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			in;

		if (att->attisdropped)
			continue;
		getTypeInputInfo(att->atttypid, &in, &ss->typioparams[i]);
		fmgr_info(in, &ss->in_funcs[i]);
		ss->typmods[i] = att->atttypmod;
	}
	ss->scan_cxt = CurrentMemoryContext;
	ss->poll_cxt = AllocSetContextCreate(CurrentMemoryContext, "thingspace_fdw poll",
										 ALLOCSET_SMALL_SIZES);
	ss->tuple_cxt = AllocSetContextCreate(CurrentMemoryContext, "thingspace_fdw tuple",
										  ALLOCSET_DEFAULT_SIZES);
	ss->page_cxt = AllocSetContextCreate(CurrentMemoryContext, "thingspace_fdw page",
										 ALLOCSET_DEFAULT_SIZES);

	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = scan_cleanup_callback;
	cb->arg = ss;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	/*
	 * EXPLAIN shows the requests; their values are known now unless they come from a
	 * subquery that only runs during execution.
	 */
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY) ||
		!contains_exec_param_walker((Node *) fsplan->fdw_exprs, NULL))
		build_requests(node, ss);
}

static Oid
scan_user(ForeignScanState *node)
{
#if PG_VERSION_NUM >= 160000
	Oid			userid = ((ForeignScan *) node->ss.ps.plan)->checkAsUser;
#else
	RangeTblEntry *rte = exec_rt_fetch(((ForeignScan *) node->ss.ps.plan)->scan.scanrelid,
									   node->ss.ps.state);
	Oid			userid = rte->checkAsUser;
#endif

	return OidIsValid(userid) ? userid : GetUserId();
}

/* Use cached or in-flight results where possible, send the rest at once. */
static void
start_requests(ForeignScanState *node, TsScanState *ss)
{
	TsUserOptions um;
	char	  **bodies = palloc(sizeof(char *) * Max(ss->nreq, 1));
	char	  **ids = palloc0(sizeof(char *) * Max(ss->nreq, 1));
	int		   *index = palloc(sizeof(int) * Max(ss->nreq, 1));
	int			nsend = 0;

	ts_get_user_options(ss->srv.serverid, scan_user(node), &um);
	ss->identity = ts_vendor_identity(&ss->srv, &um);
	if (!ts_wake_registered())
		ts_wake_register();

	for (int i = 0; i < ss->nreq; i++)
	{
		TsReqExec  *r = &ss->reqs[i];
		char	   *id = NULL;
		TsCacheResult cr;

		if (r->phase != TS_REQ_NEW)
			continue;
		cr = ts_cache_claim(ss->identity, r->req->body, ss->srv.cache_ttl_ms,
							ss->srv.callback_timeout_ms, &id);
		r->since = GetCurrentTimestamp();
		if (cr == TS_CACHE_MISS)
		{
			r->owns_cache_claim = true;
			index[nsend] = i;
			bodies[nsend++] = r->req->body;
			continue;
		}
		r->request_id = id;
		r->phase = id ? TS_REQ_WAITING : TS_REQ_CLAIMED_ELSEWHERE;
		if (cr == TS_CACHE_HIT)
			ss->stats.cache_hits++;
		else
			ss->stats.merged_inflight++;
	}

	if (nsend > 0)
	{
		TsVendor   *vendor = ts_vendor_open(&ss->srv, &um);

		ts_vendor_submit_billed(vendor, nsend, bodies, ids, &ss->stats);
		for (int k = 0; k < nsend; k++)
		{
			TsReqExec  *r = &ss->reqs[index[k]];

			if (!ts_spool_valid_request_id(ids[k]))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_REPLY_HANDLE),
						 errmsg("thingspace answered with an unusable requestId"),
						 errdetail("The requestId \"%s\" cannot name a spool entry.", ids[k])));
			r->request_id = ids[k];
			r->phase = TS_REQ_WAITING;
			r->since = GetCurrentTimestamp();
			ts_cache_store(ss->identity, r->req->body, ids[k]);
			r->owns_cache_claim = false;
		}
		ss->stats.requests_sent += nsend;
	}
	ss->started = true;
}

static void
report_spool_failure(TsReqExec *r, TsSpoolStatus *st)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("%s", st->message),
			 st->detail ? errdetail("%s", st->detail) : 0,
			 errcontext("ThingSpace request %s for account %s", r->request_id, r->req->account)));
}

/*
 * Find a request whose callbacks are all in, waiting (cancellably) until one is.
 * Returns its index, or -1 when every request has been emitted.
 */
static int
next_complete_request(TsScanState *ss)
{
	int			poll_ms = ts_shmem_available ? TS_POLL_MS_SHARED : TS_POLL_MS_LOCAL;

	for (;;)
	{
		bool		pending = false;
		long		wait_ms = poll_ms;
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz wait_start;
		MemoryContext old;

		/* reset before looking, so a callback landing meanwhile still wakes us */
		ResetLatch(MyLatch);
		for (int i = 0; i < ss->nreq; i++)
		{
			TsReqExec  *r = &ss->reqs[i];
			TsSpoolStatus st;
			long		left;

			if (r->phase == TS_REQ_DONE)
				continue;
			pending = true;
			if (r->phase == TS_REQ_CLAIMED_ELSEWHERE)
			{
				char	   *id = NULL;
				TsCacheResult cr = ts_cache_claim(ss->identity, r->req->body, ss->srv.cache_ttl_ms,
												  ss->srv.callback_timeout_ms, &id);

				if (cr == TS_CACHE_MISS)
				{
					/* the other session gave up: we send it ourselves */
					ts_cache_release(ss->identity, r->req->body);
					ereport(ERROR,
							(errcode(ERRCODE_FDW_ERROR),
							 errmsg("another session sending the same ThingSpace request failed"),
							 errhint("Run the query again.")));
				}
				if (id == NULL)
					continue;
				r->request_id = MemoryContextStrdup(ss->scan_cxt, id);
				r->phase = TS_REQ_WAITING;
			}
			MemoryContextReset(ss->poll_cxt);
			old = MemoryContextSwitchTo(ss->poll_cxt);
			ts_spool_status(r->request_id, &st);
			MemoryContextSwitchTo(old);
			if (st.state == TS_SPOOL_COMPLETE)
			{
				ListCell   *lc;

				/* the page list must outlive this round (and the per-tuple context) */
				list_free_deep(ss->pages);
				ss->pages = NIL;
				old = MemoryContextSwitchTo(ss->scan_cxt);
				foreach(lc, st.page_paths)
					ss->pages = lappend(ss->pages, pstrdup(lfirst(lc)));
				MemoryContextSwitchTo(old);
				ss->next_page = 0;
				ts_cache_mark_complete(ss->identity, r->req->body);
				return i;
			}
			if (st.state == TS_SPOOL_FAILED || st.state == TS_SPOOL_BROKEN)
				report_spool_failure(r, &st);

			left = ss->srv.callback_timeout_ms -
				(long) ((now - r->since) / 1000);
			if (left <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
						 errmsg("no callback for ThingSpace request %s within %d ms",
								r->request_id, ss->srv.callback_timeout_ms),
						 errdetail("%d of %s callback pages arrived for account %s.", st.pages_in,
								   st.total_pages > 0 ? psprintf("%d", st.total_pages) : "the",
								   r->req->account),
						 errhint("Check that ThingSpace can reach the callback listener (thingspace_fdw.listen_addresses, thingspace_fdw.listen_port, the URL registered with thingspace_register_callback()), and look at thingspace_callbacks().")));
			wait_ms = Min(wait_ms, left);
		}
		if (!pending)
			return -1;

		wait_start = GetCurrentTimestamp();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(wait_ms, 1), PG_WAIT_EXTENSION);
		ss->stats.wait_ms += (double) (GetCurrentTimestamp() - wait_start) / 1000.0;
		CHECK_FOR_INTERRUPTS();
	}
}

static void
free_doc_callback(void *arg)
{
	TsScanState *ss = arg;

	if (ss->doc)
		tsj_free(ss->doc);
	ss->doc = NULL;
	ss->have_cursor = false;
}

/* Read and parse the next page of the current request into the page context. */
static void
load_page(TsScanState *ss, const char *path)
{
	TsReqExec  *r = &ss->reqs[ss->current];
	MemoryContext old;
	MemoryContextCallback *cb;
	FILE	   *f;
	struct stat stbuf;
	char	   *buf;
	TsjError	jerr;

	MemoryContextReset(ss->page_cxt);
	old = MemoryContextSwitchTo(ss->page_cxt);
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = free_doc_callback;
	cb->arg = ss;
	MemoryContextRegisterResetCallback(ss->page_cxt, cb);

	f = AllocateFile(path, PG_BINARY_R);
	if (f == NULL || fstat(fileno(f), &stbuf) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read callback page \"%s\": %m", path)));
	buf = palloc_extended(stbuf.st_size + 1, MCXT_ALLOC_HUGE);
	if (fread(buf, 1, stbuf.st_size, f) != (size_t) stbuf.st_size)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read callback page \"%s\": %m", path)));
	FreeFile(f);
	buf[stbuf.st_size] = '\0';

	ss->doc = tsj_parse(buf, stbuf.st_size, &jerr);
	if (ss->doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("callback for ThingSpace request %s is not valid JSON", r->request_id),
				 errdetail("%s at line %d, column %d.", jerr.message, jerr.line, jerr.column)));
	ts_map_begin(&ss->cursor, tsj_root(ss->doc), ss->tbl.resource);
	ss->have_cursor = true;
	ss->stats.pages_read++;
	MemoryContextSwitchTo(old);
}

typedef struct ConvertContext
{
	const char *column;
	const char *value;
} ConvertContext;

static void
convert_error_callback(void *arg)
{
	ConvertContext *cc = arg;

	errcontext("column \"%s\", value \"%s\"", cc->column, cc->value);
}

static void
set_key(TsStr *slot, const char *value)
{
	if (slot->p == NULL && value != NULL)
	{
		slot->p = value;
		slot->len = strlen(value);
	}
}

/* Fill the slot from one mapped row; request-key columns come from the request. */
static void
store_row(TsScanState *ss, TupleTableSlot *slot, TsRow *row)
{
	TsRequest  *req = ss->reqs[ss->current].req;
	TupleDesc	desc = slot->tts_tupleDescriptor;
	ConvertContext cc;
	ErrorContextCallback errcb;
	ListCell   *lc;
	char		from[16],
				to[16];

	snprintf(from, sizeof(from), "%04d-%02d-01", req->from_year, req->from_month);
	snprintf(to, sizeof(to), "%04d-%02d-01", req->to_year, req->to_month);
	row->col[TSC_ACCOUNT_NAME] = (TsStr) {req->account, strlen(req->account)};
	row->col[TSC_BILLING_FROM] = (TsStr) {from, strlen(from)};
	row->col[TSC_BILLING_TO] = (TsStr) {to, strlen(to)};
	row->col[TSC_LINE_LEVEL] = (TsStr) {req->line_level ? "true" : "false", req->line_level ? 4 : 5};
	if (req->device_id)
	{
		/* a single-device request: rows carry the device that was asked for */
		row->col[TSC_DEVICE_KIND] = (TsStr) {req->device_kind, strlen(req->device_kind)};
		row->col[TSC_DEVICE_ID] = (TsStr) {req->device_id, strlen(req->device_id)};
	}
	if (req->label_name)
	{
		/* a label request: rows carry the label that was asked for */
		row->col[TSC_LABEL_NAME] = (TsStr) {req->label_name, strlen(req->label_name)};
		row->col[TSC_LABEL_VALUE] = (TsStr) {req->label_value, strlen(req->label_value)};
	}
	set_key(&row->col[TSC_REQUEST_ID], ss->reqs[ss->current].request_id);

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);

	errcb.callback = convert_error_callback;
	errcb.arg = &cc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	foreach(lc, ss->attnos)
	{
		int			i = lfirst_int(lc) - 1;
		TsStr		v;

		if (ss->attcols[i] < 0)
			continue;
		v = row->col[ss->attcols[i]];
		if (v.p == NULL)
			continue;
		cc.column = NameStr(TupleDescAttr(desc, i)->attname);
		cc.value = pnstrdup(v.p, v.len);
		slot->tts_values[i] = InputFunctionCall(&ss->in_funcs[i], (char *) cc.value,
												ss->typioparams[i], ss->typmods[i]);
		slot->tts_isnull[i] = false;
	}
	error_context_stack = errcb.previous;
	ExecStoreVirtualTuple(slot);
}

TupleTableSlot *
ts_IterateForeignScan(ForeignScanState *node)
{
	TsScanState *ss = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	/* Iterate runs in the per-tuple context: scan-long state goes in scan_cxt. */
	if (!ss->requests_known || !ss->started)
	{
		MemoryContext old = MemoryContextSwitchTo(ss->scan_cxt);

		if (!ss->requests_known)
			build_requests(node, ss);
		if (!ss->started)
			start_requests(node, ss);
		MemoryContextSwitchTo(old);
	}

	MemoryContextReset(ss->tuple_cxt);
	for (;;)
	{
		if (ss->have_cursor)
		{
			TsRow		row;
			TsMapError merr;
			TsMapStatus st;

			memset(&row, 0, sizeof(row));
			st = ts_map_next(&ss->cursor, &row, &merr);
			if (st == TS_MAP_ROW)
			{
				MemoryContext old = MemoryContextSwitchTo(ss->tuple_cxt);

				store_row(ss, slot, &row);
				MemoryContextSwitchTo(old);
				return slot;
			}
			if (st == TS_MAP_ERROR)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("unexpected callback payload for ThingSpace request %s",
								ss->reqs[ss->current].request_id),
						 errdetail("Field %s: %s.", merr.field, merr.message)));
			MemoryContextReset(ss->page_cxt);
		}
		if (ss->current >= 0 && ss->next_page < list_length(ss->pages))
		{
			load_page(ss, list_nth(ss->pages, ss->next_page++));
			continue;
		}
		if (ss->current >= 0)
			ss->reqs[ss->current].phase = TS_REQ_DONE;
		ss->current = next_complete_request(ss);
		if (ss->current < 0)
			return ExecClearTuple(slot);
	}
}

void
ts_ReScanForeignScan(ForeignScanState *node)
{
	TsScanState *ss = node->fdw_state;
	TsReqExec  *old = ss->reqs;
	int			nold = ss->nreq;
	MemoryContext oldcxt;

	MemoryContextReset(ss->page_cxt);
	ss->current = -1;
	ss->pages = NIL;
	if (!ss->started)
		return;

	/* Parameters may have changed: rebuild, reusing the answers to identical requests. */
	oldcxt = MemoryContextSwitchTo(ss->scan_cxt);
	build_requests(node, ss);
	MemoryContextSwitchTo(oldcxt);
	for (int i = 0; i < ss->nreq; i++)
		for (int j = 0; j < nold; j++)
			if (old[j].request_id && strcmp(old[j].req->body, ss->reqs[i].req->body) == 0)
			{
				ss->reqs[i].request_id = old[j].request_id;
				ss->reqs[i].phase = TS_REQ_WAITING;
				ss->reqs[i].since = old[j].since;
			}
	ss->started = false;		/* start_requests sends only the new ones */
}

void
ts_EndForeignScan(ForeignScanState *node)
{
	TsScanState *ss = node->fdw_state;

	if (ss == NULL)
		return;
	MemoryContextReset(ss->page_cxt);
	ts_wake_unregister();
	release_claims(ss);
}
