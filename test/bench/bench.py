#!/usr/bin/python3
"""thingspace_fdw benchmarks (run by test/bench/run-bench.sh inside a throwaway cluster).

Needs the harness environment (source WORKDIR/env): PGHOST, PGPORT, SIM_URL, TS_WORK,
LISTEN_PORT, CALLBACK_USERNAME, CALLBACK_PASSWORD.  Python 3 standard library only;
psql for SQL.  Prints one table with every figure and ratio; exit status 1 when the
methods of case 1 disagree on the sums (the figures would not compare the same work).

  1. emission: billed_usage_countries over one large line-level result, four ways
  2. 50 requests whose callbacks each arrive 1 s later: one query vs 50 queries
  3. cache hit vs cold for the same query
  4. callback-to-wake latency
  5. peak backend memory (VmHWM)

Environment knobs: BENCH_DEVICES (default 100000), BENCH_REPEAT (default 3),
BENCH_SEQ (sequential queries actually run in case 2, default 50; fewer are
extrapolated to 50 and the table says so), BENCH_WAKE_SAMPLES (default 15).
"""
import decimal
import glob
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

SIM = os.environ["SIM_URL"]
WORK = os.environ["TS_WORK"]
LISTEN_PORT = int(os.environ["LISTEN_PORT"])
CB_USER = os.environ.get("CALLBACK_USERNAME", "")
CB_PASS = os.environ.get("CALLBACK_PASSWORD", "")

DEVICES = int(os.environ.get("BENCH_DEVICES", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
SEQ = int(os.environ.get("BENCH_SEQ", "50"))
WAKE_SAMPLES = int(os.environ.get("BENCH_WAKE_SAMPLES", "15"))
K = 50                                  # requests in case 2
BIG = "gen-apn-%d" % DEVICES
CYCLE = "billing_from = '2024-01-01'"

rows_out = []                           # (case, method, figure, unit, extra)
problems = []


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# psql helpers
# ---------------------------------------------------------------------------

def psql(sql, check=True):
    p = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql, p.stderr))
    return [l for l in p.stdout.splitlines() if l != ""]


def psql_script(script):
    """Run a script in one session with \\timing; returns (result lines, [ms per statement])."""
    p = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                       input="\\timing on\n" + script, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("psql failed:\n%s\n%s" % (script, p.stderr))
    lines, times = [], []
    for l in p.stdout.splitlines():
        m = re.match(r"Time: ([0-9.]+) ms", l)
        if m:
            times.append(float(m.group(1)))
        elif l:
            lines.append(l)
    return lines, times


def timed(sql, setup=""):
    """(result lines of sql, ms) in one session; setup statements are not timed."""
    lines, times = psql_script(setup + sql + ";\n")
    return lines, times[-1]


def timed_hwm(sql):
    """(result line, ms, VmHWM kB after it) of sql run in a fresh session."""
    lines, times = psql_script(VMHWM + sql + ";\nSELECT pg_temp.vmhwm_kb();\n")
    return lines[0], times[1], int(lines[-1])


def sim_get(path):
    with urllib.request.urlopen(SIM + path, timeout=60) as r:
        return r.read().decode()


