/*
 * test_tsmap.c — unit tests of the JSON reader and the payload-to-rows mapping.
 *
 * Usage: test_tsmap <repo root>.  Reads the vendor page (test/seed/billed-usage-api.txt)
 * for the verbatim examples and test/unit/cases/ for repaired copies of the broken ones.
 * Exit status 0 only when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tsjson.h"
#include "tsmap.h"

static int n_checks,
			n_failed;

static void
check(int ok, const char *what, const char *file, int line)
{
	n_checks++;
	if (!ok)
	{
		n_failed++;
		fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	}
}

#define CHECK(cond) check((cond) != 0, #cond, __FILE__, __LINE__)

static void
check_str(const char *p, size_t len, const char *want, const char *what,
		  const char *file, int line)
{
	int			ok;

	if (want == NULL)
		ok = (p == NULL);
	else
		ok = (p != NULL && len == strlen(want) && memcmp(p, want, len) == 0);
	n_checks++;
	if (!ok)
	{
		n_failed++;
		fprintf(stderr, "%s:%d: %s: got %s%.*s%s, want %s%s%s\n", file, line, what,
				p ? "\"" : "", p ? (int) (len > 200 ? 200 : len) : 4, p ? p : "NULL",
				p ? "\"" : "", want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
	}
}

#define CHECK_STR(view, want) check_str((view).p, (view).len, (want), #view, __FILE__, __LINE__)
#define CHECK_COL(row, c, want) check_str((row).col[c].p, (row).col[c].len, (want), #c, __FILE__, __LINE__)
#define CHECK_CSTR(s, want) check_str((s), (s) ? strlen(s) : 0, (want), #s, __FILE__, __LINE__)

/* ---------------------------------------------------------------- fixtures */

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

static const char *root_dir = ".";

static char *
read_case(const char *name, size_t *len)
{
	char		path[1024];

	snprintf(path, sizeof(path), "%s/test/unit/cases/%s", root_dir, name);
	return read_file(path, len);
}

/* The JSON examples of the vendor page: from a line "{" to the next line "}" or EOF. */
#define MAX_BLOCKS 32
static struct
{
	const char *p;
	size_t		len;
}			seed[MAX_BLOCKS];
static int	n_seed;
static char *page;

static void
load_seed(void)
{
	char		path[1024];
	size_t		len;
	const char *s,
			   *end,
			   *start = NULL;

	snprintf(path, sizeof(path), "%s/test/seed/billed-usage-api.txt", root_dir);
	page = read_file(path, &len);
	end = page + len;
	for (s = page; s < end;)
	{
		const char *nl = memchr(s, '\n', (size_t) (end - s));
		const char *eol = nl ? nl : end;
		size_t		ll = (size_t) (eol - s);

		while (ll > 0 && (s[ll - 1] == '\r' || s[ll - 1] == ' ' || s[ll - 1] == '\t'))
			ll--;
		if (start == NULL && ll == 1 && s[0] == '{')
			start = s;
		else if (start != NULL && ll == 1 && s[0] == '}' && n_seed < MAX_BLOCKS)
		{
			seed[n_seed].p = start;
			seed[n_seed].len = (size_t) (eol - start) + (nl ? 1 : 0);
			n_seed++;
			start = NULL;
		}
		s = nl ? nl + 1 : end;
	}
	if (start != NULL && n_seed < MAX_BLOCKS)
	{
		seed[n_seed].p = start;
		seed[n_seed].len = (size_t) (end - start);
		n_seed++;
	}
}

/* Seed block numbers (1-based, in page order). */
enum
{
	SEED_REQ_LINE = 1, SEED_REQ_DEVICE, SEED_REQ_LABEL, SEED_REQ_DEVICES, SEED_STATUS200,
	SEED_PER_APN, SEED_PER_APN_DEVICE, SEED_PER_RG, SEED_PER_RG_DEVICE, SEED_PER_RG_LABEL,
	SEED_LINE_LEVEL, SEED_ERROR400
};

#define MAX_ROWS 64
static TsRow rows[MAX_ROWS];

/* Iterate a resource to the end; number of rows, or -1 (err filled) on a shape error. */
static int
collect(const TsjNode *root, TsResource res, TsMapError *err)
{
	TsMapCursor cur;
	int			n = 0;
	TsMapStatus st;

	ts_map_begin(&cur, root, res);
	for (;;)
	{
		TsRow		scratch;

		st = ts_map_next(&cur, n < MAX_ROWS ? &rows[n] : &scratch, err);
		if (st == TS_MAP_ERROR)
		{
			/* errors are sticky */
			TsMapError again;

			CHECK(ts_map_next(&cur, &scratch, &again) == TS_MAP_ERROR);
			CHECK(strcmp(again.field, err->field) == 0);
			return -1;
		}
		if (st == TS_MAP_END)
			break;
		n++;
	}
	CHECK(ts_map_next(&cur, &rows[0], err) == TS_MAP_END);
	return n;
}

static TsjDoc *
parse_ok(const char *buf, size_t len, const char *what)
{
	TsjError	e;
	TsjDoc	   *d = tsj_parse(buf, len, &e);

	if (d == NULL)
	{
		n_failed++;
		fprintf(stderr, "%s: unexpected parse error at %d:%d: %s\n", what, e.line, e.column, e.message);
	}
	n_checks++;
	return d;
}

static TsjDoc *
parse_str(const char *s)
{
	return parse_ok(s, strlen(s), s);
}

/* The row's raw column must itself be a parseable object. */
static void
check_raw(const TsRow *r, const char *must_contain)
{
	TsjError	e;
	TsjDoc	   *d;

	CHECK(r->col[TSC_RAW].p != NULL);
	if (r->col[TSC_RAW].p == NULL)
		return;
	CHECK(r->col[TSC_RAW].p[0] == '{' && r->col[TSC_RAW].p[r->col[TSC_RAW].len - 1] == '}');
	d = tsj_parse(r->col[TSC_RAW].p, r->col[TSC_RAW].len, &e);
	CHECK(d != NULL && tsj_root(d)->type == TSJ_OBJECT);
	tsj_free(d);
	if (must_contain)
	{
		char	   *tmp = malloc(r->col[TSC_RAW].len + 1);

		memcpy(tmp, r->col[TSC_RAW].p, r->col[TSC_RAW].len);
		tmp[r->col[TSC_RAW].len] = '\0';
		CHECK(strstr(tmp, must_contain) != NULL);
		free(tmp);
	}
}

static void
expect_parse_error(const char *s, size_t len, int line, int column, const char *msg,
				   const char *file, int srcline)
{
	TsjError	e;
	TsjDoc	   *d = tsj_parse(s, len, &e);

	n_checks++;
	if (d != NULL)
	{
		n_failed++;
		fprintf(stderr, "%s:%d: parsed but should fail: %.60s\n", file, srcline, s);
		tsj_free(d);
		return;
	}
	if ((line && (e.line != line || e.column != column)) ||
		(msg && strstr(e.message, msg) == NULL))
	{
		n_failed++;
		fprintf(stderr, "%s:%d: error at %d:%d \"%s\", want %d:%d \"%s\" (input %.60s)\n",
				file, srcline, e.line, e.column, e.message, line, column, msg ? msg : "", s);
	}
}

