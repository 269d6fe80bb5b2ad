/*
 * tsjson.c — strict RFC 8259 JSON reader for callback bodies.
 *
 * Recursive descent with an explicit depth limit (TSJ_MAX_DEPTH), so hostile nesting
 * gives an error, never a stack overflow.  All nodes and unescaped strings live in one
 * arena of a few large malloc blocks; tsj_free releases everything at once.  Strings
 * are scanned twice (find the end and validate, then copy or decode) so that the common
 * escape-free string is a single memcpy.
 */
#include <stdlib.h>
#include <string.h>
#include "tsjson.h"

/* ---------------------------------------------------------------- arena */

typedef union Block
{
	union Block *next;			/* the union keeps the data that follows 8-aligned */
	double		align_d;
	long long	align_ll;
} Block;

struct TsjDoc
{
	const TsjNode *root;
	Block	   *blocks;
	char	   *cur;			/* free space of the newest block: [cur, lim) */
	char	   *lim;
	size_t		next_size;
	size_t		used;			/* bytes handed out, checked against max_bytes */
	size_t		max_bytes;		/* 0 = unlimited */
};

#define ARENA_MIN_BLOCK ((size_t) 4096)
#define ARENA_MAX_BLOCK ((size_t) 256 * 1024 * 1024)

static void *
arena_alloc(TsjDoc *doc, size_t n)
{
	char	   *p;

	n = (n + 7) & ~(size_t) 7;
	if (doc->max_bytes && (n > doc->max_bytes || doc->used > doc->max_bytes - n))
		return NULL;
	if ((size_t) (doc->lim - doc->cur) < n)
	{
		size_t		size = doc->next_size;
		Block	   *b;

		if (size < n)
			size = n;
		if (size > (size_t) -1 - sizeof(Block))
			return NULL;
		b = malloc(sizeof(Block) + size);
		if (b == NULL)
			return NULL;
		b->next = doc->blocks;
		doc->blocks = b;
		doc->cur = (char *) (b + 1);
		doc->lim = doc->cur + size;
		/* geometric growth keeps the block count logarithmic */
		if (doc->next_size < ARENA_MAX_BLOCK)
			doc->next_size *= 2;
	}
	p = doc->cur;
	doc->cur += n;
	doc->used += n;
	return p;
}

/* ---------------------------------------------------------------- parser */

typedef struct Parser
{
	const char *buf;
	const char *end;
	const char *s;				/* current position */
	TsjDoc	   *doc;
	TsjError   *err;
	int			failed;
} Parser;

/* Bytes the string fast path must look at: controls, '"', '\\' and non-ASCII. */
#define X16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const unsigned char str_special[256] = {
	X16(1), X16(1),
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x22 '"' */
	X16(0), X16(0),
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,	/* 0x5C '\\' */
	X16(0), X16(0),
	X16(1), X16(1), X16(1), X16(1), X16(1), X16(1), X16(1), X16(1)
};
#undef X16

static void
set_error(TsjError *err, const char *buf, size_t off, const char *msg)
{
	const char *p = buf,
			   *stop = buf + off,
			   *nl;
	const char *linestart = buf;
	int			line = 1;

	while ((nl = memchr(p, '\n', (size_t) (stop - p))) != NULL)
	{
		line++;
		p = linestart = nl + 1;
	}
	err->offset = off;
	err->line = line;
	err->column = (int) (stop - linestart) + 1;
	strncpy(err->message, msg, sizeof(err->message) - 1);
	err->message[sizeof(err->message) - 1] = '\0';
}

/* Record the first error; returns NULL so callers can `return fail(...)`. */
static void *
fail(Parser *ps, const char *at, const char *msg)
{
	char		tmp[sizeof(ps->err->message)];

	if (ps->failed)
		return NULL;
	ps->failed = 1;
	if (at >= ps->end && strcmp(msg, "out of memory") != 0)
	{
		/* say both what was expected and that the body simply stopped */
		strcpy(tmp, "unexpected end of input: ");
		strncat(tmp, msg, sizeof(tmp) - strlen(tmp) - 1);
		msg = tmp;
		at = ps->end;
	}
	set_error(ps->err, ps->buf, (size_t) (at - ps->buf), msg);
	return NULL;
}

