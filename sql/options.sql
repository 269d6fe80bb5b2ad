-- Option validation (SPEC §2): every object's options, accepted and rejected.
SET client_min_messages = warning;

-- Servers: defaults, every option, bad values.
CREATE SERVER ts_opts FOREIGN DATA WRAPPER thingspace_fdw;
ALTER SERVER ts_opts OPTIONS (ADD base_url 'https://thingspace.example.test/',
  ADD account '0000123456-00001', ADD request_timeout '30s', ADD callback_timeout '10min',
  ADD max_retries '3', ADD max_devices_per_request '100', ADD cache_ttl '1h');
ALTER SERVER ts_opts OPTIONS (SET request_timeout '500ms', SET cache_ttl '0');
ALTER SERVER ts_opts OPTIONS (ADD ca_file '/etc/ssl/certs/ca-certificates.crt', ADD proxy 'http://proxy.test:3128', ADD verify_tls 'true');
SELECT srvname, srvoptions FROM pg_foreign_server WHERE srvname = 'ts_opts';

CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_uri 'https://x');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url 'ftp://x');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (request_timeout 'soon');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (request_timeout '0');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (callback_timeout '-5s');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (cache_ttl '1 fortnight');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (max_retries '11');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (max_devices_per_request '0');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (verify_tls 'maybe');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (account '');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (resource 'billed_usage');

-- User mappings: the four credentials, nothing else.
CREATE USER MAPPING FOR CURRENT_USER SERVER ts_opts
  OPTIONS (client_id 'cid', client_secret 'not-shown', username 'u', password 'not-shown');
CREATE USER MAPPING FOR PUBLIC SERVER ts_opts OPTIONS (api_key 'k');
CREATE USER MAPPING FOR PUBLIC SERVER ts_opts OPTIONS (base_url 'https://x');

-- Foreign tables: resource is required and checked; account and device_kind.
CREATE FOREIGN TABLE ft_ok (account_name text, billing_from date, total_usage numeric)
  SERVER ts_opts OPTIONS (resource 'billed_usage', account '0000123456-00002', device_kind 'iccid');
CREATE FOREIGN TABLE ft_bad (account_name text) SERVER ts_opts;
CREATE FOREIGN TABLE ft_bad (account_name text) SERVER ts_opts OPTIONS (resource 'usage');
CREATE FOREIGN TABLE ft_bad (account_name text) SERVER ts_opts
  OPTIONS (resource 'billed_usage', device_kind 'IMEI');
CREATE FOREIGN TABLE ft_bad (account_name text) SERVER ts_opts
  OPTIONS (resource 'billed_usage', device_kind 'vin');
CREATE FOREIGN TABLE ft_bad (account_name text) SERVER ts_opts
  OPTIONS (resource 'billed_usage', base_url 'https://x');
ALTER FOREIGN TABLE ft_ok OPTIONS (DROP resource);

-- Columns: column_name maps onto a contract column.
CREATE FOREIGN TABLE ft_cols (acct text OPTIONS (column_name 'account_name'), usage numeric OPTIONS (column_name 'total_usage'))
  SERVER ts_opts OPTIONS (resource 'billed_usage');
CREATE FOREIGN TABLE ft_bad (acct text OPTIONS (column_name 'acct')) SERVER ts_opts OPTIONS (resource 'billed_usage');
CREATE FOREIGN TABLE ft_bad (acct text OPTIONS (colname 'account_name')) SERVER ts_opts OPTIONS (resource 'billed_usage');

-- The wrapper itself takes no options.
ALTER FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (ADD base_url 'https://x');

-- Superuser-only options: a non-superuser owner cannot set them.
CREATE ROLE ts_opts_user;
GRANT USAGE ON FOREIGN DATA WRAPPER thingspace_fdw TO ts_opts_user;
SET ROLE ts_opts_user;
CREATE SERVER ts_user_srv FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url 'https://x');
ALTER SERVER ts_user_srv OPTIONS (ADD ca_file '/tmp/evil.pem');
ALTER SERVER ts_user_srv OPTIONS (ADD proxy 'http://evil:8080');
ALTER SERVER ts_user_srv OPTIONS (ADD verify_tls 'false');
ALTER SERVER ts_user_srv OPTIONS (ADD cache_ttl '5min');
-- Secrets of others' mappings stay hidden by PostgreSQL's normal rules.
SELECT count(*) AS visible_options FROM pg_user_mappings
  WHERE srvname = 'ts_opts' AND umoptions IS NOT NULL;
RESET ROLE;
DROP SERVER ts_user_srv;
REVOKE USAGE ON FOREIGN DATA WRAPPER thingspace_fdw FROM ts_opts_user;
DROP ROLE ts_opts_user;

-- Queries on a table whose columns do not exist in the resource fail clearly.
CREATE FOREIGN TABLE ft_wrongcol (account_name text, country_code text)
  SERVER ts_opts OPTIONS (resource 'billed_usage');
SELECT * FROM ft_wrongcol WHERE account_name = 'a';

DROP SERVER ts_opts CASCADE;
