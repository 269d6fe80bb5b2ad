/*
 * bench_tsmap.c — parse + map throughput on generated line-level payloads.
 *
 * Usage: bench_tsmap [devices segments countries]   (default: 2000 2 3, then a ~50 MB body)
 * Each segment carries `countries` current and `countries` delayed details.  Prints MB/s
 * for parsing and for parse + iterating all three resources, and rows/s.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tsjson.h"
#include "tsmap.h"

typedef struct Buf
{
	char	   *p;
	size_t		len;
	size_t		cap;
} Buf;

static void
put(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			exit(2);
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

/* Pretty-printed like the vendor's examples (two-space indent). */
static Buf
generate(long devices, int segments, int countries)
{
	static const char *cc[] = {"US", "CA", "MX", "DE", "FR", "GB", "JP", "BR"};
	Buf			b = {NULL, 0, 0};
	char		tmp[512];
	long		d;
	int			s,
				c,
				t;

	put(&b, "{\n  \"requestId\": \"be36accb-0a9a-4367-93ab-0af6c4ed256a\",\n"
		"  \"deviceResponse\": {\n    \"billingUsageSummary\": {\n"
		"      \"accountName\": \"0000123456-00001\",\n      \"totalBilledAmount\": 1993.4,\n"
		"      \"totalBilledUsage\": 59935,\n      \"totalUsage\": 72378,\n"
		"      \"unitOfMeasure\": \"BYTES\",\n      \"pageNumber\": 1,\n      \"totalPages\": 1,\n"
		"      \"devices\": [\n");
	for (d = 0; d < devices; d++)
	{
		snprintf(tmp, sizeof(tmp),
				 "        {\n          \"deviceIdentifier\": {\n            \"id\": \"35%013ld\",\n"
				 "            \"kind\": \"IMEI\"\n          },\n"
				 "          \"totalBilledAmount\": %ld.25,\n          \"totalBilledUsage\": %ld,\n"
				 "          \"totalUsage\": %ld,\n          \"usageApns\": [\n",
				 d, d % 1000, d * 7, d * 9);
		put(&b, tmp);
		for (s = 0; s < segments; s++)
		{
			snprintf(tmp, sizeof(tmp),
					 "            {\n              \"billedAmount\": %d.5,\n"
					 "              \"billedUsage\": %ld,\n              \"name\": \"apn%d.example\",\n"
					 "              \"totalUsage\": %ld,\n              \"apnDetails\": {\n",
					 s, d + s, s, d * 3 + s);
			put(&b, tmp);
			for (t = 0; t < 2; t++)
			{
				put(&b, t == 0 ? "                \"totalUsageDetails\": [\n"
					: "                \"totalDelayedUsageDetails\": [\n");
				for (c = 0; c < countries; c++)
				{
					snprintf(tmp, sizeof(tmp),
							 "                  {\n                    \"countryCode\": \"%s\",\n"
							 "                    \"totalChargeAmount\": %d.0,\n"
							 "                    \"totalBilledUsage\": %ld.5,\n"
							 "                    \"totalUsage\": %ld\n                  }%s\n",
							 cc[c % 8], c * 10, d + c, d * 11 + c, c + 1 < countries ? "," : "");
					put(&b, tmp);
				}
				put(&b, t == 0 ? "                ],\n" : "                ]\n");
			}
			put(&b, s + 1 < segments ? "              }\n            },\n" : "              }\n            }\n");
		}
		put(&b, d + 1 < devices ? "          ]\n        },\n" : "          ]\n        }\n");
	}
	put(&b, "      ]\n    }\n  },\n  \"status\": \"SUCCESS\",\n  \"callbackCount\": 1,\n"
		"  \"maxCallbackThreshold\": 4\n}\n");
	return b;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
drain(const TsjNode *root, TsResource res)
{
	TsMapCursor cur;
	TsRow		row;
	TsMapError	err;
	TsMapStatus st;
	long		n = 0;

	ts_map_begin(&cur, root, res);
	while ((st = ts_map_next(&cur, &row, &err)) == TS_MAP_ROW)
		n++;
	if (st == TS_MAP_ERROR)
	{
		fprintf(stderr, "map error %s: %s\n", err.field, err.message);
		exit(1);
	}
	return n;
}

static void
bench(const char *label, const Buf *b)
{
	double		best_parse = 1e9,
				best_total = 1e9;
	long		rows[3] = {0, 0, 0},
				all;
	size_t		mem = 0;
	int			rep,
				reps = b->len > 20000000 ? 3 : 10;
	double		mb = b->len / 1e6;

	for (rep = 0; rep < reps; rep++)
	{
		TsjError	e;
		double		t0 = now(),
					t1,
					t2;
		TsjDoc	   *d = tsj_parse(b->p, b->len, &e);
		int			r;

		t1 = now();
		if (d == NULL)
		{
			fprintf(stderr, "parse error %d:%d %s\n", e.line, e.column, e.message);
			exit(1);
		}
		for (r = 0; r < 3; r++)
			rows[r] = drain(tsj_root(d), (TsResource) r);
		t2 = now();
		mem = tsj_memory_used(d);
		tsj_free(d);
		if (t1 - t0 < best_parse)
			best_parse = t1 - t0;
		if (t2 - t0 < best_total)
			best_total = t2 - t0;
	}
	all = rows[0] + rows[1] + rows[2];
	printf("%s: %.1f MB, rows %ld/%ld/%ld (billed/segments/countries), arena %.1f MB\n",
		   label, mb, rows[0], rows[1], rows[2], mem / 1e6);
	printf("  parse:        %7.1f ms  %7.0f MB/s\n", best_parse * 1e3, mb / best_parse);
	printf("  parse+map x3: %7.1f ms  %7.0f MB/s  %9.0f rows/s (map only %.0f rows/s)\n",
		   best_total * 1e3, mb / best_total, all / best_total, all / (best_total - best_parse));
}

int
main(int argc, char **argv)
{
	Buf			b;
	long		devices = 2000;
	int			segments = 2,
				countries = 3;
	char		label[128];

	if (argc == 4)
	{
		devices = atol(argv[1]);
		segments = atoi(argv[2]);
		countries = atoi(argv[3]);
	}
	b = generate(devices, segments, countries);
	snprintf(label, sizeof(label), "%ld devices x %d segments x %d+%d countries",
			 devices, segments, countries, countries);
	bench(label, &b);
	free(b.p);

	if (argc != 4)
	{
		/* scale the device count to a ~50 MB body */
		Buf			small = generate(100, segments, countries);
		long		n = (long) (50e6 / (small.len / 100.0));

		free(small.p);
		b = generate(n, segments, countries);
		snprintf(label, sizeof(label), "%ld devices (50 MB body)", n);
		bench(label, &b);
		free(b.p);
	}
	return 0;
}
