/*
 * test_boscod.c - the pure provider layer: common helpers, the registry and BosCOD Track.
 *
 * Data-driven first: every case file in tests/fixtures/boscod/cases/ runs build + parse with no
 * sockets through the shared runner (provider_cases.h; format in tests/fixtures/README.md), and a
 * few of them again under every arena cap. Then coded cases for what JSON cannot say well:
 * hostile ids with NUL, a 500-event history, jansson allocation failures, and the helpers one by
 * one.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/status.h"
#include "providers/boscod.h"
#include "providers/common.h"
#include "providers/provider.h"
#include "provider_cases.h"
#include "testutil.h"

#define FIX   SG_FIXTURES_DIR "/boscod"
#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* ================================================================== the data-driven cases */

/* BosCOD's config in every case unless the case says otherwise (see fixtures/README.md). */
static const sg_pconf boscod_conf = {
        .name = SG_BOSCOD_NAME,
        .base_url = "http://boscod.test:4004",
        .token = "test-token",
        .timeout_ms = 5000,
};

/* Every case file in cases/, through the shared runner (tests/provider_cases.c). */
static void
test_cases(void)
{
	sg_cases_result r = sg_cases_run(SG_BOSCOD_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD,
	                                 FIX, &boscod_conf);

	CASE_BEGIN("fixture cases");
	CHECK_INT(r.failed, 0);
	CHECK(r.ncases >= 40); /* a lost or renamed fixture directory shows here */
	CASE_END();
}

/* ================================================================== hostile ids */

/* Every id of hostile_ids.json: refused by the validator (NUL included) and by build. */
static void
test_hostile_ids(void)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	const sg_cases_idtarget t = {&sg_provider_by_name("boscod")->track, &req.base, "order_id",
	                             SG_ID_STRICT, NULL};
	sg_cases_result r =
	        sg_cases_hostile_ids(SG_BOSCOD_NAME, FIX "/hostile_ids.json", &t, &boscod_conf);

	CASE_BEGIN("hostile ids");
	CHECK_INT(r.failed, 0);
	CHECK(r.ncases >= 20);
	CASE_END();
}

/* ================================================================== 500 events */

static void
test_big_history(void)
{
	static const char *const notes[] = {"Loading scan", "Sending scan", "Arrival Scan",
	                                    "Unloading scan"};
	const int n = 500, ndup = 10;
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD);
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	sg_pconf pc = boscod_conf;
	json_t *root = json_object(), *hist = json_array();
	ProtobufCMessage *reply;
	sg_http_resp resp = {0};
	sg_status st;
	sg_arena a;

	CASE_BEGIN("500 events");
	/* times are T0 + 60 * k, unsorted, with exact duplicates of the first ten */
	for (int i = 0; i < n + ndup; i++) {
		int k = sg_cases_shuffled(i, n);
		json_t *e = json_object();
		const char *note = k == 0 ? "Pick up scan" : k == n - 1 ? "POD scan" : notes[k % 4];
		json_object_set_new(e, "note", json_string(note));
		json_object_set_new(e, "description", json_sprintf("event %d", k));
		json_object_set_new(e, "branch", json_string("HUB"));
		json_object_set_new(e, "update_on", json_integer(1700000000 + 60 * k));
		json_object_set_new(e, "status", k == n - 1 ? json_string("2") : json_null());
		json_object_set_new(e, "pod_photo", json_null());
		json_array_append_new(hist, e);
	}
	json_object_set_new(root, "last_status", json_string("2"));
	json_object_set_new(root, "last_update", json_integer(1700000000 + 60 * (n - 1)));
	json_object_set_new(root, "history", hist);
	char *body = json_dumps(root, JSON_COMPACT);
	json_decref(root);

	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	req.order_id = "BIG500";
	resp.status = 200;
	resp.body = body;
	resp.body_len = strlen(body);
	CHECK_INT(p->track.parse(&pc, &req.base, &resp, &a, &reply, &st), SG_OK);
	if (reply != NULL) {
		const Shipgate__V1__Tracking *t = ((Shipgate__V1__TrackResponse *)reply)->tracking;
		CHECK_INT(t->n_events, n);
		CHECK(sg_cases_events_in_order(t, 1700000000, 60));
		CHECK_INT(t->events[0]->status, TS(PICKED_UP));
		CHECK_INT(t->status, TS(DELIVERED));
		CHECK(t->terminal);
		CHECK_INT(t->last_update_unix, 1700000000 + 60 * (n - 1));
		CHECK(sg_cases_round_trip(reply, &a));
	}
	sg_arena_fini(&a);
	free(body);
	CASE_END();
}

/* ================================================================== allocation failures */

