#!/usr/bin/python3
"""Verizon ThingSpace billed-usage simulator for thingspace_fdw tests.

Vendor endpoints (OAuth token, M2M session, callback registration, billed usage)
plus asynchronous callback delivery, faults chosen by the account name
(`<base>~mod~mod=value`), and a /_sim/ control API. Standard library only.
See README.md in this directory.
"""
import argparse
import base64
import http.client
import json
import math
import os
import re
import signal
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simdata  # noqa: E402

DEFAULT_CONFIG = {'token_ttl_s': 3600, 'session_idle_s': 1200, 'callback_delay_ms': 20,
                  'callback_retry_s': 1, 'page_size': 2000}
CLIENTS = {'test-client': 'test-secret', 'test-client2': 'test-secret2'}
USERS = {'test-user': 'test-pass', 'test-user2': 'test-pass2'}
SEED_ACCOUNTS = {'0000123456-00001': 'rg', '0000123456-00002': 'apn'}
MAX_CALLBACKS = 4
LOCK_AFTER = 5
DELIVERY_SERVICE = 'DeviceService'
LOG_KINDS = ('token', 'login', 'logout', 'billed', 'callback_register', 'callback_list',
             'callback_delete', 'callback_delivery', 'callback_dropped', 'other')

FLAG_MODS = {'429', '503', '503once', '401once', 'sessexp', 'dup', 'reverse', 'nocb', 'failed'}
INT_MODS = {'slowpost', 'delay', 'pages'}
GEN_RE = re.compile(r'gen-(apn|rg)-(\d{1,7})$')

SVC = 'UnifiedWebService.'


class Account:
    """A parsed account name: base, kind ('apn'|'rg'), seed or generated, modifiers."""

    def __init__(self, name, base, kind, n, mods):
        self.name, self.base, self.kind, self.n, self.mods = name, base, kind, n, mods


def parse_account(name, seed):
    """'<base>(~mod)*' -> Account, or None when the base or a modifier is unknown."""
    if not isinstance(name, str):
        return None
    base, *parts = name.split('~')
    mods = {}
    for part in parts:
        key, eq, val = part.partition('=')
        if key in FLAG_MODS and not eq:
            mods[key] = True
        elif key in INT_MODS and eq and val.isdigit():
            mods[key] = int(val)
        elif key == 'broken' and val in seed.verbatim:
            mods[key] = val
        else:
            return None
    if mods.get('pages') == 0:
        return None
    if base in SEED_ACCOUNTS:
        return Account(name, base, SEED_ACCOUNTS[base], None, mods)
    m = GEN_RE.match(base)
    if m:
        return Account(name, base, m.group(1), int(m.group(2)), mods)
    return None


def base_of(name):
    return name.split('~', 1)[0]


def service_error(code, message):
    return {'errorCode': SVC + code, 'errorMessage': message}


def gateway_fault(code, message, description):
    return {'fault': {'code': code, 'message': message, 'description': description}}


