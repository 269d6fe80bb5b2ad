-- The full path: simulator → listener → spool → scan, for every response variant of
-- the vendor's page, the three tables, user-declared tables and payload errors.
SET client_min_messages = warning;
SELECT current_setting('regress.sim_url') AS sim_url \gset
CREATE SERVER sim FOREIGN DATA WRAPPER thingspace_fdw
  OPTIONS (base_url :'sim_url', callback_timeout '20s', cache_ttl '0');
CREATE USER MAPPING FOR CURRENT_USER SERVER sim
  OPTIONS (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');
CREATE SCHEMA s;
IMPORT FOREIGN SCHEMA thingspace FROM SERVER sim INTO s;
-- Errors that name a request: request ids are random, so print them masked.
CREATE FUNCTION try(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; detail text; ctx text; state text;
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, state = RETURNED_SQLSTATE;
  RETURN regexp_replace(regexp_replace(state || ': ' || msg || E'\nDETAIL: ' || coalesce(detail, ''),
                        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<request-id>', 'g'),
                        '"/[^"]*/pg_thingspace/([^"]*)/broken-[0-9a-f]+', '"<spool>/\1/broken-<hash>', 'g');
END $$;
\d s.billed_usage
\d s.billed_usage_segments
\d s.billed_usage_countries
CREATE SCHEMA s2;
IMPORT FOREIGN SCHEMA thingspace LIMIT TO (billed_usage) FROM SERVER sim INTO s2;
IMPORT FOREIGN SCHEMA thingspace EXCEPT (billed_usage, billed_usage_countries) FROM SERVER sim INTO s2;
SELECT foreign_table_name FROM information_schema.foreign_tables WHERE foreign_table_schema = 's2' ORDER BY 1;
IMPORT FOREIGN SCHEMA billing FROM SERVER sim INTO s2;

-- Per APN (an account with real-time rating): scope, segments, countries.
SELECT account_name, billing_from, billing_to, line_level, total_billed_amount, total_billed_usage,
       total_usage, unit_of_measure, request_id IS NOT NULL AS has_request_id
  FROM s.billed_usage WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01';
SELECT segment_kind, segment_name, billed_amount, billed_usage, total_usage, page_number
  FROM s.billed_usage_segments WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01'
  ORDER BY billed_amount;
SELECT segment_name, usage_type, country_code, charge_amount, billed_usage, total_usage
  FROM s.billed_usage_countries WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01'
  ORDER BY usage_type, charge_amount;
-- Per APN with a device.
SELECT device_kind, device_id, segment_name, billed_amount
  FROM s.billed_usage_segments WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01'
   AND device_kind = 'iccid' AND device_id = '89148000000000000001' ORDER BY billed_amount;
-- Per rating group: scope, with a device, with a label.
SELECT segment_kind, segment_name, billed_amount, billed_usage, total_usage
  FROM s.billed_usage_segments WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01';
SELECT usage_type, count(*), sum(charge_amount) AS charge, sum(billed_usage) AS billed, sum(total_usage) AS total
  FROM s.billed_usage_countries WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
  GROUP BY usage_type ORDER BY usage_type;
SELECT device_kind, device_id, segment_name, billed_amount
  FROM s.billed_usage_segments WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
   AND device_kind = 'eid' AND device_id = '89049032000001000000000000000001';
SELECT label_name, label_value, segment_name, billed_amount
  FROM s.billed_usage_segments WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
   AND label_name = 'VIN' AND label_value = '1FTFW1ET5DFC10312';
SELECT count(*) AS rows, sum(charge_amount)
  FROM s.billed_usage_countries WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
   AND label_name = 'VIN' AND label_value = '1FTFW1ET5DFC10312';
-- Line level (the seed's lineLevel example): devices carry the identifier the vendor sent.
SELECT line_level, device_kind, device_id, total_billed_amount, total_billed_usage, total_usage
  FROM s.billed_usage WHERE account_name = '0000123456-00002' AND billing_from = '2023-08-01'
   AND billing_to = '2023-09-01' AND line_level;
SELECT device_id, segment_name, usage_type, country_code, charge_amount
  FROM s.billed_usage_countries WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01' AND line_level;
-- raw: the object the row came from, callback credentials never in it.
SELECT raw->>'countryCode' AS country, raw->'chargeAmount' AS charge, raw ? 'password' AS has_password
  FROM s.billed_usage_countries WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
  ORDER BY 1, 2 LIMIT 2;
SELECT raw ? 'username' OR raw ? 'password' AS leaks FROM s.billed_usage
  WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01';

-- A generated line-level account over three callback pages, pages out of order.
SELECT count(*) AS devices, sum(total_billed_amount), sum(total_usage)
  FROM s.billed_usage WHERE account_name = 'gen-rg-5000~reverse' AND billing_from = '2023-09-01' AND line_level;
SELECT count(*) AS rows, sum(charge_amount)
  FROM s.billed_usage_countries WHERE account_name = 'gen-rg-5000~reverse' AND billing_from = '2023-09-01' AND line_level;
-- The same, through deviceIds batches: only the asked devices come back.
SELECT device_id, total_billed_amount FROM s.billed_usage
  WHERE account_name = 'gen-apn-100' AND billing_from = '2023-09-01' AND device_kind = 'imei'
    AND device_id IN ('350000000000007', '350000000000042', '350000000000099') ORDER BY 1;
-- Duplicate deliveries are stored and counted once.
SELECT count(*) FROM s.billed_usage_segments WHERE account_name = '0000123456-00002~dup' AND billing_from = '2023-09-01';
-- Several accounts at once.
SELECT account_name, count(*) FROM s.billed_usage_segments
  WHERE account_name IN ('0000123456-00001', '0000123456-00002') AND billing_from = '2023-09-01'
  GROUP BY 1 ORDER BY 1;

-- EXPLAIN ANALYZE: what happened, deterministically.
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT * FROM s.billed_usage WHERE account_name = 'gen-rg-5000~pages=3' AND billing_from = '2023-09-01' AND line_level;

-- User-declared tables: a subset of columns, in another order, other types, column_name.
CREATE FOREIGN TABLE my_usage (
  amount text OPTIONS (column_name 'total_billed_amount'),
  acct varchar(20) OPTIONS (column_name 'account_name'),
  billing_from timestamp,
  total_usage bigint
) SERVER sim OPTIONS (resource 'billed_usage');
SELECT * FROM my_usage WHERE acct = '0000123456-00001' AND billing_from = '2023-09-01';
CREATE FOREIGN TABLE my_bad_type (account_name text, billing_from date, unit_of_measure integer)
  SERVER sim OPTIONS (resource 'billed_usage');
SELECT * FROM my_bad_type WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01';
CREATE FOREIGN TABLE my_bad_amount (account_name text, billing_from date, billed_amount integer)
  SERVER sim OPTIONS (resource 'billed_usage_segments');
SELECT * FROM my_bad_amount WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01';

-- Vendor errors: unknown account, label on an APN account, failure callbacks, broken JSON.
SELECT * FROM s.billed_usage WHERE account_name = '9999999999-99999' AND billing_from = '2023-09-01';
SELECT * FROM s.billed_usage_segments WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01'
  AND label_name = 'VIN' AND label_value = 'x';
SELECT try($$SELECT * FROM s.billed_usage WHERE account_name = '0000123456-00002~failed' AND billing_from = '2023-09-01'$$);
-- The seed page's broken examples, delivered verbatim: the query fails at once.
SELECT try($$SELECT * FROM s.billed_usage WHERE account_name = '0000123456-00002~broken=apn' AND billing_from = '2023-09-01'$$);
SELECT try($$SELECT * FROM s.billed_usage WHERE account_name = '0000123456-00002~broken=apn-device' AND billing_from = '2023-09-01'$$);
SELECT try($$SELECT * FROM s.billed_usage WHERE account_name = '0000123456-00001~broken=rg-device' AND billing_from = '2023-09-01'$$);
SELECT try($$SELECT * FROM s.billed_usage WHERE account_name = '0000123456-00001~broken=rg-label' AND billing_from = '2023-09-01'$$);
-- No callback within callback_timeout.
ALTER SERVER sim OPTIONS (SET callback_timeout '300ms');
SELECT try($$SELECT * FROM s.billed_usage WHERE account_name = '0000123456-00002~nocb' AND billing_from = '2023-09-01'$$);
ALTER SERVER sim OPTIONS (SET callback_timeout '20s');
-- The session keeps working after errors.
SELECT count(*) FROM s.billed_usage_segments WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01';

DROP SCHEMA s CASCADE;
DROP SCHEMA s2 CASCADE;
DROP SERVER sim CASCADE;
