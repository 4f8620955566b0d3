/*
 * translate_bench.c - the cost of the pure bosOnline Track translation, next to jansson's parse.
 *
 *   translate_bench [--mode translate|jansson|pack] [-n N] [--reps R] [--body FILE] [--json]
 *
 *   translate  sg_bosonline_track_parse() on the document's 15-event tracking body (HTTP 200):
 *              jansson parse, mapping, normalization into a TrackResponse in a reset arena;
 *   jansson    the same body through json_loadb(JSON_REJECT_DUPLICATES) + json_decref alone:
 *              the floor any JSON-reading translation pays;
 *   pack       translate, then protobuf_c_message_pack of the TrackResponse (what the gateway
 *              also does before it replies).
 *
 * Each mode runs N calls in one noinline function (bench_loop), so `valgrind --tool=callgrind
 * --toggle-collect=bench_loop` counts exactly the N calls and nothing of the set-up; natively
 * the loop is timed with CLOCK_MONOTONIC (after N/10 warm-up calls) R times (default 5), and the
 * fastest and the median repetition are reported in ns/call: on a shared machine the fastest is
 * the one least disturbed by other processes. Under callgrind use --reps 1.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/status.h"
#include "hist.h"
#include "providers/bosonline.h"
#include "providers/common.h"
#include "providers/provider.h"

#ifndef SG_SOURCE_DIR
#define SG_SOURCE_DIR "."
#endif

enum mode { M_TRANSLATE, M_JANSSON, M_PACK };

static const sg_pconf conf = {
        .name = SG_BOSONLINE_NAME,
        .base_url = "http://127.0.0.1:18080/bosonline",
        .token = "sandbox-token",
        .timeout_ms = 5000,
};

struct ctx {
	enum mode mode;
	const ProtobufCMessage *req; /* the TrackRequest */
	sg_http_resp resp;           /* the upstream answer */
	sg_arena arena;              /* reset per call, as the gateway does */
	uint8_t *packbuf;            /* pack mode: output buffer */
	size_t events;               /* events in the last reply (checked) */
	size_t packed;               /* bytes of the last packed reply */
};

/* One call. Returns 0, or -1 when the translation failed. */
static int
one_call(struct ctx *c)
{
	if (c->mode == M_JANSSON) {
		json_t *j =
		        json_loadb(c->resp.body, c->resp.body_len, JSON_REJECT_DUPLICATES, NULL);
		if (j == NULL)
			return -1;
		json_decref(j);
		return 0;
	}
	sg_status st;
	ProtobufCMessage *reply = NULL;
	sg_arena_reset(&c->arena);
	sg_status_clear(&st);
	sg_json_arena_set(&c->arena); /* as the gateway does: jansson allocates from the arena */
	sg_err rv = sg_bosonline_track_parse(&conf, c->req, &c->resp, &c->arena, &reply, &st);
	sg_json_arena_set(NULL);
	if (rv != SG_OK)
		return -1;
	Shipgate__V1__TrackResponse *tr = (Shipgate__V1__TrackResponse *)reply;
	c->events = tr->tracking ? tr->tracking->n_events : 0;
	if (c->mode == M_PACK)
		c->packed = protobuf_c_message_pack(reply, c->packbuf);
	return 0;
}

/* The measured loop: callgrind's --toggle-collect target. */
__attribute__((noinline)) int
bench_loop(struct ctx *c, long n)
{
	int bad = 0;
	for (long i = 0; i < n; i++)
		bad |= one_call(c);
	return bad;
}

