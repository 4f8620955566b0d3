/*
 * test_interop_c.c - the shared interop case list (tests/interop/cases.json), run with the C
 * client library against a live gateway and sandbox this test starts and stops.
 *
 * usage: test_interop_c SHIPGATED SANDBOX CASES_JSON
 *
 * The Python, Go and Node clients run the same list; tests/interop/README.md says how a case
 * reads.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <shipgate/client.h>

#include "harness.h"
#include "pbjson.h"
#include "testutil.h"

static char sandbox[256];

/* ------------------------------------------------------------------ JSON paths */

/* The value at a dotted path of proto field names ("tracking.events.0.status"); "x.#" is the
 * length of array x. Returns a new reference or NULL when absent. */
static json_t *
lookup(json_t *j, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ".", &save); tok != NULL; tok = strtok_r(NULL, ".", &save)) {
		if (strcmp(tok, "#") == 0)
			return json_is_array(j) ? json_integer((json_int_t)json_array_size(j))
			                        : NULL;
		if (json_is_array(j))
			j = json_array_get(j, (size_t)strtoul(tok, NULL, 10));
		else
			j = json_object_get(j, tok);
		if (j == NULL)
			return NULL;
	}
	return json_incref(j);
}

/* Compares an actual value with an expected one: null means absent; numbers compare by value
 * (int64 arrive as strings in proto3 JSON). */
static bool
same(json_t *got, json_t *want)
{
	if (json_is_null(want))
		return got == NULL || json_is_null(got);
	if (got == NULL)
		return false;
	if (json_is_integer(want)) { /* exact: epoch seconds must not be off by one */
		long long w = (long long)json_integer_value(want), g;
		if (json_is_string(got))
			g = strtoll(json_string_value(got), NULL, 10);
		else if (json_is_integer(got))
			g = (long long)json_integer_value(got);
		else if (json_is_real(got) && json_real_value(got) == (double)w)
			return true;
		else
			return false;
		return g == w;
	}
	if (json_is_number(want)) {
		double w = json_number_value(want), g;
		if (json_is_string(got))
			g = strtod(json_string_value(got), NULL);
		else if (json_is_number(got))
			g = json_number_value(got);
		else
			return false;
		return g == w || fabs(g - w) <= 1e-12 * fabs(w);
	}
	return json_equal(got, want);
}

/* ------------------------------------------------------------------ sandbox */