def validate_billed(req):
    """Request checks of the real API -> (code, message) or None."""
    acct = req.get('accountName')
    if not isinstance(acct, str) or not acct:
        return 'INPUT_INVALID.AccountNameRequired', 'accountName is required'
    cyc = req.get('billingCycle')
    if not isinstance(cyc, dict) or 'from' not in cyc or 'to' not in cyc:
        return 'INPUT_INVALID.BillingCycleRequired', 'billingCycle with from and to is required'
    ym = []
    for end in ('from', 'to'):
        v = cyc[end]
        if not isinstance(v, dict):
            return 'INPUT_INVALID.BillingCycleInvalid', 'billingCycle.%s must be an object' % end
        for f in ('year', 'month'):
            x = v.get(f)
            if type(x) is not int:
                return 'INPUT_INVALID.BillingCycleInvalid', 'billingCycle.%s.%s must be an integer' % (end, f)
        if not 1 <= v['month'] <= 12:
            return 'INPUT_INVALID.BillingCycleInvalid', 'billingCycle.%s.month must be 1 through 12' % end
        if not 1000 <= v['year'] <= 9999:
            return 'INPUT_INVALID.BillingCycleInvalid', 'billingCycle.%s.year must have 4 digits' % end
        ym.append((v['year'], v['month']))
    if ym[0] > ym[1]:
        return 'INPUT_INVALID.BillingCycleInvalid', 'billingCycle.from is after billingCycle.to'
    if 'lineLevel' in req and not isinstance(req['lineLevel'], bool):
        return 'INPUT_INVALID.LineLevel', 'lineLevel must be a boolean'
    if 'deviceId' in req and 'deviceIds' in req:
        return 'INPUT_INVALID.DeviceIdAndDeviceIds', 'deviceId and deviceIds cannot be in the same request'

    def bad_dev(d):
        return not (isinstance(d, dict) and isinstance(d.get('kind'), str) and isinstance(d.get('id'), str))
    if 'deviceId' in req and bad_dev(req['deviceId']):
        return 'INPUT_INVALID.DeviceId', 'deviceId must be an object with kind and id'
    if 'deviceIds' in req:
        ids = req['deviceIds']
        if not isinstance(ids, list) or not ids or any(bad_dev(d) for d in ids):
            return 'INPUT_INVALID.DeviceIds', 'deviceIds must be a non-empty list of {kind, id}'
        if req.get('lineLevel') is not True:
            return 'INPUT_INVALID.LineLevelRequired', 'if deviceIds is used, lineLevel must be true'
    if 'label' in req:
        lb = req['label']
        if not (isinstance(lb, dict) and isinstance(lb.get('name'), str) and isinstance(lb.get('value'), str)):
            return 'INPUT_INVALID.Label', 'label must be an object with name and value'
    return None


def http_post(url, body, timeout=30):
    """POST body to url -> (status or None, error text or None)."""
    u = urllib.parse.urlsplit(url)
    path = (u.path or '/') + ('?' + u.query if u.query else '')
    try:
        if u.scheme == 'https':
            conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        try:
            conn.request('POST', path, body, {'Content-Type': 'application/json',
                                              'User-Agent': 'thingspace-sim'})
            resp = conn.getresponse()
            resp.read()
            return resp.status, None
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError) as e:
        return None, '%s: %s' % (type(e).__name__, e)


