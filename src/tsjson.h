/*
 * tsjson.h — a small JSON reader that keeps numbers as the text the vendor sent.
 *
 * No PostgreSQL headers here: this code is shared by the backend, the listener and
 * the fuzz target.  Numbers stay lexemes so that numeric columns keep every digit the
 * API sent ("21.0" stays 21.0), and every node remembers its byte span in the source so
 * that the `raw` column is a plain substring.
 */
#ifndef TSJSON_H
#define TSJSON_H

#include <stddef.h>

typedef enum TsjType
{
	TSJ_NULL,
	TSJ_FALSE,
	TSJ_TRUE,
	TSJ_NUMBER,
	TSJ_STRING,
	TSJ_ARRAY,
	TSJ_OBJECT
} TsjType;

typedef struct TsjNode
{
	TsjType		type;
	const char *key;			/* member name (unescaped, NUL-terminated) or NULL */
	size_t		keylen;
	const char *str;			/* string: unescaped value; number: lexeme; NUL-terminated */
	size_t		len;
	/*
	 * Also set (addition): true/false/null: "true"/"false"/"null"; object/array: a view
	 * of the node's own source text, buf + start, len = end - start, NOT NUL-terminated
	 * and valid only while the parsed buffer lives (this is what `raw` hands out).
	 */
	size_t		start;			/* byte span of the value in the source: [start, end) */
	size_t		end;
	struct TsjNode *child;		/* first element / member */
	struct TsjNode *next;		/* next sibling */
	size_t		nchildren;
} TsjNode;

typedef struct TsjDoc TsjDoc;

typedef struct TsjError
{
	size_t		offset;			/* byte offset where the input broke */
	int			line;			/* 1-based */
	int			column;			/* 1-based, in bytes */
	char		message[128];
} TsjError;

#define TSJ_MAX_DEPTH 256

/* Parse buf[0..len).  Returns NULL on a syntax error (err filled) or out of memory. */
extern TsjDoc *tsj_parse(const char *buf, size_t len, TsjError *err);
extern const TsjNode *tsj_root(const TsjDoc *doc);
extern void tsj_free(TsjDoc *doc);

/* Member lookup; NULL when obj is not an object or has no such member. */
extern const TsjNode *tsj_get(const TsjNode *obj, const char *key);
/* Same, ignoring ASCII case of the member name. */
extern const TsjNode *tsj_get_ci(const TsjNode *obj, const char *key);

/*
 * Additions.
 *
 * tsj_parse_limited: like tsj_parse, but fails with "out of memory" once the document
 * would need more than max_bytes of arena memory (0 = no limit).  Lets a caller bound
 * the memory one untrusted body may take.
 */
extern TsjDoc *tsj_parse_limited(const char *buf, size_t len, size_t max_bytes,
								 TsjError *err);
/* Arena bytes in use by a document (for limits and EXPLAIN-style figures). */
extern size_t tsj_memory_used(const TsjDoc *doc);
/* Is s[0..len) exactly one JSON number (RFC 8259 grammar)?  For numbers sent as strings. */
extern int	tsj_is_number(const char *s, size_t len);
/* "null", "a boolean", "a number", "a string", "an array", "an object". */
extern const char *tsj_type_name(TsjType type);

#endif							/* TSJSON_H */