def sim_post(path, body):
    req = urllib.request.Request(SIM + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()


def billed_log(account=None):
    out = []
    for l in sim_get("/_sim/log?kind=billed").splitlines():
        if l.strip():
            e = json.loads(l)
            if e.get("status") == 200 and (account is None or e.get("account") == account):
                out.append(e)
    return out


def add(case, method, figure, unit, extra=""):
    rows_out.append((case, method, figure, unit, extra))


def fmt_rate(n, ms):
    return n / (ms / 1000.0)


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

VMHWM = """CREATE OR REPLACE FUNCTION pg_temp.vmhwm_kb() RETURNS bigint LANGUAGE sql AS
$$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\\s+(\\d+)'))[1]::bigint $$;
"""


def setup():
    sim_post("/_sim/reset", {})
    psql("CREATE EXTENSION IF NOT EXISTS thingspace_fdw")
    for srv, extra in (("bench", ""), ("bench_nc", ", cache_ttl '0'")):
        psql("DROP SERVER IF EXISTS %s CASCADE" % srv)
        psql("CREATE SERVER %s FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url '%s', "
             "callback_timeout '10min'%s)" % (srv, SIM, extra))
        psql("CREATE USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (client_id 'test-client', "
             "client_secret 'test-secret', username 'test-user', password 'test-pass')" % srv)
    for schema, srv in (("b", "bench"), ("nc", "bench_nc")):
        psql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        psql("CREATE SCHEMA %s" % schema)
        psql("IMPORT FOREIGN SCHEMA thingspace FROM SERVER %s INTO %s" % (srv, schema))
    psql("SELECT thingspace_cache_purge()")
    # warm the shared token and session so no case pays for them
    psql("SELECT count(*) FROM nc.billed_usage WHERE account_name = 'gen-apn-1' AND " + CYCLE)


# ---------------------------------------------------------------------------
# 1. emission speed
# ---------------------------------------------------------------------------

FDW_Q = ("SELECT count(*), sum(charge_amount) FROM b.billed_usage_countries "
         "WHERE account_name = '%s' AND %s AND line_level" % (BIG, CYCLE))

JSONB_Q = """SELECT count(*), sum(d."totalChargeAmount")
  FROM bench_pages p
 CROSS JOIN LATERAL jsonb_array_elements(p.doc -> 'deviceResponse' -> 'billingUsageSummary' -> 'devices') dev
 CROSS JOIN LATERAL jsonb_array_elements(dev -> 'usageApns') apn
 CROSS JOIN LATERAL (
        SELECT 'current' AS usage_type, *
          FROM jsonb_to_recordset(apn -> 'apnDetails' -> 'totalUsageDetails')
               AS x("countryCode" text, "totalChargeAmount" numeric, "totalBilledUsage" numeric, "totalUsage" numeric)
        UNION ALL
        SELECT 'delayed', *
          FROM jsonb_to_recordset(apn -> 'apnDetails' -> 'totalDelayedUsageDetails')
               AS x("countryCode" text, "totalChargeAmount" numeric, "totalBilledUsage" numeric, "totalUsage" numeric)
       ) d"""

PY_Q = "SELECT count(*), sum(charge_amount) FROM bench_py"


def python_loader(files, account):
    """The Python a user would write: json per page, COPY the country rows into a table."""
    psql("DROP TABLE IF EXISTS bench_py")
    psql("CREATE TABLE bench_py (account_name text, device_kind text, device_id text, "
         "segment_name text, usage_type text, country_code text, charge_amount numeric, "
         "billed_usage numeric, total_usage numeric)")
    p = subprocess.Popen(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", "COPY bench_py FROM STDIN"],
                         stdin=subprocess.PIPE, text=True)
    n = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, parse_float=decimal.Decimal)
        out = []
        for dev in doc["deviceResponse"]["billingUsageSummary"].get("devices", []):
            ident = dev.get("deviceIdentifier", {})
            for apn in dev.get("usageApns", []):
                details = apn.get("apnDetails", {})
                for usage_type, key in (("current", "totalUsageDetails"),
                                        ("delayed", "totalDelayedUsageDetails")):
                    for d in details.get(key, []):
                        out.append("\t".join((account, ident.get("kind", ""), ident.get("id", ""),
                                              apn["name"], usage_type, d["countryCode"],
                                              str(d["totalChargeAmount"]), str(d["totalBilledUsage"]),
                                              str(d["totalUsage"]))))
        n += len(out)
        p.stdin.write("\n".join(out) + "\n")
    p.stdin.close()
    if p.wait() != 0:
        raise RuntimeError("COPY failed")
    return n