/* Every arena cap from 16 bytes up: build + parse fail cleanly with SG_ENOMEM until it fits. */
static void
test_arena_caps(void)
{
	static const char *const cases[] = {
	        "01-example.json",             /* the full reply: many allocations */
	        "06-http-429.json",            /* the error mapping: detail strings in the arena */
	        "41-unsorted-duplicated.json", /* normalisation's scratch index */
	        "68-invalid-id-before-token.json", /* a refused id: static detail */
	};

	CASE_BEGIN("arena caps");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), FIX "/cases/%s", cases[i]);
		sg_cases_result r = sg_cases_oom_sweep(SG_BOSCOD_NAME, "Track", path, &boscod_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.fit_cap > 0);
		if (i == 0)
			CHECK(r.nomem_caps > 10);
	}
	CASE_END();
}

/* jansson's own allocations fail one after another: SG_ENOMEM, never a crash or a leak. */
static void
test_jansson_oom(void)
{
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD);
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	size_t len = 0;
	char *body = sg_cases_slurp(FIX "/bodies/example.json", &len);
	sg_cases_parse example = {
	        &p->track, &boscod_conf, &req.base, {200, body, len, NULL, 0, NULL}};

	CASE_BEGIN("jansson out of memory");
	CHECK(body != NULL);
	req.order_id = "BOS2412020001";
	sg_cases_result r =
	        sg_cases_jansson_sweep("jansson oom", sg_cases_jparse, &example, SG_OK, true);
	CHECK_INT(r.failed, 0);
	free(body);
	CASE_END();
}

/* ================================================================== common helpers */

static void
test_path_segment(void)
{
	sg_arena a;
	sg_status st;
	const char *out;

	CASE_BEGIN("sg_path_segment");
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	CHECK_INT(sg_path_segment(&a, "order_id", "BOS-12_ab", 9, SG_ID_STRICT, &out, &st), SG_OK);
	CHECK_STR(out, "BOS-12_ab");
	CHECK_INT(sg_path_segment(&a, "id", "a.b~c", 5, SG_ID_UNRESERVED, &out, &st), SG_OK);
	CHECK_STR(out, "a.b~c");
	CHECK_INT(sg_path_segment(&a, "id", "..", 2, SG_ID_UNRESERVED, &out, &st), SG_EINVAL);
	CHECK_INT(sg_path_segment(&a, "id", ".", 1, SG_ID_SUBDELIMS, &out, &st), SG_EINVAL);
	CHECK_INT(sg_path_segment(&a, "id", "...", 3, SG_ID_UNRESERVED, &out, &st), SG_OK);
	CHECK_INT(sg_path_segment(&a, "id", "a+b:c@d", 7, SG_ID_SUBDELIMS, &out, &st), SG_OK);
	CHECK_STR(out, "a%2Bb%3Ac%40d");
	CHECK_INT(sg_path_segment(&a, "id", "x;y=1&z", 7, SG_ID_SUBDELIMS, &out, &st), SG_OK);
	CHECK_STR(out, "x%3By%3D1%26z");
	CHECK_INT(sg_path_segment(&a, "id", "a+b", 3, SG_ID_UNRESERVED, &out, &st), SG_EINVAL);
	/* refused under every policy */
	static const char *const never[] = {"a/b",  "a\\b", "a?b", "a#b", "a%41",  "a b", "a\rb",
	                                    "a\nb", "a\"b", "a<b", "a>b", "a`b",   "a^b", "a{b",
	                                    "a|b",  "a}b",  "a[b", "a]b", "a\x80", "\xff"};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		for (int pol = SG_ID_STRICT; pol <= SG_ID_SUBDELIMS; pol++) {
			sg_status_clear(&st);
			out = "x";
			CHECK_INT(sg_path_segment(&a, "id", never[i], strlen(never[i]),
			                          (sg_idpol)pol, &out, &st),
			          SG_EINVAL);
			CHECK(out == NULL && st.nviolations == 1);
		}
	/* every byte: strict accepts exactly [A-Za-z0-9_-] */
	int accepted = 0;
	for (int c = 0; c < 256; c++) {
		char b = (char)c;
		sg_status_clear(&st);
		if (sg_path_segment(&a, "id", &b, 1, SG_ID_STRICT, &out, &st) == SG_OK)
			accepted++;
	}
	CHECK_INT(accepted, 26 + 26 + 10 + 2);
	/* the arena cannot hold the copy */
	sg_arena b;
	sg_arena_init(&b, 0, 16);
	CHECK(sg_arena_alloc(&b, 16) != NULL);
	sg_status_clear(&st);
	CHECK_INT(sg_path_segment(&b, "id", "abc", 3, SG_ID_STRICT, &out, &st), SG_ENOMEM);
	/* a refusal in a full arena still names the field (static description) */
	sg_status_clear(&st);
	CHECK_INT(sg_path_segment(&b, "id", "a/b", 3, SG_ID_STRICT, &out, &st), SG_EINVAL);
	CHECK_STR(st.violations[0].field, "id");
	CHECK_STR(st.violations[0].description, "contains a byte that is not allowed");
	sg_arena_fini(&b);
	sg_arena_fini(&a);
	CASE_END();
}