#define PARSE_ERR(s, line, col, msg) expect_parse_error((s), strlen(s), (line), (col), (msg), __FILE__, __LINE__)

static void
expect_map_error(const char *json, TsResource res, const char *field, const char *msg,
				 const char *file, int srcline)
{
	TsjDoc	   *d = parse_ok(json, strlen(json), json);
	TsMapError	e;
	int			n;

	if (d == NULL)
		return;
	memset(&e, 0, sizeof(e));
	n = collect(tsj_root(d), res, &e);
	n_checks++;
	if (n != -1 || strcmp(e.field, field) != 0 || (msg && strstr(e.message, msg) == NULL))
	{
		n_failed++;
		fprintf(stderr, "%s:%d: map result %d, error [%s] \"%s\", want [%s] \"%s\"\n",
				file, srcline, n, e.field, e.message, field, msg ? msg : "");
	}
	tsj_free(d);
}

#define MAP_ERR(json, res, field, msg) expect_map_error((json), (res), (field), (msg), __FILE__, __LINE__)

/* ---------------------------------------------------------------- JSON reader */

static void
test_json_values(void)
{
	TsjDoc	   *d;
	const TsjNode *r,
			   *n;
	const char *s;

	d = parse_str(" 21.0 ");
	r = tsj_root(d);
	CHECK(r->type == TSJ_NUMBER);
	CHECK_CSTR(r->str, "21.0");
	CHECK(r->start == 1 && r->end == 5);
	tsj_free(d);

	d = parse_str("[true,false,null,-0,1e5,1E+5,-1.25e-3,0.5,\"\"]");
	r = tsj_root(d);
	CHECK(r->type == TSJ_ARRAY && r->nchildren == 9);
	n = r->child;
	CHECK(n->type == TSJ_TRUE);
	n = n->next;
	CHECK(n->type == TSJ_FALSE);
	n = n->next;
	CHECK(n->type == TSJ_NULL);
	n = n->next;
	CHECK_CSTR(n->str, "-0");
	n = n->next;
	CHECK_CSTR(n->str, "1e5");
	n = n->next;
	CHECK_CSTR(n->str, "1E+5");
	n = n->next;
	CHECK_CSTR(n->str, "-1.25e-3");
	n = n->next;
	CHECK_CSTR(n->str, "0.5");
	n = n->next;
	CHECK(n->type == TSJ_STRING && n->len == 0 && n->str[0] == '\0');
	CHECK(n->next == NULL);
	CHECK(r->str == NULL || r->len == r->end - r->start);
	tsj_free(d);

	/* objects: member order, spans, lookups, duplicates keep the first */
	s = "{\"a\": 1, \"B\": {\"c\": []}, \"a\": 2, \"usageAPNs\": [1]}";
	d = parse_str(s);
	r = tsj_root(d);
	CHECK(r->type == TSJ_OBJECT && r->nchildren == 4);
	CHECK(r->str == s && r->len == strlen(s));
	CHECK_CSTR(tsj_get(r, "a")->str, "1");
	CHECK(tsj_get(r, "b") == NULL);
	CHECK(tsj_get_ci(r, "b") == tsj_get(r, "B"));
	CHECK(tsj_get(r, "usageApns") == NULL);
	CHECK(tsj_get_ci(r, "usageApns") != NULL);
	CHECK(tsj_get(tsj_get(r, "a"), "x") == NULL);
	CHECK(tsj_get(NULL, "x") == NULL);
	n = tsj_get(r, "B");
	CHECK(n->type == TSJ_OBJECT && n->len == 9 && memcmp(n->str, "{\"c\": []}", 9) == 0);
	CHECK(memcmp(s + n->start, "{\"c\": []}", n->end - n->start) == 0);
	CHECK(n->keylen == 1 && strcmp(n->key, "B") == 0);
	tsj_free(d);

	/* empty containers and a BOM */
	d = parse_str("\xEF\xBB\xBF {\"x\":{},\"y\":[]}\n");
	r = tsj_root(d);
	CHECK(r && r->start == 4);
	CHECK(tsj_get(r, "x")->nchildren == 0 && tsj_get(r, "x")->child == NULL);
	tsj_free(d);

	CHECK(tsj_is_number("12.5", 4));
	CHECK(tsj_is_number("-0e+1", 5));
	CHECK(!tsj_is_number("12.5 ", 5));
	CHECK(!tsj_is_number("", 0));
	CHECK(!tsj_is_number("0x10", 4));
	CHECK(!tsj_is_number("NaN", 3));
	CHECK(strcmp(tsj_type_name(TSJ_OBJECT), "an object") == 0);
	tsj_free(NULL);
}

