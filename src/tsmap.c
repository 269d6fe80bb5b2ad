/*
 * tsmap.c — one parsed billed-usage callback payload to rows of the contract tables.
 *
 * The cursor walks scope (summary or devices[i]) -> segment (usageApns / usageSegments
 * element) -> country detail (totalUsageDetails, then totalDelayedUsageDetails) and
 * validates only what the requested resource reads.  Rows are views into the document;
 * nothing is allocated.  Member names match exactly first, then ignoring ASCII case,
 * because the vendor's own page spells `usageAPNs` and `usageApns`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tsmap.h"

/* ---------------------------------------------------------------- helpers */

static const TsjNode *
member(const TsjNode *obj, const char *name)
{
	const TsjNode *n = tsj_get(obj, name);

	return n ? n : tsj_get_ci(obj, name);
}

/* Present and not JSON null. */
static int
present(const TsjNode *n)
{
	return n != NULL && n->type != TSJ_NULL;
}

static int
ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int
ci_equal(const char *a, size_t alen, const char *b)
{
	size_t		i;

	if (alen != strlen(b))
		return 0;
	for (i = 0; i < alen; i++)
		if (ascii_lower((unsigned char) a[i]) != ascii_lower((unsigned char) b[i]))
			return 0;
	return 1;
}

static void
set_view(TsStr *dst, const char *p, size_t len)
{
	dst->p = p;
	dst->len = len;
}

/*
 * Text column: string value, or the lexeme of a number/boolean.  -1 for containers and
 * for strings holding \u0000, which no PostgreSQL text value can carry.
 */
static int
text_of(const TsjNode *n, TsStr *out)
{
	if (!present(n))
		return 0;
	if (n->type == TSJ_OBJECT || n->type == TSJ_ARRAY ||
		(n->type == TSJ_STRING && memchr(n->str, '\0', n->len) != NULL))
		return -1;
	set_view(out, n->str, n->len);
	return 0;
}

/* Numeric column: a number, or a string holding exactly a JSON number. */
static int
number_of(const TsjNode *n, TsStr *out)
{
	if (!present(n))
		return 0;
	if (n->type == TSJ_NUMBER ||
		(n->type == TSJ_STRING && tsj_is_number(n->str, n->len)))
	{
		set_view(out, n->str, n->len);
		return 0;
	}
	return -1;
}

static int
is_integer_lexeme(const char *s, size_t len)
{
	return tsj_is_number(s, len) && strpbrk(s, ".eE") == NULL;
}

/* Integer column (page numbers): like number_of, but without fraction or exponent. */
static int
integer_of(const TsjNode *n, TsStr *out)
{
	if (!present(n))
		return 0;
	if ((n->type == TSJ_NUMBER || n->type == TSJ_STRING) && is_integer_lexeme(n->str, n->len))
	{
		set_view(out, n->str, n->len);
		return 0;
	}
	return -1;
}

/*
 * Append at most max bytes of s to buf for a message: control characters become '?'
 * and a cut never splits a UTF-8 sequence (the parser guarantees valid UTF-8).
 */
static void
append_clean(char *buf, size_t size, const char *s, size_t len, size_t max)
{
	size_t		used = strlen(buf),
				i;

	if (len > max)
	{
		len = max;
		while (len > 0 && ((unsigned char) s[len] & 0xC0) == 0x80)
			len--;
	}
	for (i = 0; i < len && used + 1 < size; i++)
		buf[used++] = (unsigned char) s[i] < 0x20 ? '?' : s[i];
	buf[used] = '\0';
}

/* Append ".key" (no dot at the start) and "[idx]" when idx >= 0, truncating safely. */
static void
path_append(char *buf, size_t size, const char *key, size_t keylen, long idx)
{
	size_t		used;

	if (key != NULL)
	{
		if (buf[0] != '\0')
			append_clean(buf, size, ".", 1, 1);
		append_clean(buf, size, key, keylen, 60);
	}
	used = strlen(buf);
	if (idx >= 0 && used + 1 < size)
		snprintf(buf + used, size - used, "[%ld]", idx);
}

