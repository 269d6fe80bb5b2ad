#!/usr/bin/python3
"""Result cache and in-flight merging against a running test cluster (test/cluster.sh).

Counts the billed-usage POSTs the simulator received (GET /_sim/log?kind=billed) for
queries that should, or should not, share one request.  Needs the harness environment
(source WORKDIR/env): PGHOST, PGPORT, SIM_URL.  Python 3 standard library only.

Every case uses its own account name and this run's own server, roles and schema, and
purges its accounts from the cache first, so reruns and other suites do not interfere.
Exit status 0 = every check passed.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

SIM = os.environ["SIM_URL"]
RUN = "c%d" % (os.getpid() % 100000)
SRV = "cache_" + RUN            # cache_ttl default (1h)
SRV0 = "cache0_" + RUN          # cache_ttl '0'
SRV1 = "cache1_" + RUN          # cache_ttl '1s'
ROLE1 = "cache_u1_" + RUN
ROLE2 = "cache_u2_" + RUN
CYCLE = "billing_from = '2024-02-01'"

failures = []


def psql(sql, check=True):
    """Run SQL, return stdout lines (unaligned, tuples only, '|' separated)."""
    p = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
    return [l for l in p.stdout.splitlines() if l != ""] if p.returncode == 0 else None


def psql_proc(sql):
    return subprocess.Popen(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sim(path, body=None):
    req = urllib.request.Request(SIM + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def billed(account):
    """How many billed-usage requests the simulator accepted (200) for this account.

    Answers that only made the FDW renew its token or session (401, expired session)
    are not requests for data and are not counted."""
    n = 0
    for l in sim("/_sim/log?kind=billed").splitlines():
        if l.strip():
            e = json.loads(l)
            n += e.get("account") == account and e.get("status") == 200
    return n


def check(name, cond, detail=""):
    if cond:
        print("ok   %s" % name)
    else:
        print("FAIL %s %s" % (name, detail))
        failures.append(name)


def explain(sql):
    """EXPLAIN ANALYZE text of a query: {'Requests Sent': n, 'Cache Hits': n, ...}."""
    out = psql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql)
    return parse_explain(out)


def parse_explain(lines):
    figures = {}
    for l in lines:
        m = re.match(r"\s*(Requests Sent|Cache Hits|Merged In-Flight|Callback Pages): (\d+)", l)
        if m:
            figures[m.group(1)] = figures.get(m.group(1), 0) + int(m.group(2))
    return figures


def q(table, account, server_schema=None, select="count(*)"):
    schema = server_schema or RUN
    return ("SELECT %s FROM %s.%s WHERE account_name = '%s' AND %s"
            % (select, schema, table, account, CYCLE))


def setup():
    sim("/_sim/reset", {})
    psql("CREATE EXTENSION IF NOT EXISTS thingspace_fdw")
    for srv, extra in ((SRV, ""), (SRV0, ", cache_ttl '0'"), (SRV1, ", cache_ttl '1s'")):
        psql("CREATE SERVER %s FOREIGN DATA WRAPPER thingspace_fdw "
             "OPTIONS (base_url '%s', callback_timeout '30s'%s)" % (srv, SIM, extra))
        psql("CREATE USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (client_id 'test-client', "
             "client_secret 'test-secret', username 'test-user', password 'test-pass')" % srv)
    for schema, srv in ((RUN, SRV), (RUN + "_0", SRV0), (RUN + "_1", SRV1)):
        psql("CREATE SCHEMA %s" % schema)
        psql("IMPORT FOREIGN SCHEMA thingspace FROM SERVER %s INTO %s" % (srv, schema))
    psql("CREATE ROLE %s; CREATE ROLE %s" % (ROLE1, ROLE2))
    psql("GRANT USAGE ON SCHEMA %s TO %s, %s" % (RUN, ROLE1, ROLE2))
    psql("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s, %s" % (RUN, ROLE1, ROLE2))
    psql("CREATE USER MAPPING FOR %s SERVER %s OPTIONS (client_id 'test-client', "
         "client_secret 'test-secret', username 'test-user', password 'test-pass')" % (ROLE1, SRV))
    psql("CREATE USER MAPPING FOR %s SERVER %s OPTIONS (client_id 'test-client2', "
         "client_secret 'test-secret2', username 'test-user2', password 'test-pass2')" % (ROLE2, SRV))


def teardown():
    psql("DROP SCHEMA IF EXISTS %s, %s_0, %s_1 CASCADE" % (RUN, RUN, RUN), check=False)
    for srv in (SRV, SRV0, SRV1):
        psql("DROP SERVER IF EXISTS %s CASCADE" % srv, check=False)
    psql("DROP ROLE IF EXISTS %s" % ROLE1, check=False)
    psql("DROP ROLE IF EXISTS %s" % ROLE2, check=False)


def forget(*accounts):
    for a in accounts:
        psql("SELECT thingspace_cache_purge('%s')" % a)


def test_self_join():
    acct = "gen-apn-701"
    forget(acct)
    rows = psql("SELECT count(*), count(DISTINCT c.country_code) FROM %s.billed_usage_segments s "
                "JOIN %s.billed_usage_countries c USING (account_name, segment_name) "
                "WHERE s.account_name = '%s' AND s.%s AND c.account_name = '%s' AND c.%s"
                % (RUN, RUN, acct, CYCLE, acct, CYCLE))
    check("self-join returns rows", rows and rows[0] == "6|3", rows)
    check("self-join sends one request", billed(acct) == 1, "billed=%d" % billed(acct))
    # the same table twice
    acct = "gen-rg-702"
    forget(acct)
    rows = psql("SELECT count(*) FROM %s.billed_usage a, %s.billed_usage b "
                "WHERE a.account_name = '%s' AND a.%s AND b.account_name = '%s' AND b.%s"
                % (RUN, RUN, acct, CYCLE, acct, CYCLE))
    check("same table twice returns a row", rows == ["1"], rows)
    check("same table twice sends one request", billed(acct) == 1, "billed=%d" % billed(acct))


def test_dashboard():
    acct = "gen-apn-703"
    forget(acct)
    first = psql(q("billed_usage_countries", acct, select="count(*), sum(charge_amount)"))
    e = explain(q("billed_usage_countries", acct))
    again = psql(q("billed_usage_countries", acct, select="count(*), sum(charge_amount)"))
    check("dashboard: same result from the cache", first == again and first[0].startswith("6|"),
          (first, again))
    check("dashboard: EXPLAIN ANALYZE shows Cache Hits: 1",
          e.get("Cache Hits") == 1 and e.get("Requests Sent") == 0 and e.get("Callback Pages") == 1, e)
    check("dashboard: one request for three queries", billed(acct) == 1, "billed=%d" % billed(acct))
    # another table over the same request key is served from the same result
    e = explain(q("billed_usage_segments", acct))
    check("other table, same key: a cache hit", e.get("Cache Hits") == 1, e)
    check("other table, same key: no request", billed(acct) == 1, "billed=%d" % billed(acct))


def test_concurrent():
    acct = "gen-apn-704~delay=1500"
    forget(acct)
    sql = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + q("billed_usage_countries", acct)
    p1 = psql_proc(sql)
    time.sleep(0.3)
    p2 = psql_proc(sql)
    out1, err1 = p1.communicate(timeout=60)
    out2, err2 = p2.communicate(timeout=60)
    check("concurrent: both succeed", p1.returncode == 0 and p2.returncode == 0, err1 + err2)
    e1, e2 = parse_explain(out1.splitlines()), parse_explain(out2.splitlines())
    check("concurrent: one request", billed(acct) == 1, "billed=%d" % billed(acct))
    # the second starts 0.3 s later, but on a loaded machine either may win the claim
    check("concurrent: one sends, the other shows Merged In-Flight",
          sorted((e1.get("Requests Sent"), e2.get("Requests Sent"))) == [0, 1] and
          e1.get("Merged In-Flight", 0) + e2.get("Merged In-Flight", 0) == 1, (e1, e2))
    # and with both starting at the same instant: still one request, whoever wins
    acct = "gen-apn-705~delay=1500"
    forget(acct)
    sql = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + q("billed_usage_countries", acct)
    procs = [psql_proc(sql) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    check("concurrent x4: all succeed", all(p.returncode == 0 for p in procs),
          "".join(o[1] for o in outs))
    figs = [parse_explain(o[0].splitlines()) for o in outs]
    check("concurrent x4: one request", billed(acct) == 1, "billed=%d" % billed(acct))
    check("concurrent x4: one sender, three merged",
          sum(f.get("Requests Sent", 0) for f in figs) == 1 and
          sum(f.get("Merged In-Flight", 0) + f.get("Cache Hits", 0) for f in figs) == 3, figs)


def test_two_mappings():
    acct = "gen-apn-706"
    forget(acct)
    r1 = psql("SET ROLE %s; %s" % (ROLE1, q("billed_usage", acct, select="total_billed_amount")))
    r2 = psql("SET ROLE %s; %s" % (ROLE2, q("billed_usage", acct, select="total_billed_amount")))
    check("two mappings: both answered", r1 and r1 == r2, (r1, r2))
    check("two mappings: two requests", billed(acct) == 2, "billed=%d" % billed(acct))
    # each mapping's own result is cached for it
    psql("SET ROLE %s; %s" % (ROLE1, q("billed_usage", acct)))
    psql("SET ROLE %s; %s" % (ROLE2, q("billed_usage", acct)))
    check("two mappings: each reuses its own", billed(acct) == 2, "billed=%d" % billed(acct))
    # the superuser's mapping has the same credentials as ROLE1's: the same identity
    psql(q("billed_usage", acct))
    check("same credentials, other role: shared", billed(acct) == 2, "billed=%d" % billed(acct))


def test_purge():
    acct, other = "gen-apn-707", "gen-apn-708"
    forget(acct, other)
    psql(q("billed_usage", acct))
    psql(q("billed_usage", other))
    n = psql("SELECT thingspace_cache_purge('%s')" % acct)
    check("purge(account) forgets that account's entry", n == ["1"], n)
    psql(q("billed_usage", acct))
    check("purge: the query sends a new request", billed(acct) == 2, "billed=%d" % billed(acct))
    e = explain(q("billed_usage", other))
    check("purge(account) keeps other accounts", e.get("Cache Hits") == 1 and billed(other) == 1, e)
    n = psql("SELECT thingspace_cache_purge()")
    check("purge() forgets everything", n and int(n[0]) >= 2, n)
    n = psql("SELECT thingspace_cache_purge(NULL)")
    check("purge() again: nothing left", n == ["0"], n)
    psql(q("billed_usage", other))
    check("purge(): the query sends a new request", billed(other) == 2, "billed=%d" % billed(other))
    # account names are compared unescaped, as written by the user
    odd = 'gen-apn-709~delay=10'
    forget(odd)
    psql(q("billed_usage", odd))
    n = psql("SELECT thingspace_cache_purge('%s')" % odd)
    check("purge of a name with modifiers", n == ["1"], n)


def test_ttl():
    acct = "gen-apn-710"
    forget(acct)
    for _ in range(3):
        e = explain(q("billed_usage", acct, server_schema=RUN + "_0"))
    check("cache_ttl 0: every query sends", billed(acct) == 3 and e.get("Cache Hits") == 0,
          "billed=%d %s" % (billed(acct), e))
    acct = "gen-apn-711"
    forget(acct)
    psql(q("billed_usage", acct, server_schema=RUN + "_1"))
    psql(q("billed_usage", acct, server_schema=RUN + "_1"))
    check("cache_ttl 1s: reused at once", billed(acct) == 1, "billed=%d" % billed(acct))
    time.sleep(1.3)
    psql(q("billed_usage", acct, server_schema=RUN + "_1"))
    check("cache_ttl 1s: a new request after it", billed(acct) == 2, "billed=%d" % billed(acct))


def test_failure_not_cached():
    acct = "gen-apn-712~failed"     # every result is a failure callback
    forget(acct)
    r = psql(q("billed_usage", acct), check=False)
    check("failed result: the query fails", r is None and billed(acct) == 1)
    r = psql(q("billed_usage", acct), check=False)
    check("failed result is not reused: the query sends again", r is None and billed(acct) == 2,
          "rows=%s billed=%d" % (r, billed(acct)))


def test_cancelled_sender():
    """A session cancelled while sending gives its claim back: the next query sends."""
    acct = "gen-apn-713~slowpost=2000"
    forget(acct)
    sql = "SELECT count(*) FROM %s.billed_usage WHERE account_name = '%s' AND %s" % (RUN, acct, CYCLE)
    p = psql_proc("SET application_name = 'cache_sender_%s'; %s" % (RUN, sql))
    time.sleep(0.7)
    psql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cache_sender_%s'"
         % RUN)
    _, err = p.communicate(timeout=60)
    check("cancelled sender: its query was cancelled", p.returncode != 0 and "cancel" in err, err)
    e = explain(sql)
    check("cancelled sender: the next query sends it itself",
          e.get("Requests Sent") == 1 and e.get("Merged In-Flight") == 0, e)


def main():
    teardown()
    try:
        setup()
        test_self_join()
        test_dashboard()
        test_concurrent()
        test_two_mappings()
        test_purge()
        test_ttl()
        test_failure_not_cached()
        test_cancelled_sender()
    except AssertionError as e:
        print("FAIL %s" % e)
        failures.append("exception")
    finally:
        teardown()
    if failures:
        print("test_cache: %d check(s) failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("test_cache: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