static void *
fail_oom(Parser *ps)
{
	return fail(ps, ps->s, "out of memory");
}

static inline const char *
skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++;
	return s;
}

static inline int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/*
 * Scan one number per the JSON grammar.  Returns the end of the lexeme, or NULL
 * with *errat / *errmsg set.
 */
static const char *
scan_number(const char *s, const char *end, const char **errat, const char **errmsg)
{
	if (s < end && *s == '-')
		s++;
	if (s >= end || !is_digit((unsigned char) *s))
	{
		*errat = s;
		*errmsg = "invalid number: expected a digit";
		return NULL;
	}
	if (*s == '0')
	{
		s++;
		if (s < end && is_digit((unsigned char) *s))
		{
			*errat = s;
			*errmsg = "invalid number: leading zero";
			return NULL;
		}
	}
	else
		while (s < end && is_digit((unsigned char) *s))
			s++;
	if (s < end && *s == '.')
	{
		s++;
		if (s >= end || !is_digit((unsigned char) *s))
		{
			*errat = s;
			*errmsg = "invalid number: expected a digit after '.'";
			return NULL;
		}
		while (s < end && is_digit((unsigned char) *s))
			s++;
	}
	if (s < end && (*s == 'e' || *s == 'E'))
	{
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		if (s >= end || !is_digit((unsigned char) *s))
		{
			*errat = s;
			*errmsg = "invalid number: expected a digit in the exponent";
			return NULL;
		}
		while (s < end && is_digit((unsigned char) *s))
			s++;
	}
	return s;
}

