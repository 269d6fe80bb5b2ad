"""Result bodies for the ThingSpace simulator: seed examples and generated accounts.

Everything here is text-first: seed numbers must keep the digits the vendor page
shows (21.0 stays 21.0), so seed results are edited as text, never re-serialised.
Generated accounts use integer cents and integer usages only.
"""
import json
import os
import re
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SEED = os.path.join(HERE, '..', 'seed', 'billed-usage-api.txt')
SEED_REQUEST_ID = 'be36accb-0a9a-4367-93ab-0af6c4ed256a'

# variant name -> heading line that precedes the example on the seed page
SEED_HEADINGS = {
    'apn': 'Per APN (no Device ID or Label)',
    'apn-device': 'Per APN (with Device ID)',
    'rg': 'Per ratingGroup (no Device ID or Label)',
    'rg-device': 'Per ratingGroup (with Device ID)',
    'rg-label': 'Per ratingGroup (with Label)',
    'apn-line': 'Using "lineLevel" with value "true"',
}

_ACCOUNT_RE = re.compile(r'("accountName"\s*:\s*)"[^"]*"')
_CBCOUNT_RE = re.compile(r'("callbackCount"\s*:\s*)\d+')
_SUMMARY_RE = re.compile(r'"billingUsageSummary"\s*:\s*\{')
_SEGNAME_RE = re.compile(r'("(?:name|ratingGroup)"\s*:\s*")([^"]*)(")')
_SEGLIST_RE = re.compile(r'"(?:usageApns|usageSegments)"\s*:')
_MISSING_COMMA_RE = re.compile(r'([0-9"\]}el])\n(\s*")')


class Seed:
    """The six result examples of the seed page: verbatim text and repaired text."""

    def __init__(self, path=DEFAULT_SEED):
        with open(path, 'rb') as f:
            lines = f.read().decode('utf-8').split('\n')
        self.verbatim = {}
        for key, heading in SEED_HEADINGS.items():
            start = [n for n, l in enumerate(lines) if l.rstrip() == heading][0] + 1
            end = start
            while lines[end] != '}':      # the example's top-level closing brace
                end += 1
            self.verbatim[key] = '\n'.join(lines[start:end + 1])
        self.broken = sorted(k for k, t in self.verbatim.items() if not _parses(t))
        self.repaired = {k: repair(t) for k, t in self.verbatim.items()}
        for k, t in self.repaired.items():
            json.loads(t)                 # fail loudly at start-up if a repair is wrong
        self.repaired['rg-line'] = self._rg_line_level()

    def _rg_line_level(self):
        """The lineLevel example with the rating-group segments of 'rg' per device.

        Summary and device totals become the rg example's totals so the result adds up."""
        text = self.repaired['apn-line']
        rg = self.repaired['rg']
        seg = rg[rg.index('[', rg.index('"usageSegments"')):]
        seg = seg[:_match_close(seg, 0) + 1]
        key = text.index('"usageApns"')
        arr = text.index('[', key)
        text = text[:key] + '"usageSegments": ' + seg + text[_match_close(text, arr) + 1:]
        for old, new in (('1993.4', '3821.3'), ('1993.0', '3821.3'),
                         ('59935', '30700000'), ('72378', '30700000')):
            text = text.replace(old, new)
        json.loads(text)
        return text


