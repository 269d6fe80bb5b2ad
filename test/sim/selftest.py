#!/usr/bin/python3
"""Self-test of the ThingSpace simulator: start it, drive it like the FDW would, check.

Exit 0 on success; on failure prints what went wrong and exits 1.
"""
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import simdata  # noqa: E402  (only tally(), to sum received pages)

SEED = os.path.join(HERE, '..', 'seed', 'billed-usage-api.txt')
CYCLE = {'from': {'year': 2023, 'month': 8}, 'to': {'year': 2023, 'month': 9}}


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# ---- callback receiver ---------------------------------------------------------
class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), ReceiverHandler)
        self.cond = threading.Condition()
        self.got = []            # (path, body bytes, request id)
        self.fail_first = set()  # request ids whose first delivery gets 503


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        m = re.search(rb'"requestId"\s*:\s*"([^"]+)"', body)
        rid = m.group(1).decode() if m else None
        srv = self.server
        with srv.cond:
            fail = rid in srv.fail_first
            srv.fail_first.discard(rid)
            if not fail:
                srv.got.append((self.path, body, rid))
                srv.cond.notify_all()
        self.send_response(503 if fail else 200)
        self.send_header('Content-Length', '0')
        self.end_headers()



def wait_callbacks(recv, rid, n, timeout=10):
    """The first n bodies received for rid (waits up to timeout)."""
    end = time.time() + timeout
    with recv.cond:
        while True:
            got = [g for g in recv.got if g[2] == rid]
            if len(got) >= n:
                return got
            left = end - time.time()
            check(left > 0, 'timed out waiting for %d callback(s) of %s, got %d' % (n, rid, len(got)))
            recv.cond.wait(left)


# ---- simulator client ----------------------------------------------------------
class Client:
    def __init__(self, port):
        self.port = port
        self.token = self.session = None

    def call(self, method, path, body=None, headers=None, raw=False):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=20)
        h = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault('Content-Type', 'application/json')
        try:
            conn.request(method, path, body, h)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        if raw:
            return r.status, r.headers, data
        return r.status, r.headers, (json.loads(data) if data else None)

    def get_token(self, cid='test-client', secret='test-secret'):
        auth = base64.b64encode(('%s:%s' % (cid, secret)).encode()).decode()
        return self.call('POST', '/api/ts/v1/oauth2/token', 'grant_type=client_credentials',
                         {'Authorization': 'Basic ' + auth,
                          'Content-Type': 'application/x-www-form-urlencoded'})

    def auth(self):
        return {'Authorization': 'Bearer ' + self.token, 'VZ-M2M-Token': self.session}

    def billed(self, body):
        return self.call('POST', '/api/m2m/v2/devices/usage/actions/billed', body, self.auth())

    def ok_billed(self, account, **extra):
        st, _, j = self.billed(dict({'accountName': account, 'billingCycle': CYCLE}, **extra))
        check(st == 200 and 'requestId' in j, 'billed %s: expected 200, got %s %s' % (account, st, j))
        return j['requestId']


def seed_block(heading):
    lines = open(SEED, 'rb').read().decode().split('\n')
    i = lines.index(heading) + 1
    j = lines.index('}', i)
    return '\n'.join(lines[i:j + 1])