/* "expected <what>, found <type>", quoting the start of a bad string. */
static void
set_found(TsMapError *err, const char *what, const TsjNode *bad)
{
	char	   *m = err->message;
	size_t		size = sizeof(err->message);

	if (bad == NULL)
		snprintf(m, size, "missing %s", what);
	else if (bad->type == TSJ_STRING && memchr(bad->str, '\0', bad->len) != NULL)
		snprintf(m, size, "expected %s, found a string containing \\u0000", what);
	else if (bad->type == TSJ_STRING)
	{
		snprintf(m, size, "expected %s, found the string \"", what);
		append_clean(m, size, bad->str, bad->len, 40);
		append_clean(m, size, bad->len > 40 ? "...\"" : "\"", bad->len > 40 ? 4 : 1, 4);
	}
	else
		snprintf(m, size, "expected %s, found %s", what, tsj_type_name(bad->type));
}

/* ---------------------------------------------------------------- envelope */

static int
env_error(TsMapError *err, const char *field, const char *what, const TsjNode *bad)
{
	if (err)
	{
		snprintf(err->field, sizeof(err->field), "%s", field);
		set_found(err, what, bad);
	}
	return -1;
}

static int
read_long(const TsjNode *n, long *out)
{
	TsStr		v = {NULL, 0};
	long		val;

	if (integer_of(n, &v) < 0)
		return -1;
	if (v.p == NULL)
		return 0;
	errno = 0;
	val = strtol(v.p, NULL, 10);
	if (errno == ERANGE)
		return -1;
	*out = val;
	return 0;
}

int
ts_envelope_read(const TsjNode *root, TsEnvelope *env, TsMapError *err)
{
	const TsjNode *n,
			   *summary = NULL,
			   *fault;

	memset(env, 0, sizeof(*env));
	env->page_number = -1;
	env->total_pages = -1;
	if (err)
		memset(err, 0, sizeof(*err));
	if (root == NULL || root->type != TSJ_OBJECT)
		return env_error(err, "(root)", "an object", root);

	n = member(root, "requestId");
	if (!present(n))
		return env_error(err, "requestId", "requestId", NULL);
	if (n->type != TSJ_STRING || memchr(n->str, '\0', n->len) != NULL)
		return env_error(err, "requestId", "a string", n);
	set_view(&env->request_id, n->str, n->len);

	n = member(root, "deviceResponse");
	if (n && n->type == TSJ_OBJECT)
	{
		const TsjNode *s = member(n, "billingUsageSummary");

		if (s && s->type == TSJ_OBJECT)
			summary = s;
	}

	/* paging: the summary's fields, else top-level ones */
	n = member(summary, "pageNumber");
	if (present(n))
	{
		if (read_long(n, &env->page_number) < 0)
			return env_error(err, "deviceResponse.billingUsageSummary.pageNumber", "an integer", n);
	}
	else if (read_long(member(root, "pageNumber"), &env->page_number) < 0)
		return env_error(err, "pageNumber", "an integer", member(root, "pageNumber"));
	n = member(summary, "totalPages");
	if (present(n))
	{
		if (read_long(n, &env->total_pages) < 0)
			return env_error(err, "deviceResponse.billingUsageSummary.totalPages", "an integer", n);
	}
	else if (read_long(member(root, "totalPages"), &env->total_pages) < 0)
		return env_error(err, "totalPages", "an integer", member(root, "totalPages"));

	n = member(root, "status");
	if (present(n))
	{
		if (n->type != TSJ_STRING)
			return env_error(err, "status", "a string", n);
		set_view(&env->status, n->str, n->len);
		if (!ci_equal(n->str, n->len, "success"))
			env->failed = 1;
	}

	fault = member(root, "faultResponse");
	if (present(fault))
	{
		if (fault->type == TSJ_OBJECT)
		{
			/* an empty faultResponse next to a success status is not a fault */
			if (fault->nchildren > 0)
				env->failed = 1;
			if (text_of(member(fault, "faultcode"), &env->fault_code) < 0)
				return env_error(err, "faultResponse.faultcode", "a string", member(fault, "faultcode"));
			if (text_of(member(fault, "faultstring"), &env->fault_string) < 0)
				return env_error(err, "faultResponse.faultstring", "a string", member(fault, "faultstring"));
		}
		else
		{
			env->failed = 1;
			(void) text_of(fault, &env->fault_string);
		}
	}

	/* credentials: strings only; anything else is simply not a credential */
	n = member(root, "username");
	if (n && n->type == TSJ_STRING)
		set_view(&env->username, n->str, n->len);
	n = member(root, "password");
	if (n && n->type == TSJ_STRING)
		set_view(&env->password, n->str, n->len);
	return 0;
}

