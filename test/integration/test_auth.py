#!/usr/bin/python3
"""HTTP client and authentication layer against a running test cluster (test/cluster.sh).

Needs the harness environment (source WORKDIR/env): PGHOST, PGPORT, SIM_URL, TS_WORK.
Python 3 standard library only.  Works in its own database; vendor calls go through
the test hooks of src/auth.c.  Counts come from the simulator's log, read from a
sequence number taken just before each scenario.  Exit status 0 = every check passed.
"""
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

SIM = os.environ["SIM_URL"]
WORK = os.environ["TS_WORK"]
DB = "ts_auth_it"
BILLED = "/api/m2m/v2/devices/usage/actions/billed"
SECRETS = ["test-secret", "test-pass", "wrong-pass"]
WRONG = "wrong-pass-%d" % random.randrange(10**9)

failures = []
stderr_seen = []                        # every error text, checked for secrets at the end


def check(cond, what, info=""):
    print("%s: %s%s" % ("ok" if cond else "FAIL", what, "" if cond or not info else " -- %s" % info))
    if not cond:
        failures.append(what)


# ---- simulator ----

def sim(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(SIM + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def sim_seq():
    lines = sim("GET", "/_sim/log").splitlines()
    return json.loads(lines[-1])["seq"] if lines else 0


def sim_log(since, kind=None):
    q = "/_sim/log?since=%d" % since + ("&kind=%s" % kind if kind else "")
    return [json.loads(l) for l in sim("GET", q).splitlines() if l.strip()]


def billed_of(events, account):
    return [e for e in events if e["kind"] == "billed" and e.get("account") == account]


# ---- PostgreSQL ----

def psql(sql, db=DB, check_rc=True, options=None, timing=False):
    """Run a script through psql; returns (rc, stdout, stderr).  Without ON_ERROR_STOP
    psql goes on after a failed statement and exits 0: look for ERROR in stderr."""
    env = dict(os.environ, PGDATABASE=db)
    if options:
        env["PGOPTIONS"] = options
    script = ("\\timing on\n" if timing else "") + sql
    p = subprocess.run(["psql", "-X", "-At", "-f", "-"], input=script, capture_output=True,
                       text=True, env=env)
    stderr_seen.append(p.stderr)
    if check_rc and p.returncode != 0:
        raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
    return p.returncode, p.stdout, p.stderr


def body(account):
    return json.dumps({"accountName": account,
                       "billingCycle": {"from": {"year": 2024, "month": 1},
                                        "to": {"year": 2024, "month": 1}}})


def submit_sql(server, *accounts):
    arr = ", ".join("'%s'" % body(a) for a in accounts)
    return "SELECT array_length(ts_test_submit('%s', ARRAY[%s]), 1);\n" % (server, arr)


def call_sql(server):
    return "SELECT ts_test_call('%s', 'GET', '/api/m2m/v1/callbacks/0000123456-00001') IS NOT NULL;\n" % server


def setup():
    psql("DROP DATABASE IF EXISTS %s WITH (FORCE);\nCREATE DATABASE %s;\n" % (DB, DB), db="postgres")
    psql("""
SET client_min_messages = warning;
CREATE EXTENSION thingspace_fdw;
CREATE FUNCTION ts_test_call(name, text, text, text DEFAULT NULL) RETURNS text
  AS 'thingspace_fdw', 'ts_test_hook_vendor_call' LANGUAGE C;
CREATE FUNCTION ts_test_submit(name, text[]) RETURNS text[]
  AS 'thingspace_fdw', 'ts_test_hook_submit_billed' LANGUAGE C STRICT;
CREATE SERVER ts FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url '{sim}', max_retries '2');
CREATE USER MAPPING FOR CURRENT_USER SERVER ts OPTIONS
  (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');
CREATE SERVER ts_bad FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url '{sim}');
CREATE USER MAPPING FOR CURRENT_USER SERVER ts_bad OPTIONS
  (client_id 'test-client', client_secret 'test-secret', username 'test-user2', password '{wrong}');
""".format(sim=SIM, wrong=WRONG))


# ---- scenarios ----

def test_sharing():
    """Many calls, one session, many sessions, concurrent sessions: one token, one login."""
    sim("POST", "/_sim/reset")          # cached tokens and sessions are now refused once
    seq = sim_seq()
    # Four concurrent sessions first: they find the stale token together.
    procs = [subprocess.Popen(["psql", "-X", "-At", "-f", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PGDATABASE=DB))
             for _ in range(4)]
    outs = [p.communicate(submit_sql("ts", "0000123456-00001", "0000123456-00002") * 3)
            for p in procs]
    check(all(p.returncode == 0 for p in procs) and all(o[0].split() == ["2"] * 3 for o in outs),
          "concurrent sessions: every call succeeds", [o[1] for o in outs])
    # Many calls in one session, then several sessions one after the other.
    psql(submit_sql("ts", "0000123456-00001") * 5 + call_sql("ts") * 5)
    for _ in range(3):
        psql(submit_sql("ts", "0000123456-00002") + call_sql("ts"))
    ev = sim_log(seq)
    tokens = [e for e in ev if e["kind"] == "token"]
    logins = [e for e in ev if e["kind"] == "login"]
    billed_ok = [e for e in ev if e["kind"] == "billed" and e["status"] == 200]
    check(len(tokens) == 1, "one token request for all sessions", len(tokens))
    check(len(logins) == 1 and logins[0]["status"] == 200, "one login for all sessions",
          [(e["status"]) for e in logins])
    check(len(billed_ok) == 4 * 6 + 5 + 3, "every billed request answered", len(billed_ok))


def test_token_expiry():
    """A token near its end is renewed before the vendor refuses it."""
    sim("POST", "/_sim/config", {"token_ttl_s": 3})
    sim("POST", "/_sim/expire", {"what": "token"})
    psql(call_sql("ts"))                # refused once (expired), renewed: lifetime 3 s
    seq = sim_seq()
    psql(call_sql("ts"))
    time.sleep(3.2)
    psql(call_sql("ts") * 2)
    ev = sim_log(seq)
    refused = [e for e in ev if e.get("status") == 401]
    check(len([e for e in ev if e["kind"] == "token"]) == 1, "token renewed once near its expiry",
          [e["kind"] for e in ev])
    check(not refused, "renewed before the vendor refused it", refused)
    sim("POST", "/_sim/config", {"token_ttl_s": 3600})
    sim("POST", "/_sim/expire", {"what": "token"})
    psql(call_sql("ts"))


def test_401_fault():
    """401 fault 900901: exactly one new token and one retry."""
    acct = "0000123456-00001~401once"
    seq = sim_seq()
    rc, out, err = psql(submit_sql("ts", acct), check_rc=False)
    ev = sim_log(seq)
    check(rc == 0 and out.strip() == "1", "call with a revoked token succeeds", err)
    check(len([e for e in ev if e["kind"] == "token"]) == 1, "exactly one new token")
    check([e["status"] for e in billed_of(ev, acct)] == [401, 200], "exactly one retry",
          [e["status"] for e in billed_of(ev, acct)])
    check(not [e for e in ev if e["kind"] == "login"], "no new login for a new token")


def test_session_expiry():
    """Expired session: exactly one new login and one retry."""
    sim("POST", "/_sim/expire", {"what": "session"})
    seq = sim_seq()
    rc, out, err = psql(submit_sql("ts", "0000123456-00002") + call_sql("ts") + submit_sql("ts", "0000123456-00001"),
                        check_rc=False)
    ev = sim_log(seq)
    check(rc == 0, "calls after session expiry succeed", err)
    check([e["status"] for e in ev if e["kind"] == "login"] == [200], "exactly one re-login",
          [e["kind"] for e in ev])
    check([e["status"] for e in billed_of(ev, "0000123456-00002")] == [400, 200],
          "the refused call is retried once")
    acct = "0000123456-00001~sessexp"
    seq = sim_seq()
    rc, out, err = psql(submit_sql("ts", acct), check_rc=False)
    ev = sim_log(seq)
    check(rc == 0 and [e["status"] for e in ev if e["kind"] == "login"] == [200]
          and [e["status"] for e in billed_of(ev, acct)] == [400, 200],
          "SessionToken.Expired answer: one re-login, one retry", err)


def test_bad_password():
    """A refused login is tried once, across calls and concurrent sessions; then explained."""
    seq = sim_seq()
    procs = [subprocess.Popen(["psql", "-X", "-At", "-f", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PGDATABASE=DB))
             for _ in range(2)]
    errs = [p.communicate(call_sql("ts_bad"))[1] for p in procs]
    stderr_seen.extend(errs)
    later = [psql(call_sql("ts_bad"), check_rc=False)[2] for _ in range(3)]
    ev = sim_log(seq)
    attempts = [e for e in ev if e["kind"] == "login" and e.get("status") != 401]
    check(len(attempts) == 1 and attempts[0]["status"] == 400,
          "exactly one login attempt with the wrong password", [e.get("status") for e in attempts])
    allerr = errs + later
    check(all("ERROR" in e for e in allerr), "every call fails")
    check(any("InvalidCredentials" in e and "No further login" in e for e in errs),
          "the first failure names the vendor error and the pause", errs)
    check(all("login not attempted because the last login with these credentials failed" in e
              and "wait until" in e and "ALTER USER MAPPING" in e for e in later),
          "later failures explain the lockout and how to clear it", later[:1])
    # Correcting the password clears it at once.
    psql("ALTER USER MAPPING FOR CURRENT_USER SERVER ts_bad OPTIONS (SET password 'test-pass2');")
    rc, out, err = psql(call_sql("ts_bad"), check_rc=False)
    check(rc == 0 and out.strip() == "t", "a corrected password logs in again", err)


def test_429():
    acct = "0000123456-00002~429"
    sim("POST", "/_sim/reset")
    psql(call_sql("ts"))                # renew after the reset, outside the measurement
    seq = sim_seq()
    t0 = time.time()
    rc, out, err = psql(submit_sql("ts", acct), check_rc=False)
    took = time.time() - t0
    ev = billed_of(sim_log(seq), acct)
    check(rc == 0 and [e["status"] for e in ev] == [429, 200], "429 retried once", err)
    check(len(ev) == 2 and ev[1]["ts"] - ev[0]["ts"] >= 0.95 and took >= 0.95,
          "Retry-After: 1 honoured", [e["ts"] for e in ev])


def test_5xx():
    acct = "0000123456-00001~503"
    seq = sim_seq()
    rc, out, err = psql(submit_sql("ts", acct), check_rc=False)
    ev = billed_of(sim_log(seq), acct)
    check("ERROR" in err and [e["status"] for e in ev] == [503] * 3, "503 retried max_retries (2) times",
          [e["status"] for e in ev])
    check("ERROR:  thingspace error UnifiedWebService.SERVICE_UNAVAILABLE" in err
          and "simulated outage" in err and "HTTP status 503" in err and BILLED in err
          and "after 2 retries" in err and "account %s" % acct in err,
          "5xx reported with vendor code, text, status, path and request", err)
    acct = "0000123456-00001~503once"
    seq = sim_seq()
    rc, out, err = psql(submit_sql("ts", acct), check_rc=False)
    check(rc == 0 and [e["status"] for e in billed_of(sim_log(seq), acct)] == [503, 200],
          "503 once: retried, then success", err)


def fd_count_sql():
    return "SELECT count(*) FROM pg_ls_dir('/proc/self/fd');\n"


def test_cancel():
    """statement_timeout, pg_cancel_backend and pg_terminate_backend end a slow call at once."""
    slow = "0000123456-00001~slowpost=5000"
    script = (submit_sql("ts", "0000123456-00001", "0000123456-00002")
              + fd_count_sql()
              + "SET statement_timeout = '400ms';\n"
              + submit_sql("ts", slow) * 5
              + "RESET statement_timeout;\n"
              + submit_sql("ts", "0000123456-00001", "0000123456-00002")
              + fd_count_sql())
    rc, out, err = psql(script, check_rc=False, timing=True)
    times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out)]
    results = [l for l in out.splitlines() if l.strip().isdigit()]
    cancels = err.count("canceling statement due to statement timeout")
    check(cancels == 5, "statement_timeout cancels each slow call", err)
    # Timings: submit, count, SET, 5 cancelled, RESET, submit, count
    slow_times = times[3:8] if len(times) >= 11 else []
    check(len(slow_times) == 5 and max(slow_times) < 1000,
          "each cancelled call returns within a second", slow_times)
    check(len(results) == 4 and results[2] == "2", "the backend keeps working after cancels", results)
    if len(results) == 4:
        n0, n1 = int(results[1]), int(results[3])
        check(n1 <= n0 + 1, "no file descriptors leak over five cancels", (n0, n1))

    # A hard failure ends the whole batch at once: the slow sibling is abandoned.
    # (First a call: curl's first use opens a wakeup socket pair and a kept-alive connection.)
    script = (submit_sql("ts", "0000123456-00001")
              + fd_count_sql()
              + "\\timing on\n"
              + submit_sql("ts", "0000123456-00002~503", "0000123456-00001~slowpost=4000") * 3
              + "\\timing off\n"
              + submit_sql("ts", "0000123456-00001")
              + fd_count_sql())
    rc, out, err = psql(script, check_rc=False)
    times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out)]
    results = [l for l in out.splitlines() if l.strip().isdigit()]
    check(err.count("SERVICE_UNAVAILABLE") == 3 and len(times) == 3 and max(times) < 3000,
          "a failed request ends its batch without waiting for the others", (times, err[:300]))
    check(len(results) == 4 and results[2] == "1" and int(results[3]) <= int(results[1]) + 1,
          "the backend keeps working, no descriptors leak after failed batches", results)

    for how in ("pg_cancel_backend", "pg_terminate_backend"):
        app = "ts_auth_%s" % how
        env = dict(os.environ, PGDATABASE=DB, PGAPPNAME=app)
        p = subprocess.Popen(["psql", "-X", "-At", "-c", submit_sql("ts", slow)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pid = None
        for _ in range(50):
            r = psql("SELECT pid FROM pg_stat_activity WHERE application_name = '%s' AND state = 'active';" % app,
                     db="postgres")[1].split()
            if r:
                pid = r[0]
                break
            time.sleep(0.1)
        time.sleep(0.5)                 # well inside the HTTP wait
        t0 = time.time()
        psql("SELECT %s(%s);" % (how, pid), db="postgres")
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            err = "did not end"
        took = time.time() - t0
        check(pid is not None and took < 1.0, "%s ends the HTTP wait within a second" % how,
              "%.2f s %s" % (took, err.strip()))
    rc, out, err = psql(submit_sql("ts", "0000123456-00002"), check_rc=False)
    check(rc == 0 and out.strip() == "1", "new sessions work after a terminated one", err)


def test_no_secrets():
    # DEBUG output of this layer goes to the server log too.
    psql("SET client_min_messages = warning;\n" + submit_sql("ts", "0000123456-00001") + call_sql("ts"),
         options="-c log_min_messages=debug2")
    psql(call_sql("ts_bad"), check_rc=False, options="-c log_min_messages=debug2")
    with open(os.path.join(WORK, "postgres.log"), errors="replace") as f:
        bad = [l for l in f if not l.startswith((" ", "\t")) and "STATEMENT:" not in l
               and any(s in l for s in SECRETS + [WRONG])]
    check(not bad, "no secret in the server log", bad[:3])
    leaked = [e for e in stderr_seen if any(x in e for x in SECRETS + [WRONG])]
    check(stderr_seen and not leaked, "no secret in any error text (%d scripts)" % len(stderr_seen),
          leaked[:1])


def main():
    setup()
    try:
        for t in (test_sharing, test_token_expiry, test_401_fault, test_session_expiry,
                  test_bad_password, test_429, test_5xx, test_cancel, test_no_secrets):
            print("-- %s" % t.__name__)
            try:
                t()
            except Exception as e:          # a broken scenario must not hide the others
                check(False, "%s raised" % t.__name__, repr(e))
    finally:
        sim("POST", "/_sim/config", {"token_ttl_s": 3600})
        psql("DROP DATABASE IF EXISTS %s WITH (FORCE);" % DB, db="postgres", check_rc=False)
    if failures:
        print("FAILED: %d check(s)" % len(failures))
        sys.exit(1)
    print("all auth checks passed")


if __name__ == "__main__":
    main()
