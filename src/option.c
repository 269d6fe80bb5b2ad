/*
 * option.c — the option validator and the typed option structs (SPEC §2).
 *
 * One table describes every option: the object it belongs to, how its value is
 * checked and where the parsed value goes.  The validator and the getters both walk
 * it, so an option cannot be accepted by one and ignored by the other.
 */
#include "postgres.h"

#include <limits.h>

#include "access/reloptions.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "catalog/pg_attribute.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"

#include "thingspace_fdw.h"

typedef enum TsOptKind
{
	OPT_TEXT,					/* any non-empty string */
	OPT_URL,					/* http:// or https:// */
	OPT_DURATION,				/* "500ms", "30s", "10min", "1h" → milliseconds */
	OPT_INT,
	OPT_BOOL,
	OPT_RESOURCE,
	OPT_DEVICE_KIND,
	OPT_COLUMN_NAME
} TsOptKind;

typedef struct TsOptionDef
{
	const char *name;
	Oid			catalog;		/* which object the option belongs to */
	TsOptKind	kind;
	bool		superuser_only;
	int			min;			/* OPT_INT / OPT_DURATION bounds */
	int			max;
	size_t		offset;			/* into the object's struct; SIZE_MAX = not stored there */
} TsOptionDef;

#define SRV(field) offsetof(TsServerOptions, field)
#define UM(field) offsetof(TsUserOptions, field)
#define TBL(field) offsetof(TsTableOptions, field)
#define NOWHERE SIZE_MAX

static const TsOptionDef ts_options[] = {
	{"base_url", ForeignServerRelationId, OPT_URL, false, 0, 0, SRV(base_url)},
	{"account", ForeignServerRelationId, OPT_TEXT, false, 0, 0, SRV(account)},
	{"request_timeout", ForeignServerRelationId, OPT_DURATION, false, 1, INT_MAX, SRV(request_timeout_ms)},
	{"callback_timeout", ForeignServerRelationId, OPT_DURATION, false, 1, INT_MAX, SRV(callback_timeout_ms)},
	{"max_retries", ForeignServerRelationId, OPT_INT, false, 0, 10, SRV(max_retries)},
	{"max_devices_per_request", ForeignServerRelationId, OPT_INT, false, 1, 10000, SRV(max_devices_per_request)},
	{"cache_ttl", ForeignServerRelationId, OPT_DURATION, false, 0, INT_MAX, SRV(cache_ttl_ms)},
	{"ca_file", ForeignServerRelationId, OPT_TEXT, true, 0, 0, SRV(ca_file)},
	{"proxy", ForeignServerRelationId, OPT_TEXT, true, 0, 0, SRV(proxy)},
	{"verify_tls", ForeignServerRelationId, OPT_BOOL, true, 0, 0, SRV(verify_tls)},

	{"client_id", UserMappingRelationId, OPT_TEXT, false, 0, 0, UM(client_id)},
	{"client_secret", UserMappingRelationId, OPT_TEXT, false, 0, 0, UM(client_secret)},
	{"username", UserMappingRelationId, OPT_TEXT, false, 0, 0, UM(username)},
	{"password", UserMappingRelationId, OPT_TEXT, false, 0, 0, UM(password)},

	{"resource", ForeignTableRelationId, OPT_RESOURCE, false, 0, 0, TBL(resource)},
	{"account", ForeignTableRelationId, OPT_TEXT, false, 0, 0, TBL(account)},
	{"device_kind", ForeignTableRelationId, OPT_DEVICE_KIND, false, 0, 0, TBL(device_kind)},

	{"column_name", AttributeRelationId, OPT_COLUMN_NAME, false, 0, 0, NOWHERE},
};

static const char *const ts_device_kinds[] = {
	"imei", "iccid", "eid", "msisdn", "mdn", "meid", "esn", "imsi"
};

static const char *const ts_resource_names[] = {
	[TS_RES_BILLED_USAGE] = "billed_usage",
	[TS_RES_SEGMENTS] = "billed_usage_segments",
	[TS_RES_COUNTRIES] = "billed_usage_countries",
};

