/*
 * request.c — from evaluated WHERE conditions to billed-usage requests (SPEC §4).
 *
 * Each condition contributes a set of values (equality, IN, = ANY) or a bound
 * (ranges); the requests are the cross product of accounts, billing cycles, line
 * level, device groups and labels.  PostgreSQL still checks every row against the
 * whole WHERE clause, so this only has to be complete, never exact.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/json.h"

#include "thingspace_fdw.h"

/* A set of candidate values for one column; unconstrained until a condition speaks. */
typedef struct ValueSet
{
	bool		constrained;
	List	   *values;			/* of char * */
} ValueSet;

typedef struct DeviceGroup
{
	char	   *kind;
	char	   *id;				/* single deviceId, or NULL */
	List	   *ids;			/* deviceIds batch */
} DeviceGroup;

static bool
list_has_string(List *list, const char *s)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp((char *) lfirst(lc), s) == 0)
			return true;
	return false;
}

/* Intersect the set with one condition's values (deduplicated). */
static void
valueset_restrict(ValueSet *set, List *values)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, values)
	{
		char	   *v = lfirst(lc);

		if ((!set->constrained || list_has_string(set->values, v)) && !list_has_string(result, v))
			result = lappend(result, v);
	}
	set->values = result;
	set->constrained = true;
}

/* "YYYY-MM-DD" → months since year 0; the day must be 1 when must_be_first. */
static int
parse_month(const char *value, TsColumn col, bool must_be_first)
{
	int			y,
				m,
				d;

	if (sscanf(value, "%d-%d-%d", &y, &m, &d) != 3 || y < 1 || y > 9999 || m < 1 || m > 12)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid billing cycle date \"%s\" for column %s", value, ts_column_name(col))));
	if (must_be_first && d != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("%s = '%s' can match no row", ts_column_name(col), value),
				 errdetail("Rows carry the first day of the billing month in %s.", ts_column_name(col)),
				 errhint("Compare with the first day of the month, such as date_trunc('month', DATE '%s')::date.", value)));
	return y * 12 + (m - 1);
}

static int
day_of(const char *value)
{
	int			y,
				m,
				d;

	if (sscanf(value, "%d-%d-%d", &y, &m, &d) != 3)
		return 1;
	return d;
}

static void
check_device_kind(const char *kind)
{
	char	   *lower;

	if (ts_is_valid_device_kind(kind))
		return;
	lower = asc_tolower(kind, strlen(kind));
	if (ts_is_valid_device_kind(lower))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("device_kind '%s' can match no row", kind),
				 errdetail("Device kinds are lower case in rows."),
				 errhint("Write device_kind = '%s'.", lower)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("unknown device kind '%s'", kind),
			 errhint("Valid device kinds are imei, iccid, eid, msisdn, mdn, meid, esn and imsi.")));
}

static void
append_cycle(StringInfo buf, int from, int to)
{
	appendStringInfo(buf,
					 "\"billingCycle\":{\"from\":{\"year\":%d,\"month\":%d},\"to\":{\"year\":%d,\"month\":%d}}",
					 from / 12, from % 12 + 1, to / 12, to % 12 + 1);
}

static void
append_device(StringInfo buf, const char *kind, const char *id)
{
	appendStringInfoString(buf, "{\"kind\":");
	escape_json(buf, kind);
	appendStringInfoString(buf, ",\"id\":");
	escape_json(buf, id);
	appendStringInfoChar(buf, '}');
}