class Sim:
    """All simulator state; one lock guards it."""

    def __init__(self, args):
        self.args = args
        self.seed = simdata.Seed(args.seed)
        self.lock = threading.Lock()
        self.log_fp = open(args.log_file, 'a', encoding='utf-8') if args.log_file else None
        self.reset()

    def reset(self):
        with self.lock:
            self.config = dict(DEFAULT_CONFIG)
            self.tokens = {}          # token -> {'client', 'expires'}
            self.client_token = {}    # client -> current token
            self.sessions = {}        # session -> {'user', 'last'}
            self.failed = {}          # username -> consecutive failed logins
            self.locked = set()
            self.fired = set()        # (account, fault) already triggered
            self.callbacks = {}       # base account -> {service: {'url', 'username', 'password'}}
            self.events = []
            self.seq = 0
            self.pending = 0
            self.generation = getattr(self, 'generation', 0) + 1   # stops old deliveries
        if self.log_fp:
            self._write_file({'kind': 'reset', 'ts': round(time.time(), 3)})

    def _write_file(self, ev):
        self.log_fp.write(json.dumps(ev) + '\n')
        self.log_fp.flush()

    def event(self, kind, **fields):
        with self.lock:
            self.seq += 1
            ev = {'seq': self.seq, 'ts': round(time.time(), 3), 'kind': kind}
            ev.update({k: v for k, v in fields.items() if v is not None or k in ('status', 'listener_status')})
            self.events.append(ev)
            if self.log_fp:
                self._write_file(ev)

    def first(self, account, fault):
        """True exactly once per (account, fault) until reset."""
        with self.lock:
            if (account, fault) in self.fired:
                return False
            self.fired.add((account, fault))
            return True

    # -- auth -------------------------------------------------------------
    def issue_token(self, client):
        now = time.time()
        with self.lock:
            tok = self.client_token.get(client)
            t = self.tokens.get(tok)
            if t is None or t['expires'] <= now:
                tok = str(uuid.uuid4())
                t = {'client': client, 'expires': now + self.config['token_ttl_s']}
                self.tokens[tok] = t
                self.client_token[client] = tok
            return tok, max(1, math.ceil(t['expires'] - now))

    def token_valid(self, tok):
        with self.lock:
            t = self.tokens.get(tok)
            return t is not None and t['expires'] > time.time()

    def revoke_token(self, tok):
        with self.lock:
            t = self.tokens.pop(tok, None)
            if t and self.client_token.get(t['client']) == tok:
                del self.client_token[t['client']]

    def touch_session(self, sid):
        """True and extend if live; expired sessions are dropped."""
        now = time.time()
        with self.lock:
            s = self.sessions.get(sid)
            if s is None:
                return False
            if now - s['last'] > self.config['session_idle_s']:
                del self.sessions[sid]
                return False
            s['last'] = now
            return True

    # -- results ------------------------------------------------------------
    def gen_devices(self, acct, req):
        """Device indices of a generated result (deviceIds order, unknown ids skipped)."""
        def index(d):
            if d.get('kind', '').lower() != 'imei' or not d.get('id', '').isdigit():
                return None
            i = int(d['id']) - simdata.IMEI_BASE
            return i if 0 <= i < acct.n else None
        if 'deviceIds' in req:
            out, seen = [], set()
            for d in req['deviceIds']:
                i = index(d)
                if i is not None and i not in seen:
                    seen.add(i)
                    out.append(i)
            return out
        if 'deviceId' in req:
            i = index(req['deviceId'])
            return [] if i is None else [i]
        return range(acct.n)

    def result(self, acct, req, rid, creds, page_size):
        """(total pages, build) where build(p) -> simdata.Page for p in 1..total."""
        mods, k = acct.mods, acct.mods.get('pages')
        if mods.get('failed'):
            return 1, lambda p: simdata.failed_page(rid, creds)
        if 'broken' in mods:
            return 1, lambda p: simdata.broken_page(self.seed, mods['broken'], rid, creds)
        line = req.get('lineLevel') is True
        if acct.n is None:
            if line:
                variant = acct.kind + '-line'
            elif 'deviceId' in req:
                variant = acct.kind + '-device'
            elif 'label' in req and acct.kind == 'rg':
                variant = 'rg-label'
            else:
                variant = acct.kind
            pages = simdata.seed_pages(self.seed, variant, rid, acct.name, creds, k)
            return len(pages), lambda p: pages[p - 1]
        cyc = req['billingCycle']
        cycle = {e: {'year': cyc[e]['year'], 'month': cyc[e]['month']} for e in ('from', 'to')}
        ident = None
        if 'deviceId' in req and not line:
            ident = {'id': req['deviceId']['id'], 'kind': req['deviceId']['kind']}
        return simdata.gen_pages(acct.kind, acct.n, self.gen_devices(acct, req), line, rid,
                                 acct.name, creds, cycle, page_size, k, ident, req.get('label'))

    def expected(self, q):
        """Figures for /_sim/expected (query dict of single values)."""
        acct = parse_account(q.get('account'), self.seed)
        if acct is None:
            return None
        req = {'accountName': acct.name, 'lineLevel': q.get('line_level', 'false').lower() in ('true', '1', 't', 'yes'),
               'billingCycle': {'from': {'year': 2023, 'month': 1}, 'to': {'year': 2023, 'month': 1}}}
        kind = q.get('device_kind', 'imei')
        if q.get('device_id'):
            req['deviceId'] = {'kind': kind, 'id': q['device_id']}
        if q.get('device_ids'):
            req['deviceIds'] = [{'kind': kind, 'id': x} for x in q['device_ids'].split(',') if x]
            req['lineLevel'] = True
        if q.get('label_name') is not None:
            req['label'] = {'name': q['label_name'], 'value': q.get('label_value', '')}
        acct.mods.pop('failed', None)
        acct.mods.pop('broken', None)
        page_size = self.config['page_size']
        k = acct.mods.get('pages')
        if acct.n is None:
            total, build = self.result(acct, req, 'expected', '', page_size)
            out = simdata.tally([build(p).body(1) for p in range(1, total + 1)])
        else:
            devs = self.gen_devices(acct, req)
            line = req['lineLevel']
            total = (k or max(1, -(-len(devs) // page_size))) if line else (k or 1)
            out = simdata.gen_expected(total, devs, line, k)
        out.update({'account': acct.name, 'line_level': req['lineLevel']})
        return out

    # -- delivery -----------------------------------------------------------
    def deliver_later(self, acct, req, rid):
        """Start one thread per request; its pages go out in order, retries on timers."""
        mods = acct.mods
        delay = mods.get('delay', self.config['callback_delay_ms']) / 1000.0
        gen = self.generation
        with self.lock:
            self.pending += 1
            page_size = self.config['page_size']
        t = threading.Timer(delay, self._run_delivery, (acct, req, rid, gen, page_size))
        t.daemon = True
        t.start()

    def _done(self, gen):
        with self.lock:
            if gen == self.generation:     # a reset already zeroed the counter
                self.pending -= 1

    def _run_delivery(self, acct, req, rid, gen, page_size):
        try:
            if gen != self.generation:
                return
            with self.lock:
                reg = self.callbacks.get(acct.base, {}).get(DELIVERY_SERVICE)
            a = self.args
            url = reg['url'] if reg else a.default_callback_url
            user = reg.get('username') if reg and reg.get('username') is not None else a.default_callback_username
            pw = reg.get('password') if reg and reg.get('password') is not None else a.default_callback_password
            if acct.mods.get('nocb') or not url:
                self.event('callback_dropped', account=acct.name, request_id=rid,
                           reason='nocb modifier' if url else 'no callback URL registered or default')
                return
            creds = simdata.creds_text(user, pw)
            total, build = self.result(acct, req, rid, creds, page_size)
            order = range(total, 0, -1) if acct.mods.get('reverse') else range(1, total + 1)
            for p in order:
                if gen != self.generation:
                    return
                self._send(acct, rid, url, build(p), 1, gen, acct.mods.get('dup'))
        except Exception:
            traceback.print_exc()
        finally:
            self._done(gen)

    def _send(self, acct, rid, url, page, count, gen, dup):
        if gen != self.generation:
            return
        body = page.body(count)
        status, err = http_post(url, body)
        self.event('callback_delivery', method='POST', path=url, status=status, account=acct.name,
                   request_id=rid, page=page.number, callback_count=count, listener_status=status,
                   bytes=len(body), error=err)
        ok = status is not None and 200 <= status < 300
        if ok and dup and count < MAX_CALLBACKS:
            self._send(acct, rid, url, page, count + 1, gen, False)
        elif not ok and count < MAX_CALLBACKS:
            with self.lock:
                self.pending += 1
                retry = self.config['callback_retry_s']
            t = threading.Timer(retry, self._retry, (acct, rid, url, page, count + 1, gen, dup))
            t.daemon = True
            t.start()

    def _retry(self, acct, rid, url, page, count, gen, dup):
        try:
            self._send(acct, rid, url, page, count, gen, dup)
        except Exception:
            traceback.print_exc()
        finally:
            self._done(gen)


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'     # keep-alive, as libcurl expects
    server_version = 'ThingSpaceSim/1.0'

    def log_message(self, fmt, *args):
        if self.server.sim.args.verbose:
            sys.stderr.write('sim: ' + (fmt % args) + '\n')

    @property
    def sim(self):
        return self.server.sim

    # -- plumbing -----------------------------------------------------------
    def read_body(self):
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return b''.join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n > 0 else b''

    def reply(self, status, obj, headers=None, ctype='application/json'):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.status = status

    def json_body(self):
        try:
            return json.loads(self.body.decode('utf-8')) if self.body else None
        except (ValueError, UnicodeDecodeError):
            return ValueError

    def do_GET(self):
        self.dispatch('GET')

    def do_POST(self):
        self.dispatch('POST')

    def do_DELETE(self):
        self.dispatch('DELETE')

    def do_PUT(self):
        self.dispatch('PUT')

    ROUTES = [
        ('POST', re.compile(r'/api/ts/v1/oauth2/token$'), 'token'),
        ('POST', re.compile(r'/api/m2m/v1/session/login$'), 'login'),
        ('POST', re.compile(r'/api/m2m/v1/session/logout$'), 'logout'),
        ('POST', re.compile(r'/api/m2m/v2/devices/usage/actions/billed$'), 'billed'),
        ('POST', re.compile(r'/api/m2m/v1/callbacks/([^/]+)$'), 'callback_register'),
        ('GET', re.compile(r'/api/m2m/v1/callbacks/([^/]+)$'), 'callback_list'),
        ('DELETE', re.compile(r'/api/m2m/v1/callbacks/([^/]+)/name/([^/]+)$'), 'callback_delete'),
        ('POST', re.compile(r'/_sim/reset$'), 'sim_reset'),
        ('GET', re.compile(r'/_sim/config$'), 'sim_config'),
        ('POST', re.compile(r'/_sim/config$'), 'sim_config'),
        ('POST', re.compile(r'/_sim/expire$'), 'sim_expire'),
        ('GET', re.compile(r'/_sim/log$'), 'sim_log'),
        ('GET', re.compile(r'/_sim/stats$'), 'sim_stats'),
        ('GET', re.compile(r'/_sim/expected$'), 'sim_expected'),
        ('GET', re.compile(r'/_sim/health$'), 'sim_health'),
    ]

    def dispatch(self, method):
        self.status = None
        self.body = self.read_body()
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        for m, rx, name in self.ROUTES:
            match = rx.match(url.path)
            if match and m == method:
                args = [urllib.parse.unquote(g) for g in match.groups()]
                try:
                    getattr(self, 'h_' + name)(*args)
                except Exception:
                    traceback.print_exc()
                    if self.status is None:
                        self.reply(500, service_error('REQUEST_FAILED.UnexpectedError', 'simulator error'))
                return
        self.reply(404, gateway_fault('900906', 'No matching resource found',
                                      'No matching resource found in the API for the given request'))
        self.sim.event('other', method=method, path=url.path, status=404)

    def ev(self, kind, **fields):
        self.sim.event(kind, method=self.command, path=urllib.parse.urlsplit(self.path).path,
                       status=self.status, **fields)

    def bearer(self):
        """The valid bearer token, or None after answering 401."""
        auth = self.headers.get('Authorization', '')
        scheme, _, tok = auth.partition(' ')
        if not auth:
            self.reply(401, gateway_fault('900902', 'Missing Credentials',
                                          'Required OAuth credentials not provided'))
            return None
        if scheme.lower() != 'bearer' or not self.sim.token_valid(tok.strip()):
            self.reply(401, gateway_fault('900901', 'Invalid Credentials',
                                          'Access failure for API. Make sure your provided '
                                          'access token is valid and not expired'))
            return None
        return tok.strip()

    def session(self):
        """The live VZ-M2M-Token, or None after answering 400."""
        sid = self.headers.get('VZ-M2M-Token', '').strip()
        if not sid:
            self.reply(400, service_error('SessionToken.Invalid', 'VZ-M2M-Token header is missing'))
            return None
        if not self.sim.touch_session(sid):
            self.reply(400, service_error('SessionToken.Expired', 'Session token is expired or unknown'))
            return None
        return sid

    # -- vendor API -----------------------------------------------------------
    def h_token(self):
        form = urllib.parse.parse_qs(self.body.decode('utf-8', 'replace'))
        grant = form.get('grant_type', [None])[0]
        client = None
        auth = self.headers.get('Authorization', '')
        if auth[:6].lower() == 'basic ':
            try:
                client, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(':')
            except (ValueError, UnicodeDecodeError):
                client, secret = None, None
            if CLIENTS.get(client) != secret:
                client = None
        if client is None:
            self.reply(401, {'error': 'invalid_client',
                             'error_description': 'Client authentication failed'})
        elif grant != 'client_credentials':
            self.reply(400, {'error': 'unsupported_grant_type',
                             'error_description': 'grant_type must be client_credentials'})
        else:
            tok, left = self.sim.issue_token(client)
            self.reply(200, {'access_token': tok, 'token_type': 'Bearer',
                             'scope': 'am_application_scope default', 'expires_in': left})
        self.ev('token', client=client, body={'grant_type': grant})

    def h_login(self):
        body = self.json_body()
        masked = dict(body, password='***') if isinstance(body, dict) and 'password' in body else body
        if masked is ValueError:
            masked = self.body.decode('utf-8', 'replace')
        if self.bearer():
            self._login(body)
        self.ev('login', body=masked)

    def _login(self, body):
        if not isinstance(body, dict) or not isinstance(body.get('username'), str) \
                or not isinstance(body.get('password'), str):
            return self.reply(400, service_error('REQUEST_FAILED.InvalidCredentials',
                                                 'username and password are required'))
        user, pw = body['username'], body['password']
        sim = self.sim
        with sim.lock:
            if user in sim.locked:
                code, msg = 'REQUEST_FAILED.AccountLocked', 'The user account is locked'
            elif USERS.get(user) == pw:
                sim.failed[user] = 0
                sid = str(uuid.uuid4())
                sim.sessions[sid] = {'user': user, 'last': time.time()}
                code = None
            else:
                sim.failed[user] = sim.failed.get(user, 0) + 1
                if sim.failed[user] >= LOCK_AFTER:
                    sim.locked.add(user)
                code, msg = 'REQUEST_FAILED.InvalidCredentials', 'Invalid username or password'
        if code:
            self.reply(400, service_error(code, msg))
        else:
            self.reply(200, {'sessionToken': sid})

    def h_logout(self):
        if self.bearer() and self.session():
            sid = self.headers.get('VZ-M2M-Token').strip()
            with self.sim.lock:
                self.sim.sessions.pop(sid, None)
            self.reply(200, {'sessionToken': sid})
        self.ev('logout')

    def _callback_auth(self, account):
        if not (self.bearer() and self.session()):
            return False
        if parse_account(base_of(account), self.sim.seed) is None:
            self.reply(400, service_error('REQUEST_FAILED.AccountNotFound', 'Account %s not found' % account))
            return False
        return True

    def h_callback_register(self, account):
        body = self.json_body()
        masked = dict(body, password='***') if isinstance(body, dict) and 'password' in body else body
        if masked is ValueError:
            masked = self.body.decode('utf-8', 'replace')
        if self._callback_auth(account):
            if not isinstance(body, dict) or not isinstance(body.get('name'), str) \
                    or not isinstance(body.get('url'), str) or not body['name'] or not body['url']:
                self.reply(400, service_error('INPUT_INVALID.Callback', 'name and url are required'))
            else:
                with self.sim.lock:
                    self.sim.callbacks.setdefault(base_of(account), {})[body['name']] = {
                        'url': body['url'], 'username': body.get('username'),
                        'password': body.get('password')}
                self.reply(200, {'accountName': account, 'serviceName': body['name']})
        self.ev('callback_register', account=account, body=masked)

    def h_callback_list(self, account):
        if self._callback_auth(account):
            with self.sim.lock:
                regs = self.sim.callbacks.get(base_of(account), {})
                out = [{'accountName': account, 'name': n, 'url': r['url']} for n, r in regs.items()]
            self.reply(200, out)
        self.ev('callback_list', account=account)

    def h_callback_delete(self, account, service):
        if self._callback_auth(account):
            with self.sim.lock:
                found = self.sim.callbacks.get(base_of(account), {}).pop(service, None)
            if found:
                self.reply(200, {'accountName': account, 'serviceName': service})
            else:
                self.reply(400, service_error('REQUEST_FAILED.CallbackNotFound',
                                              'No callback %s registered for %s' % (service, account)))
        self.ev('callback_delete', account=account, body={'name': service})

    def h_billed(self):
        req = self.json_body()
        logged = self.body.decode('utf-8', 'replace') if req is ValueError else req
        rid = None
        account = req.get('accountName') if isinstance(req, dict) else None
        try:
            rid = self._billed(req)
        finally:
            self.ev('billed', account=account if isinstance(account, str) else None,
                    request_id=rid, body=logged)

    def _billed(self, req):
        tok = self.bearer()
        if not tok or not self.session():
            return None
        if not isinstance(req, dict):
            return self.reply(400, service_error('INPUT_INVALID.MalformedRequest',
                                                 'request body must be a JSON object'))
        sim = self.sim
        acct = parse_account(req.get('accountName'), sim.seed)
        if acct:
            mods, name = acct.mods, acct.name
            if mods.get('slowpost'):
                time.sleep(mods['slowpost'] / 1000.0)
            if mods.get('401once') and sim.first(name, '401once'):
                sim.revoke_token(tok)
                return self.reply(401, gateway_fault('900901', 'Invalid Credentials',
                                                     'Access failure for API. Make sure your provided '
                                                     'access token is valid and not expired'))
            if mods.get('429') and sim.first(name, '429'):
                return self.reply(429, gateway_fault('900800', 'Message throttled out',
                                                     'You have exceeded your quota'),
                                  {'Retry-After': '1'})
            if mods.get('503') or (mods.get('503once') and sim.first(name, '503once')):
                return self.reply(503, service_error('SERVICE_UNAVAILABLE', 'simulated outage'))
            if mods.get('sessexp') and sim.first(name, 'sessexp'):
                with sim.lock:
                    sim.sessions.pop(self.headers.get('VZ-M2M-Token', '').strip(), None)
                return self.reply(400, service_error('SessionToken.Expired', 'Session token is expired'))
        bad = validate_billed(req)
        if bad:
            return self.reply(400, service_error(*bad))
        if acct is None:
            return self.reply(400, service_error('REQUEST_FAILED.AccountNotFound',
                                                 'Account %s not found' % req['accountName']))
        if 'label' in req and acct.kind == 'apn':
            return self.reply(400, service_error('INPUT_INVALID.LabelNotValidForApn',
                                                 'labels are not valid for APN (real-time rating) accounts'))
        rid = str(uuid.uuid4())
        self.reply(200, {'requestId': rid})
        self.wfile.flush()
        sim.deliver_later(acct, req, rid)
        return rid

    # -- control API ------------------------------------------------------------
    def h_sim_reset(self):
        self.sim.reset()
        self.reply(200, {'ok': True})

    def h_sim_config(self):
        if self.command == 'POST':
            body = self.json_body()
            if not isinstance(body, dict) or any(
                    k not in DEFAULT_CONFIG or isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                    for k, v in body.items()):
                return self.reply(400, {'error': 'expected a JSON object with numeric keys among %s'
                                        % ', '.join(DEFAULT_CONFIG)})
            if body.get('page_size', 1) < 1:
                return self.reply(400, {'error': 'page_size must be >= 1'})
            with self.sim.lock:
                self.sim.config.update(body)
                if 'page_size' in body:
                    self.sim.config['page_size'] = int(body['page_size'])
        with self.sim.lock:
            cfg = dict(self.sim.config)
        self.reply(200, cfg)

    def h_sim_expire(self):
        body = self.json_body()
        what = body.get('what') if isinstance(body, dict) else None
        sim = self.sim
        with sim.lock:
            if what == 'token':
                for t in sim.tokens.values():
                    t['expires'] = 0
                n = len(sim.tokens)
            elif what == 'session':
                for s in sim.sessions.values():
                    s['last'] = 0
                n = len(sim.sessions)
            else:
                n = None
        if n is None:
            self.reply(400, {'error': 'what must be "token" or "session"'})
        else:
            self.reply(200, {'expired': n, 'what': what})

    def h_sim_log(self):
        kind, since = self.query.get('kind'), int(self.query.get('since') or 0)
        with self.sim.lock:
            evs = [e for e in self.sim.events if (not kind or e['kind'] == kind) and e['seq'] > since]
        self.reply(200, ''.join(json.dumps(e) + '\n' for e in evs).encode(), ctype='application/x-ndjson')

    def h_sim_stats(self):
        with self.sim.lock:
            out = {k: 0 for k in LOG_KINDS}
            for e in self.sim.events:
                out[e['kind']] = out.get(e['kind'], 0) + 1
            out['pending_deliveries'] = self.sim.pending
        self.reply(200, out)

    def h_sim_expected(self):
        out = self.sim.expected(self.query)
        if out is None:
            self.reply(400, {'error': 'unknown account %r' % self.query.get('account')})
        else:
            self.reply(200, out)

    def h_sim_health(self):
        self.reply(200, {'ok': True})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256          # the default backlog of 5 drops bursts of clients


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--default-callback-url')
    ap.add_argument('--default-callback-username')
    ap.add_argument('--default-callback-password')
    ap.add_argument('--log-file')
    ap.add_argument('--seed', default=simdata.DEFAULT_SEED, help='vendor page with the examples')
    ap.add_argument('--verbose', action='store_true', help='log each HTTP request to stderr')
    args = ap.parse_args(argv)

    server = Server(('127.0.0.1', args.port), Handler)
    server.sim = Sim(args)
    port = server.server_address[1]
    if args.port_file:
        tmp = '%s.tmp.%d' % (args.port_file, os.getpid())
        with open(tmp, 'w') as f:
            f.write('%d\n' % port)
        os.replace(tmp, args.port_file)
    sys.stderr.write('thingspace_sim: listening on 127.0.0.1:%d\n' % port)

    def stop(signum, frame):
        # shutdown() waits for serve_forever(), so it must run on another thread
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.port_file:
            try:
                os.unlink(args.port_file)
            except OSError:
                pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