def case_emission():
    log("case 1: %s line level, cold" % BIG)
    expected = json.loads(sim_get("/_sim/expected?account=%s&line_level=true" % BIG))
    want = (str(expected["country_rows"]), expected["sum_charge_amount"])
    psql("SELECT thingspace_cache_purge('%s')" % BIG)
    cold_line, cold_ms, hwm_cold = timed_hwm(FDW_Q)
    rid = billed_log(BIG)[-1]["request_id"]
    nrows = int(cold_line.split("|")[0])

    log("case 1: cached")
    cached = [timed_hwm(FDW_Q) for _ in range(REPEAT)]
    cached_ms = statistics.median(c[1] for c in cached)
    hwm_cached = max(c[2] for c in cached)

    log("case 1: jsonb (loading the pages, not timed)")
    psql("DROP TABLE IF EXISTS bench_pages")
    psql("CREATE TABLE bench_pages AS SELECT ordinality AS page, payload::jsonb AS doc "
         "FROM thingspace_callback_payload('%s') WITH ORDINALITY AS t(payload)" % rid)
    psql("VACUUM ANALYZE bench_pages")
    pages_mb = float(psql("SELECT pg_total_relation_size('bench_pages') / 1048576.0")[0])
    jsonb = [timed_hwm(JSONB_Q) for _ in range(REPEAT)]
    jsonb_ms = statistics.median(c[1] for c in jsonb)
    hwm_jsonb = max(c[2] for c in jsonb)

    log("case 1: python loader")
    files = sorted(glob.glob(os.path.join(WORK, "data", "pg_thingspace", rid, "p*-of-*.json")),
                   key=lambda s: int(re.search(r"/p(\d+)-of-", s).group(1)))
    if not files:
        raise RuntimeError("no spool files for %s" % rid)
    t0 = time.perf_counter()
    loaded = python_loader(files, BIG)
    load_ms = (time.perf_counter() - t0) * 1000
    py_lines, py_q_ms = timed(PY_Q)
    py_ms = load_ms + py_q_ms

    results = {"FDW cold": cold_line, "FDW cached": cached[-1][0],
               "jsonb query": jsonb[-1][0], "Python loader": py_lines[0]}
    for name, r in results.items():
        count, total = r.split("|")
        if (count, decimal.Decimal(total)) != (want[0], decimal.Decimal(want[1])):
            problems.append("case 1 %s: %s|%s, expected %s|%s" % (name, count, total, *want))
    sums = "count|sum: " + "; ".join("%s %s" % (k, v) for k, v in results.items())

    base = fmt_rate(nrows, cached_ms)
    add("1 emission", "rows (country rows of %s, %d pages)" % (BIG, len(files)), "%d" % nrows, "rows",
        "sums agree with /_sim/expected" if not [p for p in problems if p.startswith("case 1")]
        else "SUMS DISAGREE")
    for name, ms, note in (("(a) FDW cold (POST + callbacks + rows)", cold_ms, ""),
                           ("(b) FDW cached (rows from the spool)", cached_ms, "median of %d" % REPEAT),
                           ("(c) jsonb table + SQL (%.0f MB of jsonb)" % pages_mb, jsonb_ms,
                            "median of %d" % REPEAT),
                           ("(d) Python json + COPY, then the query", py_ms,
                            "load %.0f ms + query %.0f ms" % (load_ms, py_q_ms))):
        rate = fmt_rate(nrows, ms)
        add("1 emission", name, "%.0f ms" % ms, "%.0f rows/s" % rate,
            "%.2fx of FDW cached%s" % (rate / base, "; " + note if note else ""))
    add("1 emission", "FDW cached vs jsonb query", "%.2fx" % (jsonb_ms / cached_ms), "speed-up",
        "target >= 2x")
    add("1 emission", "FDW cached vs Python loader", "%.2fx" % (py_ms / cached_ms), "speed-up",
        "target > 1x")
    return hwm_cold, hwm_cached, hwm_jsonb, sums


# ---------------------------------------------------------------------------
# 2. K requests with 1 s callbacks
# ---------------------------------------------------------------------------

def case_concurrent():
    names = ["gen-apn-%d~delay=1000" % (i + 1) for i in range(K)]
    log("case 2: %d requests in one query" % K)
    in_list = ", ".join("'%s'" % n for n in names)
    q = ("SELECT count(*), sum(total_billed_amount) FROM nc.billed_usage "
         "WHERE account_name IN (%s) AND %s" % (in_list, CYCLE))
    t0 = time.perf_counter()
    lines, conc_ms = timed(q)
    conc_wall = (time.perf_counter() - t0) * 1000
    if lines[0].split("|")[0] != str(K):
        problems.append("case 2: %s rows, expected %d" % (lines[0], K))

    log("case 2: %d of the %d as separate queries" % (SEQ, K))
    script = "".join("SELECT count(*) FROM nc.billed_usage WHERE account_name = '%s' AND %s;\n"
                     % (n, CYCLE) for n in names[:SEQ])
    _, times = psql_script(script)
    seq_ms = sum(times) * K / SEQ
    note = "measured" if SEQ == K else "%d measured, scaled to %d" % (SEQ, K)
    add("2 50 x 1s callbacks", "sequential: %d queries, one request each" % K, "%.0f ms" % seq_ms,
        "%.0f ms/query" % (sum(times) / len(times)), note)
    add("2 50 x 1s callbacks", "concurrent: one query, account_name IN (50)", "%.0f ms" % conc_ms,
        "%.1fx faster" % (seq_ms / conc_ms), "target < 2000 ms; wall incl. psql start %.0f ms" % conc_wall)


# ---------------------------------------------------------------------------
# 3. cache hit vs cold
# ---------------------------------------------------------------------------

def case_hit():
    for acct, table, line in (("gen-apn-10", "billed_usage", False),
                              ("gen-apn-2000", "billed_usage_segments", True)):
        q = ("SELECT count(*) FROM b.%s WHERE account_name = '%s' AND %s%s"
             % (table, acct, CYCLE, " AND line_level" if line else ""))
        log("case 3: %s" % q)
        colds, hits = [], []
        for _ in range(max(REPEAT, 5)):
            psql("SELECT thingspace_cache_purge('%s')" % acct)
            colds.append(timed(q)[1])
            hits.append(timed(q)[1])
        cold, hit = statistics.median(colds), statistics.median(hits)
        rows = psql(q)[0]
        what = "%s %s%s (%s rows)" % (table, acct, " line level" if line else "", rows)
        add("3 cache hit", "cold: " + what, "%.1f ms" % cold, "", "median of %d" % len(colds))
        add("3 cache hit", "hit:  " + what, "%.1f ms" % hit, "%.1fx faster" % (cold / hit),
            "median of %d" % len(hits))