static void
test_query_and_url(void)
{
	sg_arena a;
	sg_status st;
	const char *v;
	char *u;

	CASE_BEGIN("query and url");
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "ID 12&x=1+2#/%", 14, 64, &v, &st), SG_OK);
	CHECK_STR(v, "ID%2012%26x%3D1%2B2%23%2F%25");
	CHECK_INT(sg_query_value(&a, "awb", "caf\xc3\xa9~._-", 9, 64, &v, &st), SG_OK);
	CHECK_STR(v, "caf%C3%A9~._-");
	CHECK_INT(sg_query_value(&a, "awb", "a\r\nb", 4, 64, &v, &st), SG_EINVAL);
	CHECK_STR(st.violations[0].field, "awb");
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "a\0b", 3, 64, &v, &st), SG_EINVAL);
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "\xc3(", 2, 64, &v, &st), SG_EINVAL);
	CHECK_STR(st.violations[0].description, "is not valid UTF-8 at offset 0");
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "\xed\xa0\x80", 3, 64, &v, &st),
	          SG_EINVAL); /* surrogate */
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "\xc0\xaf", 2, 64, &v, &st), SG_EINVAL); /* overlong */
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "", 0, 64, &v, &st), SG_EINVAL);
	sg_status_clear(&st);
	CHECK_INT(sg_query_value(&a, "awb", "abcdef", 6, 5, &v, &st), SG_EINVAL);
	CHECK_STR(st.violations[0].description, "is 6 bytes, longer than 5");

	CHECK_STR(sg_url_join(&a, "http://h:1//", "/v1/x/", "id", NULL), "http://h:1/v1/x/id");
	CHECK_STR(sg_url_join(&a, "http://h", NULL), "http://h");
	u = sg_url_join(&a, "http://h", "/store/order/tracking", NULL);
	u = sg_url_add_query(&a, u, "awb", "A%2B1");
	CHECK_STR(u, "http://h/store/order/tracking?awb=A%2B1");
	CHECK_STR(sg_url_add_query(&a, u, "x", "2"), "http://h/store/order/tracking?awb=A%2B1&x=2");

	sg_http_req r;
	sg_http_req_init(&r, "GET", "http://h/");
	sg_status_clear(&st);
	CHECK_INT(sg_http_req_header(&r, "X-Bad: a\r\nX-Evil: 1", &a, &st), SG_EINTERNAL);
	for (int i = 0; i < SG_HTTP_MAX_HEADERS; i++)
		CHECK_INT(sg_http_req_header(&r, "X: 1", &a, &st), SG_OK);
	CHECK_INT(sg_http_req_header(&r, "X: 1", &a, &st), SG_EINTERNAL);

	sg_pconf pc = boscod_conf;
	pc.base_url = "http://h/\r\nX: 1";
	sg_status_clear(&st);
	CHECK_INT(sg_pconf_check(&pc, &a, &st), SG_EINTERNAL);
	pc.base_url = "";
	CHECK_INT(sg_pconf_check(&pc, &a, &st), SG_ENOPROVIDER);
	sg_arena_fini(&a);
	CASE_END();
}

