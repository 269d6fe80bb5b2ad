/*
 * tsmap.h — turning one callback payload into rows of the three contract tables.
 *
 * No PostgreSQL headers: unit-tested and fuzzed alone.  Values are handed out as
 * (pointer, length) views into the parsed document; the PostgreSQL side converts them
 * with each column type's input function.
 */
#ifndef TSMAP_H
#define TSMAP_H

#include <stddef.h>
#include "tsjson.h"

typedef enum TsResource
{
	TS_RES_BILLED_USAGE,
	TS_RES_SEGMENTS,
	TS_RES_COUNTRIES
} TsResource;

/* Every contract column of every table, in one list (SPEC §3). */
typedef enum TsColumn
{
	TSC_ACCOUNT_NAME,
	TSC_BILLING_FROM,
	TSC_BILLING_TO,
	TSC_LINE_LEVEL,
	TSC_DEVICE_KIND,
	TSC_DEVICE_ID,
	TSC_LABEL_NAME,
	TSC_LABEL_VALUE,
	TSC_TOTAL_BILLED_AMOUNT,
	TSC_TOTAL_BILLED_USAGE,
	TSC_TOTAL_USAGE,
	TSC_UNIT_OF_MEASURE,
	TSC_SEGMENT_KIND,
	TSC_SEGMENT_NAME,
	TSC_BILLED_AMOUNT,
	TSC_BILLED_USAGE,
	TSC_PAGE_NUMBER,
	TSC_USAGE_TYPE,
	TSC_COUNTRY_CODE,
	TSC_CHARGE_AMOUNT,
	TSC_REQUEST_ID,
	TSC_RAW,
	TSC_NCOLUMNS
} TsColumn;

/* A value view; p == NULL means SQL NULL.  Not NUL-terminated in general. */
typedef struct TsStr
{
	const char *p;
	size_t		len;
} TsStr;

typedef struct TsRow
{
	TsStr		col[TSC_NCOLUMNS];
	char		kind_buf[32];	/* lower-cased device kind, TSC_DEVICE_KIND may point here */
} TsRow;

typedef struct TsMapError
{
	char		field[160];		/* JSON path of the offending field, e.g. deviceResponse.billingUsageSummary.usageApns[2] */
	char		message[160];
} TsMapError;

typedef enum TsMapStatus
{
	TS_MAP_ROW = 1,				/* a row was produced */
	TS_MAP_END = 0,				/* no more rows in this page */
	TS_MAP_ERROR = -1			/* payload of the wrong shape; error filled */
} TsMapStatus;

/* Facts about one callback message, read before any row (listener and scan). */
typedef struct TsEnvelope
{
	TsStr		request_id;
	long		page_number;	/* -1 when absent */
	long		total_pages;	/* -1 when absent */
	int			failed;			/* status other than success, or a faultResponse */
	TsStr		status;
	TsStr		fault_code;
	TsStr		fault_string;
	TsStr		username;		/* callback credentials sent in the body */
	TsStr		password;
} TsEnvelope;

/* Read the envelope of a parsed payload.  Returns 0, or -1 with err when the shape is wrong. */
extern int	ts_envelope_read(const TsjNode *root, TsEnvelope *env, TsMapError *err);

/*
 * Find the requestId of a body that may not be valid JSON, by a lexical scan.
 * Returns its length (copied NUL-terminated into out) or 0 when none is recognisable.
 */
extern size_t ts_sniff_request_id(const char *buf, size_t len, char *out, size_t outsize);

/*
 * Copy of buf with the values of "username" / "password" members replaced by
 * "[redacted]", by a lexical scan that also works on broken JSON.  malloc'd; caller frees.
 */
extern char *ts_redact_credentials(const char *buf, size_t len, size_t *outlen);

/* Column values many rows share, looked up once per scope (private to tsmap.c). */
typedef struct TsMapShared
{
	TsStr		device_id;
	TsStr		device_kind;	/* as sent; rows get it lower-cased in kind_buf */
	TsStr		label_name;
	TsStr		label_value;
	TsStr		unit;
	TsStr		page;			/* the summary's pageNumber */
} TsMapShared;

/* Iterator over the rows of one page for one resource. */
typedef struct TsMapCursor
{
	const TsjNode *root;
	TsResource	resource;
	/* position, private to tsmap.c (no allocation: everything points into the doc) */
	const TsjNode *response;	/* deviceResponse */
	const TsjNode *summary;		/* deviceResponse.billingUsageSummary */
	const TsjNode *devices;		/* summary.devices when line level, else NULL */
	const TsjNode *request_id;
	const TsjNode *scope;		/* summary itself, or the current element of devices[] */
	const TsjNode *seglist;		/* usageApns / usageSegments array being walked */
	const TsjNode *segment;		/* current element of seglist */
	const TsjNode *details;		/* apnDetails / ratingGroupDetails of segment */
	const TsjNode *detlist;		/* totalUsageDetails / totalDelayedUsageDetails */
	const TsjNode *detail;		/* current element of detlist */
	long		scope_idx;		/* -1 before the first scope */
	long		seg_idx;
	long		detail_idx;
	int			seg_kind;		/* -1 before, 0 = usageApns, 1 = usageSegments, 2 = done */
	int			usage_type;		/* -1 before, 0 = current, 1 = delayed, 2 = done */
	int			started;
	int			done;
	int			failed;
	int			summary_ready;
	TsStr		request_id_val;
	TsMapShared summary_vals;	/* of the summary */
	TsMapShared scope_vals;		/* of the current scope, with the summary's as fallback */
	TsStr		seg_name;		/* of the current segment */
	TsStr		seg_page;
	TsMapError	error;			/* repeated by every call after a failure */
} TsMapCursor;

extern void ts_map_begin(TsMapCursor *cur, const TsjNode *root, TsResource resource);

/*
 * Produce the next row.  Request-key columns that the payload does not carry
 * (account from the request, billing cycle, line_level) are left NULL for the caller.
 */
extern TsMapStatus ts_map_next(TsMapCursor *cur, TsRow *row, TsMapError *err);

#endif							/* TSMAP_H */