static int
sandbox_count(const char *prefix)
{
	char url[300], *body = NULL;
	snprintf(url, sizeof(url), "%s/__sandbox/requests", sandbox);
	if (hs_http("GET", url, &body) != 200) {
		free(body);
		return -1;
	}
	json_t *rec = json_loads(body, 0, NULL);
	free(body);
	int n = 0;
	size_t i;
	json_t *e;
	json_array_foreach(rec, i, e)
	{
		const char *p = json_string_value(json_object_get(e, "path"));
		if (p != NULL && strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	}
	json_decref(rec);
	return n;
}

/* ------------------------------------------------------------------ one case */

static void
run_case(shipgate_client *c, json_t *cs)
{
	const char *name = json_string_value(json_object_get(cs, "name"));
	const char *method = json_string_value(json_object_get(cs, "method"));
	const char *raw = json_string_value(json_object_get(cs, "raw_method"));
	json_t *expect = json_object_get(cs, "expect");
	const ProtobufCMethodDescriptor *m = shipgate_method_lookup(method, NULL, 0);
	int failed_before = tu_failed;

	CHECK(m != NULL);
	if (m == NULL)
		return;
	if (json_is_true(json_object_get(cs, "sandbox_reset"))) {
		char url[300];
		snprintf(url, sizeof(url), "%s/__sandbox/reset", sandbox);
		CHECK_INT(hs_http("POST", url, NULL), 200);
	}
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error perr;
	if (sgc_pbjson_to_message(json_object_get(cs, "request"), m->input, NULL, 0, &req, &perr) !=
	    0) {
		fprintf(stderr, "case \"%s\": bad request: %s %s\n", name, perr.path, perr.text);
		CHECK(0);
		return;
	}
	shipgate_call_opts opts = {0};
	json_t *d = json_object_get(cs, "deadline_ms");
	opts.deadline_ms = d ? json_integer_value(d) : 5000;
	opts.idempotency_key = json_string_value(json_object_get(cs, "idempotency_key"));
	ProtobufCMessage *reply = NULL;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	int code = shipgate_call(c, raw ? raw : method, req, m->output, &opts, &reply, &st);
	protobuf_c_message_free_unpacked(req, NULL);

	const char *want_code = json_string_value(json_object_get(expect, "code"));
	CHECK_STR(shipgate_code_name(code), want_code);
	const char *reason = json_string_value(json_object_get(expect, "reason"));
	if (reason != NULL)
		CHECK_STR(st.reason, reason);
	json_t *v;
	if ((v = json_object_get(expect, "retryable")) != NULL)
		CHECK_INT(st.retryable, json_is_true(v));
	if ((v = json_object_get(expect, "upstream_http_status")) != NULL)
		CHECK_INT(st.upstream_http_status, json_integer_value(v));
	if ((v = json_object_get(expect, "retry_after_ms")) != NULL)
		CHECK_INT(st.retry_after_ms, json_integer_value(v));
	if ((v = json_object_get(expect, "provider")) != NULL)
		CHECK_STR(st.provider, json_string_value(v));
	if ((v = json_object_get(expect, "violations")) != NULL) {
		size_t i;
		json_t *f;
		json_array_foreach(v, i, f)
		{
			bool found = false;
			for (size_t k = 0; k < st.n_violations; k++)
				found |= strcmp(st.violations[k].field, json_string_value(f)) == 0;
			CHECK(found);
		}
	}
	json_t *fields = json_object_get(expect, "fields");
	if (fields != NULL) {
		json_t *got = reply ? sgc_pbjson_from_message(reply,
		                                              SGC_PBJSON_ORIG_NAMES |
		                                                      SGC_PBJSON_EMIT_DEFAULTS,
		                                              &perr)
		                    : NULL;
		const char *path;
		json_t *want;
		json_object_foreach(fields, path, want)
		{
			json_t *g = lookup(got, path);
			if (!same(g, want)) {
				char *gs = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
				char *ws = json_dumps(want, JSON_ENCODE_ANY);
				fprintf(stderr, "case \"%s\": %s is %s, want %s\n", name, path,
				        gs ? gs : "absent", ws);
				free(gs);
				free(ws);
				CHECK(0);
			} else {
				CHECK(1);
			}
			json_decref(g);
		}
		json_decref(got);
	}
	json_t *sr = json_object_get(expect, "sandbox_requests");
	if (sr != NULL)
		CHECK_INT(sandbox_count(json_string_value(json_object_get(sr, "path"))),
		          json_integer_value(json_object_get(sr, "count")));
	if (tu_failed != failed_before)
		fprintf(stderr, "case \"%s\" failed: got %s %s %s\n", name,
		        shipgate_code_name(code), st.reason ? st.reason : "",
		        st.message ? st.message : "");
	if (reply != NULL)
		protobuf_c_message_free_unpacked(reply, NULL);
	shipgate_status_fini(&st);
}

int
main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s SHIPGATED SANDBOX CASES_JSON\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	json_error_t jerr;
	json_t *doc = json_load_file(argv[3], JSON_REJECT_DUPLICATES, &jerr);
	json_t *cases = json_object_get(doc, "cases");
	CHECK(json_array_size(cases) > 0);

	hs_proc sb, gw;
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	char url[256];
	if (hs_sandbox_start(&sb, argv[2], sandbox, sizeof(sandbox)) != 0 ||
	    hs_gateway_start(&gw, argv[1], sandbox, listen, NULL) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		hs_proc_stop(&sb, SIGTERM);
		TEST_MAIN_END();
	}
	const char *urls[] = {url};
	shipgate_client_opts o = {.urls = urls, .n_urls = 1};
	shipgate_client *c = NULL;
	CHECK_INT(shipgate_client_new(&c, &o), 0);
	size_t i;
	json_t *cs;
	json_array_foreach(cases, i, cs) run_case(c, cs);
	fprintf(stderr, "  %zu interop cases run\n", json_array_size(cases));
	shipgate_client_free(c);
	json_decref(doc);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	curl_global_cleanup();
	TEST_MAIN_END();
}