static void
test_headers_and_errors(void)
{
	static const char raw[] = "HTTP/1.1 429 Too Many\r\n"
	                          "Content-Type: text/plain\r\n"
	                          "X-Empty:\r\n"
	                          "RETRY-after:\t 7 \r\n"
	                          "Retry-After: 99\n"
	                          "\r\n";
	sg_http_resp r = {429, NULL, 0, raw, sizeof(raw) - 1, NULL};
	const char *v, *code, *msg;
	size_t len;
	sg_arena a;
	sg_status st;

	CASE_BEGIN("headers and error bodies");
	sg_arena_init(&a, 0, 0);
	CHECK(sg_http_header(&r, "retry-after", &v, &len) && len == 1 && v[0] == '7');
	CHECK(sg_http_header(&r, "x-empty", &v, &len) && len == 0);
	CHECK(sg_http_header(&r, "content-type", &v, &len) && len == 10);
	CHECK(!sg_http_header(&r, "Content", &v, &len));
	CHECK(!sg_http_header(&r, "HTTP/1.1 429 Too Many", &v, &len));
	CHECK_INT(sg_retry_after_ms(&r), 7000);
	static const char huge[] = "Retry-After: 99999999999999999999999\r\n";
	sg_http_resp h = {503, NULL, 0, huge, sizeof(huge) - 1, NULL};
	CHECK_INT(sg_retry_after_ms(&h), 86400000);
	static const char neg[] = "Retry-After: -5\r\n";
	sg_http_resp hn = {503, NULL, 0, neg, sizeof(neg) - 1, NULL};
	CHECK_INT(sg_retry_after_ms(&hn), 0);
	sg_http_resp none = {503, NULL, 0, NULL, 0, NULL};
	CHECK_INT(sg_retry_after_ms(&none), 0);

	/* the error body shapes */
	static const struct {
		const char *body, *code, *msg;
	} shapes[] = {
	        {"{\"message\": \"m\"}", NULL, "m"},
	        {"{\"error\": \"e\", \"code\": 40002001}", "40002001", "e"},
	        {"{\"error\": {\"code\": \"400000\", \"code_reason\": \"BAD_REQUEST\", "
	         "\"message\": "
	         "\"bad\", \"error_code\": \"ORDER_NOT_FOUND\"}}",
	         "400000", "bad"},
	        {"{\"error\": {\"code\": \"invalid_token\", \"message\": \"expired\"}}",
	         "invalid_token", "expired"},
	        {"{\"statusCode\": 404, \"message\": \"Cannot GET /x\", \"error\": \"Not Found\"}",
	         NULL, "Cannot GET /x"},
	        {"{\"message\": [\"a\", \"b\"]}", NULL, "a; b"},
	        {"{\"msg\": \"m2\", \"error_code\": 7}", "7", "m2"},
	        {"{\"error_description\": \"d\"}", NULL, "d"},
	        {"{\"detail\": \"det\"}", NULL, "det"},
	        {"{\"code\": 1.5, \"message\": 3}", NULL, NULL},
	        {"\"plain\"", NULL, "plain"},
	        {"[1, 2]", NULL, NULL},
	        {"not json at all", NULL, NULL},
	        {"{\"message\": \"x\", \"message\": \"y\"}", NULL, NULL},
	        {"", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		sg_error_body(shapes[i].body, strlen(shapes[i].body), &a, &code, &msg);
		CHECK_STR(code, shapes[i].code);
		CHECK_STR(msg, shapes[i].msg);
	}
	/* a long message is cut at a UTF-8 boundary */
	char big[3000];
	size_t off = (size_t)snprintf(big, sizeof(big), "{\"message\": \"");
	while (off < 2500)
		off += (size_t)snprintf(big + off, sizeof(big) - off, "\xc3\xa9");
	off += (size_t)snprintf(big + off, sizeof(big) - off, "\"}");
	sg_error_body(big, off, &a, &code, &msg);
	CHECK(msg != NULL && strlen(msg) <= 1024 && strlen(msg) % 2 == 0);

	sg_status_clear(&st);
	sg_http_resp e = {502, "{\"message\": \"bad gateway\"}", 26, NULL, 0, NULL};
	CHECK_INT(sg_http_error("x", &e, &a, &st), SG_EUP_UNAVAIL);
	CHECK_STR(st.message, "x answered HTTP 502: bad gateway");
	CHECK_INT(st.http_status, 502);
	sg_status_clear(&st);
	sg_http_resp e2 = {409, NULL, 0, NULL, 0, NULL};
	CHECK_INT(sg_http_error("x", &e2, &a, &st), SG_EUP_CONFLICT);
	CHECK(st.provider_code == NULL && st.provider_message == NULL);
	sg_status_clear(&st);
	sg_http_resp e3 = {100, NULL, 0, NULL, 0, NULL};
	CHECK_INT(sg_http_error("x", &e3, &a, &st), SG_EUP_HTTP);
	CHECK(sg_http_is_success(200) && sg_http_is_success(299) && !sg_http_is_success(300) &&
	      !sg_http_is_success(199));
	sg_arena_fini(&a);
	CASE_END();
}

static void
test_auth(void)
{
	sg_pconf pc = boscod_conf;
	const char *line;
	sg_arena a;
	sg_status st;

	CASE_BEGIN("auth header");
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	CHECK_INT(sg_auth_header(&pc, &a, &line, &st), SG_OK);
	CHECK_STR(line, "Authorization: Bearer test-token");
	pc.auth_scheme = "";
	pc.token = "biteship_test.abc";
	CHECK_INT(sg_auth_header(&pc, &a, &line, &st), SG_OK);
	CHECK_STR(line, "Authorization: biteship_test.abc");
	static const char *const bad[] = {NULL,       "",     "a\rb", "a\nb",
	                                  "sekrit x", "a\tb", "\x7f", "t\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pc.token = bad[i];
		sg_status_clear(&st);
		line = "x";
		CHECK_INT(sg_auth_header(&pc, &a, &line, &st), SG_ENOCRED);
		CHECK(line == NULL);
		CHECK_INT(sg_err_code(st.err), 9);
		/* the token never shows in the message */
		CHECK(bad[i] == NULL || bad[i][0] == '\0' || strstr(st.message, bad[i]) == NULL);
	}
	pc.token = "tok";
	pc.auth_scheme = "Bearer X";
	CHECK_INT(sg_auth_header(&pc, &a, &line, &st), SG_ENOCRED);
	sg_arena_fini(&a);
	CASE_END();
}

static void
test_json_getters(void)
{
	static const char doc[] = "{\"s\": \"x\", \"n\": null, \"i\": 5, \"r\": 1.5, \"b\": true, "
	                          "\"a\": [1, {\"k\": \"v\"}], \"o\": {}, \"is\": \"-42\", "
	                          "\"bad\": \"4x\", \"big\": \"1234567890123456789\"}";
	sg_arena a;
	sg_status st;
	sg_jctx c = {&a, &st};
	json_t *root, *arr, *obj;
	const char *s;
	int64_t i;
	double d;
	bool b, present;

	CASE_BEGIN("json getters");
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	CHECK_INT(sg_json_parse(&c, doc, sizeof(doc) - 1, &root), SG_OK);
	CHECK_INT(sg_json_req_str(&c, root, NULL, "s", &s), SG_OK);
	CHECK_STR(s, "x");
	CHECK_INT(sg_json_opt_str(&c, root, NULL, "n", &s), SG_OK);
	CHECK(s == NULL);
	CHECK_INT(sg_json_opt_str(&c, root, NULL, "nope", &s), SG_OK);
	CHECK(s == NULL);
	CHECK_INT(sg_json_req_str(&c, root, NULL, "n", &s), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "n: expected string, got null");
	CHECK_INT(sg_json_req_int(&c, root, NULL, "i", &i), SG_OK);
	CHECK_INT(i, 5);
	CHECK_INT(sg_json_req_int(&c, root, NULL, "r", &i), SG_EUP_MALFORMED);
	CHECK_INT(sg_json_opt_num(&c, root, NULL, "r", &d, &present), SG_OK);
	CHECK(present && d == 1.5);
	CHECK_INT(sg_json_opt_num(&c, root, NULL, "i", &d, &present), SG_OK);
	CHECK(present && d == 5);
	CHECK_INT(sg_json_opt_bool(&c, root, NULL, "b", &b, &present), SG_OK);
	CHECK(present && b);
	CHECK_INT(sg_json_opt_bool(&c, root, NULL, "n", &b, &present), SG_OK);
	CHECK(!present);
	CHECK_INT(sg_json_opt_int(&c, root, NULL, "nope", &i, &present), SG_OK);
	CHECK(!present);
	CHECK_INT(sg_json_opt_intstr(&c, root, NULL, "is", &i, &present), SG_OK);
	CHECK(present && i == -42);
	CHECK_INT(sg_json_opt_intstr(&c, root, NULL, "i", &i, &present), SG_OK);
	CHECK(present && i == 5);
	CHECK_INT(sg_json_opt_intstr(&c, root, NULL, "bad", &i, &present), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "bad: expected integer or decimal string, got string");
	CHECK_INT(sg_json_opt_intstr(&c, root, NULL, "big", &i, &present), SG_EUP_MALFORMED);
	CHECK_INT(sg_json_req_arr(&c, root, NULL, "a", &arr), SG_OK);
	CHECK_INT(sg_json_req_obj(&c, root, NULL, "a", &obj), SG_EUP_MALFORMED);
	CHECK_INT(sg_json_opt_obj(&c, root, NULL, "o", &obj), SG_OK);
	CHECK(json_is_object(obj));
	CHECK_INT(sg_json_opt_arr(&c, root, NULL, "n", &arr), SG_OK);
	CHECK(arr == NULL);

	sg_jpath pa = {NULL, "a", 0}, p0 = {&pa, NULL, 0}, p1 = {&pa, NULL, 1};
	arr = json_object_get(root, "a");
	CHECK_INT(sg_json_expect_obj(&c, json_array_get(arr, 0), &p0), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "a[0]: expected object, got integer");
	CHECK_INT(sg_json_expect_obj(&c, json_array_get(arr, 7), &p0), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "a[0]: missing");
	CHECK_INT(sg_json_req_int(&c, json_array_get(arr, 1), &p1, "k", &i), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "a[1].k: expected integer, got string");
	CHECK_INT(sg_json_req_str(&c, json_array_get(arr, 1), &p1, "zz", &s), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "a[1].zz: missing");
	sg_jpath r3 = {NULL, NULL, 3}, r3k = {&r3, "x", 0};
	CHECK_STR(sg_jpath_str(&a, &r3k, "y"), "$[3].x.y");
	CHECK_STR(sg_jpath_str(&a, NULL, NULL), "$");
	CHECK_INT(sg_json_expect_obj(&c, arr, NULL), SG_EUP_MALFORMED);
	CHECK_STR(st.message, "$: expected object, got array");
	json_decref(root);

	CHECK_INT(sg_json_parse(&c, "{\"a\":1,\"a\":2}", 13, &root), SG_EUP_MALFORMED);
	CHECK(root == NULL);
	CHECK_INT(sg_json_parse(&c, "\"str\"", 5, &root), SG_EUP_MALFORMED); /* not a document */
	CHECK_INT(sg_json_parse(&c, "{\"a\":\"\x01\"}", 9, &root), SG_EUP_MALFORMED);
	/* the error text is cleaned: printable ASCII only */
	for (const char *q = st.message; q != NULL && *q != '\0'; q++)
		CHECK((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f);
	CHECK_INT(sg_json_parse(&c, NULL, 0, &root), SG_EUP_MALFORMED);

	Google__Protobuf__StringValue *sv;
	Google__Protobuf__Int64Value *iv;
	Google__Protobuf__DoubleValue *dv;
	Google__Protobuf__BoolValue *bv;
	CHECK_INT(sg_pb_str(&a, NULL, &sv, &st), SG_OK);
	CHECK(sv == NULL);
	CHECK_INT(sg_pb_str(&a, "", &sv, &st), SG_OK);
	CHECK(sv != NULL && sv->value[0] == '\0' &&
	      sv->base.descriptor == &google__protobuf__string_value__descriptor);
	CHECK_INT(sg_pb_int64(&a, -7, &iv, &st), SG_OK);
	CHECK(iv->value == -7 && protobuf_c_message_check(&iv->base));
	CHECK_INT(sg_pb_double(&a, 2.5, &dv, &st), SG_OK);
	CHECK(dv->value == 2.5);
	CHECK_INT(sg_pb_bool(&a, true, &bv, &st), SG_OK);
	CHECK(bv->value);
	sg_arena_fini(&a);
	CASE_END();
}

/* Builds events with (time, note) and runs sg_track_normalize. */
static void
test_normalize(void)
{
	Shipgate__V1__Tracking t = SHIPGATE__V1__TRACKING__INIT;
	sg_arena a;
	sg_status st;

	CASE_BEGIN("normalize");
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	/* no events: status kept, terminal from it, last_update 0 */
	t.status = TS(CANCELLED);
	t.last_update_unix = 99;
	CHECK_INT(sg_track_normalize(&t, &a, &st), SG_OK);
	CHECK(t.terminal && t.last_update_unix == 0);

	static const struct {
		int64_t time;
		const char *text;
		Shipgate__V1__TrackingStatus status;
	} in[] = {
	        {30, "c", TS(IN_TRANSIT)},  {10, "a", TS(PICKED_UP)}, {20, "b2", TS(IN_TRANSIT)},
	        {20, "b1", TS(IN_TRANSIT)}, {10, "a", TS(PICKED_UP)}, {20, "b2", TS(IN_TRANSIT)},
	        {40, "d", TS(RETURNED)},    {20, "b1", TS(ON_HOLD)},
	};
	const size_t n = sizeof(in) / sizeof(in[0]);
	CHECK_INT(sg_track_events_alloc(&t, n, &a, &st), SG_OK);
	for (size_t i = 0; i < n; i++) {
		t.events[i]->time_unix = in[i].time;
		t.events[i]->raw_text = (char *)in[i].text;
		t.events[i]->status = in[i].status;
	}
	Shipgate__V1__TrackingEvent *first_a = t.events[1], *first_b2 = t.events[2];
	CHECK_INT(sg_track_normalize(&t, &a, &st), SG_OK);
	static const char *const want[] = {"a", "b2", "b1", "b1", "c", "d"};
	CHECK_INT(t.n_events, 6);
	for (size_t i = 0; i < t.n_events && i < 6; i++)
		CHECK_STR(t.events[i]->raw_text, want[i]);
	CHECK(t.events[0] == first_a && t.events[1] == first_b2); /* the first copy is kept */
	CHECK_INT(t.events[3]->status, TS(ON_HOLD));              /* differs: not a duplicate */
	CHECK_INT(t.status, TS(RETURNED));
	CHECK(t.terminal);
	CHECK_INT(t.last_update_unix, 40);
	CHECK(protobuf_c_message_check(&t.base));

	/* a hostile history: 20000 identical events at one time collapse to one, quickly */
	Shipgate__V1__Tracking h = SHIPGATE__V1__TRACKING__INIT;
	CHECK_INT(sg_track_events_alloc(&h, 20000, &a, &st), SG_OK);
	for (size_t i = 0; i < h.n_events; i++)
		h.events[i]->time_unix = 5;
	CHECK_INT(sg_track_normalize(&h, &a, &st), SG_OK);
	CHECK_INT(h.n_events, 1);
	CHECK_INT(h.status, TS(UNKNOWN));
	CHECK(!h.terminal);

	/* the scratch index does not fit: SG_ENOMEM and nothing changed */
	sg_arena tiny;
	Shipgate__V1__Tracking u = SHIPGATE__V1__TRACKING__INIT;
	sg_arena_init(&tiny, 0, 0);
	CHECK_INT(sg_track_events_alloc(&u, 3, &tiny, &st), SG_OK);
	tiny.cap = tiny.used; /* full from here on */
	CHECK_INT(sg_track_normalize(&u, &tiny, &st), SG_ENOMEM);
	CHECK_INT(u.n_events, 3);
	CHECK_INT(sg_track_events_alloc(&u, 2, &tiny, &st), SG_ENOMEM);
	sg_arena_fini(&tiny);

	CHECK(sg_status_terminal(TS(DELIVERED)) && sg_status_terminal(TS(RETURNED)) &&
	      sg_status_terminal(TS(CANCELLED)));
	for (int s = 0; s <= 14; s++)
		if (s != TS(DELIVERED) && s != TS(RETURNED) && s != TS(CANCELLED))
			CHECK(!sg_status_terminal((Shipgate__V1__TrackingStatus)s));
	sg_arena_fini(&a);
	CASE_END();
}

static void
test_mapping(void)
{
	static const struct {
		const char *code, *note;
		Shipgate__V1__TrackingStatus want;
		const char *sub;
	} m[] = {
	        {"1", "Pick up scan", TS(PICKED_UP), "pick_up_scan"},
	        {"2", "POD scan", TS(DELIVERED), "pod_scan"},
	        {"2", "Delivery scan", TS(DELIVERED), "delivered"}, /* code wins; sub from code */
	        {"0", NULL, TS(PENDING), "pending_pickup"},
	        {NULL, "pod SCAN", TS(DELIVERED), "pod_scan"},
	        {NULL, "Return POD scan", TS(RETURNED), "return_pod_scan"},
	        {NULL, "POD scan (photo)", TS(UNKNOWN), ""}, /* no prefix guessing */
	        {NULL, "Delivery scan failed", TS(UNKNOWN), ""},
	        {NULL, "", TS(UNKNOWN), ""},
	        {NULL, NULL, TS(UNKNOWN), ""},
	        {"", "Arrival scan", TS(IN_TRANSIT), "arrival_scan"},
	        {"02", "x", TS(UNKNOWN), ""},
	        {NULL, "Failed delivery scan", TS(DELIVERY_FAILED), "failed_delivery_scan"},
	        {NULL, "CANCELED", TS(CANCELLED), "cancel_scan"},
	        {NULL, "a very long note that is longer than any scan name we know of", TS(UNKNOWN),
	         ""},
	};
	CASE_BEGIN("mapping");
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		const char *sub = "?";
		CHECK_INT(sg_boscod_event_status(m[i].code, m[i].note, &sub), m[i].want);
		CHECK_STR(sub, m[i].sub);
	}
	CASE_END();
}

static void
test_registry(void)
{
	CASE_BEGIN("registry");
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD);
	CHECK(p != NULL && strcmp(p->name, "boscod") == 0);
	CHECK(p->track.build == sg_boscod_track_build && p->track.parse == sg_boscod_track_parse);
	CHECK(p->get_order.build == NULL && p->create_order.build == NULL);
	CHECK(sg_provider_by_name("BosCOD") == p);
	CHECK(sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_UNSPECIFIED) == NULL);
	CHECK(sg_provider_get((Shipgate__V1__Provider)99) == NULL);
	CHECK(sg_provider_by_name(NULL) == NULL);
	CHECK(sg_provider_by_name("") == NULL);
	CHECK(sg_provider_by_name("boscodx") == NULL);
	static const struct {
		const char *name;
		Shipgate__V1__Provider id;
	} others[] = {{"bosonline", SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE},
	              {"biteship", SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP},
	              {"FUUFFY", SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY}};
	for (size_t i = 0; i < 3; i++) {
		const sg_provider *o = sg_provider_by_name(others[i].name);
		CHECK(o != NULL && o->id == others[i].id && o == sg_provider_get(others[i].id));
	}
	CHECK(sg_ascii_casecmp("abc", "ABC") == 0 && sg_ascii_casecmp("a", "b") < 0 &&
	      sg_ascii_casecmp(NULL, "a") < 0 && sg_ascii_casecmp(NULL, NULL) == 0);

	/* the wrong request type is a bug, reported as such */
	sg_cases_result r = sg_cases_wrong_requests(
	        SG_BOSCOD_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD, &boscod_conf);
	CHECK_INT(r.failed, 0);
	CHECK_INT(r.ncases, 1);
	CASE_END();
}