static void
test_json_strings(void)
{
	TsjDoc	   *d;
	const TsjNode *r;

	d = parse_str("\"a\\n\\t\\\"\\\\\\/\\b\\f\\r z\"");
	r = tsj_root(d);
	CHECK_CSTR(r->str, "a\n\t\"\\/\b\f\r z");
	tsj_free(d);

	d = parse_str("\"\\u00e9\\u20AC\\ud83d\\ude00 caf\xC3\xA9\"");
	r = tsj_root(d);
	CHECK_CSTR(r->str, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 caf\xC3\xA9");
	tsj_free(d);

	d = parse_str("\"a\\u0000b\"");
	r = tsj_root(d);
	CHECK(r->len == 3 && r->str[1] == '\0' && r->str[3] == '\0');
	tsj_free(d);

	d = parse_str("{\"k\\u0065y\": \"\\u0041\"}");
	r = tsj_root(d);
	CHECK(tsj_get(r, "key") != NULL);
	CHECK_CSTR(tsj_get(r, "key")->str, "A");
	tsj_free(d);

	PARSE_ERR("\"\\ud83d\"", 1, 2, "surrogate");
	PARSE_ERR("\"\\ud83d\\u0041\"", 1, 2, "surrogate");
	PARSE_ERR("\"\\ude00\"", 1, 2, "lone low surrogate");
	PARSE_ERR("\"ab\\x\"", 1, 4, "invalid escape");
	PARSE_ERR("\"\\u12\"", 1, 2, "four hex digits");
	PARSE_ERR("\"\\u12G4\"", 1, 2, "four hex digits");
	PARSE_ERR("[\"a\x01\"]", 1, 4, "control character");
	PARSE_ERR("\"tab\there\"", 1, 5, "control character");
	PARSE_ERR("\"line\nbreak\"", 1, 6, "control character");
	PARSE_ERR("\"\xC3\x28\"", 1, 2, "UTF-8");
	PARSE_ERR("\"\xC0\xAF\"", 1, 2, "UTF-8");
	PARSE_ERR("\"\xED\xA0\x80\"", 1, 2, "UTF-8");
	PARSE_ERR("\"\xF5\x80\x80\x80\"", 1, 2, "UTF-8");
	PARSE_ERR("\"\xF4\x90\x80\x80\"", 1, 2, "UTF-8");
	PARSE_ERR("\"abc", 1, 5, "unterminated string");
	PARSE_ERR("\"abc\\", 1, 6, "unterminated string");
	PARSE_ERR("{\"a\x80\":1}", 1, 4, "UTF-8");
}

static void
test_json_errors(void)
{
	char	   *deep;
	int			i;
	TsjDoc	   *d;
	TsjError	e;

	PARSE_ERR("", 1, 1, "unexpected end of input");
	PARSE_ERR("   \n ", 2, 2, "unexpected end of input");
	PARSE_ERR("\xEF\xBB\xBF", 1, 4, "unexpected end of input");
	PARSE_ERR("[1,]", 1, 4, "trailing comma");
	PARSE_ERR("{\"a\":1,}", 1, 8, "trailing comma");
	PARSE_ERR("{\"a\":1 // c\n}", 1, 8, "expected ',' or '}'");
	PARSE_ERR("/* c */ {}", 1, 1, "expected a value");
	PARSE_ERR("[NaN]", 1, 2, "expected a value");
	PARSE_ERR("[Infinity]", 1, 2, "expected a value");
	PARSE_ERR("[-Infinity]", 1, 3, "invalid number");
	PARSE_ERR("[01]", 1, 3, "leading zero");
	PARSE_ERR("[1.]", 1, 4, "digit after '.'");
	PARSE_ERR("[.5]", 1, 2, "expected a value");
	PARSE_ERR("[+1]", 1, 2, "expected a value");
	PARSE_ERR("[1e]", 1, 4, "exponent");
	PARSE_ERR("[0x1]", 1, 3, "expected ',' or ']'");
	PARSE_ERR("[tru]", 1, 2, "invalid literal");
	PARSE_ERR("[nul", 1, 5, "unexpected end of input");
	PARSE_ERR("{} x", 1, 4, "unexpected data after the JSON value");
	PARSE_ERR("{}{}", 1, 3, "unexpected data");
	PARSE_ERR("{'a':1}", 1, 2, "member name");
	PARSE_ERR("{\"a\" 1}", 1, 6, "expected ':'");
	PARSE_ERR("{\"a\":1\n\"b\":2}", 2, 1, "expected ',' or '}' after object member");
	PARSE_ERR("[1 2]", 1, 4, "expected ',' or ']' after array element");
	PARSE_ERR("{\"a\":[1,2}", 1, 10, "expected ',' or ']'");
	PARSE_ERR("{\"a\":", 1, 6, "unexpected end of input");
	PARSE_ERR("[1,\r\n  2,\r\n  x]", 3, 3, "expected a value");

	/* depth: exactly TSJ_MAX_DEPTH levels parse, one more is an error, far more never crash */
	deep = malloc(200001);
	for (i = 0; i < TSJ_MAX_DEPTH; i++)
	{
		deep[i] = '[';
		deep[2 * TSJ_MAX_DEPTH - 1 - i] = ']';
	}
	d = tsj_parse(deep, 2 * TSJ_MAX_DEPTH, &e);
	CHECK(d != NULL);
	tsj_free(d);
	for (i = 0; i <= TSJ_MAX_DEPTH; i++)
	{
		deep[i] = '[';
		deep[2 * TSJ_MAX_DEPTH + 1 - i] = ']';
	}
	d = tsj_parse(deep, 2 * TSJ_MAX_DEPTH + 2, &e);
	CHECK(d == NULL && strstr(e.message, "nesting too deep") && e.column == TSJ_MAX_DEPTH + 1);
	for (i = 0; i < 200000; i++)
		deep[i] = '[';
	d = tsj_parse(deep, 200000, &e);
	CHECK(d == NULL);
	for (i = 0; i + 6 <= 200000; i += 6)
		memcpy(deep + i, "{\"a\":[", 6);
	d = tsj_parse(deep, 199998, &e);
	CHECK(d == NULL && strstr(e.message, "nesting too deep"));
	free(deep);

	/* out of memory: a tiny arena limit */
	d = tsj_parse_limited("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50]",
						  141, 1024, &e);
	CHECK(d == NULL && strcmp(e.message, "out of memory") == 0);
	d = tsj_parse_limited("[1]", 3, 1024, &e);
	CHECK(d != NULL && tsj_memory_used(d) > 0 && tsj_memory_used(d) <= 1024);
	tsj_free(d);

	/* NULL error pointer is allowed */
	CHECK(tsj_parse("[", 1, NULL) == NULL);
}

/* Every proper prefix of a valid document fails, at the end of the prefix. */
static void
test_truncation(const char *buf, size_t len)
{
	size_t		cut;
	int			bad = 0;

	for (cut = 0; cut < len; cut++)
	{
		TsjError	e;
		TsjDoc	   *d = tsj_parse(buf, cut, &e);
		size_t		trimmed = cut;

		if (d != NULL)
		{
			/* only a complete document followed by whitespace may parse */
			tsj_free(d);
			while (trimmed > 0 && strchr(" \t\r\n", buf[trimmed - 1]))
				trimmed--;
			if (buf[trimmed - 1] != '}')
				bad++;
			continue;
		}
		if (e.offset != cut || strstr(e.message, "unexpected end of input") == NULL)
			bad++;
	}
	CHECK(bad == 0);
}

/* ---------------------------------------------------------------- seed page */

static void
test_seed_verbatim(void)
{
	static const struct
	{
		int			block;
		int			line;
		int			column;
	}			broken[] = {
		/* the line after the missing comma / brace, column of its opening quote */
		{SEED_PER_APN, 55, 25},
		{SEED_PER_APN_DEVICE, 13, 10},
		{SEED_PER_RG_DEVICE, 13, 10},
		{SEED_PER_RG_LABEL, 13, 10},
	};
	int			i,
				b;

	CHECK(n_seed == 12);
	for (b = 1; b <= n_seed; b++)
	{
		TsjError	e;
		TsjDoc	   *d = tsj_parse(seed[b - 1].p, seed[b - 1].len, &e);
		int			is_broken = 0;

		for (i = 0; i < (int) (sizeof(broken) / sizeof(broken[0])); i++)
			if (broken[i].block == b)
			{
				is_broken = 1;
				n_checks++;
				if (d != NULL || e.line != broken[i].line || e.column != broken[i].column ||
					strcmp(e.message, "expected ',' or '}' after object member") != 0)
				{
					n_failed++;
					fprintf(stderr, "seed block %d: got %s at %d:%d \"%s\", want %d:%d\n", b,
							d ? "success" : "error", e.line, e.column, e.message,
							broken[i].line, broken[i].column);
				}
				else
				{
					/* the offset points at the quote of the member after the gap */
					CHECK(seed[b - 1].p[e.offset] == '"');
				}
			}
		if (!is_broken)
		{
			n_checks++;
			if (d == NULL)
			{
				n_failed++;
				fprintf(stderr, "seed block %d: %d:%d %s\n", b, e.line, e.column, e.message);
			}
			else
				test_truncation(seed[b - 1].p, seed[b - 1].len);
		}
		tsj_free(d);
	}

	/* the page itself is not JSON */
	PARSE_ERR(page, 1, 1, "expected a value");
}

/* ---------------------------------------------------------------- mapping */

static const char *RID = "be36accb-0a9a-4367-93ab-0af6c4ed256a";

static void
test_per_apn(const char *file, const char *kind, const char *id)
{
	size_t		len;
	char	   *buf = read_case(file, &len);
	TsjDoc	   *d = parse_ok(buf, len, file);
	TsEnvelope	env;
	TsMapError	err;
	int			n,
				i;

	if (d == NULL)
		return;
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK_STR(env.request_id, RID);
	CHECK(env.page_number == -1 && env.total_pages == -1);
	CHECK(!env.failed);
	CHECK_STR(env.status, "SUCCESS");
	CHECK_STR(env.fault_code, NULL);
	CHECK_STR(env.username, NULL);

	n = collect(tsj_root(d), TS_RES_BILLED_USAGE, &err);
	CHECK(n == 1);
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_AMOUNT, "392.5");
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_USAGE, "4080000");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "408000");
	CHECK_COL(rows[0], TSC_UNIT_OF_MEASURE, "BYTES");
	CHECK_COL(rows[0], TSC_REQUEST_ID, RID);
	CHECK_COL(rows[0], TSC_DEVICE_KIND, kind);
	CHECK_COL(rows[0], TSC_DEVICE_ID, id);
	CHECK_COL(rows[0], TSC_LABEL_NAME, NULL);
	CHECK_COL(rows[0], TSC_ACCOUNT_NAME, NULL);
	CHECK_COL(rows[0], TSC_BILLING_FROM, NULL);
	CHECK_COL(rows[0], TSC_LINE_LEVEL, NULL);
	CHECK_COL(rows[0], TSC_SEGMENT_KIND, NULL);
	check_raw(&rows[0], "\"accountName\":\"0000123456-00001\"");
	CHECK(rows[0].col[TSC_RAW].p != NULL && strstr(rows[0].col[TSC_RAW].p, "requestId") == NULL);

	n = collect(tsj_root(d), TS_RES_SEGMENTS, &err);
	CHECK(n == 2);
	for (i = 0; i < 2; i++)
	{
		CHECK_COL(rows[i], TSC_SEGMENT_KIND, "apn");
		CHECK_COL(rows[i], TSC_SEGMENT_NAME, "name of the APN reporting");
		CHECK_COL(rows[i], TSC_PAGE_NUMBER, "0");
		CHECK_COL(rows[i], TSC_UNIT_OF_MEASURE, "BYTES");
		CHECK_COL(rows[i], TSC_REQUEST_ID, RID);
		CHECK_COL(rows[i], TSC_DEVICE_KIND, kind);
		CHECK_COL(rows[i], TSC_DEVICE_ID, id);
		CHECK_COL(rows[i], TSC_COUNTRY_CODE, NULL);
		check_raw(&rows[i], "\"apnDetails\"");
	}
	CHECK_COL(rows[0], TSC_BILLED_AMOUNT, "200.5");
	CHECK_COL(rows[0], TSC_BILLED_USAGE, "2160000");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "2160000");
	CHECK_COL(rows[1], TSC_BILLED_AMOUNT, "192.0");
	CHECK_COL(rows[1], TSC_BILLED_USAGE, "1920000");
	CHECK_COL(rows[1], TSC_TOTAL_USAGE, NULL);	/* not sent for the second APN */

	n = collect(tsj_root(d), TS_RES_COUNTRIES, &err);
	CHECK(n == 4);
	{
		static const char *want[4][5] = {
			{"current", "US", "21.0", "21.0", "210000"},
			{"delayed", "US", "179.5", "179.5", "1950000"},
			{"current", "US", "192.0", "179.5", "1795000"},
			{"delayed", "US", "0.0", "179.5", "1795000"},
		};

		for (i = 0; i < 4 && i < n; i++)
		{
			CHECK_COL(rows[i], TSC_SEGMENT_KIND, "apn");
			CHECK_COL(rows[i], TSC_SEGMENT_NAME, "name of the APN reporting");
			CHECK_COL(rows[i], TSC_USAGE_TYPE, want[i][0]);
			CHECK_COL(rows[i], TSC_COUNTRY_CODE, want[i][1]);
			CHECK_COL(rows[i], TSC_CHARGE_AMOUNT, want[i][2]);
			CHECK_COL(rows[i], TSC_BILLED_USAGE, want[i][3]);
			CHECK_COL(rows[i], TSC_TOTAL_USAGE, want[i][4]);
			CHECK_COL(rows[i], TSC_UNIT_OF_MEASURE, "BYTES");
			CHECK_COL(rows[i], TSC_DEVICE_KIND, kind);
			CHECK_COL(rows[i], TSC_PAGE_NUMBER, NULL);
			check_raw(&rows[i], want[i][1]);
		}
	}
	tsj_free(d);
	free(buf);
}

