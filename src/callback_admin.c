/*
 * callback_admin.c — registering the callback listener with ThingSpace.
 *
 * thingspace_register_callback / thingspace_list_callbacks / thingspace_delete_callback
 * call the vendor's callback API with the caller's user mapping and return its JSON
 * answer as jsonb.  Registration sends the listener credentials
 * (thingspace_fdw.callback_username / callback_password) so that the vendor puts them
 * in every callback body.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_foreign_server.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "thingspace_fdw.h"

#if PG_VERSION_NUM >= 160000
#define ts_server_aclcheck(srv, role) object_aclcheck(ForeignServerRelationId, (srv), (role), ACL_USAGE)
#else
#define ts_server_aclcheck(srv, role) pg_foreign_server_aclcheck((srv), (role), ACL_USAGE)
#endif

#if PG_VERSION_NUM < 140000
#define ROLE_PG_READ_ALL_SETTINGS DEFAULT_ROLE_READ_ALL_SETTINGS
#endif

#define TS_CALLBACKS_PATH "/api/m2m/v1/callbacks/"

/* A thingspace_fdw server the caller may use. */
static ForeignServer *
ts_admin_server(Name name)
{
	ForeignServer *server = GetForeignServerByName(NameStr(*name), false);
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	if (strcmp(fdw->fdwname, "thingspace_fdw") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" does not use the thingspace_fdw foreign-data wrapper",
						server->servername)));
	if (ts_server_aclcheck(server->serverid, GetUserId()) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FOREIGN_SERVER, server->servername);
	return server;
}

static const char *
ts_admin_arg(text *t, const char *what)
{
	char	   *s = text_to_cstring(t);

	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	return s;
}

/* Percent-encode everything but RFC 3986 unreserved characters: one path segment. */
static char *
ts_url_segment(const char *s)
{
	StringInfoData out;

	initStringInfo(&out);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~')
			appendStringInfoChar(&out, c);
		else
			appendStringInfo(&out, "%%%02X", c);
	}
	return out.data;
}

/* Call the vendor with the caller's user mapping; the answer as jsonb, NULL when empty. */
static Datum
ts_admin_call(FunctionCallInfo fcinfo, ForeignServer *server, const char *method,
			  const char *path, const char *body)
{
	TsServerOptions srv;
	TsUserOptions um;
	TsVendor   *v;
	TsHttpResult r;
	TsjError	jerr;
	TsjDoc	   *doc;

	ts_get_server_options(server->serverid, &srv);
	ts_get_user_options(server->serverid, GetUserId(), &um);
	v = ts_vendor_open(&srv, &um);
	r = ts_vendor_call(v, method, path, body);

	if (r.body == NULL || r.len == 0 || strspn(r.body, " \t\r\n") == r.len)
		PG_RETURN_NULL();
	doc = tsj_parse(r.body, r.len, &jerr);
	if (doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("ThingSpace answered %s %s with a body that is not JSON", method, path),
				 errdetail("JSON error at line %d, column %d: %s.", jerr.line, jerr.column,
						   jerr.message)));
	tsj_free(doc);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(r.body));
}

PG_FUNCTION_INFO_V1(thingspace_register_callback);

Datum
thingspace_register_callback(PG_FUNCTION_ARGS)
{
	ForeignServer *server = ts_admin_server(PG_GETARG_NAME(0));
	const char *account = ts_admin_arg(PG_GETARG_TEXT_PP(1), "account");
	const char *url = ts_admin_arg(PG_GETARG_TEXT_PP(2), "url");
	const char *service = ts_admin_arg(PG_GETARG_TEXT_PP(3), "service");
	bool		with_user = ts_guc_callback_username[0] != '\0';
	bool		with_password = ts_guc_callback_password[0] != '\0';
	StringInfoData body;

	if (pg_strncasecmp(url, "http://", 7) != 0 && pg_strncasecmp(url, "https://", 8) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback url must start with http:// or https://")));

	/*
	 * Registering sends the listener password to ThingSpace, which then sends it to
	 * the given URL: only roles that may read the password may do that.
	 */
	if (with_password && !has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to register a callback with the listener credentials"),
				 errdetail("Registering sends thingspace_fdw.callback_password to ThingSpace."),
				 errhint("Ask a superuser or a member of pg_read_all_settings to register the callback.")));

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"name\":");
	escape_json(&body, service);
	appendStringInfoString(&body, ",\"url\":");
	escape_json(&body, url);
	if (with_user)
	{
		appendStringInfoString(&body, ",\"username\":");
		escape_json(&body, ts_guc_callback_username);
	}
	if (with_password)
	{
		appendStringInfoString(&body, ",\"password\":");
		escape_json(&body, ts_guc_callback_password);
	}
	appendStringInfoChar(&body, '}');

	return ts_admin_call(fcinfo, server, "POST",
						 psprintf(TS_CALLBACKS_PATH "%s", ts_url_segment(account)), body.data);
}

PG_FUNCTION_INFO_V1(thingspace_list_callbacks);

Datum
thingspace_list_callbacks(PG_FUNCTION_ARGS)
{
	ForeignServer *server = ts_admin_server(PG_GETARG_NAME(0));
	const char *account = ts_admin_arg(PG_GETARG_TEXT_PP(1), "account");

	return ts_admin_call(fcinfo, server, "GET",
						 psprintf(TS_CALLBACKS_PATH "%s", ts_url_segment(account)), NULL);
}

PG_FUNCTION_INFO_V1(thingspace_delete_callback);

Datum
thingspace_delete_callback(PG_FUNCTION_ARGS)
{
	ForeignServer *server = ts_admin_server(PG_GETARG_NAME(0));
	const char *account = ts_admin_arg(PG_GETARG_TEXT_PP(1), "account");
	const char *service = ts_admin_arg(PG_GETARG_TEXT_PP(2), "service");

	return ts_admin_call(fcinfo, server, "DELETE",
						 psprintf(TS_CALLBACKS_PATH "%s/name/%s", ts_url_segment(account),
								  ts_url_segment(service)),
						 NULL);
}