static char *
request_body(TsRequest *r)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"accountName\":");
	escape_json(&buf, r->account);
	appendStringInfo(&buf, ",\"lineLevel\":%s,", r->line_level ? "true" : "false");
	append_cycle(&buf, r->from_year * 12 + r->from_month - 1, r->to_year * 12 + r->to_month - 1);
	if (r->device_id)
	{
		appendStringInfoString(&buf, ",\"deviceId\":");
		append_device(&buf, r->device_kind, r->device_id);
	}
	else if (r->device_ids)
	{
		ListCell   *lc;

		appendStringInfoString(&buf, ",\"deviceIds\":[");
		foreach(lc, r->device_ids)
		{
			if (foreach_current_index(lc) > 0)
				appendStringInfoChar(&buf, ',');
			append_device(&buf, r->device_kind, lfirst(lc));
		}
		appendStringInfoChar(&buf, ']');
	}
	if (r->label_name)
	{
		appendStringInfoString(&buf, ",\"label\":{\"name\":");
		escape_json(&buf, r->label_name);
		appendStringInfoString(&buf, ",\"value\":");
		escape_json(&buf, r->label_value);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* Billing cycles as (from, to) month pairs, from the sets and bounds. */
static List *
billing_cycles(ValueSet *from_set, int lower, ValueSet *to_set, int upper)
{
	List	   *froms = NIL,
			   *tos = NIL,
			   *pairs = NIL;
	ListCell   *lc,
			   *lc2;

	foreach(lc, from_set->values)
	{
		int			m = parse_month(lfirst(lc), TSC_BILLING_FROM, true);

		if (m >= lower)
			froms = lappend_int(froms, m);
	}
	if (!from_set->constrained && lower > INT_MIN)
		froms = list_make1_int(lower);
	foreach(lc, to_set->values)
	{
		int			m = parse_month(lfirst(lc), TSC_BILLING_TO, true);

		if (m <= upper)
			tos = lappend_int(tos, m);
	}
	if (!to_set->constrained && upper < INT_MAX)
		tos = list_make1_int(upper);

	if (!from_set->constrained && lower == INT_MIN && !to_set->constrained && upper == INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("a condition on the billing cycle is needed"),
				 errdetail("ThingSpace reports billed usage per billing cycle."),
				 errhint("Add a condition such as billing_from = '2023-09-01' (and billing_to = '2023-10-01' for several months).")));

	if (froms == NIL && (from_set->constrained || lower > INT_MIN))
		return NIL;				/* the conditions exclude every month */
	if (tos == NIL && (to_set->constrained || upper < INT_MAX))
		return NIL;

	if (froms == NIL)
		froms = tos;
	if (tos == NIL)
	{
		foreach(lc, froms)
			pairs = lappend(pairs, list_make2_int(lfirst_int(lc), lfirst_int(lc)));
		return pairs;
	}
	if (froms == tos)
	{
		foreach(lc, tos)
			pairs = lappend(pairs, list_make2_int(lfirst_int(lc), lfirst_int(lc)));
		return pairs;
	}
	foreach(lc, froms)
		foreach(lc2, tos)
			if (lfirst_int(lc) <= lfirst_int(lc2))
				pairs = lappend(pairs, list_make2_int(lfirst_int(lc), lfirst_int(lc2)));
	if (pairs == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("the billing cycle starts after it ends"),
				 errdetail("billing_from is %d-%02d-01 and billing_to is %d-%02d-01.",
						   linitial_int(froms) / 12, linitial_int(froms) % 12 + 1,
						   linitial_int(tos) / 12, linitial_int(tos) % 12 + 1)));
	return pairs;
}

static List *
device_groups(ValueSet *kinds, ValueSet *ids, ValueSet *line_level,
			  const TsTableOptions *tbl, int batch_size)
{
	List	   *groups = NIL;
	List	   *kind_list;
	bool		batch;
	ListCell   *lk,
			   *li;

	if (!ids->constrained)
		return NIL;
	if (kinds->constrained)
		kind_list = kinds->values;
	else if (tbl->device_kind)
		kind_list = list_make1(tbl->device_kind);
	else
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("a device_id condition needs a device kind"),
				 errhint("Add a condition such as device_kind = 'imei', or set the device_kind option of the foreign table.")));

	/* deviceIds requires lineLevel true; when only false is asked for, send one by one. */
	batch = list_length(ids->values) > 1 &&
		(!line_level->constrained || list_has_string(line_level->values, "true"));
	foreach(lk, kind_list)
	{
		DeviceGroup *g = NULL;

		foreach(li, ids->values)
		{
			if (!batch)
			{
				g = palloc0(sizeof(DeviceGroup));
				g->kind = lfirst(lk);
				g->id = lfirst(li);
				groups = lappend(groups, g);
				continue;
			}
			if (g == NULL || list_length(g->ids) >= batch_size)
			{
				g = palloc0(sizeof(DeviceGroup));
				g->kind = lfirst(lk);
				groups = lappend(groups, g);
			}
			g->ids = lappend(g->ids, lfirst(li));
		}
	}
	return groups;
}

