/*
 * tables.c — the contract's three tables (SPEC §3): column names, types, which
 * resource has which column, and IMPORT FOREIGN SCHEMA.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "thingspace_fdw.h"

typedef struct TsColumnDef
{
	const char *name;
	const char *type;
} TsColumnDef;

static const TsColumnDef ts_columns[TSC_NCOLUMNS] = {
	[TSC_ACCOUNT_NAME] = {"account_name", "text"},
	[TSC_BILLING_FROM] = {"billing_from", "date"},
	[TSC_BILLING_TO] = {"billing_to", "date"},
	[TSC_LINE_LEVEL] = {"line_level", "boolean"},
	[TSC_DEVICE_KIND] = {"device_kind", "text"},
	[TSC_DEVICE_ID] = {"device_id", "text"},
	[TSC_LABEL_NAME] = {"label_name", "text"},
	[TSC_LABEL_VALUE] = {"label_value", "text"},
	[TSC_TOTAL_BILLED_AMOUNT] = {"total_billed_amount", "numeric"},
	[TSC_TOTAL_BILLED_USAGE] = {"total_billed_usage", "numeric"},
	[TSC_TOTAL_USAGE] = {"total_usage", "numeric"},
	[TSC_UNIT_OF_MEASURE] = {"unit_of_measure", "text"},
	[TSC_SEGMENT_KIND] = {"segment_kind", "text"},
	[TSC_SEGMENT_NAME] = {"segment_name", "text"},
	[TSC_BILLED_AMOUNT] = {"billed_amount", "numeric"},
	[TSC_BILLED_USAGE] = {"billed_usage", "numeric"},
	[TSC_PAGE_NUMBER] = {"page_number", "integer"},
	[TSC_USAGE_TYPE] = {"usage_type", "text"},
	[TSC_COUNTRY_CODE] = {"country_code", "text"},
	[TSC_CHARGE_AMOUNT] = {"charge_amount", "numeric"},
	[TSC_REQUEST_ID] = {"request_id", "text"},
	[TSC_RAW] = {"raw", "jsonb"},
};

#define KEY_COLUMNS TSC_ACCOUNT_NAME, TSC_BILLING_FROM, TSC_BILLING_TO, TSC_LINE_LEVEL, \
	TSC_DEVICE_KIND, TSC_DEVICE_ID, TSC_LABEL_NAME, TSC_LABEL_VALUE

/* Column order of each table as IMPORT FOREIGN SCHEMA creates it; -1 ends a list. */
static const int ts_layout_billed_usage[] = {
	KEY_COLUMNS, TSC_TOTAL_BILLED_AMOUNT, TSC_TOTAL_BILLED_USAGE, TSC_TOTAL_USAGE,
	TSC_UNIT_OF_MEASURE, TSC_REQUEST_ID, TSC_RAW, -1
};
static const int ts_layout_segments[] = {
	KEY_COLUMNS, TSC_SEGMENT_KIND, TSC_SEGMENT_NAME, TSC_BILLED_AMOUNT, TSC_BILLED_USAGE,
	TSC_TOTAL_USAGE, TSC_UNIT_OF_MEASURE, TSC_PAGE_NUMBER, TSC_REQUEST_ID, TSC_RAW, -1
};
static const int ts_layout_countries[] = {
	KEY_COLUMNS, TSC_SEGMENT_KIND, TSC_SEGMENT_NAME, TSC_USAGE_TYPE, TSC_COUNTRY_CODE,
	TSC_CHARGE_AMOUNT, TSC_BILLED_USAGE, TSC_TOTAL_USAGE, TSC_UNIT_OF_MEASURE,
	TSC_REQUEST_ID, TSC_RAW, -1
};

static const int *const ts_layouts[] = {
	[TS_RES_BILLED_USAGE] = ts_layout_billed_usage,
	[TS_RES_SEGMENTS] = ts_layout_segments,
	[TS_RES_COUNTRIES] = ts_layout_countries,
};