/* Encoded requests whose strings protobuf-c would accept but cut or pass on unchecked. */
static void
test_pb_strings(void)
{
	sg_arena a;
	sg_status st;
	uint8_t buf[256];
	size_t n;

	CASE_BEGIN("sg_pb_check_strings");
	sg_arena_init(&a, 0, 0);
	Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	tr.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	tr.order_id = "BOS1x";
	tr.tracking_number = "AWB";
	n = shipgate__v1__track_request__pack(&tr, buf);
	sg_status_clear(&st);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, buf, n, &a, &st),
	          SG_OK);
	uint8_t *x = memchr(buf, 'x', n);
	*x = '\0'; /* "BOS1\0": unpack would give "BOS1" */
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, buf, n, &a, &st),
	          SG_EINVAL);
	CHECK_STR(st.violations[0].field, "order_id");
	CHECK_STR(st.violations[0].description, "contains a NUL byte");
	*x = 0xFF;
	sg_status_clear(&st);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, buf, n, &a, &st),
	          SG_EINVAL);
	CHECK_STR(st.violations[0].description, "is not valid UTF-8");
	/* nested and repeated messages name the path */
	Shipgate__V1__CreateOrderRequest co = SHIPGATE__V1__CREATE_ORDER_REQUEST__INIT;
	Shipgate__V1__Receiver rc = SHIPGATE__V1__RECEIVER__INIT;
	Shipgate__V1__OrderLine l1 = SHIPGATE__V1__ORDER_LINE__INIT, l2 = l1;
	Shipgate__V1__OrderLine *lines[] = {&l1, &l2};
	rc.name = "R\xc3\xa9ka";
	co.receiver = &rc;
	l1.sku = "S1";
	l2.sku = "S2q";
	co.items = lines;
	co.n_items = 2;
	n = shipgate__v1__create_order_request__pack(&co, buf);
	sg_status_clear(&st);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__create_order_request__descriptor, buf, n, &a,
	                              &st),
	          SG_OK);
	*(uint8_t *)memchr(buf, 'q', n) = 0;
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__create_order_request__descriptor, buf, n, &a,
	                              &st),
	          SG_EINVAL);
	CHECK_STR(st.violations[0].field, "items.sku");
	((uint8_t *)memchr(buf, 0xc3, n))[1] = 'x'; /* broken sequence inside receiver.name */
	sg_status_clear(&st);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__create_order_request__descriptor, buf, n, &a,
	                              &st),
	          SG_EINVAL);
	CHECK_STR(st.violations[0].field, "receiver.name");
	CHECK_STR(st.message, "receiver.name: is not valid UTF-8");
	/* truncated or odd encodings are left to unpack */
	static const uint8_t bad1[] = {0x12, 0x7f, 'a'}, bad2[] = {0x0b, 0x0c}, bad3[] = {0x80};
	sg_status_clear(&st);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, bad1, 3, &a, &st),
	          SG_OK);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, bad2, 2, &a, &st),
	          SG_OK);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, bad3, 1, &a, &st),
	          SG_OK);
	CHECK_INT(sg_pb_check_strings(&shipgate__v1__track_request__descriptor, NULL, 0, &a, &st),
	          SG_OK);
	sg_arena_fini(&a);
	CASE_END();
}

int
main(void)
{
	test_cases();
	test_hostile_ids();
	test_big_history();
	test_arena_caps();
	test_jansson_oom();
	test_path_segment();
	test_query_and_url();
	test_headers_and_errors();
	test_auth();
	test_json_getters();
	test_normalize();
	test_mapping();
	test_registry();
	test_pb_strings();
	TEST_MAIN_END();
}
