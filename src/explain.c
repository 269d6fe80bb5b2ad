/*
 * explain.c — EXPLAIN output: the requests a scan sends (VERBOSE: their bodies) and,
 * with ANALYZE, what happened (SPEC §4).  Bodies hold no secret: credentials travel
 * in headers only.
 */
#include "postgres.h"

#include "commands/explain.h"

#include "thingspace_fdw.h"

void
ts_ExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	TsScanState *ss = node->fdw_state;

	ExplainPropertyText("ThingSpace Resource", ts_resource_name(ss->tbl.resource), es);
	if (!ss->requests_known)
		ExplainPropertyText("Requests", "computed at execution", es);
	else
	{
		ExplainPropertyInteger("Requests", NULL, ss->nreq, es);
		if (es->verbose)
			for (int i = 0; i < ss->nreq; i++)
				ExplainPropertyText(psprintf("Request %d", i + 1), ss->reqs[i].req->body, es);
	}
	if (es->analyze)
	{
		ExplainPropertyInteger("Requests Sent", NULL, ss->stats.requests_sent, es);
		ExplainPropertyInteger("Cache Hits", NULL, ss->stats.cache_hits, es);
		ExplainPropertyInteger("Merged In-Flight", NULL, ss->stats.merged_inflight, es);
		ExplainPropertyInteger("Callback Pages", NULL, ss->stats.pages_read, es);
		ExplainPropertyInteger("Retries", NULL, ss->stats.retries, es);
		if (es->timing)
			ExplainPropertyFloat("Callback Wait", "ms", ss->stats.wait_ms, 3, es);
	}
}