const char *
ts_resource_name(TsResource resource)
{
	return ts_resource_names[resource];
}

bool
ts_is_valid_device_kind(const char *kind)
{
	for (int i = 0; i < lengthof(ts_device_kinds); i++)
		if (strcmp(kind, ts_device_kinds[i]) == 0)
			return true;
	return false;
}

static const char *
object_name(Oid catalog)
{
	switch (catalog)
	{
		case ForeignServerRelationId:
			return "server";
		case UserMappingRelationId:
			return "user mapping";
		case ForeignTableRelationId:
			return "foreign table";
		case AttributeRelationId:
			return "column";
		default:
			return "object";
	}
}

bool
ts_parse_duration_ms(const char *value, int *out_ms)
{
	int			result;
	const char *hint = NULL;

	if (!parse_int(value, &result, GUC_UNIT_MS, &hint) || result < 0)
		return false;
	*out_ms = result;
	return true;
}

static bool
parse_resource(const char *value, TsResource *out)
{
	for (int i = 0; i < lengthof(ts_resource_names); i++)
		if (strcmp(value, ts_resource_names[i]) == 0)
		{
			*out = (TsResource) i;
			return true;
		}
	return false;
}

static const TsOptionDef *
find_option(const char *name, Oid catalog)
{
	for (int i = 0; i < lengthof(ts_options); i++)
		if (ts_options[i].catalog == catalog && strcmp(ts_options[i].name, name) == 0)
			return &ts_options[i];
	return NULL;
}

static char *
valid_option_list(Oid catalog)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(ts_options); i++)
		if (ts_options[i].catalog == catalog)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", ts_options[i].name);
	return buf.data;
}

/*
 * Check one option value and, when target is given, store the parsed value there.
 * Errors name the option; values of secret options are never echoed.
 */
static void
apply_option(const TsOptionDef *def, DefElem *elem, void *target)
{
	char	   *value = defGetString(elem);
	char	   *field = target && def->offset != NOWHERE ? (char *) target + def->offset : NULL;

	switch (def->kind)
	{
		case OPT_COLUMN_NAME:
			if (ts_column_by_name(value) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"column_name\": \"%s\"", value),
						 errhint("The column name must be one of the contract's columns: %s.",
								 ts_all_column_names())));
			/* FALLTHROUGH */
		case OPT_TEXT:
			if (value[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" must not be empty", def->name)));
			if (field)
				*(char **) field = pstrdup(value);
			break;
		case OPT_URL:
			{
				char	   *url = pstrdup(value);
				size_t		len = strlen(url);

				if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", def->name, value),
							 errhint("The URL must start with https:// or http://.")));
				while (len > 0 && url[len - 1] == '/')
					url[--len] = '\0';
				if (field)
					*(char **) field = url;
				break;
			}
		case OPT_DURATION:
			{
				int			ms;

				if (!ts_parse_duration_ms(value, &ms) || ms < def->min || ms > def->max)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", def->name, value),
							 errhint("Give a %sduration with a unit, such as \"500ms\", \"30s\", \"10min\" or \"1h\".",
									 def->min > 0 ? "positive " : "")));
				if (field)
					*(int *) field = ms;
				break;
			}
		case OPT_INT:
			{
				int			n;

				if (!parse_int(value, &n, 0, NULL) || n < def->min || n > def->max)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", def->name, value),
							 errhint("Give an integer between %d and %d.", def->min, def->max)));
				if (field)
					*(int *) field = n;
				break;
			}
		case OPT_BOOL:
			{
				bool		b;

				if (!parse_bool(value, &b))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", def->name, value),
							 errhint("Give a boolean: true or false.")));
				if (field)
					*(bool *) field = b;
				break;
			}
		case OPT_RESOURCE:
			{
				TsResource	r;

				if (!parse_resource(value, &r))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"resource\": \"%s\"", value),
							 errhint("Valid resources are billed_usage, billed_usage_segments and billed_usage_countries.")));
				if (field)
					*(TsResource *) field = r;
				break;
			}
		case OPT_DEVICE_KIND:
			if (!ts_is_valid_device_kind(value))
			{
				char	   *lower = asc_tolower(value, strlen(value));

				if (ts_is_valid_device_kind(lower))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"device_kind\": \"%s\"", value),
							 errhint("Device kinds are lower case: use \"%s\".", lower)));
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"device_kind\": \"%s\"", value),
						 errhint("Valid device kinds are imei, iccid, eid, msisdn, mdn, meid, esn and imsi.")));
			}
			if (field)
				*(char **) field = pstrdup(value);
			break;
	}
}