static void
test_per_rating_group(const char *buf, size_t len, const char *what, const char *kind,
					  const char *id, const char *label_name, const char *label_value)
{
	TsjDoc	   *d = parse_ok(buf, len, what);
	TsMapError	err;
	TsEnvelope	env;
	int			n,
				i;
	static const char *want[5][5] = {
		{"current", "CA", "610.4", "5100000", "5500000"},
		{"current", "MX", "710.4", "5100000", "5500000"},
		{"current", "US", "600.0", "5100000", "5500000"},
		{"delayed", "MX", "600.5", "5500000", "5500000"},
		{"delayed", "US", "1300.0", "10000000", "5500000"},
	};

	if (d == NULL)
		return;
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK(!env.failed && env.page_number == -1);

	n = collect(tsj_root(d), TS_RES_BILLED_USAGE, &err);
	CHECK(n == 1);
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_AMOUNT, "3821.3");
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_USAGE, "30700000");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "30700000");
	CHECK_COL(rows[0], TSC_DEVICE_KIND, kind);
	CHECK_COL(rows[0], TSC_DEVICE_ID, id);
	CHECK_COL(rows[0], TSC_LABEL_NAME, label_name);
	CHECK_COL(rows[0], TSC_LABEL_VALUE, label_value);

	n = collect(tsj_root(d), TS_RES_SEGMENTS, &err);
	CHECK(n == 1);
	CHECK_COL(rows[0], TSC_SEGMENT_KIND, "rating_group");
	CHECK_COL(rows[0], TSC_SEGMENT_NAME, "user defined group name");
	CHECK_COL(rows[0], TSC_BILLED_AMOUNT, "3821.3");
	CHECK_COL(rows[0], TSC_BILLED_USAGE, "30700000");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "30700000");
	CHECK_COL(rows[0], TSC_PAGE_NUMBER, NULL);
	CHECK_COL(rows[0], TSC_UNIT_OF_MEASURE, "BYTES");
	CHECK_COL(rows[0], TSC_DEVICE_KIND, kind);
	CHECK_COL(rows[0], TSC_LABEL_VALUE, label_value);
	check_raw(&rows[0], "ratingGroupDetails");

	n = collect(tsj_root(d), TS_RES_COUNTRIES, &err);
	CHECK(n == 5);
	for (i = 0; i < 5 && i < n; i++)
	{
		CHECK_COL(rows[i], TSC_SEGMENT_KIND, "rating_group");
		CHECK_COL(rows[i], TSC_SEGMENT_NAME, "user defined group name");
		CHECK_COL(rows[i], TSC_USAGE_TYPE, want[i][0]);
		CHECK_COL(rows[i], TSC_COUNTRY_CODE, want[i][1]);
		CHECK_COL(rows[i], TSC_CHARGE_AMOUNT, want[i][2]);
		CHECK_COL(rows[i], TSC_BILLED_USAGE, want[i][3]);
		CHECK_COL(rows[i], TSC_TOTAL_USAGE, want[i][4]);
		CHECK_COL(rows[i], TSC_DEVICE_ID, id);
		CHECK_COL(rows[i], TSC_LABEL_NAME, label_name);
		CHECK_COL(rows[i], TSC_REQUEST_ID, RID);
		check_raw(&rows[i], want[i][1]);
	}
	tsj_free(d);
}

