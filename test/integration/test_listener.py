#!/usr/bin/python3
"""Callback listener and spool against a running test cluster (test/cluster.sh).

Needs the harness environment (source WORKDIR/env): PGHOST, PGPORT, LISTEN_PORT,
CALLBACK_USERNAME, CALLBACK_PASSWORD, TS_WORK.  Python 3 standard library only.
Every request id is unique to this run, so other suites sharing the cluster are
not disturbed.  Exit status 0 = every check passed.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SEED = os.path.join(REPO, "test", "seed", "billed-usage-api.txt")
SEED_REQUEST_ID = "be36accb-0a9a-4367-93ab-0af6c4ed256a"

PORT = int(os.environ["LISTEN_PORT"])
USER = os.environ["CALLBACK_USERNAME"]
PASSWORD = os.environ["CALLBACK_PASSWORD"]
WORK = os.environ["TS_WORK"]
RUN = "lt%d%d" % (os.getpid(), int(time.time()) % 100000)


def psql(sql, retries=0):
    """Run SQL, return stdout lines (unaligned, tuples only, '|' separated)."""
    for attempt in range(retries + 1):
        p = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return [l for l in p.stdout.splitlines() if l != ""]
        if attempt < retries:
            time.sleep(0.5)
    raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))


def rid(name):
    return "%s-%s" % (RUN, name)


def callback_body(request_id, page=None, total=None, user=USER, password=PASSWORD, status="SUCCESS"):
    summary = {"accountName": "0000123456-00001", "unitOfMeasure": "BYTES"}
    if page is not None:
        summary["pageNumber"] = page
    if total is not None:
        summary["totalPages"] = total
    body = {"requestId": request_id, "deviceResponse": {"billingUsageSummary": summary},
            "status": status, "callbackCount": 1, "maxCallbackThreshold": 4}
    if user is not None:
        body["username"] = user
    if password is not None:
        body["password"] = password
    return json.dumps(body)


def post(body, path="/", method="POST", conn=None):
    """One HTTP request to the listener; returns (status, parsed JSON answer or text)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    data = body.encode() if isinstance(body, str) else body
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode()
    if conn is None:
        c.close()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


def listed(request_id):
    """thingspace_callbacks() rows of one request: (page, total, kind, bytes, parsed)."""
    return psql("SELECT coalesce(page::text,''), coalesce(total_pages::text,''), kind, bytes, parsed "
                "FROM thingspace_callbacks() WHERE request_id = '%s' ORDER BY page NULLS LAST, kind"
                % request_id, retries=20)


def payloads(request_id, page=None):
    arg = "NULL" if page is None else str(page)
    p = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-R", "\x1e", "-c",
                        "SELECT * FROM thingspace_callback_payload('%s', %s)" % (request_id, arg)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    out = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
    return [x for x in out.split("\x1e") if x != ""]


def set_setting(name, value):
    if value is None:
        psql("ALTER SYSTEM RESET thingspace_fdw.%s" % name)
    else:
        psql("ALTER SYSTEM SET thingspace_fdw.%s = '%s'" % (name, value))
    psql("SELECT pg_reload_conf()")