/* ---------------------------------------------------------------- sniff, redact */

static const char *
skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++;
	return s;
}

size_t
ts_sniff_request_id(const char *buf, size_t len, char *out, size_t outsize)
{
	static const char pat[] = "\"requestId\"";
	const size_t patlen = sizeof(pat) - 1;
	const char *end = buf + len,
			   *q;

	if (out == NULL || outsize == 0)
		return 0;
	out[0] = '\0';
	if (buf == NULL)
		return 0;
	for (q = buf; q < end && (q = memchr(q, '"', (size_t) (end - q))) != NULL; q++)
	{
		const char *s,
				   *v;
		size_t		n;

		if ((size_t) (end - q) < patlen || memcmp(q, pat, patlen) != 0 ||
			(q > buf && q[-1] == '\\'))
			continue;
		s = skip_ws(q + patlen, end);
		if (s >= end || *s != ':')
			continue;
		s = skip_ws(s + 1, end);
		if (s >= end || *s != '"')
			continue;
		v = ++s;
		/* the simple case only: ids are plain ASCII, an escape means "not recognisable" */
		while (s < end && *s != '"' && *s != '\\' && (unsigned char) *s >= 0x20)
			s++;
		if (s >= end || *s != '"' || s == v)
			continue;
		n = (size_t) (s - v);
		if (n >= outsize)
			continue;
		memcpy(out, v, n);
		out[n] = '\0';
		return n;
	}
	return 0;
}

typedef struct OutBuf
{
	char	   *p;
	size_t		len;
	size_t		cap;
	int			oom;
} OutBuf;

