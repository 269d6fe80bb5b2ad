#!/usr/bin/python3
"""Load on the callback listener: many callbacks from concurrent keep-alive clients.

Run against a test cluster (test/cluster.sh start WORKDIR; source WORKDIR/env):

    /usr/bin/python3 test/bench/listener_load.py [--callbacks 20000] [--clients 8]
        [--pages 4] [--keep]

Every callback is a distinct (requestId, page), with a body the size of the seed
page's line-level example.  Afterwards thingspace_callbacks() must list each of them
exactly once.  Prints callbacks/s and the p50/p99/max latency of one POST (sent
until its 200, which the listener only gives once the body is fsynced).  Unless
--keep, the bench's request directories are removed from the spool at the end.

With SIM_URL set, it then measures callback-to-result latency (--wake-samples
queries): a foreign scan waits for a one-page result that the simulator delivers
after 200 ms; the figure is the time from the simulator's log entry for that
delivery (written once the listener has answered 200) to the end of the query, an
upper bound of waking the waiting backend plus reading and returning the page.
Exit status 0 = every callback stored exactly once.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

PORT = int(os.environ["LISTEN_PORT"])
USER = os.environ.get("CALLBACK_USERNAME", "")
PASSWORD = os.environ.get("CALLBACK_PASSWORD", "")
WORK = os.environ.get("TS_WORK")


def body_for(request_id, page, pages):
    return json.dumps({
        "username": USER, "password": PASSWORD, "requestId": request_id,
        "deviceResponse": {"billingUsageSummary": {
            "accountName": "0000123456-00001", "totalBilledAmount": 1993.4,
            "totalBilledUsage": 59935, "totalUsage": 72378, "unitOfMeasure": "BYTES",
            "billingCycle": {"from": {"year": 2023, "month": 8}, "to": {"year": 2023, "month": 9}},
            "pageNumber": page, "totalPages": pages,
            "devices": [{"deviceIdentifier": {"id": "35%013d" % page, "kind": "imei"},
                         "totalBilledAmount": 1993.0, "totalBilledUsage": 59935, "totalUsage": 72378,
                         "usageApns": [{"billedAmount": 1993.4, "billedUsage": 59935, "name": "APN name",
                                        "totalUsage": 72378, "apnDetails": {"totalUsageDetails": [
                                            {"countryCode": "USA", "totalChargeAmount": 1993.4,
                                             "totalBilledUsage": 59935, "totalUsage": 72378}]}}]}]}},
        "status": "SUCCESS", "callbackCount": 1, "maxCallbackThreshold": 4}).encode()


def client(jobs, latencies, errors):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    for request_id, page, pages in jobs:
        body = body_for(request_id, page, pages)
        for attempt in range(3):
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
                if attempt == 2:
                    errors.append("%s/%d: %r" % (request_id, page, e))
                continue
            latencies.append(time.perf_counter() - t0)
            if r.status != 200:
                errors.append("%s/%d: HTTP %d" % (request_id, page, r.status))
            break
    conn.close()


def psql(sql):
    return subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, check=True).stdout


def wake_latency(samples):
    sim = os.environ["SIM_URL"]
    psql("DROP SERVER IF EXISTS listener_bench CASCADE; DROP SCHEMA IF EXISTS listener_bench CASCADE; "
         "CREATE SERVER listener_bench FOREIGN DATA WRAPPER thingspace_fdw "
         "OPTIONS (base_url '%s', cache_ttl '0', callback_timeout '30s'); "
         "CREATE USER MAPPING FOR CURRENT_USER SERVER listener_bench OPTIONS (client_id 'test-client', "
         "client_secret 'test-secret', username 'test-user', password 'test-pass'); "
         "CREATE SCHEMA listener_bench; "
         "IMPORT FOREIGN SCHEMA thingspace LIMIT TO (billed_usage) FROM SERVER listener_bench INTO listener_bench"
         % sim)
    lat = []
    try:
        for i in range(samples):
            account = "0000123456-00001~delay=200"
            t_start = time.time()
            psql("SELECT count(*) FROM listener_bench.billed_usage "
                 "WHERE account_name = '%s' AND billing_from = '2023-09-01'" % account)
            t_end = time.time()
            with urllib.request.urlopen(sim + "/_sim/log?kind=callback_delivery") as r:
                events = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
            ts = [e["ts"] for e in events if e.get("account") == account
                  and e.get("listener_status") == 200 and e["ts"] >= t_start - 0.001]
            if ts:
                lat.append(t_end - max(ts))
    finally:
        psql("DROP SCHEMA listener_bench CASCADE; DROP SERVER listener_bench CASCADE")
    return sorted(lat)


def pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--callbacks", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--pages", type=int, default=4, help="pages per request id")
    ap.add_argument("--keep", action="store_true", help="leave the bench's files in the spool")
    ap.add_argument("--wake-samples", type=int, default=20, help="callback-to-result samples (needs SIM_URL)")
    a = ap.parse_args()

    run = "bench-%d-%d" % (os.getpid(), int(time.time()))
    jobs = [("%s-%d" % (run, i // a.pages), i % a.pages + 1, a.pages) for i in range(a.callbacks)]
    per_client = [jobs[k::a.clients] for k in range(a.clients)]
    latencies, errors = [], []
    threads = [threading.Thread(target=client, args=(j, latencies, errors)) for j in per_client]

    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0

    lat = sorted(latencies)
    print("callbacks: %d from %d clients in %.2f s = %.0f callbacks/s"
          % (len(jobs), a.clients, elapsed, len(jobs) / elapsed))
    print("latency per callback: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
          % (pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3, lat[-1] * 1e3))
    for e in errors[:10]:
        print("error:", e)

    q = ("SELECT count(*), count(DISTINCT (request_id, page)), count(*) FILTER (WHERE kind <> 'page') "
         "FROM thingspace_callbacks() WHERE request_id LIKE '%s-%%'" % run)
    t1 = time.perf_counter()
    out = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-F", " ", "-c", q],
                         capture_output=True, text=True, check=True).stdout.split()
    listing = time.perf_counter() - t1
    rows, distinct, other = (int(x) for x in out)
    print("listed: %d rows, %d distinct (requestId, page), %d not pages; "
          "thingspace_callbacks() took %.2f s" % (rows, distinct, other, listing))
    ok = not errors and rows == len(jobs) and distinct == len(jobs) and other == 0

    if not a.keep and WORK:
        spool = os.path.join(WORK, "data", "pg_thingspace")
        for d in os.listdir(spool):
            if d.startswith(run + "-"):
                shutil.rmtree(os.path.join(spool, d), ignore_errors=True)
    if a.wake_samples > 0 and os.environ.get("SIM_URL"):
        w = wake_latency(a.wake_samples)
        if w:
            print("callback 200 -> query result: %d samples, p50 %.1f ms, max %.1f ms "
                  "(simulator log has ms resolution)" % (len(w), pct(w, 0.5) * 1e3, w[-1] * 1e3))
        else:
            print("callback-to-result latency: no samples (is the scan working against the simulator?)")
    print("OK: every callback stored exactly once" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
