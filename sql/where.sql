-- How WHERE clauses become requests (SPEC §4), seen through EXPLAIN (VERBOSE, COSTS OFF).
-- EXPLAIN without ANALYZE sends nothing, so no simulator is needed here.
SET client_min_messages = warning;
CREATE SERVER ts_where FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url 'http://127.0.0.1:9');
CREATE USER MAPPING FOR CURRENT_USER SERVER ts_where
  OPTIONS (client_id 'c', client_secret 's', username 'u', password 'p');
CREATE SCHEMA w;
IMPORT FOREIGN SCHEMA thingspace FROM SERVER ts_where INTO w;

-- Constants: one account, one month.
EXPLAIN (VERBOSE, COSTS OFF) SELECT segment_name FROM w.billed_usage_segments
  WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01';
-- IN list and = ANY: one request per account.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name IN ('0000123456-00001', '0000123456-00002') AND billing_from = '2023-09-01';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = ANY (ARRAY['a-1', 'a-2', 'a-1']) AND billing_to = '2023-09-01';
-- Ranges and BETWEEN: lower bound of billing_from, upper bound of billing_to.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from >= '2023-07-01' AND billing_to <= '2023-09-01';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from > '2023-07-01' AND billing_to < '2023-10-01';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from BETWEEN '2023-07-15' AND '2023-12-01'
    AND billing_to BETWEEN '2023-01-01' AND '2023-09-01';
-- billing_from values as an IN list: one cycle each.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from IN ('2023-08-01', '2023-09-01');
-- Line level, as a comparison, a bare boolean and its negation.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01' AND line_level = true;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01' AND line_level;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01' AND NOT line_level;
-- One device: deviceId.  Several: deviceIds in batches, line level.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01'
    AND device_kind = 'imei' AND device_id = '350000000000001';
ALTER SERVER ts_where OPTIONS (ADD max_devices_per_request '2');
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01'
    AND device_kind = 'imei' AND device_id IN ('350000000000001', '350000000000002', '350000000000003');
-- Several devices but explicitly not line level: one deviceId request each.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01' AND NOT line_level
    AND device_kind = 'iccid' AND device_id = ANY ('{8914800000000000001,8914800000000000002}');
-- Labels.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage_segments
  WHERE account_name = 'a' AND billing_from = '2023-09-01'
    AND label_name = 'VIN' AND label_value = '1FTFW1ET5DFC10312';
-- Stable expressions are evaluated at execution.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = lower('A') AND billing_from = date_trunc('month', DATE '2023-09-17')::date;
-- Prepared statements: parameters.
PREPARE q(text, date) AS SELECT segment_name FROM w.billed_usage_segments
  WHERE account_name = $1 AND billing_from = $2;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE q('0000123456-00001', '2023-08-01');
PREPARE qa(text[]) AS SELECT * FROM w.billed_usage WHERE account_name = ANY ($1) AND billing_from = '2023-09-01';
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE qa(ARRAY['x', 'y']);
-- Defaults: the table's account, then the server's.
ALTER SERVER ts_where OPTIONS (ADD account 'server-account');
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage WHERE billing_from = '2023-09-01';
ALTER FOREIGN TABLE w.billed_usage OPTIONS (ADD account 'table-account');
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage WHERE billing_from = '2023-09-01';
-- Conditions that exclude everything send nothing.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND account_name = 'b' AND billing_from = '2023-09-01';
-- Unmappable conditions are only filters.
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM w.billed_usage
  WHERE account_name = 'a' AND billing_from = '2023-09-01' AND total_usage > 100 AND account_name LIKE 'a%';

-- Errors and hints, before any request.
ALTER SERVER ts_where OPTIONS (DROP account);
ALTER FOREIGN TABLE w.billed_usage OPTIONS (DROP account);
SELECT * FROM w.billed_usage WHERE billing_from = '2023-09-01';
SELECT * FROM w.billed_usage WHERE account_name = 'a';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = '2023-09-01' AND billing_to = '2023-08-01';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = '2023-09-15';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = '2023-09-01' AND device_kind = 'IMEI' AND device_id = '1';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = '2023-09-01' AND device_kind = 'vin' AND device_id = '1';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = '2023-09-01' AND device_id = '1';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = '2023-09-01' AND label_name = 'VIN';
SELECT * FROM w.billed_usage WHERE account_name = 'a' AND billing_from = 'infinity';

DROP SCHEMA w CASCADE;
DROP SERVER ts_where CASCADE;
