-- Result cache and in-flight merging (SPEC §2 cache_ttl, §4 EXPLAIN ANALYZE) against
-- the simulator of test/cluster.sh.  The cache is shared by the whole cluster, so each
-- case first forgets its own account; request counts seen by the simulator (and
-- concurrent sessions) are checked by test/integration/test_cache.py.
SET client_min_messages = warning;
SELECT current_setting('regress.sim_url') AS sim_url \gset
CREATE SERVER cached FOREIGN DATA WRAPPER thingspace_fdw
  OPTIONS (base_url :'sim_url', callback_timeout '20s');
CREATE SERVER uncached FOREIGN DATA WRAPPER thingspace_fdw
  OPTIONS (base_url :'sim_url', callback_timeout '20s', cache_ttl '0');
CREATE USER MAPPING FOR CURRENT_USER SERVER cached
  OPTIONS (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');
CREATE USER MAPPING FOR CURRENT_USER SERVER uncached
  OPTIONS (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');
CREATE SCHEMA c;
IMPORT FOREIGN SCHEMA thingspace FROM SERVER cached INTO c;
CREATE SCHEMA u;
IMPORT FOREIGN SCHEMA thingspace LIMIT TO (billed_usage) FROM SERVER uncached INTO u;
-- What each foreign scan of a query did, from EXPLAIN ANALYZE.
CREATE FUNCTION scans(query text)
RETURNS TABLE (relation text, sent int, cache_hits int, merged int, pages int)
LANGUAGE plpgsql AS $$
DECLARE plan jsonb;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) ' || query INTO plan;
  RETURN QUERY
    SELECT n->>'Relation Name', (n->>'Requests Sent')::int, (n->>'Cache Hits')::int,
           (n->>'Merged In-Flight')::int, (n->>'Callback Pages')::int
      FROM jsonb_path_query(plan, 'strict $.**?(@."Node Type" == "Foreign Scan")') AS n;
END $$;

-- A repeated query reads the cached result: no request, one cache hit.
SELECT thingspace_cache_purge('gen-apn-791') >= 0 AS forgotten;
SELECT count(*), sum(charge_amount) FROM c.billed_usage_countries
 WHERE account_name = 'gen-apn-791' AND billing_from = '2024-03-01';
SELECT * FROM scans($$SELECT count(*) FROM c.billed_usage_countries
 WHERE account_name = 'gen-apn-791' AND billing_from = '2024-03-01'$$);
SELECT count(*), sum(charge_amount) FROM c.billed_usage_countries
 WHERE account_name = 'gen-apn-791' AND billing_from = '2024-03-01';
-- Another table over the same request key: the same result.
SELECT * FROM scans($$SELECT sum(billed_amount) FROM c.billed_usage_segments
 WHERE account_name = 'gen-apn-791' AND billing_from = '2024-03-01'$$);
-- Another billing cycle is another request.
SELECT * FROM scans($$SELECT count(*) FROM c.billed_usage
 WHERE account_name = 'gen-apn-791' AND billing_from = '2024-04-01'$$);

-- A join of two tables over the same key sends one request.
SELECT thingspace_cache_purge('gen-apn-792') >= 0 AS forgotten;
SELECT * FROM scans($$SELECT count(*) FROM c.billed_usage_segments s
  JOIN c.billed_usage_countries k USING (account_name, segment_name)
 WHERE s.account_name = 'gen-apn-792' AND s.billing_from = '2024-03-01'
   AND k.account_name = 'gen-apn-792' AND k.billing_from = '2024-03-01'$$)
 ORDER BY relation;

-- Purge: by account (as written in the query), then everything.
SELECT thingspace_cache_purge('gen-apn-791');
SELECT thingspace_cache_purge('gen-apn-791');
SELECT thingspace_cache_purge('no-such-account');
SELECT * FROM scans($$SELECT count(*) FROM c.billed_usage
 WHERE account_name = 'gen-apn-791' AND billing_from = '2024-03-01'$$);
SELECT thingspace_cache_purge() >= 2 AS purged_all;
SELECT * FROM scans($$SELECT count(*) FROM c.billed_usage_segments
 WHERE account_name = 'gen-apn-792' AND billing_from = '2024-03-01'$$);

-- cache_ttl '0': never reused.
SELECT * FROM scans($$SELECT count(*) FROM u.billed_usage
 WHERE account_name = 'gen-apn-793' AND billing_from = '2024-03-01'$$);
SELECT * FROM scans($$SELECT count(*) FROM u.billed_usage
 WHERE account_name = 'gen-apn-793' AND billing_from = '2024-03-01'$$);

-- Purging is for administrators.
CREATE ROLE cache_nobody;
SET ROLE cache_nobody;
SELECT thingspace_cache_purge();
RESET ROLE;
DROP ROLE cache_nobody;
DROP SCHEMA c, u CASCADE;
DROP SERVER cached, uncached CASCADE;