/* Parse an object's option list into target, rejecting what the table does not know. */
static void
apply_options(List *options, Oid catalog, void *target, bool check_privileges)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *elem = lfirst_node(DefElem, lc);
		const TsOptionDef *def = find_option(elem->defname, catalog);

		if (def == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for a thingspace_fdw %s",
							elem->defname, object_name(catalog)),
					 errhint("Valid options for a %s are: %s.",
							 object_name(catalog), valid_option_list(catalog))));
		if (check_privileges && def->superuser_only && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set option \"%s\"", def->name),
					 errdetail("Only superusers may set options that touch the file system or TLS trust.")));
		apply_option(def, elem, target);
	}
}

PG_FUNCTION_INFO_V1(thingspace_fdw_validator);

Datum
thingspace_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	TsServerOptions srv;
	TsUserOptions um;
	TsTableOptions tbl;
	void	   *target = NULL;
	ListCell   *lc;

	if (catalog == ForeignServerRelationId)
		target = &srv;
	else if (catalog == UserMappingRelationId)
		target = &um;
	else if (catalog == ForeignTableRelationId)
		target = &tbl;
	else if (catalog != AttributeRelationId && options != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("thingspace_fdw takes no options on a foreign-data wrapper")));

	if (target)
		memset(target, 0, catalog == ForeignServerRelationId ? sizeof(srv) :
			   catalog == UserMappingRelationId ? sizeof(um) : sizeof(tbl));
	apply_options(options, catalog, target, true);

	if (catalog == ForeignTableRelationId)
	{
		bool		has_resource = false;

		foreach(lc, options)
			if (strcmp(lfirst_node(DefElem, lc)->defname, "resource") == 0)
				has_resource = true;
		if (!has_resource)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("a thingspace_fdw foreign table needs the option \"resource\""),
					 errhint("Valid resources are billed_usage, billed_usage_segments and billed_usage_countries.")));
	}
	PG_RETURN_VOID();
}

void
ts_get_server_options(Oid serverid, TsServerOptions *out)
{
	ForeignServer *server = GetForeignServer(serverid);

	memset(out, 0, sizeof(*out));
	out->serverid = serverid;
	out->base_url = "https://thingspace.verizon.com";
	out->request_timeout_ms = 30 * 1000;
	out->callback_timeout_ms = 10 * 60 * 1000;
	out->max_retries = 3;
	out->max_devices_per_request = 100;
	out->cache_ttl_ms = 60 * 60 * 1000;
	out->verify_tls = true;
	apply_options(server->options, ForeignServerRelationId, out, false);
}

void
ts_get_user_options(Oid serverid, Oid userid, TsUserOptions *out)
{
	UserMapping *um = GetUserMapping(userid, serverid);
	static const char *const required[] = {"client_id", "client_secret", "username", "password"};

	memset(out, 0, sizeof(*out));
	out->umid = um->umid;
	apply_options(um->options, UserMappingRelationId, out, false);

	for (int i = 0; i < lengthof(required); i++)
	{
		char	   *value = *(char **) ((char *) out + find_option(required[i], UserMappingRelationId)->offset);

		if (value == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("user mapping for server \"%s\" lacks the option \"%s\"",
							GetForeignServer(serverid)->servername, required[i]),
					 errhint("ThingSpace needs client_id and client_secret (OAuth) and username and password (M2M session).")));
	}
}

void
ts_get_table_options(Oid foreigntableid, TsTableOptions *out)
{
	ForeignTable *table = GetForeignTable(foreigntableid);

	memset(out, 0, sizeof(*out));
	out->resource = TS_RES_BILLED_USAGE;
	apply_options(table->options, ForeignTableRelationId, out, false);
}