def _parses(text):
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def _match_close(text, pos):
    """Index of the bracket closing the one at text[pos] (valid JSON only)."""
    depth, in_str, esc = 0, False, False
    for i in range(pos, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == '\\':
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in '[{':
            depth += 1
        elif ch in ']}':
            depth -= 1
            if depth == 0:
                return i
    raise ValueError('unbalanced')


def repair(text):
    """Minimal fix of the seed's two defects, keeping every other byte.

    1. "deviceIdentifier"/"label" objects that are never closed: insert '},' before
       the next "usage..." key.
    2. A value at the end of a line followed by a line starting with a key: insert ','.
    """
    lines = text.split('\n')
    out, open_obj = [], None
    for line in lines:
        stripped = line.lstrip()
        if open_obj is not None:
            if '}' in line:
                open_obj = None
            elif stripped.startswith('"usage'):
                out.append(open_obj + '},')
                open_obj = None
        if re.match(r'"(deviceIdentifier|label)"\s*:\s*\{\s*$', stripped):
            open_obj = line[:len(line) - len(stripped)]
        out.append(line)
    return _MISSING_COMMA_RE.sub(r'\1,\n\2', '\n'.join(out))


def insert_creds(text, creds):
    """Put '"username":..,"password":..,' right after the first '{'."""
    if not creds:
        return text
    i = text.index('{') + 1
    return text[:i] + creds + text[i:]


def creds_text(username, password):
    parts = []
    if username is not None:
        parts.append('"username":%s,' % json.dumps(username))
    if password is not None:
        parts.append('"password":%s,' % json.dumps(password))
    return ''.join(parts)


class Page:
    """One callback body; callbackCount is filled in per send unless fixed."""

    def __init__(self, number, head, tail=None):
        self.number = number
        self.head = head.encode() if isinstance(head, str) else head
        self.tail = tail.encode() if isinstance(tail, str) else tail

    def body(self, count):
        if self.tail is None:
            return self.head
        return b''.join((self.head, str(count).encode(), self.tail))


def counted_page(number, text):
    """Split text at its callbackCount number so each send can set it."""
    m = _CBCOUNT_RE.search(text)
    return Page(number, text[:m.end(1)], text[m.end():])


def paginate_text(text, k):
    """k copies of one result, pageNumber 1..k, totalPages k, segment names ' #p'."""
    pages = []
    line_level = re.search(r'"totalPages"\s*:', text) is not None
    for p in range(1, k + 1):
        t = text
        if line_level:
            t = re.sub(r'("pageNumber"\s*:\s*)\d+', r'\g<1>%d' % p, t, count=1)
            t = re.sub(r'("totalPages"\s*:\s*)\d+', r'\g<1>%d' % k, t, count=1)
        else:
            m = _SUMMARY_RE.search(t)
            t = t[:m.end()] + '"pageNumber":%d,"totalPages":%d,' % (p, k) + t[m.end():]
        m = _SEGLIST_RE.search(t)
        if m:
            t = t[:m.start()] + _SEGNAME_RE.sub(
                lambda g: g.group(1) + g.group(2) + ' #%d' % p + g.group(3), t[m.start():])
        pages.append(t)
    return pages


def seed_pages(seed, variant, request_id, account, creds, k=None):
    """Pages of a repaired seed result: requestId and accountName replaced."""
    t = seed.repaired[variant].replace(SEED_REQUEST_ID, request_id)
    t = _ACCOUNT_RE.sub(lambda m: m.group(1) + json.dumps(account), t, count=1)
    t = insert_creds(t, creds)
    texts = paginate_text(t, k) if k else [t]
    return [counted_page(n + 1, x) for n, x in enumerate(texts)]


def broken_page(seed, variant, request_id, creds):
    """Seed example byte for byte (syntax errors kept), new requestId, creds inserted."""
    t = seed.verbatim[variant].replace(SEED_REQUEST_ID, request_id)
    return Page(1, insert_creds(t, creds))


def failed_page(request_id, creds):
    t = ('{%s"requestId":%s,"status":"Failed","faultResponse":{"faultcode":'
         '"UnifiedWebService.REQUEST_FAILED.BillingNotAvailable","faultstring":'
         '"simulated failure"},"callbackCount":' % (creds, json.dumps(request_id)))
    return Page(1, t, ',"maxCallbackThreshold":4}')


# ---------------------------------------------------------------------------
# Generated accounts gen-apn-<N> / gen-rg-<N>.
#
# Device i (0-based): kind imei, id 350000000000000 + i. Segments s = 0, 1
# (APN iot.alpha / iot.beta, rating groups rg-data / rg-sms). Details d = 0 (US,
# totalUsageDetails), 1 (CA, totalUsageDetails), 2 (MX, totalDelayedUsageDetails).
# With m = i % 100, r = i % 10, q = (37 * i) % 1000:
#   totalUsage  tu(i,s,d) = 1000 * (1 + m) + 100 * s + 10 * d
#   billedUsage bu(i,s,d) = tu(i,s,d) - r * (d + 1)
#   charge      c(i,s,d)  = 100 + q + i % 3 + 25 * s + 7 * d      (cents)
# Segment = sum over its 3 details, device = sum over its 2 segments, summary =
# sum over the devices of the result.
# ---------------------------------------------------------------------------
IMEI_BASE = 350000000000000
SEGMENT_NAMES = {'apn': ('iot.alpha', 'iot.beta'), 'rg': ('rg-data', 'rg-sms')}
COUNTRIES = ('US', 'CA', 'MX')


def money(cents):
    return '%d.%02d' % divmod(cents, 100)


def detail_values(i, s, d):
    tu = 1000 * (1 + i % 100) + 100 * s + 10 * d
    return 100 + (37 * i) % 1000 + i % 3 + 25 * s + 7 * d, tu - (i % 10) * (d + 1), tu


_DET = {'apn': '{"countryCode":"%s","totalChargeAmount":%s,"totalBilledUsage":%d,"totalUsage":%d}',
        'rg': '{"chargeAmount":%s,"totalBilledUsage":%d,"totalUsage":%d,"countryCode":"%s"}'}
_SEG = {'apn': ('{"name":"%s","billedAmount":%s,"billedUsage":%d,"totalUsage":%d,'
                '"apnDetails":{"totalUsageDetails":[%s,%s],"totalDelayedUsageDetails":[%s]}}'),
        'rg': ('{"ratingGroup":"%s","ratingGroupBilledAmount":%s,"ratingGroupBilledUsage":%d,'
               '"ratingGroupTotalUsage":%d,"ratingGroupDetails":{"totalUsageDetails":[%s,%s],'
               '"totalDelayedUsageDetails":[%s]}}')}
_SEGKEY = {'apn': 'usageApns', 'rg': 'usageSegments'}


def segment_texts(kind, values):
    """values[s][d] = (cents, billed usage, total usage) -> (segment texts, totals)."""
    det, seg = _DET[kind], _SEG[kind]
    out, tc, tb, tt = [], 0, 0, 0
    for s, name in enumerate(SEGMENT_NAMES[kind]):
        dets, sc, sb, st = [], 0, 0, 0
        for d, cc in enumerate(COUNTRIES):
            c, b, t = values[s][d]
            sc += c; sb += b; st += t
            if kind == 'apn':
                dets.append(det % (cc, money(c), b, t))
            else:
                dets.append(det % (money(c), b, t, cc))
        out.append(seg % (name, money(sc), sb, st, dets[0], dets[1], dets[2]))
        tc += sc; tb += sb; tt += st
    return out, (tc, tb, tt)


def device_text(kind, i):
    values = [[detail_values(i, s, d) for d in range(3)] for s in range(2)]
    segs, (c, b, t) = segment_texts(kind, values)
    return ('{"deviceIdentifier":{"id":"%d","kind":"imei"},"totalBilledAmount":%s,'
            '"totalBilledUsage":%d,"totalUsage":%d,"%s":[%s]}'
            % (IMEI_BASE + i, money(c), b, t, _SEGKEY[kind], ','.join(segs)))


def device_totals(i):
    """(cents, billed usage, total usage) of device i, from the per-detail formulas."""
    c = b = t = 0
    for s in range(2):
        for d in range(3):
            dc, db, dt = detail_values(i, s, d)
            c += dc; b += db; t += dt
    return c, b, t


def gen_pages(kind, n_devices, devices, line_level, request_id, account, creds,
              cycle, page_size, k=None, device_ident=None, label=None):
    """Pages (lazily built, in page order) of a generated result.

    devices: list of device indices in the result. Returns (total_pages, build) with
    build(p) -> Page for p in 1..total_pages; pages are built only when sent."""
    head = '{%s"requestId":%s,"deviceResponse":{"billingUsageSummary":{"accountName":%s,' % (
        creds, json.dumps(request_id), json.dumps(account))
    tail = '"status":"SUCCESS","callbackCount":'
    end = ',"maxCallbackThreshold":4}'
    cyc = json.dumps(cycle, separators=(',', ':'))
    if not line_level:
        values = [[[0, 0, 0] for _ in range(3)] for _ in range(2)]
        for i in devices:
            for s in range(2):
                for d in range(3):
                    v, dv = values[s][d], detail_values(i, s, d)
                    v[0] += dv[0]; v[1] += dv[1]; v[2] += dv[2]
        segs, (c, b, t) = segment_texts(kind, values) if devices else ([], (0, 0, 0))
        extra = ''
        if device_ident is not None:
            extra += '"deviceIdentifier":%s,' % json.dumps(device_ident, separators=(',', ':'))
        if label is not None:
            extra += '"label":%s,' % json.dumps(label, separators=(',', ':'))
        text = (head + '"totalBilledAmount":%s,"totalBilledUsage":%d,"totalUsage":%d,'
                '"unitOfMeasure":"BYTES",%s"%s":[%s],"billingCycle":%s}},' % (
                    money(c), b, t, extra, _SEGKEY[kind], ','.join(segs), cyc)
                + tail + '1' + end)
        texts = paginate_text(text, k) if k else [text]
        return len(texts), lambda p: counted_page(p, texts[p - 1])

    c = b = t = 0
    for i in devices:
        dc, db, dt = device_totals(i)
        c += dc; b += db; t += dt
    n = len(devices)
    if k:
        total = k
        bounds = [(p * n // k, (p + 1) * n // k) for p in range(k)]
    else:
        total = max(1, -(-n // page_size))
        bounds = [(p * page_size, min(n, (p + 1) * page_size)) for p in range(total)]
    summary = '"totalBilledAmount":%s,"totalBilledUsage":%d,"totalUsage":%d,"unitOfMeasure":"BYTES","billingCycle":%s,' % (
        money(c), b, t, cyc)

    def build(p):
        lo, hi = bounds[p - 1]
        body = ','.join([device_text(kind, i) for i in devices[lo:hi]])
        return Page(p, '%s%s"pageNumber":%d,"totalPages":%d,"devices":[%s]}},%s' % (
            head, summary, p, total, body, tail), end)
    return total, build


def gen_expected(n_pages, devices, line_level, k=None):
    """Expected figures from closed per-device forms (not from the text generator).

    With t = i % 3, per device: cents = 6q + 6t + 717, total usage = 6000(1+m) + 360,
    billed = that - 12r; current (US+CA): cents 4q + 4t + 464, total 4000(1+m) + 220,
    billed total - 6r; delayed (MX): cents 2q + 2t + 253, total 2000(1+m) + 140,
    billed total - 6r."""
    cur = [0, 0, 0]
    dly = [0, 0, 0]
    for i in devices:
        m, r, q, t = i % 100, i % 10, (37 * i) % 1000, i % 3
        ct, dt = 4000 * (1 + m) + 220, 2000 * (1 + m) + 140
        cur[0] += 4 * (q + t) + 464; cur[1] += ct - 6 * r; cur[2] += ct
        dly[0] += 2 * (q + t) + 253; dly[1] += dt - 6 * r; dly[2] += dt
    n = len(devices)
    mult = 1 if line_level else (k or 1)       # pages=k repeats a scope result k times
    cents, billed, total = [(cur[j] + dly[j]) * mult for j in range(3)]
    rows = n if line_level else 1
    segs = 2 * n if line_level else (2 if n else 0)
    return {
        'pages': n_pages, 'devices_in_result': n, 'device_rows': n if line_level else 0,
        'billed_usage_rows': rows * (1 if line_level else mult),
        'segment_rows': segs * (1 if line_level else mult),
        'country_rows': 3 * segs * (1 if line_level else mult),
        'sum_total_billed_amount': money(cents), 'sum_billed_amount': money(cents),
        'sum_charge_amount': money(cents),
        'sum_total_billed_usage': str(billed), 'sum_total_usage': str(total),
        'sum_segment_billed_usage': str(billed), 'sum_segment_total_usage': str(total),
        'sum_country_billed_usage': str(billed), 'sum_country_total_usage': str(total),
        'by_usage_type': {
            'current': {'rows': 2 * segs * (1 if line_level else mult),
                        'sum_charge_amount': money(cur[0] * mult),
                        'sum_billed_usage': str(cur[1] * mult), 'sum_total_usage': str(cur[2] * mult)},
            'delayed': {'rows': segs * (1 if line_level else mult),
                        'sum_charge_amount': money(dly[0] * mult),
                        'sum_billed_usage': str(dly[1] * mult), 'sum_total_usage': str(dly[2] * mult)},
        },
    }


def tally(bodies):
    """Same figures as gen_expected, summed from parsed callback bodies (Decimal).

    Used for seed accounts by /_sim/expected and by the self-test to check received
    pages. Missing numbers count as 0."""
    z = Decimal(0)
    acc = {k: z for k in ('tba', 'tbu', 'tu', 'sba', 'sbu', 'stu', 'cc', 'cbu', 'ctu')}
    by = {u: {'rows': 0, 'c': z, 'b': z, 't': z} for u in ('current', 'delayed')}
    rows = segs = countries = devs = 0

    def num(o, *keys):
        for k in keys:
            if k in o and o[k] is not None:
                return Decimal(str(o[k]))
        return z

    for body in bodies:
        doc = json.loads(body, parse_float=Decimal, parse_int=Decimal) if isinstance(body, (str, bytes)) else body
        summ = doc['deviceResponse']['billingUsageSummary']
        scopes = summ['devices'] if 'devices' in summ else [summ]
        devs += len(summ.get('devices', []))
        for sc in scopes:
            rows += 1
            acc['tba'] += num(sc, 'totalBilledAmount')
            acc['tbu'] += num(sc, 'totalBilledUsage')
            acc['tu'] += num(sc, 'totalUsage')
            for seg in sc.get('usageApns', []) + sc.get('usageSegments', []):
                segs += 1
                acc['sba'] += num(seg, 'billedAmount', 'ratingGroupBilledAmount')
                acc['sbu'] += num(seg, 'billedUsage', 'ratingGroupBilledUsage')
                acc['stu'] += num(seg, 'totalUsage', 'ratingGroupTotalUsage')
                det = seg.get('apnDetails') or seg.get('ratingGroupDetails') or {}
                for key, ut in (('totalUsageDetails', 'current'), ('totalDelayedUsageDetails', 'delayed')):
                    for cd in det.get(key, []):
                        countries += 1
                        c = num(cd, 'chargeAmount', 'totalChargeAmount')
                        b, t = num(cd, 'totalBilledUsage'), num(cd, 'totalUsage')
                        acc['cc'] += c; acc['cbu'] += b; acc['ctu'] += t
                        u = by[ut]
                        u['rows'] += 1; u['c'] += c; u['b'] += b; u['t'] += t
    return {
        'pages': len(bodies), 'device_rows': devs,
        'billed_usage_rows': rows, 'segment_rows': segs, 'country_rows': countries,
        'sum_total_billed_amount': str(acc['tba']), 'sum_billed_amount': str(acc['sba']),
        'sum_charge_amount': str(acc['cc']),
        'sum_total_billed_usage': str(acc['tbu']), 'sum_total_usage': str(acc['tu']),
        'sum_segment_billed_usage': str(acc['sbu']), 'sum_segment_total_usage': str(acc['stu']),
        'sum_country_billed_usage': str(acc['cbu']), 'sum_country_total_usage': str(acc['ctu']),
        'by_usage_type': {u: {'rows': v['rows'], 'sum_charge_amount': str(v['c']),
                              'sum_billed_usage': str(v['b']), 'sum_total_usage': str(v['t'])}
                          for u, v in by.items()},
    }
