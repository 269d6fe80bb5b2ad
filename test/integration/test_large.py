#!/usr/bin/python3
"""A 100,000-device line-level account through the full path (simulator → listener →
spool → scan): row counts and sums equal the simulator's independent figures, and the
backend's peak memory stays bounded (rows are produced page by page).

Needs the harness environment (source WORKDIR/env).  Prints the figures it measured.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

SIM = os.environ["SIM_URL"]
ACCOUNT = "gen-apn-100000"
DB = "ts_large"
# 98 MB of callbacks; one page (2,000 devices, ~2 MB) at a time must fit well below this.
PEAK_LIMIT_KB = 150 * 1024


def psql(sql, db=DB):
    p = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
    return p.stdout.strip()


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def main():
    psql("DROP DATABASE IF EXISTS %s" % DB, db="postgres")
    psql("CREATE DATABASE %s" % DB, db="postgres")
    psql("""CREATE EXTENSION thingspace_fdw;
            CREATE SERVER sim FOREIGN DATA WRAPPER thingspace_fdw
              OPTIONS (base_url '%s', callback_timeout '120s', cache_ttl '0');
            CREATE USER MAPPING FOR CURRENT_USER SERVER sim OPTIONS (client_id 'test-client',
              client_secret 'test-secret', username 'test-user', password 'test-pass');
            IMPORT FOREIGN SCHEMA thingspace FROM SERVER sim INTO public;""" % SIM)
    expected = json.load(urllib.request.urlopen(
        "%s/_sim/expected?account=%s&line_level=true" % (SIM, ACCOUNT)))

    # One session: read its pid, run the query, then read its peak memory.
    script = """SELECT pg_backend_pid();
SELECT count(*), sum(charge_amount), sum(total_usage) FROM billed_usage_countries
 WHERE account_name = '%s' AND billing_from = '2023-09-01' AND line_level;
SELECT count(*), sum(total_billed_amount) FROM billed_usage
 WHERE account_name = '%s' AND billing_from = '2023-09-01' AND line_level;
""" % (ACCOUNT, ACCOUNT)
    proc = subprocess.Popen(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", DB],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write("SELECT pg_backend_pid();\n")
    proc.stdin.flush()
    pid = int(proc.stdout.readline())
    idle_kb = vm_hwm_kb(pid)
    started = time.time()
    proc.stdin.write(script.split("\n", 1)[1] + "SELECT 'done';\n")
    proc.stdin.flush()
    lines = []
    while True:
        line = proc.stdout.readline()
        if line == "":
            raise AssertionError("query failed: %s" % proc.stderr.read())
        line = line.strip()
        if line == "done":
            break
        if line:
            lines.append(line)
    elapsed = time.time() - started
    countries = lines[0].split("|")
    devices = lines[1].split("|")
    failures = []
    if int(countries[0]) != expected["country_rows"]:
        failures.append("country rows %s != %s" % (countries[0], expected["country_rows"]))
    if countries[1] != expected["sum_charge_amount"]:
        failures.append("charge sum %s != %s" % (countries[1], expected["sum_charge_amount"]))
    if countries[2] != expected["sum_country_total_usage"]:
        failures.append("usage sum %s != %s" % (countries[2], expected["sum_country_total_usage"]))
    if int(devices[0]) != expected["device_rows"]:
        failures.append("device rows %s != %s" % (devices[0], expected["device_rows"]))
    if devices[1] != expected["sum_total_billed_amount"]:
        failures.append("billed sum %s != %s" % (devices[1], expected["sum_total_billed_amount"]))
    # The session is still open: VmHWM covers both queries.
    peak_kb = vm_hwm_kb(pid)
    proc.stdin.close()
    proc.wait(timeout=30)
    print("100k devices: %s country rows, %s device rows in %.1f s; backend peak %s kB (idle %d kB)"
          % (countries[0], devices[0], elapsed, peak_kb, idle_kb))
    if peak_kb > PEAK_LIMIT_KB:
        failures.append("peak memory %d kB above %d kB" % (peak_kb, PEAK_LIMIT_KB))
    psql("DROP DATABASE %s" % DB, db="postgres")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("ok   100k-device line-level account: counts and sums match the simulator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