static void
test_line_level(void)
{
	const char *buf = seed[SEED_LINE_LEVEL - 1].p;
	TsjDoc	   *d = parse_ok(buf, seed[SEED_LINE_LEVEL - 1].len, "line level");
	TsMapError	err;
	TsEnvelope	env;

	if (d == NULL)
		return;
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK(env.page_number == 1 && env.total_pages == 1);
	CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == 1);
	CHECK_COL(rows[0], TSC_DEVICE_KIND, "imei");
	CHECK_COL(rows[0], TSC_DEVICE_ID, "15-digit IMEI");
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_AMOUNT, "1993.0");	/* the device's, not the summary's */
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_USAGE, "59935");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "72378");
	CHECK_COL(rows[0], TSC_UNIT_OF_MEASURE, "BYTES");
	check_raw(&rows[0], "\"deviceIdentifier\"");
	CHECK(rows[0].col[TSC_RAW].p != NULL && strstr(rows[0].col[TSC_RAW].p, "usageApns") != NULL
		  && strstr(rows[0].col[TSC_RAW].p, "billingCycle") == NULL);

	CHECK(collect(tsj_root(d), TS_RES_SEGMENTS, &err) == 1);
	CHECK_COL(rows[0], TSC_SEGMENT_KIND, "apn");
	CHECK_COL(rows[0], TSC_SEGMENT_NAME, "APN name");
	CHECK_COL(rows[0], TSC_BILLED_AMOUNT, "1993.4");
	CHECK_COL(rows[0], TSC_PAGE_NUMBER, "1");
	CHECK_COL(rows[0], TSC_DEVICE_KIND, "imei");

	CHECK(collect(tsj_root(d), TS_RES_COUNTRIES, &err) == 1);
	CHECK_COL(rows[0], TSC_USAGE_TYPE, "current");
	CHECK_COL(rows[0], TSC_COUNTRY_CODE, "USA");
	CHECK_COL(rows[0], TSC_CHARGE_AMOUNT, "1993.4");
	CHECK_COL(rows[0], TSC_BILLED_USAGE, "59935");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "72378");
	CHECK_COL(rows[0], TSC_DEVICE_ID, "15-digit IMEI");
	tsj_free(d);
}

static void
test_seed_mapping(void)
{
	size_t		len;
	char	   *buf;

	test_per_apn("per-apn.json", NULL, NULL);
	test_per_apn("per-apn-device.json", "iccid", "22-digit ICCID");
	test_per_rating_group(seed[SEED_PER_RG - 1].p, seed[SEED_PER_RG - 1].len, "per rg",
						  NULL, NULL, NULL, NULL);
	buf = read_case("per-rating-group-device.json", &len);
	test_per_rating_group(buf, len, "per rg device", "eid", "32-digit Electronic ID", NULL, NULL);
	free(buf);
	buf = read_case("per-rating-group-label.json", &len);
	test_per_rating_group(buf, len, "per rg label", NULL, NULL, "VIN", "17-character Vehicle ID Number");
	free(buf);
	test_line_level();
}