# ---------------------------------------------------------------------------
# 4. callback-to-wake latency
# ---------------------------------------------------------------------------

def post_callback(request_id, account):
    body = json.dumps({
        "username": CB_USER, "password": CB_PASS, "requestId": request_id,
        "deviceResponse": {"billingUsageSummary": {
            "accountName": account, "totalBilledAmount": 1.5, "totalBilledUsage": 10,
            "totalUsage": 10, "unitOfMeasure": "BYTES"}},
        "status": "SUCCESS", "callbackCount": 1, "maxCallbackThreshold": 4})
    c = http.client.HTTPConnection("127.0.0.1", LISTEN_PORT, timeout=30)
    c.connect()
    t_send = time.time()
    c.request("POST", "/", body=body.encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    t_ok = time.time()
    c.close()
    if r.status != 200:
        raise RuntimeError("listener answered %d" % r.status)
    return t_send, t_ok


def case_wake():
    """A scan waits for a request nobody answers (~nocb); we deliver its one page
    ourselves and compare the listener's 200 with clock_timestamp() taken by the same
    query right after its scan ended (same machine clock, microseconds)."""
    after_ok, after_send = [], []
    for i in range(WAKE_SAMPLES):
        acct = "gen-apn-%d~nocb" % (100 + i)
        q = ("SELECT count(*), extract(epoch FROM clock_timestamp()) FROM nc.billed_usage "
             "WHERE account_name = '%s' AND %s" % (acct, CYCLE))
        p = subprocess.Popen(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", q],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rid = None
        deadline = time.time() + 30
        while rid is None and time.time() < deadline:
            got = billed_log(acct)
            rid = got[-1]["request_id"] if got else None
            if rid is None:
                time.sleep(0.02)
        if rid is None:
            p.kill()
            raise RuntimeError("no billed request for %s" % acct)
        time.sleep(0.3)                  # the scan is asleep on its latch by now
        t_send, t_ok = post_callback(rid, acct)
        out, err = p.communicate(timeout=60)
        if p.returncode != 0:
            raise RuntimeError(err)
        t_done = float(out.strip().split("|")[1])
        after_ok.append((t_done - t_ok) * 1000)
        after_send.append((t_done - t_send) * 1000)
    add("4 wake latency", "callback POST sent -> scan finished", "%.2f ms" % statistics.median(after_send),
        "median", "min %.2f, max %.2f, n=%d" % (min(after_send), max(after_send), len(after_send)))
    add("4 wake latency", "listener 200 received -> scan finished", "%.2f ms" % statistics.median(after_ok),
        "median", "negative = the scan woke before the client read the 200")


# ---------------------------------------------------------------------------

def case_memory(hwm_cold, hwm_cached, hwm_jsonb):
    idle = int(psql_script(VMHWM + "SELECT pg_temp.vmhwm_kb();\n")[0][-1])
    add("5 memory", "idle backend VmHWM", "%.1f MB" % (idle / 1024), "", "")
    for what, kb in (("after FDW cold %s" % BIG, hwm_cold), ("after FDW cached %s" % BIG, hwm_cached),
                     ("after the jsonb query", hwm_jsonb)):
        add("5 memory", what, "%.1f MB" % (kb / 1024), "+%.1f MB" % ((kb - idle) / 1024),
            "VmHWM of that session's backend")


def print_table():
    w = [max(len(str(r[i])) for r in rows_out + [("case", "method", "figure", "rate", "notes")])
         for i in range(5)]
    line = "  ".join("%-*s" % (w[i], h) for i, h in enumerate(("case", "method", "figure", "rate", "notes")))
    print(line)
    print("-" * len(line))
    prev = None
    for r in rows_out:
        if prev is not None and r[0] != prev:
            print()
        prev = r[0]
        print("  ".join("%-*s" % (w[i], r[i]) for i in range(5)).rstrip())


def main():
    setup()
    hwm = case_emission()
    case_concurrent()
    case_hit()
    case_wake()
    case_memory(*hwm[:3])
    print()
    print("thingspace_fdw bench  PostgreSQL %s  %s devices  %d CPUs" %
          (psql("SHOW server_version")[0], DEVICES, os.cpu_count() or 0))
    print()
    print_table()
    print()
    print(hwm[3])
    if problems:
        print()
        print("PROBLEMS:")
        for p in problems:
            print("  " + p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
