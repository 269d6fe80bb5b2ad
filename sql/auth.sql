-- HTTP client and authentication (SPEC §2, §6) against the simulator of
-- test/cluster.sh, through test hooks of auth.c that call the vendor layer directly.
-- Counting vendor calls (one token, one login) is done by test/integration/test_auth.py.
SET client_min_messages = warning;
CREATE FUNCTION ts_test_call(server name, method text, path text, body text DEFAULT NULL)
  RETURNS text AS 'thingspace_fdw', 'ts_test_hook_vendor_call' LANGUAGE C;
CREATE FUNCTION ts_test_submit(server name, bodies text[])
  RETURNS text[] AS 'thingspace_fdw', 'ts_test_hook_submit_billed' LANGUAGE C STRICT;
CREATE FUNCTION ts_test_identity(server name)
  RETURNS bigint AS 'thingspace_fdw', 'ts_test_hook_identity' LANGUAGE C STRICT;
-- A billed-usage request body; the simulator reads faults from '~mod' in the account.
CREATE FUNCTION billed(account text) RETURNS text LANGUAGE sql AS $$
  SELECT json_build_object('accountName', account, 'billingCycle',
    json_build_object('from', json_build_object('year', 2024, 'month', 1),
                      'to', json_build_object('year', 2024, 'month', 1)))::text $$;

-- (DO blocks rather than \gexec: the statements carry a random port and password.)
DO $$ BEGIN
  EXECUTE format('CREATE SERVER ts_auth FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url %L, max_retries %L)',
                 current_setting('regress.sim_url'), '2');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER ts_auth OPTIONS
  (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');

-- One-shot simulator faults fire once per account name: start from a clean simulator.
-- (Tokens and sessions cached from earlier tests are then refused once and renewed.)
SELECT ts_test_call('ts_auth', 'POST', '/_sim/reset') AS reset;

-- Requests sent concurrently: one request id per body, in order.
SELECT array_length(ids, 1) AS n, ids[1] ~ '^[0-9a-f-]{36}$' AS looks_like_id, ids[1] <> ids[2] AS different
  FROM ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001'), billed('0000123456-00002'),
                                       billed('0000123456-00001'), billed('0000123456-00002')]) AS ids;
SELECT ts_test_call('ts_auth', 'GET', '/api/m2m/v1/callbacks/0000123456-00001') ~ '^\[' AS listed;

-- Vendor errors: the code in the message; vendor text, status and path in the detail;
-- a failing request of several is named.  Query strings never show.
SELECT ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001'), billed('9999999999-00001')]);
SELECT ts_test_call('ts_auth', 'GET', '/api/m2m/v1/callbacks/9999999999-00001?password=hidden');
SELECT ts_test_call('ts_auth', 'GET', '/api/m2m/v1/nowhere');

-- Retries (the test hook reports how many as a NOTICE).
SET client_min_messages = notice;
-- 429 with Retry-After: 1, then success.
SELECT array_length(ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001~429')]), 1) AS n;
-- 503 once, then success.
SELECT array_length(ts_test_submit('ts_auth', ARRAY[billed('0000123456-00002~503once')]), 1) AS n;
-- 503 always: max_retries (2) retries, then the vendor's error.
SELECT ts_test_submit('ts_auth', ARRAY[billed('0000123456-00002~503')]);
-- A revoked token (401, fault 900901) and an expired session: renewed once, no retry counted.
SELECT array_length(ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001~401once')]), 1) AS n;
SELECT array_length(ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001~sessexp')]), 1) AS n;
SET client_min_messages = warning;

-- statement_timeout ends a slow call at once (here caught in a subtransaction), and the
-- backend goes on working.
SET statement_timeout = '300ms';
DO $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001~slowpost=3000')]);
EXCEPTION WHEN query_canceled THEN
  RAISE WARNING 'cancelled within a second: %', clock_timestamp() - t0 < interval '1s';
END $$;
RESET statement_timeout;
SELECT array_length(ts_test_submit('ts_auth', ARRAY[billed('0000123456-00001')]), 1) AS after_cancel;

-- A vendor that cannot be reached: connection error class, after max_retries.
CREATE SERVER ts_auth_down FOREIGN DATA WRAPPER thingspace_fdw
  OPTIONS (base_url 'http://127.0.0.1:1', max_retries '1', request_timeout '2s');
CREATE USER MAPPING FOR CURRENT_USER SERVER ts_auth_down OPTIONS
  (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');
\set VERBOSITY terse
SELECT ts_test_call('ts_auth_down', 'GET', '/api/m2m/v1/callbacks/0000123456-00001');
\set VERBOSITY default

-- Wrong client secret: the token request fails with the OAuth error, no login follows.
DO $$ BEGIN
  EXECUTE format('CREATE SERVER ts_auth_client FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url %L)',
                 current_setting('regress.sim_url'));
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER ts_auth_client OPTIONS
  (client_id 'test-client', client_secret 'not-the-secret', username 'test-user', password 'test-pass');
SELECT ts_test_call('ts_auth_client', 'GET', '/api/m2m/v1/callbacks/0000123456-00001');

-- A wrong password: the refused login is reported once, then remembered, so later calls
-- fail at once without a login (times vary, so they are masked).  A random wrong password
-- keeps reruns on the same cluster independent.
DO $$ BEGIN
  EXECUTE format('CREATE SERVER ts_auth_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url %L)',
                 current_setting('regress.sim_url'));
  EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER ts_auth_bad OPTIONS (client_id %L, client_secret %L, username %L, password %L)',
                 'test-client', 'test-secret', 'test-user2', 'wrong-pass-' || md5(random()::text));
END $$;
CREATE FUNCTION masked_error(server name) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE m text; d text; h text;
BEGIN
  PERFORM ts_test_call(server, 'GET', '/api/m2m/v1/callbacks/0000123456-00001');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
  RETURN NEXT 'message: ' || m;
  RETURN NEXT 'detail: ' || regexp_replace(d, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d', '<time>', 'g');
  RETURN NEXT 'hint: ' || regexp_replace(h, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d', '<time>', 'g');
END $$;
SELECT masked_error('ts_auth_bad');
SELECT masked_error('ts_auth_bad');
SELECT masked_error('ts_auth_bad');
-- Correcting the password clears it at once.
ALTER USER MAPPING FOR CURRENT_USER SERVER ts_auth_bad OPTIONS (SET password 'test-pass2');
SELECT ts_test_call('ts_auth_bad', 'GET', '/api/m2m/v1/callbacks/0000123456-00001') ~ '^\[' AS works_again;

-- The credential identity (a cache key) changes with any credential, and is stable.
SELECT ts_test_identity('ts_auth') = ts_test_identity('ts_auth') AS stable,
       ts_test_identity('ts_auth') <> ts_test_identity('ts_auth_client') AS other_secret,
       ts_test_identity('ts_auth') <> ts_test_identity('ts_auth_down') AS other_url;

DROP SERVER ts_auth, ts_auth_down, ts_auth_client, ts_auth_bad CASCADE;
DROP FUNCTION ts_test_call, ts_test_submit, ts_test_identity, billed, masked_error;