static void
test_multi_device(void)
{
	const char *j =
		"{\"requestId\":\"r1\",\"pageNumber\":\"2\",\"totalPages\":3,"
		"\"deviceResponse\":{\"billingUsageSummary\":{"
		"\"unitOfMeasure\":\"BYTES\",\"label\":{\"name\":\"L\",\"value\":\"V\"},"
		"\"devices\":["
		"{\"deviceIdentifier\":{\"kind\":\"IMEI\",\"id\":\"1\"},\"totalBilledAmount\":\"1.50\","
		" \"usageAPNs\":[{\"name\":\"a\",\"billedAmount\":1,\"apnDetails\":{\"totalUsageDetails\":["
		"  {\"countryCode\":\"US\",\"chargeAmount\":1,\"totalChargeAmount\":9},"
		"  {\"countryCode\":\"CA\",\"chargeAmount\":null,\"totalChargeAmount\":2}],"
		"  \"totalDelayedUsageDetails\":null}},"
		"  {\"name\":\"b\",\"apnDetails\":null}]},"
		"{\"deviceIdentifier\":{\"kind\":\"Iccid\",\"id\":\"2\"},\"usageApns\":[]},"
		"{\"deviceIdentifier\":null,\"unitOfMeasure\":\"KB\",\"extra\":{\"x\":[1,2]},"
		" \"usageSegments\":[{\"ratingGroup\":\"g\",\"ratingGroupBilledAmount\":\"-0.5e2\","
		"  \"ratingGroupDetails\":{\"totalDelayedUsageDetails\":[{\"countryCode\":\"MX\"}]}}]},"
		"{\"usageApns\":[{\"name\":\"c\",\"pageNumber\":7}],\"usageSegments\":[{\"ratingGroup\":\"h\"}]}"
		"]}},\"status\":\"Success\"}";
	TsjDoc	   *d = parse_str(j);
	TsEnvelope	env;
	TsMapError	err;

	if (d == NULL)
		return;
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK(env.page_number == 2 && env.total_pages == 3 && !env.failed);

	CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == 4);
	CHECK_COL(rows[0], TSC_DEVICE_KIND, "imei");
	CHECK_COL(rows[0], TSC_TOTAL_BILLED_AMOUNT, "1.50");
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, NULL);
	CHECK_COL(rows[0], TSC_LABEL_NAME, "L");
	CHECK_COL(rows[0], TSC_LABEL_VALUE, "V");
	CHECK_COL(rows[1], TSC_DEVICE_KIND, "iccid");
	CHECK_COL(rows[1], TSC_DEVICE_ID, "2");
	CHECK_COL(rows[2], TSC_DEVICE_KIND, NULL);
	CHECK_COL(rows[2], TSC_UNIT_OF_MEASURE, "KB");
	CHECK_COL(rows[3], TSC_UNIT_OF_MEASURE, "BYTES");
	CHECK_COL(rows[3], TSC_REQUEST_ID, "r1");

	CHECK(collect(tsj_root(d), TS_RES_SEGMENTS, &err) == 5);
	CHECK_COL(rows[0], TSC_SEGMENT_NAME, "a");
	CHECK_COL(rows[0], TSC_DEVICE_ID, "1");
	CHECK_COL(rows[0], TSC_BILLED_AMOUNT, "1");
	CHECK_COL(rows[0], TSC_PAGE_NUMBER, NULL);
	CHECK_COL(rows[1], TSC_SEGMENT_NAME, "b");
	CHECK_COL(rows[2], TSC_SEGMENT_KIND, "rating_group");
	CHECK_COL(rows[2], TSC_BILLED_AMOUNT, "-0.5e2");
	CHECK_COL(rows[2], TSC_UNIT_OF_MEASURE, "KB");
	CHECK_COL(rows[3], TSC_SEGMENT_KIND, "apn");
	CHECK_COL(rows[3], TSC_PAGE_NUMBER, "7");
	CHECK_COL(rows[4], TSC_SEGMENT_KIND, "rating_group");
	CHECK_COL(rows[4], TSC_SEGMENT_NAME, "h");

	CHECK(collect(tsj_root(d), TS_RES_COUNTRIES, &err) == 3);
	CHECK_COL(rows[0], TSC_COUNTRY_CODE, "US");
	CHECK_COL(rows[0], TSC_CHARGE_AMOUNT, "1");	/* chargeAmount wins */
	CHECK_COL(rows[1], TSC_CHARGE_AMOUNT, "2");	/* null falls back to totalChargeAmount */
	CHECK_COL(rows[1], TSC_SEGMENT_NAME, "a");
	CHECK_COL(rows[2], TSC_USAGE_TYPE, "delayed");
	CHECK_COL(rows[2], TSC_COUNTRY_CODE, "MX");
	CHECK_COL(rows[2], TSC_CHARGE_AMOUNT, NULL);
	CHECK_COL(rows[2], TSC_SEGMENT_NAME, "g");
	CHECK_COL(rows[2], TSC_UNIT_OF_MEASURE, "KB");
	tsj_free(d);

	/* empty devices: no rows at all, even for billed_usage */
	d = parse_str("{\"requestId\":\"r\",\"deviceResponse\":{\"billingUsageSummary\":{\"devices\":[],\"totalUsage\":1}}}");
	CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == 0);
	CHECK(collect(tsj_root(d), TS_RES_COUNTRIES, &err) == 0);
	tsj_free(d);

	/* minimal summary: one billed row of NULLs, no segments */
	d = parse_str("{\"requestId\":\"r\",\"deviceResponse\":{\"billingUsageSummary\":{\"devices\":null}}}");
	CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == 1);
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, NULL);
	CHECK_COL(rows[0], TSC_RAW, "{\"devices\":null}");
	CHECK(collect(tsj_root(d), TS_RES_SEGMENTS, &err) == 0);
	tsj_free(d);

	/* a case-insensitive match only when no exact one exists */
	d = parse_str("{\"requestId\":\"r\",\"deviceResponse\":{\"billingUsageSummary\":{\"TOTALUSAGE\":1,\"totalUsage\":2}}}");
	CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == 1);
	CHECK_COL(rows[0], TSC_TOTAL_USAGE, "2");
	tsj_free(d);
}

#define WRAP(summary) "{\"requestId\":\"r\",\"deviceResponse\":{\"billingUsageSummary\":" summary "}}"
#define SUMMARY "deviceResponse.billingUsageSummary"

static void
test_shape_errors(void)
{
	MAP_ERR("[]", TS_RES_BILLED_USAGE, "(root)", "expected an object, found an array");
	MAP_ERR("{\"requestId\":\"r\"}", TS_RES_BILLED_USAGE, "deviceResponse", "missing deviceResponse");
	MAP_ERR("{\"deviceResponse\":null}", TS_RES_SEGMENTS, "deviceResponse", "missing");
	MAP_ERR("{\"deviceResponse\":[]}", TS_RES_SEGMENTS, "deviceResponse", "expected an object, found an array");
	MAP_ERR("{\"deviceResponse\":{}}", TS_RES_COUNTRIES, SUMMARY, "missing " SUMMARY);
	MAP_ERR("{\"deviceResponse\":{\"billingUsageSummary\":\"x\"}}", TS_RES_COUNTRIES, SUMMARY,
			"expected an object, found the string \"x\"");
	MAP_ERR(WRAP("{\"devices\":{}}"), TS_RES_BILLED_USAGE, SUMMARY ".devices", "expected an array, found an object");
	MAP_ERR(WRAP("{\"devices\":[{},5]}"), TS_RES_BILLED_USAGE, SUMMARY ".devices[1]", "expected an object, found a number");
	MAP_ERR(WRAP("{\"usageApns\":{}}"), TS_RES_SEGMENTS, SUMMARY ".usageApns", "expected an array, found an object");
	MAP_ERR(WRAP("{\"usageAPNs\":\"x\"}"), TS_RES_COUNTRIES, SUMMARY ".usageAPNs", "expected an array, found the string \"x\"");
	MAP_ERR(WRAP("{\"usageSegments\":[{},[]]}"), TS_RES_SEGMENTS, SUMMARY ".usageSegments[1]", "expected an object, found an array");
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":1},{\"billedAmount\":\"abc\"}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[1].billedAmount", "expected a number, found the string \"abc\"");
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":{}}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].billedAmount", "expected a number, found an object");
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":\"12.5 \"}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].billedAmount", "expected a number");
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":true}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].billedAmount", "expected a number, found a boolean");
	MAP_ERR(WRAP("{\"usageApns\":[{\"name\":[\"x\"]}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].name", "expected a string, found an array");
	MAP_ERR(WRAP("{\"usageApns\":[{\"pageNumber\":1.5}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].pageNumber", "expected an integer");
	MAP_ERR(WRAP("{\"pageNumber\":\"one\",\"usageApns\":[{}]}"), TS_RES_SEGMENTS,
			SUMMARY ".pageNumber", "expected an integer");
	MAP_ERR(WRAP("{\"usageApns\":[{\"apnDetails\":[]}]}"), TS_RES_COUNTRIES,
			SUMMARY ".usageApns[0].apnDetails", "expected an object, found an array");
	MAP_ERR(WRAP("{\"usageApns\":[{\"apnDetails\":{\"totalUsageDetails\":{}}}]}"), TS_RES_COUNTRIES,
			SUMMARY ".usageApns[0].apnDetails.totalUsageDetails", "expected an array, found an object");
	MAP_ERR(WRAP("{\"usageSegments\":[{\"ratingGroupDetails\":{\"totalUsageDetails\":[],\"totalDelayedUsageDetails\":[{},\"x\"]}}]}"),
			TS_RES_COUNTRIES, SUMMARY ".usageSegments[0].ratingGroupDetails.totalDelayedUsageDetails[1]",
			"expected an object, found the string \"x\"");
	MAP_ERR(WRAP("{\"devices\":[{},{\"usageApns\":[{\"apnDetails\":{\"totalUsageDetails\":[{\"totalUsage\":\"\"}]}}]}]}"),
			TS_RES_COUNTRIES, SUMMARY ".devices[1].usageApns[0].apnDetails.totalUsageDetails[0].totalUsage",
			"expected a number, found the string \"\"");
	MAP_ERR(WRAP("{\"deviceIdentifier\":\"x\"}"), TS_RES_BILLED_USAGE, SUMMARY ".deviceIdentifier",
			"expected an object, found the string \"x\"");
	MAP_ERR(WRAP("{\"deviceIdentifier\":{\"kind\":\"0123456789012345678901234567890123\"}}"), TS_RES_BILLED_USAGE,
			SUMMARY ".deviceIdentifier.kind", "device kind");
	MAP_ERR(WRAP("{\"usageApns\":[{\"name\":\"a\\u0000b\"}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].name", "expected a string, found a string containing \\u0000");
	/* messages stay clean: control characters masked, UTF-8 never cut in two */
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":\"a\\nb\"}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].billedAmount", "found the string \"a?b\"");
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":\"0123456789012345678901234567890123456789\"}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].billedAmount", "\"0123456789012345678901234567890123456789\"");
	MAP_ERR(WRAP("{\"usageApns\":[{\"billedAmount\":\"012345678901234567890123456789012345678\u00e9\"}]}"), TS_RES_SEGMENTS,
			SUMMARY ".usageApns[0].billedAmount", "\"012345678901234567890123456789012345678...\"");
	MAP_ERR(WRAP("{\"label\":{\"name\":{}}}"), TS_RES_BILLED_USAGE, SUMMARY ".label.name", "expected a string");
	MAP_ERR(WRAP("{\"devices\":[{\"totalBilledAmount\":[]}]}"), TS_RES_BILLED_USAGE,
			SUMMARY ".devices[0].totalBilledAmount", "expected a number, found an array");

	/* only what a resource reads is checked: billed_usage ignores a bad usageApns */
	{
		TsjDoc	   *d = parse_str(WRAP("{\"totalUsage\":\"5\",\"usageApns\":{}}"));
		TsMapError	err;

		CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == 1);
		CHECK_COL(rows[0], TSC_TOTAL_USAGE, "5");
		CHECK(collect(tsj_root(d), TS_RES_SEGMENTS, &err) == -1);
		tsj_free(d);
	}
}