List *
ts_build_requests(List *conds, const TsServerOptions *srv, const TsTableOptions *tbl,
				  const char *relname)
{
	ValueSet	sets[TSC_NCOLUMNS];
	int			lower = INT_MIN,	/* billing_from lower bound, in months */
				upper = INT_MAX;	/* billing_to upper bound */
	List	   *accounts,
			   *cycles,
			   *line_levels,
			   *groups,
			   *requests = NIL;
	ListCell   *lc;
	int64		count;

	memset(sets, 0, sizeof(sets));
	foreach(lc, conds)
	{
		TsCondValues *c = lfirst(lc);
		ListCell   *lv;

		if (c->op == TS_OP_EQ)
		{
			if (c->column == TSC_DEVICE_KIND)
				foreach(lv, c->values)
					check_device_kind(lfirst(lv));
			valueset_restrict(&sets[c->column], c->values);
			continue;
		}
		/* Ranges: only the lower bound of billing_from and upper bound of billing_to. */
		foreach(lv, c->values)
		{
			const char *v = lfirst(lv);

			if (c->column == TSC_BILLING_FROM && (c->op == TS_OP_GE || c->op == TS_OP_GT))
			{
				int			m = parse_month(v, c->column, false);

				/* billing_from is a first day: "> d" and ">= d" past the 1st mean next month */
				if (c->op == TS_OP_GT || day_of(v) > 1)
					m++;
				lower = Max(lower, m);
			}
			else if (c->column == TSC_BILLING_TO && (c->op == TS_OP_LE || c->op == TS_OP_LT))
			{
				int			m = parse_month(v, c->column, false);

				if (c->op == TS_OP_LT && day_of(v) == 1)
					m--;
				upper = Min(upper, m);
			}
		}
	}

	if (sets[TSC_ACCOUNT_NAME].constrained)
		accounts = sets[TSC_ACCOUNT_NAME].values;
	else if (tbl->account)
		accounts = list_make1(tbl->account);
	else if (srv->account)
		accounts = list_make1(srv->account);
	else
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("no ThingSpace account for a scan of \"%s\"", relname),
				 errhint("Add a condition such as account_name = '0000123456-00001', or set the account option of the foreign table or the server.")));

	cycles = billing_cycles(&sets[TSC_BILLING_FROM], lower, &sets[TSC_BILLING_TO], upper);

	if (sets[TSC_LABEL_NAME].constrained != sets[TSC_LABEL_VALUE].constrained)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("a label condition needs both label_name and label_value"),
				 errhint("Add conditions such as label_name = 'VIN' AND label_value = '1FTFW1ET5DFC10312'.")));

	groups = device_groups(&sets[TSC_DEVICE_KIND], &sets[TSC_DEVICE_ID], &sets[TSC_LINE_LEVEL],
						   tbl, srv->max_devices_per_request);
	if (sets[TSC_DEVICE_ID].constrained && groups == NIL)
		return NIL;
	/* lineLevel defaults to false, except that the API requires it with deviceIds */
	if (sets[TSC_LINE_LEVEL].constrained)
		line_levels = sets[TSC_LINE_LEVEL].values;
	else if (groups && ((DeviceGroup *) linitial(groups))->ids)
		line_levels = list_make1("true");
	else
		line_levels = list_make1("false");

	count = (int64) list_length(accounts) * list_length(cycles) * list_length(line_levels) *
		Max(list_length(groups), 1) *
		(sets[TSC_LABEL_NAME].constrained ?
		 list_length(sets[TSC_LABEL_NAME].values) * list_length(sets[TSC_LABEL_VALUE].values) : 1);
	if (count > TS_MAX_REQUESTS_PER_SCAN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the conditions of a scan of \"%s\" need %lld requests", relname, (long long) count),
				 errdetail("A scan sends at most %d requests.", TS_MAX_REQUESTS_PER_SCAN)));

	foreach(lc, accounts)
	{
		ListCell   *lcy;

		foreach(lcy, cycles)
		{
			List	   *cycle = lfirst(lcy);
			ListCell   *lll;

			foreach(lll, line_levels)
			{
				bool		line_level = strcmp(lfirst(lll), "true") == 0;
				int			ngroups = Max(list_length(groups), 1);

				for (int g = 0; g < ngroups; g++)
				{
					DeviceGroup *dev = groups ? list_nth(groups, g) : NULL;
					List	   *names = sets[TSC_LABEL_NAME].constrained ? sets[TSC_LABEL_NAME].values : list_make1(NULL);
					List	   *vals = sets[TSC_LABEL_NAME].constrained ? sets[TSC_LABEL_VALUE].values : list_make1(NULL);
					ListCell   *ln,
							   *lv;

					/* a deviceIds batch is always line level; don't send it twice */
					if (dev && dev->ids && !line_level)
						continue;
					foreach(ln, names)
						foreach(lv, vals)
					{
						TsRequest  *r = palloc0(sizeof(TsRequest));

						r->account = lfirst(lc);
						r->from_year = linitial_int(cycle) / 12;
						r->from_month = linitial_int(cycle) % 12 + 1;
						r->to_year = lsecond_int(cycle) / 12;
						r->to_month = lsecond_int(cycle) % 12 + 1;
						r->line_level = line_level;
						if (dev)
						{
							r->device_kind = dev->kind;
							r->device_id = dev->id;
							r->device_ids = dev->ids;
						}
						r->label_name = lfirst(ln);
						r->label_value = lfirst(lv);
						r->body = request_body(r);
						requests = lappend(requests, r);
					}
				}
			}
		}
	}
	return requests;
}
