/* thingspace_fdw--1.0.sql */

\echo Use "CREATE EXTENSION thingspace_fdw" to load this file. \quit

CREATE FUNCTION thingspace_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;
COMMENT ON FUNCTION thingspace_fdw_handler()
IS 'foreign-data wrapper handler of thingspace_fdw';

CREATE FUNCTION thingspace_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;
COMMENT ON FUNCTION thingspace_fdw_validator(text[], oid)
IS 'validates the options of thingspace_fdw servers, user mappings, foreign tables and columns';

CREATE FOREIGN DATA WRAPPER thingspace_fdw
  HANDLER thingspace_fdw_handler
  VALIDATOR thingspace_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER thingspace_fdw
IS 'Verizon ThingSpace billed usage as foreign tables';

-- What the callback spool holds (SPEC §5).
CREATE FUNCTION thingspace_callbacks(
    OUT request_id text,
    OUT page integer,
    OUT total_pages integer,
    OUT kind text,
    OUT received_at timestamptz,
    OUT bytes bigint,
    OUT parsed boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'thingspace_callbacks'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION thingspace_callbacks()
IS 'lists the callback messages held in the spool';

CREATE FUNCTION thingspace_callback_payload(request_id text, page integer DEFAULT NULL)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'thingspace_callback_payload'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION thingspace_callback_payload(text, integer)
IS 'returns the stored callback bodies of a request, in page order, credentials redacted';

-- Callback registration with the vendor (uses the caller's user mapping).
CREATE FUNCTION thingspace_register_callback(server name, account text, url text,
                                             service text DEFAULT 'DeviceService')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'thingspace_register_callback'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION thingspace_register_callback(name, text, text, text)
IS 'registers the callback listener URL for an account with ThingSpace, with the listener credentials';

CREATE FUNCTION thingspace_list_callbacks(server name, account text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'thingspace_list_callbacks'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION thingspace_list_callbacks(name, text)
IS 'lists the callback registrations of an account at ThingSpace';

CREATE FUNCTION thingspace_delete_callback(server name, account text,
                                           service text DEFAULT 'DeviceService')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'thingspace_delete_callback'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION thingspace_delete_callback(name, text, text)
IS 'removes a callback registration of an account at ThingSpace';

-- Result cache (SPEC cache_ttl).
CREATE FUNCTION thingspace_cache_purge(account text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'thingspace_cache_purge'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION thingspace_cache_purge(text)
IS 'forgets cached results (of one account, or all); returns how many were forgotten';

-- The spool and registrations are administration: not for every role.
REVOKE ALL ON FUNCTION thingspace_callbacks() FROM PUBLIC;
REVOKE ALL ON FUNCTION thingspace_callback_payload(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION thingspace_cache_purge(text) FROM PUBLIC;