# ---- the test ---------------------------------------------------------------------
def run(c, recv, rport):
    # concurrency: 60 token requests at once, all get the same token
    toks, errs = [], []

    def grab():
        try:
            toks.append(c.get_token()[2]['access_token'])
        except Exception as e:   # collected and reported below
            errs.append(e)
    ts = [threading.Thread(target=grab) for _ in range(60)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    check(not errs and len(toks) == 60 and len(set(toks)) == 1, 'concurrent tokens: %s %s' % (errs[:1], set(toks)))

    st, _, j = c.get_token('test-client', 'nope')
    check(st == 401 and j.get('error') == 'invalid_client', 'bad client -> 401 invalid_client, got %s %s' % (st, j))
    st, _, j = c.get_token()
    check(st == 200 and j['token_type'] == 'Bearer' and 0 < j['expires_in'] <= 3600, 'token: %s %s' % (st, j))
    c.token = j['access_token']

    login = '/api/m2m/v1/session/login'
    st, _, j = c.call('POST', login, {'username': 'test-user', 'password': 'wrong'},
                      {'Authorization': 'Bearer ' + c.token})
    check(st == 400 and j['errorCode'].endswith('InvalidCredentials'), 'bad password: %s %s' % (st, j))
    st, _, j = c.call('POST', login, {'username': 'test-user', 'password': 'test-pass'},
                      {'Authorization': 'Bearer nope'})
    check(st == 401 and j['fault']['code'] == '900901', 'login with bad bearer: %s %s' % (st, j))
    st, _, j = c.call('POST', login, {'username': 'test-user', 'password': 'test-pass'},
                      {'Authorization': 'Bearer ' + c.token})
    check(st == 200 and 'sessionToken' in j, 'login: %s %s' % (st, j))
    c.session = j['sessionToken']

    # 1. APN seed account via the default callback URL
    rid = c.ok_billed('0000123456-00002')
    (path, body, _), = wait_callbacks(recv, rid, 1)
    doc = json.loads(body)
    summ = doc['deviceResponse']['billingUsageSummary']
    check(path == '/default' and doc['requestId'] == rid and doc['status'] == 'SUCCESS'
          and doc['callbackCount'] == 1 and doc['maxCallbackThreshold'] == 4
          and doc['username'] == 'cbuser' and doc['password'] == 'cbpass'
          and summ['accountName'] == '0000123456-00002' and len(summ['usageApns']) == 2,
          'APN callback content: %s' % body[:300])
    check(b'"totalChargeAmount":21.0,' in body and b'"totalBilledUsage":179.5,\n' in body,
          'APN callback must keep the seed digits and repair the missing comma')
    print('ok   token, login, billed 0000123456-00002 -> callback %s' % rid)

    # 2. fault: 429 once, then success
    st, h, j = c.billed({'accountName': '0000123456-00001~429', 'billingCycle': CYCLE})
    check(st == 429 and h.get('Retry-After') == '1' and j['fault']['code'] == '900800',
          '~429 first: expected 429 + Retry-After, got %s %s %s' % (st, dict(h), j))
    rid = c.ok_billed('0000123456-00001~429')
    (_, body, _), = wait_callbacks(recv, rid, 1)
    summ = json.loads(body)['deviceResponse']['billingUsageSummary']
    check(summ['accountName'] == '0000123456-00001~429' and summ['usageSegments'][0]['ratingGroupBilledAmount'] == 3821.3,
          '~429 result: %s' % body[:300])
    print('ok   ~429 -> 429 Retry-After: 1, then 200 and callback')

    # 3. validation
    dev = {'kind': 'imei', 'id': '350000000000000'}
    for req, code in (
            ({'accountName': '0000123456-00001', 'billingCycle': CYCLE, 'lineLevel': True,
              'deviceId': dev, 'deviceIds': [dev]}, 'DeviceIdAndDeviceIds'),
            ({'accountName': '0000123456-00001', 'billingCycle': CYCLE, 'deviceIds': [dev]}, 'LineLevelRequired'),
            ({'accountName': '0000123456-00001'}, 'BillingCycleRequired'),
            ({'accountName': '0000123456-00002', 'billingCycle': CYCLE,
              'label': {'name': 'VIN', 'value': 'x'}}, 'LabelNotValidForApn'),
            ({'accountName': '9999999999-00001', 'billingCycle': CYCLE}, 'AccountNotFound')):
        st, _, j = c.billed(req)
        check(st == 400 and j['errorCode'].endswith(code), '%s: expected 400 %s, got %s %s' % (req, code, st, j))
    print('ok   validation errors (deviceId+deviceIds, lineLevel, billingCycle, label on APN, unknown account)')

    # 4. generated line-level result in 3 pages, via a registered callback
    st, _, j = c.call('POST', '/api/m2m/v1/callbacks/gen-rg-5000',
                      {'name': 'DeviceService', 'url': 'http://127.0.0.1:%d/registered' % rport,
                       'username': 'reguser', 'password': 'regpass'}, c.auth())
    check(st == 200 and j == {'accountName': 'gen-rg-5000', 'serviceName': 'DeviceService'}, 'register: %s %s' % (st, j))
    t0 = time.time()
    rid = c.ok_billed('gen-rg-5000', lineLevel=True)
    got = wait_callbacks(recv, rid, 3, timeout=15)
    docs = [json.loads(b, parse_float=Decimal) for _, b, _ in got]
    pages = sorted(d['deviceResponse']['billingUsageSummary']['pageNumber'] for d in docs)
    check(pages == [1, 2, 3] and all(d['deviceResponse']['billingUsageSummary']['totalPages'] == 3 for d in docs)
          and all(p == '/registered' and d['username'] == 'reguser' for (p, _, _), d in zip(got, docs)),
          'gen-rg-5000 pages: %s' % pages)
    st, _, exp = c.call('GET', '/_sim/expected?account=gen-rg-5000&line_level=true')
    mine = simdata.tally(docs)
    diff = {k: (mine[k], exp[k]) for k in mine if k != 'pages' and mine[k] != exp[k]}
    check(st == 200 and not diff and exp['device_rows'] == 5000 and exp['pages'] == 3,
          'gen-rg-5000 totals differ from /_sim/expected: %s' % diff)
    first = docs[0]['deviceResponse']['billingUsageSummary']['devices'][0]
    check(re.fullmatch(r'\d+\.\d\d', str(first['totalBilledAmount'])) is not None, 'amounts need 2 fraction digits')
    print('ok   gen-rg-5000 line-level: 3 pages in %.2fs, sums match /_sim/expected (%s)'
          % (time.time() - t0, exp['sum_charge_amount']))

    # 5. broken=apn: the seed's bytes, syntax errors included
    rid = c.ok_billed('0000123456-00002~broken=apn')
    (_, body, _), = wait_callbacks(recv, rid, 1)
    want = seed_block('Per APN (no Device ID or Label)').replace('be36accb-0a9a-4367-93ab-0af6c4ed256a', rid)
    want = '{"username":"cbuser","password":"cbpass",' + want[1:]
    check(body == want.encode(), 'broken=apn body is not the seed verbatim')
    try:
        json.loads(body)
        check(False, 'broken=apn body parsed as JSON')
    except ValueError:
        pass
    print('ok   ~broken=apn delivers the seed example verbatim (invalid JSON)')

    # 6. listener failure -> resend with callbackCount 2
    c.call('POST', '/_sim/config', {'callback_retry_s': 0.2})
    rid = c.ok_billed('0000123456-00002~delay=400')
    with recv.cond:
        recv.fail_first.add(rid)
    (_, body, _), = wait_callbacks(recv, rid, 1)
    check(json.loads(body)['callbackCount'] == 2, 'retry after 503 must carry callbackCount 2')
    print('ok   listener 503 -> resent with callbackCount 2')

    # 7. expiry
    c.call('POST', '/_sim/expire', {'what': 'session'})
    st, _, j = c.billed({'accountName': '0000123456-00002', 'billingCycle': CYCLE})
    check(st == 400 and j['errorCode'] == 'UnifiedWebService.SessionToken.Expired', 'expired session: %s %s' % (st, j))
    c.call('POST', '/_sim/expire', {'what': 'token'})
    st, _, j = c.billed({'accountName': '0000123456-00002', 'billingCycle': CYCLE})
    check(st == 401 and j['fault']['code'] == '900901', 'expired token: %s %s' % (st, j))
    st, _, j = c.get_token()
    check(st == 200 and j['access_token'] != c.token, 'expired token must be replaced')
    print('ok   expired session -> 400 SessionToken.Expired, expired token -> 401 and a new token')

    # 8. log and stats
    st, _, raw = c.call('GET', '/_sim/log?kind=login', raw=True)
    evs = [json.loads(x) for x in raw.decode().splitlines()]
    check(len(evs) == 3 and all(e['body']['password'] == '***' for e in evs if 'password' in e.get('body', {})),
          'login log: %s' % evs)
    st, _, stats = c.call('GET', '/_sim/stats')
    check(stats['billed'] >= 10 and stats['callback_delivery'] >= 8, 'stats: %s' % stats)
    print('ok   /_sim/log masks passwords; stats %s' % {k: v for k, v in stats.items() if v})


def main():
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix='tssim-')
    port_file = os.path.join(tmp, 'port')
    recv = Receiver()
    rport = recv.server_address[1]
    threading.Thread(target=recv.serve_forever, daemon=True).start()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, 'thingspace_sim.py'), '--port', '0',
                             '--port-file', port_file, '--log-file', os.path.join(tmp, 'sim.log'),
                             '--default-callback-url', 'http://127.0.0.1:%d/default' % rport,
                             '--default-callback-username', 'cbuser', '--default-callback-password', 'cbpass'])
    rc = 1
    try:
        end = time.time() + 10
        while not os.path.exists(port_file):
            check(proc.poll() is None, 'simulator exited early with %s' % proc.returncode)
            check(time.time() < end, 'simulator did not write its port file')
            time.sleep(0.05)
        port = int(open(port_file).read())
        run(Client(port), recv, rport)
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=5) == 0, 'SIGTERM: exit status %s' % proc.returncode)
        check(not os.path.exists(port_file), 'port file must be removed on exit')
        print('ok   SIGTERM -> clean exit')
        print('PASS selftest in %.1fs' % (time.time() - t0))
        rc = 0
    except Failure as e:
        print('FAIL %s' % e)
    except Exception as e:
        print('FAIL unexpected %s: %s' % (type(e).__name__, e))
        import traceback
        traceback.print_exc()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        recv.shutdown()
    return rc


if __name__ == '__main__':
    sys.exit(main())