int
main(int argc, char **argv)
{
	const char *body_path = SG_SOURCE_DIR "/src/sandbox/data/bosonline_tracking.json";
	long n = 10000;
	int reps = 5;
	bool json = false;
	struct ctx c;
	memset(&c, 0, sizeof(c));

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "-n") == 0 && v) {
			n = atol(v);
			i++;
		} else if (strcmp(a, "--reps") == 0 && v) {
			reps = atoi(v) > 0 ? atoi(v) : 1;
			i++;
		} else if (strcmp(a, "--body") == 0 && v) {
			body_path = v;
			i++;
		} else if (strcmp(a, "--mode") == 0 && v) {
			c.mode = strcmp(v, "jansson") == 0 ? M_JANSSON
			         : strcmp(v, "pack") == 0  ? M_PACK
			                                   : M_TRANSLATE;
			if (c.mode == M_TRANSLATE && strcmp(v, "translate") != 0) {
				fprintf(stderr, "translate_bench: unknown mode %s\n", v);
				return 2;
			}
			i++;
		} else {
			fprintf(stderr,
			        "usage: translate_bench [--mode translate|jansson|pack] [-n N] "
			        "[--body FILE] [--json]\n");
			return 2;
		}
	}

	FILE *f = fopen(body_path, "rb");
	if (f == NULL) {
		perror(body_path);
		return 1;
	}
	static char body[1 << 20];
	size_t blen = fread(body, 1, sizeof(body), f);
	fclose(f);

	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE;
	req.tracking_number = "IDE987651421";
	c.req = &req.base;
	static const char hdrs[] = "Content-Type: application/json\r\n";
	c.resp.status = 200;
	c.resp.body = body;
	c.resp.body_len = blen;
	c.resp.headers = hdrs;
	c.resp.headers_len = sizeof(hdrs) - 1;
	if (c.mode != M_JANSSON) /* the baseline is jansson as shipped; the translation runs as in
	                            the gateway, jansson allocating from the call's arena */
		sg_json_use_arenas();
	sg_arena_init(&c.arena, 16384, 0);
	c.packbuf = malloc(1 << 20);

	/* warm-up (and a check that the body translates); outside bench_loop, so that callgrind
	 * counts the N measured calls only */
	for (long i = 0; i < (n / 10 > 0 ? n / 10 : 1); i++)
		if (one_call(&c) != 0) {
			fprintf(stderr, "translate_bench: the body does not translate\n");
			return 1;
		}
	if (c.mode != M_JANSSON && c.events != 15)
		fprintf(stderr, "translate_bench: note: %zu events, not 15\n", c.events);
	double per[64] = {0};
	int bad = 0;
	if (reps > 64)
		reps = 64;
	for (int r = 0; r < reps; r++) {
		uint64_t t0 = bh_now_ns();
		bad |= bench_loop(&c, n);
		uint64_t t1 = bh_now_ns();
		per[r] = (double)(t1 - t0) / (double)n;
	}
	for (int i = 1; i < reps; i++) /* insertion sort: reps is small */
		for (int j = i; j > 0 && per[j] < per[j - 1]; j--) {
			double t = per[j];
			per[j] = per[j - 1];
			per[j - 1] = t;
		}
	double ns = per[0], med = per[reps / 2];
	const char *mname = c.mode == M_JANSSON ? "jansson"
	                    : c.mode == M_PACK  ? "pack"
	                                        : "translate";
	fprintf(stderr,
	        "translate_bench %s: %d x %ld calls, %.0f ns/call fastest, %.0f median (body %zu "
	        "bytes, %zu events%s)\n",
	        mname, reps, n, ns, med, blen, c.events, bad ? ", FAILURES" : "");
	if (json)
		printf("{\"tool\": \"translate_bench\", \"mode\": \"%s\", \"n\": %ld, \"reps\": "
		       "%d, "
		       "\"ns_per_call\": %.1f, \"ns_per_call_median\": %.1f, \"body_bytes\": %zu, "
		       "\"events\": %zu, \"packed_bytes\": %zu}\n",
		       mname, n, reps, ns, med, blen, c.events, c.packed);
	sg_arena_fini(&c.arena);
	free(c.packbuf);
	return bad ? 1 : 0;
}