static void
test_envelope(void)
{
	TsjDoc	   *d;
	TsEnvelope	env;
	TsMapError	err;

	d = parse_str("{\"requestId\":\"abc\",\"status\":\"Failed\",\"faultResponse\":"
				  "{\"faultcode\":\"E1\",\"faultstring\":\"no such account\"},"
				  "\"username\":\"cbuser\",\"password\":\"cb\\\"pass\",\"callbackCount\":2}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK(env.failed);
	CHECK_STR(env.status, "Failed");
	CHECK_STR(env.fault_code, "E1");
	CHECK_STR(env.fault_string, "no such account");
	CHECK_STR(env.username, "cbuser");
	CHECK_STR(env.password, "cb\"pass");
	CHECK(env.page_number == -1 && env.total_pages == -1);
	/* a failure message has no data: the cursor says what is missing */
	CHECK(collect(tsj_root(d), TS_RES_BILLED_USAGE, &err) == -1);
	CHECK(strcmp(err.field, "deviceResponse") == 0);
	tsj_free(d);

	d = parse_str("{\"requestId\":\"abc\",\"faultResponse\":{\"faultcode\":500}}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK(env.failed);
	CHECK_STR(env.fault_code, "500");
	CHECK_STR(env.status, NULL);
	tsj_free(d);

	d = parse_str("{\"requestId\":\"abc\",\"status\":\"success\",\"faultResponse\":{}}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK(!env.failed);
	tsj_free(d);

	d = parse_str("{\"RequestID\":\"abc\",\"Status\":\"PENDING\",\"deviceResponse\":"
				  "{\"billingUsageSummary\":{\"pageNumber\":0,\"totalPages\":\"4\"}},\"pageNumber\":9}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == 0);
	CHECK_STR(env.request_id, "abc");
	CHECK(env.failed);
	CHECK(env.page_number == 0 && env.total_pages == 4);
	tsj_free(d);

	d = parse_str("{\"status\":\"SUCCESS\"}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1);
	CHECK(strcmp(err.field, "requestId") == 0 && strstr(err.message, "missing"));
	tsj_free(d);

	d = parse_str("{\"requestId\":\"a\\u0000\"}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1 && strcmp(err.field, "requestId") == 0);
	tsj_free(d);

	d = parse_str("{\"requestId\":42}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1);
	CHECK(strcmp(err.field, "requestId") == 0 && strcmp(err.message, "expected a string, found a number") == 0);
	tsj_free(d);

	d = parse_str("{\"requestId\":\"x\",\"totalPages\":\"two\"}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1);
	CHECK(strcmp(err.field, "totalPages") == 0);
	tsj_free(d);

	d = parse_str("{\"requestId\":\"x\",\"pageNumber\":99999999999999999999999}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1);
	CHECK(strcmp(err.field, "pageNumber") == 0);
	tsj_free(d);

	d = parse_str("{\"requestId\":\"x\",\"status\":1}");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1);
	CHECK(strcmp(err.field, "status") == 0);
	tsj_free(d);

	d = parse_str("\"x\"");
	CHECK(ts_envelope_read(tsj_root(d), &env, &err) == -1);
	tsj_free(d);
}

/*
 * Rows must cost the same however many members their ancestors have: 100k junk members
 * next to 100k rows would take minutes if each row searched its ancestors again.
 */
static void
test_linear(void)
{
	size_t		cap = 8 * 1024 * 1024,
				len = 0;
	char	   *j = malloc(cap);
	int			i;
	TsjDoc	   *d;
	TsMapError	err;
	clock_t		t0 = clock();

	len += (size_t) sprintf(j + len, "{\"requestId\":\"r\",\"deviceResponse\":{\"billingUsageSummary\":{");
	for (i = 0; i < 100000; i++)
		len += (size_t) sprintf(j + len, "\"j%d\":0,", i);
	len += (size_t) sprintf(j + len, "\"unitOfMeasure\":\"B\",\"devices\":[");
	for (i = 0; i < 100000; i++)
		len += (size_t) sprintf(j + len, "%s{}", i ? "," : "");
	len += (size_t) sprintf(j + len, ",{");
	for (i = 0; i < 100000; i++)
		len += (size_t) sprintf(j + len, "\"k%d\":0,", i);
	len += (size_t) sprintf(j + len, "\"usageApns\":[{\"apnDetails\":{\"totalUsageDetails\":[");
	for (i = 0; i < 100000; i++)
		len += (size_t) sprintf(j + len, "%s{}", i ? "," : "");
	len += (size_t) sprintf(j + len, "]}}]}]}}}");
	CHECK(len < cap);
	d = parse_ok(j, len, "wide payload");
	if (d != NULL)
	{
		TsMapCursor cur;
		TsRow		row;
		long		n = 0;

		ts_map_begin(&cur, tsj_root(d), TS_RES_BILLED_USAGE);
		while (ts_map_next(&cur, &row, &err) == TS_MAP_ROW)
			n++;
		CHECK(n == 100001);
		CHECK_COL(row, TSC_UNIT_OF_MEASURE, "B");
		n = 0;
		ts_map_begin(&cur, tsj_root(d), TS_RES_COUNTRIES);
		while (ts_map_next(&cur, &row, &err) == TS_MAP_ROW)
			n++;
		CHECK(n == 100000);
		tsj_free(d);
	}
	free(j);
	CHECK((double) (clock() - t0) / CLOCKS_PER_SEC < 10.0);
}

/* ---------------------------------------------------------------- lexical helpers */

static void
check_redact(const char *in, const char *want, const char *file, int line)
{
	size_t		outlen = 12345;
	char	   *out = ts_redact_credentials(in, strlen(in), &outlen);

	check_str(out, out ? outlen : 0, want, in, file, line);
	CHECK(out == NULL || out[outlen] == '\0');
	free(out);
}

#define REDACT(in, want) check_redact((in), (want), __FILE__, __LINE__)

static void
test_redact(void)
{
	int			b;

	REDACT("{\"username\":\"u\",\"password\":\"p\\\"q\",\"x\":\"password\"}",
		   "{\"username\":\"[redacted]\",\"password\":\"[redacted]\",\"x\":\"password\"}");
	REDACT("{ \"PassWord\" :\n \"s\" , \"a\": {\"username\": \"nested\"}}",
		   "{ \"PassWord\" :\n \"[redacted]\" , \"a\": {\"username\": \"[redacted]\"}}");
	REDACT("{\"password\": 1234, \"username\": null, \"x\": -1.5e3}",
		   "{\"password\": \"[redacted]\", \"username\": null, \"x\": -1.5e3}");
	/* broken JSON: missing comma, unterminated value, raw newline in a value */
	REDACT("{\"requestId\":\"r\" \"password\": \"secret", "{\"requestId\":\"r\" \"password\": \"[redacted]");
	REDACT("{\"a\": \"x, \"password\": \"secret\"}", "{\"a\": \"x, \"password\": \"[redacted]\"}");
	REDACT("{\"password\": \"abc\n\"username\":\"u\"}", "{\"password\": \"[redacted]\n\"username\":\"[redacted]\"}");
	/* escaped text inside a value, and names without a colon, stay untouched */
	REDACT("{\"note\":\"\\\"password\\\": \\\"x\\\"\",\"password\"}", "{\"note\":\"\\\"password\\\": \\\"x\\\"\",\"password\"}");
	REDACT("", "");
	REDACT("\"password\":", "\"password\":");
	REDACT("\"password\":\"", "\"password\":\"[redacted]");

	/* the seed examples carry no credentials: byte-identical */
	for (b = 0; b < n_seed; b++)
	{
		size_t		outlen;
		char	   *out = ts_redact_credentials(seed[b].p, seed[b].len, &outlen);

		CHECK(out != NULL && outlen == seed[b].len && memcmp(out, seed[b].p, outlen) == 0);
		free(out);
	}

	/* a redacted valid document stays valid and keeps its data */
	{
		const char *in = "{\"requestId\":\"r\",\"username\":\"u\",\"password\":\"p\",\"deviceResponse\":{}}";
		size_t		outlen;
		char	   *out = ts_redact_credentials(in, strlen(in), &outlen);
		TsjDoc	   *d = parse_ok(out, outlen, out);
		TsEnvelope	env;
		TsMapError	err;

		CHECK(d && ts_envelope_read(tsj_root(d), &env, &err) == 0);
		CHECK_STR(env.password, "[redacted]");
		CHECK_STR(env.request_id, "r");
		tsj_free(d);
		free(out);
	}
}

static void
test_sniff(void)
{
	char		out[64];
	int			b;
	const char *s;

	/* every callback example, broken or not */
	for (b = SEED_STATUS200; b <= SEED_LINE_LEVEL; b++)
	{
		CHECK(ts_sniff_request_id(seed[b - 1].p, seed[b - 1].len, out, sizeof(out)) == strlen(RID));
		CHECK(strcmp(out, RID) == 0);
	}
	CHECK(ts_sniff_request_id(seed[SEED_ERROR400 - 1].p, seed[SEED_ERROR400 - 1].len, out, sizeof(out)) == 0);
	CHECK(out[0] == '\0');

	s = "{\"requestId\" :\r\n \"abc-1\", \"x\":";
	CHECK(ts_sniff_request_id(s, strlen(s), out, sizeof(out)) == 5 && strcmp(out, "abc-1") == 0);
	s = "{\"note\":\"\\\"requestId\\\":\\\"no\\\"\", \"requestId\": 5, \"requestId\": \"yes\"";
	CHECK(ts_sniff_request_id(s, strlen(s), out, sizeof(out)) == 3 && strcmp(out, "yes") == 0);
	s = "{\"requestId\": \"esc\\u0041\"}";
	CHECK(ts_sniff_request_id(s, strlen(s), out, sizeof(out)) == 0);
	s = "{\"requestId\": \"unterminated";
	CHECK(ts_sniff_request_id(s, strlen(s), out, sizeof(out)) == 0);
	s = "{\"requestId\": \"\"}";
	CHECK(ts_sniff_request_id(s, strlen(s), out, sizeof(out)) == 0);
	s = "{\"requestId\": \"0123456789\"}";
	CHECK(ts_sniff_request_id(s, strlen(s), out, 10) == 0);
	CHECK(ts_sniff_request_id(s, strlen(s), out, 11) == 10);
	CHECK(ts_sniff_request_id(s, 20, out, sizeof(out)) == 0);	/* cut before the value ends */
	CHECK(ts_sniff_request_id("", 0, out, sizeof(out)) == 0);
}

int
main(int argc, char **argv)
{
	if (argc > 1)
		root_dir = argv[1];
	load_seed();

	test_json_values();
	test_json_strings();
	test_json_errors();
	test_seed_verbatim();
	test_seed_mapping();
	test_multi_device();
	test_shape_errors();
	test_envelope();
	test_linear();
	test_redact();
	test_sniff();

	printf("%d checks, %d failed\n", n_checks, n_failed);
	free(page);
	return n_failed ? 1 : 0;
}
