/*
 * fuzz_map.c — libFuzzer target for the callback body path: parse, envelope, all three
 * resources to the end, sniff and redact.  Besides crashes and leaks it checks a few
 * invariants that must hold for every input:
 *   - every row view lies inside the document (ASan checks the reads);
 *   - a row's raw column is itself a valid JSON object;
 *   - redacting a valid document gives a valid document with the same requestId sniff.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tsjson.h"
#include "tsmap.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void
touch(const TsStr *v)
{
	size_t		i;

	if (v->p == NULL)
		return;
	for (i = 0; i < v->len; i++)
		sink += (unsigned char) v->p[i];
}

static void
walk(const TsjNode *root, TsResource res)
{
	TsMapCursor cur;
	TsRow		row;
	TsMapError	err;
	TsMapStatus st;
	long		n = 0;

	ts_map_begin(&cur, root, res);
	while ((st = ts_map_next(&cur, &row, &err)) == TS_MAP_ROW)
	{
		int			c;

		for (c = 0; c < TSC_NCOLUMNS; c++)
			touch(&row.col[c]);
		if (row.col[TSC_RAW].p != NULL)
		{
			TsjDoc	   *raw = tsj_parse(row.col[TSC_RAW].p, row.col[TSC_RAW].len, NULL);

			if (raw == NULL || tsj_root(raw)->type != TSJ_OBJECT)
				abort();
			tsj_free(raw);
		}
		if (++n > 10000000)
			abort();			/* the cursor must always move forward */
	}
	if (st == TS_MAP_ERROR)
	{
		size_t		i;

		/* messages end up in PostgreSQL errors: terminated, no control characters */
		if (memchr(err.field, '\0', sizeof(err.field)) == NULL ||
			memchr(err.message, '\0', sizeof(err.message)) == NULL)
			abort();
		for (i = 0; err.field[i]; i++)
			if ((unsigned char) err.field[i] < 0x20)
				abort();
		for (i = 0; err.message[i]; i++)
			if ((unsigned char) err.message[i] < 0x20)
				abort();
	}
	if (ts_map_next(&cur, &row, &err) != st)
		abort();				/* END and ERROR are sticky */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *) data;
	TsjError	jerr;
	TsjDoc	   *doc;
	char		rid[128],
				rid2[128];
	size_t		ridlen,
				redlen;
	char	   *red;

	ridlen = ts_sniff_request_id(buf, size, rid, sizeof(rid));
	if (ridlen >= sizeof(rid) || strlen(rid) != ridlen)
		abort();
	red = ts_redact_credentials(buf, size, &redlen);

	doc = tsj_parse(buf, size, &jerr);
	if (doc == NULL)
	{
		if (jerr.offset > size || jerr.line < 1 || jerr.column < 1 || jerr.message[0] == '\0')
			abort();
	}
	else
	{
		const TsjNode *root = tsj_root(doc);
		TsEnvelope	env;
		TsMapError	merr;

		if (ts_envelope_read(root, &env, &merr) == 0)
		{
			touch(&env.request_id);
			touch(&env.status);
			touch(&env.fault_code);
			touch(&env.fault_string);
			touch(&env.username);
			touch(&env.password);
		}
		walk(root, TS_RES_BILLED_USAGE);
		walk(root, TS_RES_SEGMENTS);
		walk(root, TS_RES_COUNTRIES);
		tsj_free(doc);

		/* redaction keeps valid JSON valid and the request id recognisable */
		if (red != NULL)
		{
			TsjDoc	   *d2 = tsj_parse(red, redlen, NULL);

			if (d2 == NULL)
				abort();
			tsj_free(d2);
			if (ts_sniff_request_id(red, redlen, rid2, sizeof(rid2)) != ridlen ||
				strcmp(rid, rid2) != 0)
				abort();
		}
	}
	free(red);
	return 0;
}