int
tsj_is_number(const char *s, size_t len)
{
	const char *errat,
			   *errmsg;
	const char *e;

	if (s == NULL || len == 0)
		return 0;
	e = scan_number(s, s + len, &errat, &errmsg);
	return e == s + len;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0. */
static int
utf8_len(const unsigned char *s, const unsigned char *end)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80,
				hi = 0xBF;
	int			n,
				i;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;			/* no overlong forms */
		else if (c == 0xED)
			hi = 0x9F;			/* no encoded surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;			/* nothing above U+10FFFF */
	}
	else
		return 0;
	if (end - s < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

static int
hex4(const char *s)
{
	int			v = 0,
				i;

	/* stops at the first non-hex byte, so it never reads past the closing quote */
	for (i = 0; i < 4; i++)
	{
		int			c = (unsigned char) s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static char *
put_utf8(char *w, unsigned long cp)
{
	if (cp < 0x80)
		*w++ = (char) cp;
	else if (cp < 0x800)
	{
		*w++ = (char) (0xC0 | (cp >> 6));
		*w++ = (char) (0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		*w++ = (char) (0xE0 | (cp >> 12));
		*w++ = (char) (0x80 | ((cp >> 6) & 0x3F));
		*w++ = (char) (0x80 | (cp & 0x3F));
	}
	else
	{
		*w++ = (char) (0xF0 | (cp >> 18));
		*w++ = (char) (0x80 | ((cp >> 12) & 0x3F));
		*w++ = (char) (0x80 | ((cp >> 6) & 0x3F));
		*w++ = (char) (0x80 | (cp & 0x3F));
	}
	return w;
}

/* Decode the escapes of raw string content [r, stop) into w; 0 or -1 (error set). */
static int
decode_escapes(Parser *ps, const char *r, const char *stop, char *w, size_t *outlen)
{
	char	   *w0 = w;

	while (r < stop)
	{
		const char *bs = memchr(r, '\\', (size_t) (stop - r));
		long		cp;

		if (bs == NULL)
			bs = stop;
		memcpy(w, r, (size_t) (bs - r));
		w += bs - r;
		r = bs;
		if (r >= stop)
			break;
		switch (r[1])
		{
			case '"':
			case '\\':
			case '/':
				*w++ = r[1];
				break;
			case 'b':
				*w++ = '\b';
				break;
			case 'f':
				*w++ = '\f';
				break;
			case 'n':
				*w++ = '\n';
				break;
			case 'r':
				*w++ = '\r';
				break;
			case 't':
				*w++ = '\t';
				break;
			case 'u':
				cp = hex4(r + 2);
				if (cp < 0)
				{
					fail(ps, r, "invalid \\u escape: expected four hex digits");
					return -1;
				}
				if (cp >= 0xD800 && cp <= 0xDBFF)
				{
					long		lo = -1;

					if (r[6] == '\\' && r[7] == 'u')
						lo = hex4(r + 8);
					if (lo < 0xDC00 || lo > 0xDFFF)
					{
						fail(ps, r, "invalid \\u escape: high surrogate without a low surrogate");
						return -1;
					}
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					r += 6;
				}
				else if (cp >= 0xDC00 && cp <= 0xDFFF)
				{
					fail(ps, r, "invalid \\u escape: lone low surrogate");
					return -1;
				}
				w = put_utf8(w, (unsigned long) cp);
				r += 4;
				break;
			default:
				fail(ps, r, "invalid escape sequence in string");
				return -1;
		}
		r += 2;
	}
	*w = '\0';
	*outlen = (size_t) (w - w0);
	return 0;
}

/* Parse the string at ps->s (which is '"') into arena memory. */
static int
parse_string(Parser *ps, const char **out, size_t *outlen)
{
	const unsigned char *s = (const unsigned char *) ps->s + 1;
	const unsigned char *start = s;
	const unsigned char *end = (const unsigned char *) ps->end;
	int			escapes = 0;
	size_t		rawlen;
	char	   *dst;

	for (;;)
	{
		unsigned char c;
		int			k;

		while (s < end && !str_special[*s])
			s++;
		if (s >= end)
		{
			fail(ps, ps->end, "unterminated string");
			return -1;
		}
		c = *s;
		if (c == '"')
			break;
		if (c == '\\')
		{
			escapes = 1;
			s += 2;				/* escape validity is checked while decoding */
			if (s > end)
				s = end;
			continue;
		}
		if (c < 0x20)
		{
			fail(ps, (const char *) s, "control character in string (must be escaped)");
			return -1;
		}
		k = utf8_len(s, end);
		if (k == 0)
		{
			fail(ps, (const char *) s, "invalid UTF-8 in string");
			return -1;
		}
		s += k;
	}
	rawlen = (size_t) (s - start);
	dst = arena_alloc(ps->doc, rawlen + 1);
	if (dst == NULL)
	{
		fail_oom(ps);
		return -1;
	}
	if (!escapes)
	{
		memcpy(dst, start, rawlen);
		dst[rawlen] = '\0';
		*outlen = rawlen;
	}
	else if (decode_escapes(ps, (const char *) start, (const char *) s, dst, outlen) < 0)
		return -1;
	*out = dst;
	ps->s = (const char *) s + 1;
	return 0;
}

static TsjNode *parse_value(Parser *ps, int depth);

static TsjNode *
parse_object(Parser *ps, TsjNode *obj, int depth)
{
	TsjNode    *last = NULL;
	const char *end = ps->end;

	ps->s = skip_ws(ps->s + 1, end);
	if (ps->s < end && *ps->s == '}')
	{
		ps->s++;
		return obj;
	}
	for (;;)
	{
		const char *key;
		size_t		keylen;
		TsjNode    *val;

		if (ps->s >= end || *ps->s != '"')
			return fail(ps, ps->s, (ps->s < end && *ps->s == '}' && last)
						? "trailing comma before '}'"
						: "expected a string as object member name");
		if (parse_string(ps, &key, &keylen) < 0)
			return NULL;
		ps->s = skip_ws(ps->s, end);
		if (ps->s >= end || *ps->s != ':')
			return fail(ps, ps->s, "expected ':' after object member name");
		ps->s = skip_ws(ps->s + 1, end);
		val = parse_value(ps, depth);
		if (val == NULL)
			return NULL;
		val->key = key;
		val->keylen = keylen;
		if (last)
			last->next = val;
		else
			obj->child = val;
		last = val;
		obj->nchildren++;
		ps->s = skip_ws(ps->s, end);
		if (ps->s < end && *ps->s == ',')
		{
			ps->s = skip_ws(ps->s + 1, end);
			continue;
		}
		if (ps->s < end && *ps->s == '}')
		{
			ps->s++;
			return obj;
		}
		return fail(ps, ps->s, "expected ',' or '}' after object member");
	}
}

static TsjNode *
parse_array(Parser *ps, TsjNode *arr, int depth)
{
	TsjNode    *last = NULL;
	const char *end = ps->end;

	ps->s = skip_ws(ps->s + 1, end);
	if (ps->s < end && *ps->s == ']')
	{
		ps->s++;
		return arr;
	}
	for (;;)
	{
		TsjNode    *val;

		if (last && ps->s < end && *ps->s == ']')
			return fail(ps, ps->s, "trailing comma before ']'");
		val = parse_value(ps, depth);
		if (val == NULL)
			return NULL;
		if (last)
			last->next = val;
		else
			arr->child = val;
		last = val;
		arr->nchildren++;
		ps->s = skip_ws(ps->s, end);
		if (ps->s < end && *ps->s == ',')
		{
			ps->s = skip_ws(ps->s + 1, end);
			continue;
		}
		if (ps->s < end && *ps->s == ']')
		{
			ps->s++;
			return arr;
		}
		return fail(ps, ps->s, "expected ',' or ']' after array element");
	}
}

static TsjNode *
parse_literal(Parser *ps, TsjNode *n, const char *word, TsjType type)
{
	size_t		wl = strlen(word);
	size_t		avail = (size_t) (ps->end - ps->s);

	if (avail < wl || memcmp(ps->s, word, wl) != 0)
	{
		/* a body cut inside the word is reported as cut, not as a bad word */
		if (avail < wl && memcmp(ps->s, word, avail) == 0)
			return fail(ps, ps->end, "invalid literal (expected true, false or null)");
		return fail(ps, ps->s, "invalid literal (expected true, false or null)");
	}
	n->type = type;
	n->str = word;
	n->len = wl;
	ps->s += wl;
	return n;
}

/* Parse the value at ps->s (whitespace already skipped); depth = enclosing containers. */
static TsjNode *
parse_value(Parser *ps, int depth)
{
	const char *s = ps->s;
	TsjNode    *n,
			   *r;

	if (s >= ps->end)
		return fail(ps, s, "expected a value");
	n = arena_alloc(ps->doc, sizeof(TsjNode));
	if (n == NULL)
		return fail_oom(ps);
	memset(n, 0, sizeof(*n));
	n->start = (size_t) (s - ps->buf);
	switch (*s)
	{
		case '{':
		case '[':
			if (depth >= TSJ_MAX_DEPTH)
				return fail(ps, s, "nesting too deep (more than 256 levels)");
			if (*s == '{')
			{
				n->type = TSJ_OBJECT;
				r = parse_object(ps, n, depth + 1);
			}
			else
			{
				n->type = TSJ_ARRAY;
				r = parse_array(ps, n, depth + 1);
			}
			if (r == NULL)
				return NULL;
			n->str = s;			/* containers: view of their own source text */
			break;
		case '"':
			n->type = TSJ_STRING;
			if (parse_string(ps, &n->str, &n->len) < 0)
				return NULL;
			break;
		case 't':
			r = parse_literal(ps, n, "true", TSJ_TRUE);
			if (r == NULL)
				return NULL;
			break;
		case 'f':
			r = parse_literal(ps, n, "false", TSJ_FALSE);
			if (r == NULL)
				return NULL;
			break;
		case 'n':
			r = parse_literal(ps, n, "null", TSJ_NULL);
			if (r == NULL)
				return NULL;
			break;
		case '-':
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
		case '8':
		case '9':
			{
				const char *errat,
						   *errmsg;
				const char *e = scan_number(s, ps->end, &errat, &errmsg);
				char	   *lex;

				if (e == NULL)
					return fail(ps, errat, errmsg);
				lex = arena_alloc(ps->doc, (size_t) (e - s) + 1);
				if (lex == NULL)
					return fail_oom(ps);
				memcpy(lex, s, (size_t) (e - s));
				lex[e - s] = '\0';
				n->type = TSJ_NUMBER;
				n->str = lex;
				n->len = (size_t) (e - s);
				ps->s = e;
				break;
			}
		default:
			return fail(ps, s, "expected a value");
	}
	n->end = (size_t) (ps->s - ps->buf);
	if (n->type == TSJ_OBJECT || n->type == TSJ_ARRAY)
		n->len = n->end - n->start;
	return n;
}

TsjDoc *
tsj_parse_limited(const char *buf, size_t len, size_t max_bytes, TsjError *err)
{
	TsjError	dummy;
	Parser		ps;
	TsjDoc	   *doc;
	size_t		guess;

	if (err == NULL)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (buf == NULL)
		len = 0;

	doc = calloc(1, sizeof(TsjDoc));
	if (doc == NULL)
	{
		set_error(err, "", 0, "out of memory");
		return NULL;
	}
	/* first block sized for typical pretty-printed payloads: nodes take ~1.5x source */
	guess = len / 2 * 3 + ARENA_MIN_BLOCK;
	if (guess > ARENA_MAX_BLOCK || guess < len)
		guess = ARENA_MAX_BLOCK;
	if (max_bytes && guess > max_bytes)
		guess = max_bytes < ARENA_MIN_BLOCK ? ARENA_MIN_BLOCK : max_bytes;
	doc->next_size = guess;
	doc->max_bytes = max_bytes;

	ps.buf = buf ? buf : "";
	ps.end = ps.buf + len;
	ps.s = ps.buf;
	ps.doc = doc;
	ps.err = err;
	ps.failed = 0;

	/* a UTF-8 byte order mark is tolerated; spans stay relative to buf */
	if (len >= 3 && memcmp(ps.s, "\xEF\xBB\xBF", 3) == 0)
		ps.s += 3;
	ps.s = skip_ws(ps.s, ps.end);
	doc->root = parse_value(&ps, 0);
	if (doc->root != NULL)
	{
		ps.s = skip_ws(ps.s, ps.end);
		if (ps.s != ps.end)
			fail(&ps, ps.s, "unexpected data after the JSON value");
	}
	if (ps.failed || doc->root == NULL)
	{
		tsj_free(doc);
		return NULL;
	}
	return doc;
}

TsjDoc *
tsj_parse(const char *buf, size_t len, TsjError *err)
{
	return tsj_parse_limited(buf, len, 0, err);
}

const TsjNode *
tsj_root(const TsjDoc *doc)
{
	return doc ? doc->root : NULL;
}

size_t
tsj_memory_used(const TsjDoc *doc)
{
	return doc ? doc->used : 0;
}

void
tsj_free(TsjDoc *doc)
{
	Block	   *b,
			   *next;

	if (doc == NULL)
		return;
	for (b = doc->blocks; b; b = next)
	{
		next = b->next;
		free(b);
	}
	free(doc);
}

/* ---------------------------------------------------------------- lookup */

const TsjNode *
tsj_get(const TsjNode *obj, const char *key)
{
	const TsjNode *m;
	size_t		kl;

	if (obj == NULL || obj->type != TSJ_OBJECT || key == NULL)
		return NULL;
	kl = strlen(key);
	for (m = obj->child; m; m = m->next)
		if (m->keylen == kl && memcmp(m->key, key, kl) == 0)
			return m;
	return NULL;
}

static int
ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

const TsjNode *
tsj_get_ci(const TsjNode *obj, const char *key)
{
	const TsjNode *m;
	size_t		kl;

	if (obj == NULL || obj->type != TSJ_OBJECT || key == NULL)
		return NULL;
	kl = strlen(key);
	for (m = obj->child; m; m = m->next)
	{
		size_t		i;

		if (m->keylen != kl)
			continue;
		for (i = 0; i < kl; i++)
			if (ascii_lower((unsigned char) m->key[i]) != ascii_lower((unsigned char) key[i]))
				break;
		if (i == kl)
			return m;
	}
	return NULL;
}

const char *
tsj_type_name(TsjType type)
{
	switch (type)
	{
		case TSJ_NULL:
			return "null";
		case TSJ_FALSE:
		case TSJ_TRUE:
			return "a boolean";
		case TSJ_NUMBER:
			return "a number";
		case TSJ_STRING:
			return "a string";
		case TSJ_ARRAY:
			return "an array";
		case TSJ_OBJECT:
			return "an object";
	}
	return "an unknown value";
}