static void
out_put(OutBuf *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->cap - o->len < n + 1)
	{
		size_t		cap = o->cap * 2 + n + 1;
		char	   *p = realloc(o->p, cap);

		if (p == NULL)
		{
			o->oom = 1;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* End of string content starting at s: the closing quote, a raw newline (broken), or end. */
static const char *
string_end(const char *s, const char *end)
{
	while (s < end && *s != '"' && *s != '\n')
	{
		if (*s == '\\' && s + 1 < end)
			s++;
		s++;
	}
	return s < end ? s : end;
}

/*
 * Stateless about strings on purpose: every `"username"` / `"password"` (any case)
 * followed by ':' is a member name, wherever it stands, so a quote missing earlier in
 * broken JSON cannot make us skip a secret.  In valid JSON a member-name quote is never
 * preceded by a backslash, which keeps escaped text inside values untouched.
 */
char *
ts_redact_credentials(const char *buf, size_t len, size_t *outlen)
{
	OutBuf		o;
	const char *end = buf + len,
			   *copied = buf,
			   *q;

	o.cap = len + 64;
	o.len = 0;
	o.oom = 0;
	o.p = malloc(o.cap);
	if (o.p == NULL)
		return NULL;
	if (buf == NULL)
		end = copied = buf = "";
	for (q = buf; q < end && (q = memchr(q, '"', (size_t) (end - q))) != NULL;)
	{
		const char *s;

		if ((size_t) (end - q) < 10 || q[9] != '"' ||
			!(ci_equal(q + 1, 8, "username") || ci_equal(q + 1, 8, "password")) ||
			(q > buf && q[-1] == '\\'))
		{
			q++;
			continue;
		}
		s = skip_ws(q + 10, end);
		if (s >= end || *s != ':')
		{
			q += 10;
			continue;
		}
		s = skip_ws(s + 1, end);
		if (s < end && *s == '"')
		{
			const char *ve = string_end(s + 1, end);

			out_put(&o, copied, (size_t) (s + 1 - copied));
			out_put(&o, "[redacted]", 10);
			copied = ve;
			q = ve < end && *ve == '"' ? ve + 1 : ve;
		}
		else if (s < end && (*s == '-' || (*s >= '0' && *s <= '9')))
		{
			/* a numeric secret is still a secret; a string keeps the JSON valid */
			const char *ne = s;

			while (ne < end && *ne != '\0' && strchr("+-.eE0123456789", *ne) != NULL)
				ne++;
			out_put(&o, copied, (size_t) (s - copied));
			out_put(&o, "\"[redacted]\"", 12);
			copied = q = ne;
		}
		else
			q = s;
	}
	out_put(&o, copied, (size_t) (end - copied));
	if (o.oom)
	{
		free(o.p);
		return NULL;
	}
	o.p[o.len] = '\0';
	if (outlen)
		*outlen = o.len;
	return o.p;
}

/* ---------------------------------------------------------------- cursor */

enum
{
	LV_ROOT,
	LV_SUMMARY,
	LV_SCOPE,
	LV_SEGMENT,
	LV_DETAILS,
	LV_DETAIL
};

/* JSON path of the node the cursor is on at `level`. */
static void
cursor_path(const TsMapCursor *c, int level, char *buf, size_t size)
{
	buf[0] = '\0';
	if (level >= LV_SUMMARY)
	{
		path_append(buf, size, c->response->key, c->response->keylen, -1);
		path_append(buf, size, c->summary->key, c->summary->keylen, -1);
	}
	if (level >= LV_SCOPE && c->devices)
		path_append(buf, size, c->devices->key, c->devices->keylen, c->scope_idx);
	if (level >= LV_SEGMENT)
		path_append(buf, size, c->seglist->key, c->seglist->keylen, c->seg_idx);
	if (level >= LV_DETAILS)
		path_append(buf, size, c->details->key, c->details->keylen, -1);
	if (level >= LV_DETAIL)
		path_append(buf, size, c->detlist->key, c->detlist->keylen, c->detail_idx);
}

/* The node the cursor is on at `level`. */
static const TsjNode *
level_node(const TsMapCursor *c, int level)
{
	switch (level)
	{
		case LV_SUMMARY:
			return c->summary;
		case LV_SCOPE:
			return c->scope;
		case LV_SEGMENT:
			return c->segment;
		case LV_DETAILS:
			return c->details;
		case LV_DETAIL:
			return c->detail;
	}
	return c->root;
}

/*
 * Shape error below `level`: `bad` is the offending node; with bad_is_member its name
 * ends the path, preceded by the name of `obj` when obj is a member object of the level
 * node (deviceIdentifier, label).  Without bad_is_member the level node itself is bad.
 */
static int
shape_error_in(TsMapCursor *c, int level, const TsjNode *obj, const TsjNode *bad,
			   int bad_is_member, const char *what, TsMapError *err)
{
	TsMapError *e = &c->error;

	memset(e, 0, sizeof(*e));
	cursor_path(c, level, e->field, sizeof(e->field));
	if (obj != NULL && obj != level_node(c, level))
		path_append(e->field, sizeof(e->field), obj->key, obj->keylen, -1);
	if (bad_is_member && bad != NULL)
		path_append(e->field, sizeof(e->field), bad->key, bad->keylen, -1);
	set_found(e, what, bad);
	c->failed = 1;
	if (err)
		*err = *e;
	return -1;
}

static int
shape_error(TsMapCursor *c, int level, const TsjNode *bad, int bad_is_member,
			const char *what, TsMapError *err)
{
	return shape_error_in(c, level, NULL, bad, bad_is_member, what, err);
}

/* Missing or wrong-typed container on the way to the summary. */
static int
missing_error(TsMapCursor *c, const char *field, const char *what, const TsjNode *bad,
			  TsMapError *err)
{
	memset(&c->error, 0, sizeof(c->error));
	snprintf(c->error.field, sizeof(c->error.field), "%s", field);
	if (bad == NULL || bad->type == TSJ_NULL)
		snprintf(c->error.message, sizeof(c->error.message), "missing %s", field);
	else
		set_found(&c->error, what, bad);
	c->failed = 1;
	if (err)
		*err = c->error;
	return -1;
}

void
ts_map_begin(TsMapCursor *cur, const TsjNode *root, TsResource resource)
{
	memset(cur, 0, sizeof(*cur));
	cur->root = root;
	cur->resource = resource;
	cur->scope_idx = -1;
	cur->seg_kind = -1;
	cur->usage_type = -1;
}

static int
cursor_start(TsMapCursor *c, TsMapError *err)
{
	const TsjNode *n;

	if (c->root == NULL || c->root->type != TSJ_OBJECT)
		return missing_error(c, "(root)", "an object", c->root, err);
	c->request_id = member(c->root, "requestId");
	/* rows carry it when it is usable text; ts_envelope_read is where it is enforced */
	if (text_of(c->request_id, &c->request_id_val) < 0)
		c->request_id_val.p = NULL;
	n = member(c->root, "deviceResponse");
	if (!present(n) || n->type != TSJ_OBJECT)
		return missing_error(c, "deviceResponse", "an object", n, err);
	c->response = n;
	n = member(n, "billingUsageSummary");
	if (!present(n) || n->type != TSJ_OBJECT)
		return missing_error(c, "deviceResponse.billingUsageSummary", "an object", n, err);
	c->summary = n;
	n = member(n, "devices");
	if (present(n))
	{
		if (n->type != TSJ_ARRAY)
			return shape_error(c, LV_SUMMARY, n, 1, "an array", err);
		c->devices = n;
	}
	c->started = 1;
	return 0;
}

/* Column setters: 0, or -1 after recording a shape error for obj.name. */
static int
put_text(TsMapCursor *c, int level, const TsjNode *obj, const char *name, TsStr *dst,
		 TsMapError *err)
{
	const TsjNode *n = member(obj, name);

	if (text_of(n, dst) < 0)
		return shape_error_in(c, level, obj, n, 1, "a string", err);
	return 0;
}

static int
put_number(TsMapCursor *c, int level, const TsjNode *obj, const char *name, TsStr *dst,
		   TsMapError *err)
{
	const TsjNode *n = member(obj, name);

	if (number_of(n, dst) < 0)
		return shape_error_in(c, level, obj, n, 1, "a number", err);
	return 0;
}

static int
put_integer(TsMapCursor *c, int level, const TsjNode *obj, const char *name, TsStr *dst,
			TsMapError *err)
{
	const TsjNode *n = member(obj, name);

	if (integer_of(n, dst) < 0)
		return shape_error_in(c, level, obj, n, 1, "an integer", err);
	return 0;
}

/*
 * Device, label, unit (and for the summary its pageNumber) of obj, the summary or a
 * device.  Read once per scope so that a row costs the same however many members its
 * ancestors have: hostile input cannot make the mapping quadratic.
 */
static int
read_shared(TsMapCursor *c, int level, const TsjNode *obj, TsMapShared *out, TsMapError *err)
{
	const TsjNode *dev = member(obj, "deviceIdentifier"),
			   *label = member(obj, "label");

	memset(out, 0, sizeof(*out));
	if (present(dev))
	{
		if (dev->type != TSJ_OBJECT)
			return shape_error(c, level, dev, 1, "an object", err);
		if (put_text(c, level, dev, "id", &out->device_id, err) < 0 ||
			put_text(c, level, dev, "kind", &out->device_kind, err) < 0)
			return -1;
		if (out->device_kind.len >= sizeof(((TsRow *) 0)->kind_buf))
			return shape_error_in(c, level, dev, member(dev, "kind"), 1,
								  "a device kind (at most 31 bytes)", err);
	}
	if (present(label))
	{
		if (label->type != TSJ_OBJECT)
			return shape_error(c, level, label, 1, "an object", err);
		if (put_text(c, level, label, "name", &out->label_name, err) < 0 ||
			put_text(c, level, label, "value", &out->label_value, err) < 0)
			return -1;
	}
	if (put_text(c, level, obj, "unitOfMeasure", &out->unit, err) < 0)
		return -1;
	if (level == LV_SUMMARY &&
		put_integer(c, level, obj, "pageNumber", &out->page, err) < 0)
		return -1;
	return 0;
}

/* Shared values of the current scope, falling back to the summary's. */
static int
scope_shared(TsMapCursor *c, TsMapError *err)
{
	TsMapShared *v = &c->scope_vals,
			   *s = &c->summary_vals;

	if (!c->summary_ready)
	{
		if (read_shared(c, LV_SUMMARY, c->summary, s, err) < 0)
			return -1;
		c->summary_ready = 1;
	}
	if (c->scope == c->summary)
	{
		*v = *s;
		return 0;
	}
	if (read_shared(c, LV_SCOPE, c->scope, v, err) < 0)
		return -1;
	if (v->device_id.p == NULL && v->device_kind.p == NULL)
	{
		v->device_id = s->device_id;
		v->device_kind = s->device_kind;
	}
	if (v->label_name.p == NULL && v->label_value.p == NULL)
	{
		v->label_name = s->label_name;
		v->label_value = s->label_value;
	}
	if (v->unit.p == NULL)
		v->unit = s->unit;
	v->page = s->page;
	return 0;
}

/* Move to the next scope: 1 = on one, 0 = none left, -1 = error. */
static int
next_scope(TsMapCursor *c, TsMapError *err)
{
	if (c->scope_idx < 0)
		c->scope = c->devices ? c->devices->child : c->summary;
	else
		c->scope = (c->devices && c->scope) ? c->scope->next : NULL;
	c->scope_idx++;
	c->seglist = c->segment = NULL;
	c->seg_kind = -1;
	if (c->scope == NULL)
		return 0;
	if (c->scope->type != TSJ_OBJECT)
		return shape_error(c, LV_SCOPE, c->scope, 0, "an object", err);
	if (scope_shared(c, err) < 0)
		return -1;
	return 1;
}

/* Move to the next segment of the scope: usageApns elements, then usageSegments. */
static int
next_segment(TsMapCursor *c, TsMapError *err)
{
	if (c->segment)
	{
		c->segment = c->segment->next;
		c->seg_idx++;
	}
	while (c->segment == NULL)
	{
		const TsjNode *list;

		if (++c->seg_kind > 1)
		{
			c->seg_kind = 2;
			return 0;
		}
		list = member(c->scope, c->seg_kind == 0 ? "usageApns" : "usageSegments");
		if (!present(list))
			continue;
		if (list->type != TSJ_ARRAY)
			return shape_error(c, LV_SCOPE, list, 1, "an array", err);
		c->seglist = list;
		c->segment = list->child;
		c->seg_idx = 0;
	}
	c->details = c->detlist = c->detail = NULL;
	c->usage_type = -1;
	if (c->segment->type != TSJ_OBJECT)
		return shape_error(c, LV_SEGMENT, c->segment, 0, "an object", err);
	c->seg_name.p = NULL;
	c->seg_name.len = 0;
	if (put_text(c, LV_SEGMENT, c->segment, c->seg_kind == 0 ? "name" : "ratingGroup",
				 &c->seg_name, err) < 0)
		return -1;
	return 1;
}

/* Move to the next country detail of the segment: current, then delayed. */
static int
next_detail(TsMapCursor *c, TsMapError *err)
{
	if (c->detail)
	{
		c->detail = c->detail->next;
		c->detail_idx++;
	}
	while (c->detail == NULL)
	{
		const TsjNode *list;

		if (++c->usage_type > 1)
		{
			c->usage_type = 2;
			return 0;
		}
		if (c->usage_type == 0)
		{
			const TsjNode *d = member(c->segment, c->seg_kind == 0 ? "apnDetails" : "ratingGroupDetails");

			if (!present(d))
			{
				c->usage_type = 2;
				return 0;
			}
			if (d->type != TSJ_OBJECT)
				return shape_error(c, LV_SEGMENT, d, 1, "an object", err);
			c->details = d;
		}
		list = member(c->details, c->usage_type == 0 ? "totalUsageDetails" : "totalDelayedUsageDetails");
		if (!present(list))
			continue;
		if (list->type != TSJ_ARRAY)
			return shape_error(c, LV_DETAILS, list, 1, "an array", err);
		c->detlist = list;
		c->detail = list->child;
		c->detail_idx = 0;
	}
	if (c->detail->type != TSJ_OBJECT)
		return shape_error(c, LV_DETAIL, c->detail, 0, "an object", err);
	return 1;
}

/* Columns every table shares: device, label, unit, request id. */
static void
fill_common(TsMapCursor *c, TsRow *row)
{
	const TsMapShared *v = &c->scope_vals;
	size_t		i;

	memset(row, 0, sizeof(*row));
	if (v->device_kind.p)
	{
		for (i = 0; i < v->device_kind.len; i++)
			row->kind_buf[i] = (char) ascii_lower((unsigned char) v->device_kind.p[i]);
		set_view(&row->col[TSC_DEVICE_KIND], row->kind_buf, v->device_kind.len);
	}
	row->col[TSC_DEVICE_ID] = v->device_id;
	row->col[TSC_LABEL_NAME] = v->label_name;
	row->col[TSC_LABEL_VALUE] = v->label_value;
	row->col[TSC_UNIT_OF_MEASURE] = v->unit;
	row->col[TSC_REQUEST_ID] = c->request_id_val;
}

static int
fill_billed(TsMapCursor *c, TsRow *row, TsMapError *err)
{
	const TsjNode *s = c->scope;

	fill_common(c, row);
	if (put_number(c, LV_SCOPE, s, "totalBilledAmount", &row->col[TSC_TOTAL_BILLED_AMOUNT], err) < 0 ||
		put_number(c, LV_SCOPE, s, "totalBilledUsage", &row->col[TSC_TOTAL_BILLED_USAGE], err) < 0 ||
		put_number(c, LV_SCOPE, s, "totalUsage", &row->col[TSC_TOTAL_USAGE], err) < 0)
		return -1;
	set_view(&row->col[TSC_RAW], s->str, s->len);
	return 0;
}

/* Segment kind and name, shared by the segment and country rows. */
static void
fill_segment_id(TsMapCursor *c, TsRow *row)
{
	if (c->seg_kind == 0)
		set_view(&row->col[TSC_SEGMENT_KIND], "apn", 3);
	else
		set_view(&row->col[TSC_SEGMENT_KIND], "rating_group", 12);
	row->col[TSC_SEGMENT_NAME] = c->seg_name;
}

static int
fill_segment(TsMapCursor *c, TsRow *row, TsMapError *err)
{
	const TsjNode *g = c->segment;
	int			apn = c->seg_kind == 0;

	fill_common(c, row);
	fill_segment_id(c, row);
	if (put_number(c, LV_SEGMENT, g, apn ? "billedAmount" : "ratingGroupBilledAmount",
				   &row->col[TSC_BILLED_AMOUNT], err) < 0 ||
		put_number(c, LV_SEGMENT, g, apn ? "billedUsage" : "ratingGroupBilledUsage",
				   &row->col[TSC_BILLED_USAGE], err) < 0 ||
		put_number(c, LV_SEGMENT, g, apn ? "totalUsage" : "ratingGroupTotalUsage",
				   &row->col[TSC_TOTAL_USAGE], err) < 0 ||
		put_integer(c, LV_SEGMENT, g, "pageNumber", &row->col[TSC_PAGE_NUMBER], err) < 0)
		return -1;
	if (row->col[TSC_PAGE_NUMBER].p == NULL)
		row->col[TSC_PAGE_NUMBER] = c->scope_vals.page;
	set_view(&row->col[TSC_RAW], g->str, g->len);
	return 0;
}

static int
fill_country(TsMapCursor *c, TsRow *row, TsMapError *err)
{
	const TsjNode *d = c->detail;

	fill_common(c, row);
	fill_segment_id(c, row);
	if (c->usage_type == 0)
		set_view(&row->col[TSC_USAGE_TYPE], "current", 7);
	else
		set_view(&row->col[TSC_USAGE_TYPE], "delayed", 7);
	if (put_text(c, LV_DETAIL, d, "countryCode", &row->col[TSC_COUNTRY_CODE], err) < 0 ||
		put_number(c, LV_DETAIL, d, "chargeAmount", &row->col[TSC_CHARGE_AMOUNT], err) < 0)
		return -1;
	if (row->col[TSC_CHARGE_AMOUNT].p == NULL &&
		put_number(c, LV_DETAIL, d, "totalChargeAmount", &row->col[TSC_CHARGE_AMOUNT], err) < 0)
		return -1;
	if (put_number(c, LV_DETAIL, d, "totalBilledUsage", &row->col[TSC_BILLED_USAGE], err) < 0 ||
		put_number(c, LV_DETAIL, d, "totalUsage", &row->col[TSC_TOTAL_USAGE], err) < 0)
		return -1;
	set_view(&row->col[TSC_RAW], d->str, d->len);
	return 0;
}

TsMapStatus
ts_map_next(TsMapCursor *c, TsRow *row, TsMapError *err)
{
	int			r;

	if (c->failed)
	{
		if (err)
			*err = c->error;
		return TS_MAP_ERROR;
	}
	if (c->done)
		return TS_MAP_END;
	if (!c->started && cursor_start(c, err) < 0)
		return TS_MAP_ERROR;

	for (;;)
	{
		switch (c->resource)
		{
			case TS_RES_BILLED_USAGE:
				break;
			case TS_RES_SEGMENTS:
				if (c->scope)
				{
					r = next_segment(c, err);
					if (r < 0)
						return TS_MAP_ERROR;
					if (r > 0)
						return fill_segment(c, row, err) < 0 ? TS_MAP_ERROR : TS_MAP_ROW;
				}
				break;
			case TS_RES_COUNTRIES:
				if (c->segment)
				{
					r = next_detail(c, err);
					if (r < 0)
						return TS_MAP_ERROR;
					if (r > 0)
						return fill_country(c, row, err) < 0 ? TS_MAP_ERROR : TS_MAP_ROW;
				}
				if (c->scope)
				{
					r = next_segment(c, err);
					if (r < 0)
						return TS_MAP_ERROR;
					if (r > 0)
						continue;
				}
				break;
			default:
				c->done = 1;
				return TS_MAP_END;
		}
		r = next_scope(c, err);
		if (r < 0)
			return TS_MAP_ERROR;
		if (r == 0)
		{
			c->done = 1;
			return TS_MAP_END;
		}
		if (c->resource == TS_RES_BILLED_USAGE)
			return fill_billed(c, row, err) < 0 ? TS_MAP_ERROR : TS_MAP_ROW;
	}
}