def eventually(fn, timeout=15.0, step=0.1):
    """Call fn until it returns a true value; return that value or the last one."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


def worker_pid():
    rows = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'thingspace_fdw listener'",
                retries=20)
    return int(rows[0]) if rows else None


def try_post(body):
    try:
        return post(body)[0]
    except OSError:
        return None


def seed_json_blocks():
    """Top-level JSON examples of the seed page, verbatim: from a '{' line to its '}' line."""
    blocks, cur = [], None
    with open(SEED, encoding="utf-8") as f:
        for line in f:
            if cur is None and line.rstrip("\n") == "{":
                cur = [line]
            elif cur is not None:
                cur.append(line)
                if line.rstrip("\n") == "}":
                    blocks.append("".join(cur))
                    cur = None
    return blocks


def broken_seed_examples():
    out = []
    for b in seed_json_blocks():
        try:
            json.loads(b)
        except ValueError:
            out.append(b)
    return out


# ---------------------------------------------------------------- checks

def test_stored():
    r = rid("stored")
    status, answer = post(callback_body(r, 1, 2))
    assert status == 200, (status, answer)
    assert answer == {"status": "stored"}, answer
    rows = listed(r)
    assert len(rows) == 1, rows
    page, total, kind, nbytes, parsed = rows[0].split("|")
    assert (page, total, kind, parsed) == ("1", "2", "page", "t"), rows
    assert int(nbytes) > 0
    body = payloads(r)[0]
    assert PASSWORD not in body and USER not in body, body
    assert '"password": "[redacted]"' in body, body
    assert json.loads(body)["requestId"] == r


def test_wrong_credentials():
    r = rid("wrongcreds")
    assert post(callback_body(r, 1, 1, password="not-the-password"))[0] == 401
    assert post(callback_body(r, 1, 1, user="someone-else"))[0] == 401
    assert post(callback_body(r, 1, 1, user=None, password=None))[0] == 401
    # broken JSON with wrong credentials: refused too
    assert post('{"requestId":"%s","username":"%s","password":"nope", oops' % (r, USER))[0] == 401
    assert listed(r) == [], listed(r)


def test_disallowed_source():
    r = rid("source")
    try:
        set_setting("allowed_sources", "192.0.2.0/24, 2001:db8::/32")
        status = eventually(lambda: try_post(callback_body(r, 1, 1)) == 403 and 403)
        assert status == 403, status
        assert listed(r) == []
        set_setting("allowed_sources", "10.0.0.0/8, 127.0.0.0/8")
        assert eventually(lambda: try_post(callback_body(r, 1, 1)) == 200), "127.0.0.0/8 refused"
    finally:
        set_setting("allowed_sources", None)
    assert eventually(lambda: try_post(callback_body(rid("source2"), 1, 1)) == 200)
    assert len(listed(r)) == 1


def test_oversize():
    r = rid("oversize")
    limit = int(psql("SELECT setting::bigint * 1024 FROM pg_settings "
                     "WHERE name = 'thingspace_fdw.max_callback_size'")[0])
    # Declared too large: answered before any of the body is read.
    s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (limit + 1))
    head = s.recv(4096).decode(errors="replace")
    s.close()
    assert head.startswith("HTTP/1.1 413"), head
    # Chunked, so the size is only known while reading: drained, then 413.
    s = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    first = callback_body(r, 1, 1)[:-1] + ', "pad": "'
    chunk = b"x" * (1 << 20)
    s.sendall(b"%x\r\n%s\r\n" % (len(first), first.encode()))
    for _ in range(limit // len(chunk) + 1):
        s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    s.sendall(b'2\r\n"}\r\n0\r\n\r\n')
    head = s.recv(4096).decode(errors="replace")
    s.close()
    assert head.startswith("HTTP/1.1 413"), head
    assert listed(r) == []


def test_methods_and_paths():
    assert post("", method="GET")[0] == 405
    assert post("{}", method="PUT")[0] == 405
    assert post(callback_body(rid("path"), 1, 1), path="/elsewhere")[0] == 404
    assert listed(rid("path")) == []


def test_duplicate():
    r = rid("dup")
    body = callback_body(r, 2, 3)
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)  # keep-alive, like the vendor
    first = post(body, conn=c)
    second = post(body, conn=c)
    c.close()
    assert first == (200, {"status": "stored"}), first
    assert second == (200, {"status": "duplicate"}), second
    assert len(listed(r)) == 1, listed(r)


def test_out_of_order():
    r = rid("order")
    for page in (3, 1, 2):
        body = json.loads(callback_body(r, page, 3))
        body["marker"] = "page-%d" % page
        assert post(json.dumps(body))[0] == 200
    rows = listed(r)
    assert [x.split("|")[0] for x in rows] == ["1", "2", "3"], rows
    bodies = payloads(r)
    assert [json.loads(b)["marker"] for b in bodies] == ["page-1", "page-2", "page-3"], bodies
    assert [json.loads(b)["marker"] for b in payloads(r, 2)] == ["page-2"]
    assert payloads(r, 7) == []


def test_failed():
    r = rid("failed")
    body = {"requestId": r, "username": USER, "password": PASSWORD, "status": "Failed",
            "faultResponse": {"faultcode": "REQUEST_FAILED.UnexpectedError",
                              "faultstring": "Could not process the request."}}
    assert post(json.dumps(body))[0] == 200
    rows = listed(r)
    assert rows and rows[0].split("|")[2] == "failed", rows


def test_broken_seed_examples():
    examples = broken_seed_examples()
    assert len(examples) >= 3, "expected the seed page's broken examples, found %d" % len(examples)
    for i, text in enumerate(examples):
        r = rid("broken%d" % i)
        assert text.count(SEED_REQUEST_ID) == 1
        # verbatim but for a request id of our own and the credentials the vendor adds
        body = text.replace(SEED_REQUEST_ID, r, 1)
        body = body.replace("{", '{"username":"%s","password":"%s",' % (USER, PASSWORD), 1)
        status, answer = post(body)
        assert status == 200, (i, status, answer)
        rows = listed(r)
        assert len(rows) == 1, rows
        page, total, kind, nbytes, parsed = rows[0].split("|")
        assert (page, total, kind, parsed) == ("", "", "broken", "f"), rows
        stored = payloads(r)
        expected = body.replace('"%s"' % USER, '"[redacted]"').replace('"%s"' % PASSWORD, '"[redacted]"')
        assert stored == [expected.rstrip("\n")] or stored == [expected], (stored[:1], expected[:200])
        assert PASSWORD not in stored[0]


def test_credentials_any_case_in_broken_body():
    r = rid("casecreds")
    body = '{"requestId":"%s","UserName":"%s","PASSWORD":"%s", "oops"' % (r, USER, PASSWORD)
    assert post(body)[0] == 200
    stored = payloads(r)
    assert len(stored) == 1 and PASSWORD not in stored[0], stored


def test_page_number_out_of_range():
    r = rid("hugepage")
    assert post(callback_body(r, 10 ** 12, 10 ** 12))[0] == 200
    rows = listed(r)
    assert len(rows) == 1 and rows[0].split("|")[2] == "broken", rows


def test_unrouted():
    before = len(listed("_unrouted"))
    tag = rid("unrouted")
    assert post('{"username":"%s","password":"%s","hello":"%s" nope' % (USER, PASSWORD, tag))[0] == 200
    assert post(callback_body("../../" + tag, 1, 1))[0] == 200   # not a usable directory name
    assert len(listed("_unrouted")) >= before + 2
    assert any(tag in b for b in payloads("_unrouted"))


def test_retention():
    old, new = rid("retold"), rid("retnew")
    tag = rid("retunrouted")
    assert post(callback_body(old, 1, 2))[0] == 200
    assert post(callback_body(old, 2, 2))[0] == 200
    assert post(callback_body(new, 1, 1))[0] == 200
    assert post('{"username":"%s","password":"%s","x":"%s" broken' % (USER, PASSWORD, tag))[0] == 200
    three_days_ago = time.time() - 3 * 86400
    for f in os.listdir(os.path.join(spool_dir(), old)):
        os.utime(os.path.join(spool_dir(), old, f), (three_days_ago, three_days_ago))
    unrouted = os.path.join(spool_dir(), "_unrouted")
    for f in os.listdir(unrouted):
        with open(os.path.join(unrouted, f), encoding="utf-8", errors="replace") as fh:
            if tag in fh.read():
                os.utime(os.path.join(unrouted, f), (three_days_ago, three_days_ago))
    try:
        set_setting("spool_retention", "2d")   # a reload purges at once
        assert eventually(lambda: listed(old) == []), "expired request not purged"
        assert not os.path.exists(os.path.join(spool_dir(), old))
        assert len(listed(new)) == 1, "recent request purged"
        assert not any(tag in b for b in payloads("_unrouted")), "expired unrouted body not purged"
    finally:
        set_setting("spool_retention", None)


def test_port_in_use_then_rebind():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    other = busy.getsockname()[1]
    log = os.path.join(WORK, "postgres.log")
    try:
        set_setting("listen_port", str(other))
        msg = "could not listen on 127.0.0.1:%d" % other
        assert eventually(lambda: msg in open(log, errors="replace").read()), "no log line for a busy port"
        assert try_post(callback_body(rid("moved0"), 1, 1)) is None, "old port still open"
        busy.close()
        t0 = time.time()
        ok = eventually(lambda: try_post_port(other, callback_body(rid("moved"), 1, 1)) == 200, timeout=15)
        assert ok, "listener did not bind the port once it was free"
        print("   bound the freed port after %.1f s" % (time.time() - t0))
        assert worker_pid(), "worker gone"
    finally:
        busy.close()
        set_setting("listen_port", None)
    assert eventually(lambda: try_post(callback_body(rid("back"), 1, 1)) == 200), "not back on its port"


def try_post_port(port, body):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/", body=body.encode())
        return c.getresponse().status
    except OSError:
        return None


def test_write_error_is_500():
    r = rid("unwritable")
    spool = spool_dir()
    mode = os.stat(spool).st_mode & 0o7777
    os.chmod(spool, 0o500)        # the worker (user postgres) cannot create the request directory
    try:
        status = post(callback_body(r, 1, 1))[0]
    finally:
        os.chmod(spool, mode)
    assert status == 500, status
    assert listed(r) == []
    # the vendor resends: now it is stored
    assert post(callback_body(r, 1, 1)) == (200, {"status": "stored"})


def test_nothing_secret_on_disk():
    spool = spool_dir()
    for root, _, files in os.walk(spool):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert PASSWORD.encode() not in fh.read(), os.path.join(root, f)


def spool_dir():
    return os.path.join(WORK, "data", "pg_thingspace")


def test_worker_restart():
    r = rid("beforekill")
    assert post(callback_body(r, 1, 1))[0] == 200
    # what a listener killed in the middle of a write leaves behind
    leftover = os.path.join(spool_dir(), ".tmp-424242-1")
    with open(leftover, "w") as f:
        f.write('{"requestId": "half-writ')
    pid = worker_pid()
    assert pid, "no 'thingspace_fdw listener' in pg_stat_activity"
    os.kill(pid, signal.SIGKILL)
    t0 = time.time()
    # kill -9 of a backend makes the postmaster reinitialise; the worker comes back.
    new = eventually(lambda: try_post(callback_body(rid("afterkill"), 1, 1)) == 200, timeout=30)
    took = time.time() - t0
    assert new, "listener did not come back after kill -9"
    assert took < 15, "listener took %.1f s to come back" % took
    newpid = eventually(worker_pid, timeout=10)
    assert newpid and newpid != pid, (pid, newpid)
    assert len(listed(r)) == 1, "spool lost a callback across the worker crash"
    assert not os.path.exists(leftover), "temporary file of a crashed write not removed"
    print("   listener back %.1f s after kill -9" % took)


def test_durable_across_immediate_restart():
    r = rid("durable")
    assert post(callback_body(r, 1, 1))[0] == 200
    subprocess.run([os.path.join(REPO, "test", "cluster.sh"), "restart-pg", WORK, "immediate"],
                   check=True, capture_output=True)
    assert len(listed(r)) == 1, "acknowledged callback lost by an immediate shutdown"
    assert eventually(lambda: try_post(callback_body(rid("durable2"), 1, 1)) == 200, timeout=30)


TESTS = [test_stored, test_wrong_credentials, test_disallowed_source, test_oversize,
         test_methods_and_paths, test_duplicate, test_out_of_order, test_failed,
         test_broken_seed_examples, test_credentials_any_case_in_broken_body,
         test_page_number_out_of_range, test_unrouted, test_retention, test_port_in_use_then_rebind,
         test_write_error_is_500, test_nothing_secret_on_disk, test_worker_restart, test_durable_across_immediate_restart]


def main():
    psql("CREATE EXTENSION IF NOT EXISTS thingspace_fdw", retries=20)
    failed = 0
    for t in TESTS:
        t0 = time.time()
        try:
            t()
            print("ok   %s (%.2f s)" % (t.__name__, time.time() - t0))
        except Exception as e:  # report every failure, then fail the run
            failed += 1
            print("FAIL %s: %r" % (t.__name__, e))
    print("%d of %d listener checks failed" % (failed, len(TESTS)) if failed else
          "all %d listener checks passed" % len(TESTS))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