int
ts_column_by_name(const char *name)
{
	for (int i = 0; i < TSC_NCOLUMNS; i++)
		if (strcmp(ts_columns[i].name, name) == 0)
			return i;
	return -1;
}

const char *
ts_column_name(TsColumn col)
{
	return ts_columns[col].name;
}

char *
ts_all_column_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < TSC_NCOLUMNS; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", ts_columns[i].name);
	return buf.data;
}

bool
ts_resource_has_column(TsResource resource, TsColumn col)
{
	for (const int *c = ts_layouts[resource]; *c >= 0; c++)
		if (*c == (int) col)
			return true;
	return false;
}

char *
ts_resource_column_names(TsResource resource)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const int *c = ts_layouts[resource]; *c >= 0; c++)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", ts_columns[*c].name);
	return buf.data;
}

/*
 * The contract column of each attribute (index attno - 1; -1 for dropped ones), by
 * the column_name option or else the attribute's own name.
 */
int *
ts_attr_columns(Relation rel, TsResource resource)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int		   *cols = palloc(sizeof(int) * Max(desc->natts, 1));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		ListCell   *lc;
		int			col;

		cols[i] = -1;
		if (att->attisdropped)
			continue;
		foreach(lc, GetForeignColumnOptions(RelationGetRelid(rel), att->attnum))
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "column_name") == 0)
				name = defGetString(opt);
		}
		col = ts_column_by_name(name);
		if (col < 0 || !ts_resource_has_column(resource, col))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
					 errmsg("column \"%s\" of foreign table \"%s\" has no counterpart in resource %s",
							NameStr(att->attname), RelationGetRelationName(rel), ts_resource_name(resource)),
					 errhint("Name the column, or set its column_name option to, one of: %s.",
							 ts_resource_column_names(resource))));
		cols[i] = col;
	}
	return cols;
}

static bool
table_is_wanted(ImportForeignSchemaStmt *stmt, const char *name)
{
	ListCell   *lc;
	bool		listed = false;

	if (stmt->list_type == FDW_IMPORT_SCHEMA_ALL)
		return true;
	foreach(lc, stmt->table_list)
		if (strcmp(((RangeVar *) lfirst(lc))->relname, name) == 0)
			listed = true;
	return stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO ? listed : !listed;
}

/*
 * IMPORT FOREIGN SCHEMA thingspace: the three contract tables.  Options given to the
 * IMPORT statement (account, device_kind) are copied onto every table.
 */
List *
ts_ImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	List	   *commands = NIL;
	StringInfoData extra;
	ListCell   *lc;

	if (strcmp(stmt->remote_schema, "thingspace") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("schema \"%s\" does not exist on a thingspace_fdw server", stmt->remote_schema),
				 errhint("Import the schema \"thingspace\".")));

	initStringInfo(&extra);
	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "account") != 0 && strcmp(opt->defname, "device_kind") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for IMPORT FOREIGN SCHEMA", opt->defname),
					 errhint("Valid options are account and device_kind.")));
		appendStringInfo(&extra, ", %s %s", opt->defname, quote_literal_cstr(defGetString(opt)));
	}

	for (int r = 0; r < lengthof(ts_layouts); r++)
	{
		const char *table = ts_resource_name((TsResource) r);
		StringInfoData sql;

		if (!table_is_wanted(stmt, table))
			continue;
		initStringInfo(&sql);
		appendStringInfo(&sql, "CREATE FOREIGN TABLE %s.%s (\n",
						 quote_identifier(stmt->local_schema), quote_identifier(table));
		for (const int *c = ts_layouts[r]; *c >= 0; c++)
			appendStringInfo(&sql, "  %s %s%s\n", ts_columns[*c].name, ts_columns[*c].type,
							 c[1] >= 0 ? "," : "");
		appendStringInfo(&sql, ") SERVER %s OPTIONS (resource %s%s)",
						 quote_identifier(stmt->server_name), quote_literal_cstr(table), extra.data);
		commands = lappend(commands, sql.data);
	}
	return commands;
}
