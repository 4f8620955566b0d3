/*
 * test_fuuffy.c - Fuuffy Track and the Fuuffy token (auth op).
 *
 * Data-driven first: every case file in tests/fixtures/fuuffy/cases/ runs build + parse with no
 * sockets through the shared runner (provider_cases.h; format in tests/fixtures/README.md), and a
 * few of them again under every arena cap. Then coded cases for what the runner cannot say: the
 * token op (the runner knows only Track, GetOrder and CreateOrder), hostile ids in both fields,
 * a 500-event list in both json-string forms, a json-string over the cap, jansson allocation
 * failures inside a nested json-string, and the mapping tables one by one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/status.h"
#include "providers/common.h"
#include "providers/fuuffy.h"
#include "providers/provider.h"
#include "provider_cases.h"
#include "testutil.h"

#define FIX   SG_FIXTURES_DIR "/fuuffy"
#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* Fuuffy's config in every case unless the case says otherwise (see fixtures/fuuffy/README.md).
 * No client credentials: the static token is the bearer. */
static const sg_pconf fuuffy_conf = {
        .name = SG_FUUFFY_NAME,
        .base_url = "http://fuuffy.test:4004",
        .token = "test-token",
        .timeout_ms = 5000,
};

/* The same with client credentials, for the token op. */
static const sg_pconf cred_conf = {
        .name = SG_FUUFFY_NAME,
        .base_url = "http://fuuffy.test:4004",
        .timeout_ms = 5000,
        .client_id = "shop-42",
        .client_secret = "s3cr\"et\\x",
};

/* ================================================================== the data-driven cases */

static void
test_cases(void)
{
	sg_cases_result r = sg_cases_run(SG_FUUFFY_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY,
	                                 FIX, &fuuffy_conf);

	CASE_BEGIN("fixture cases");
	CHECK_INT(r.failed, 0);
	CHECK(r.ncases >= 60); /* a lost or renamed fixture directory shows here */
	CASE_END();
}

/* Every arena cap from 16 bytes up: build + parse fail cleanly with SG_ENOMEM until it fits. */
static void
test_arena_caps(void)
{
	static const char *const cases[] = {
	        "01-example.json",                           /* the full reply */
	        "52-both-jsonstring.json",                   /* nested json-strings */
	        "41-unsorted-duplicated.json",               /* normalisation's scratch index */
	        "12-http-400-tracking-number-required.json", /* violations copied into the arena */
	        "18-http-429.json",                          /* rate-limit text in the message */
	        "04-neither-id.json",                        /* a refused request: static detail */
	};

	CASE_BEGIN("arena caps");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), FIX "/cases/%s", cases[i]);
		sg_cases_result r = sg_cases_oom_sweep(SG_FUUFFY_NAME, "Track", path, &fuuffy_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.fit_cap > 0);
		if (i == 0)
			CHECK(r.nomem_caps > 10);
	}
	CASE_END();
}

/* ================================================================== hostile ids */

/* Each hostile id, as order_id and as tracking_number: refused by build, on that field, with
 * nothing sendable left behind. */
static void
test_hostile_ids(void)
{
	static const char *const fields[] = {"order_id", "tracking_number"};
	const sg_provider *p = sg_provider_by_name("fuuffy");
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;

	CASE_BEGIN("hostile ids");
	for (size_t f = 0; f < 2; f++) {
		const sg_cases_idtarget t = {&p->track, &req.base, fields[f], SG_ID_STRICT, NULL};
		sg_cases_result r = sg_cases_hostile_ids(SG_FUUFFY_NAME, FIX "/hostile_ids.json",
		                                         &t, &fuuffy_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.ncases >= 20);
	}
	CASE_END();
}

/* ================================================================== 500 events */

/* A body with n events (and ndup exact copies of the first ones), times T0 + 60 k unsorted
 * (sg_cases_shuffled()), as a plain list or with both json-string levels. NEW malloc()ed
 * string. */
static char *
big_body(int n, int ndup, bool jsonstring)
{
	static const char *const codes[] = {"30", "31", "36", "105", "106", "310"};
	json_t *data = json_object(), *list = json_array(), *root = json_object();
	char *s;

	for (int i = 0; i < n + ndup; i++) {
		int k = sg_cases_shuffled(i, n);
		/* the local wall clock (UTC+8) of 2025-12-09 17:37:09 + k minutes; day 20431 is
		 * 2025-12-09 */
		int64_t t = 1765273029 + 28800 + 60 * (int64_t)k;
		char date[32];
		json_t *e = json_object();
		snprintf(date, sizeof(date), "%04d-%02d-%02d %02d:%02d:%02d", 2025, 12,
		         (int)(9 + t / 86400 - 20431), (int)(t % 86400 / 3600),
		         (int)(t % 3600 / 60), (int)(t % 60));
		json_object_set_new(e, "code",
		                    json_string(k == 0       ? "50"
		                                : k == n - 1 ? "80"
		                                             : codes[k % 6]));
		json_object_set_new(e, "location", json_string("深圳市"));
		json_object_set_new(e, "date", json_string(date));
		json_object_set_new(e, "message", json_sprintf("事件 %d", k));
		json_array_append_new(list, e);
	}
	json_object_set_new(data, "order_id", json_string("BIG-500"));
	json_object_set_new(data, "order_status", json_string("DELIVERED"));
	if (jsonstring) {
		json_object_set_new(data, "tracking_msg_list",
		                    json_string_nocheck(s = json_dumps(list, JSON_COMPACT)));
		free(s);
		json_decref(list);
		json_object_set_new(root, "data",
		                    json_string_nocheck(s = json_dumps(data, JSON_COMPACT)));
		free(s);
		json_decref(data);
	} else {
		json_object_set_new(data, "tracking_msg_list", list);
		json_object_set_new(root, "data", data);
	}
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

static void
test_big_list(void)
{
	const int n = 500, ndup = 10;
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY);
	sg_pconf pc = fuuffy_conf;

	CASE_BEGIN("500 events");
	for (int js = 0; js < 2; js++) {
		Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
		char *body = big_body(n, ndup, js == 1);
		sg_http_resp resp = {200, body, strlen(body), NULL, 0, NULL};
		ProtobufCMessage *reply = NULL;
		sg_status st;
		sg_arena a;

		sg_arena_init(&a, 0, 0);
		sg_status_clear(&st);
		req.order_id = "BIG-500";
		CHECK_INT(p->track.parse(&pc, &req.base, &resp, &a, &reply, &st), SG_OK);
		if (reply != NULL) {
			const Shipgate__V1__Tracking *t =
			        ((Shipgate__V1__TrackResponse *)reply)->tracking;
			bool zoned = true;
			CHECK_INT(t->n_events, n);
			CHECK(sg_cases_events_in_order(t, 1765273029, 60));
			for (size_t i = 0; i < t->n_events; i++)
				if (t->events[i]->offset_source !=
				    SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_PROVIDER_DEFAULT)
					zoned = false;
			CHECK(zoned);
			CHECK_INT(t->events[0]->status, TS(PICKED_UP));
			CHECK_STR(t->events[0]->time_text, "2025-12-09 17:37:09");
			CHECK_STR(t->events[1]->raw_text, "事件 1");
			CHECK_INT(t->status, TS(DELIVERED));
			CHECK(t->terminal);
			CHECK_INT(t->last_update_unix, 1765273029 + 60 * (n - 1));
			CHECK(sg_cases_round_trip(reply, &a));
		}
		sg_arena_fini(&a);
		free(body);
	}
	CASE_END();
}

/* ================================================================== json-string cap */

static void
test_jsonstring_cap(void)
{
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY);
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	sg_pconf pc = fuuffy_conf;
	const size_t inner = SG_FUUFFY_JSONSTR_MAX + 1;
	const char head[] = "{\"data\": \"{", tail[] = "}\"}";
	size_t len = sizeof(head) - 1 + (inner - 2) + sizeof(tail) - 1;
	char *body = malloc(len);
	ProtobufCMessage *reply = NULL;
	sg_status st;
	sg_arena a;

	CASE_BEGIN("json-string over the cap");
	/* {"data": "{<spaces>}"}: valid JSON inside, one byte over the cap */
	memcpy(body, head, sizeof(head) - 1);
	memset(body + sizeof(head) - 1, ' ', inner - 2);
	memcpy(body + sizeof(head) - 1 + inner - 2, tail, sizeof(tail) - 1);
	sg_http_resp resp = {200, body, len, NULL, 0, NULL};
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	req.order_id = "1";
	CHECK_INT(p->track.parse(&pc, &req.base, &resp, &a, &reply, &st), SG_EUP_TOOBIG);
	CHECK(reply == NULL);
	CHECK_STR(sg_err_reason(st.err), "UPSTREAM_TOO_LARGE");
	CHECK(st.message != NULL && strncmp(st.message, "data: json-string of ", 21) == 0);
	CHECK_INT(st.http_status, 200);
	CHECK_STR(st.provider, "fuuffy");
	/* one byte less: decoded (and then found to lack nothing: an empty data object) */
	memcpy(body + sizeof(head) - 1 + inner - 3, tail, sizeof(tail) - 1);
	resp.body_len = len - 1;
	sg_status_clear(&st);
	CHECK_INT(p->track.parse(&pc, &req.base, &resp, &a, &reply, &st), SG_OK);
	CHECK(reply != NULL);
	sg_arena_fini(&a);
	free(body);
	CASE_END();
}

/* ================================================================== jansson out of memory */

/* jansson's allocations fail one after another while it decodes the body and both nested
 * json-strings, and while it reads an error envelope: SG_ENOMEM (or, for the error, the
 * error's reason with less detail), never a crash or a leak. */
static void
test_jansson_oom(void)
{
	static const char *const files[] = {"52-both-jsonstring.json",
	                                    "15-http-403-json-string.json"};
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY);
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;

	CASE_BEGIN("jansson out of memory");
	req.order_id = "3550875";
	for (size_t f = 0; f < 2; f++) {
		char path[512], name[128];
		snprintf(path, sizeof(path), FIX "/cases/%s", files[f]);
		json_t *doc = sg_cases_load_json(path);
		json_t *ur = json_object_get(doc, "upstream_reply");
		char *body = json_dumps(json_object_get(ur, "body_json"), JSON_COMPACT);
		int status = (int)json_integer_value(json_object_get(ur, "status"));
		sg_cases_parse parse = {&p->track,
		                        &fuuffy_conf,
		                        &req.base,
		                        {status, body, strlen(body), NULL, 0, NULL}};

		/* the 403's error is whole once its provider code could be kept */
		snprintf(name, sizeof(name), "jansson oom %s", files[f]);
		sg_cases_result r = sg_cases_jansson_sweep(name, sg_cases_jparse, &parse,
		                                           f == 0 ? SG_OK : SG_EUP_FORBIDDEN, true);
		CHECK_INT(r.failed, 0);
		free(body);
		json_decref(doc);
	}
	CASE_END();
}

/* ================================================================== the error envelope */

static void
test_errors(void)
{
	sg_arena a;
	sg_status st;
	char big[3000], trace[4096];
	size_t off = 0;

	CASE_BEGIN("error envelope");
	sg_arena_init(&a, 0, 0);
	/* more trace entries than a status holds: the first 16 are kept */
	off += (size_t)snprintf(trace + off, sizeof(trace) - off,
	                        "{\"error\": {\"code\": \"400000\", \"error_trace\": [");
	for (int i = 0; i < 20; i++)
		off += (size_t)snprintf(trace + off, sizeof(trace) - off,
		                        "%s{\"field\": \"f%d\", \"message\": \"m%d\"}",
		                        i ? "," : "", i, i);
	off += (size_t)snprintf(trace + off, sizeof(trace) - off, "]}}");
	sg_http_resp r1 = {422, trace, off, NULL, 0, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r1, &a, &st), SG_EUP_BADREQ);
	CHECK_INT(st.nviolations, SG_STATUS_MAX_VIOLATIONS);
	CHECK_STR(st.violations[15].field, "f15");
	CHECK_STR(st.violations[15].description, "m15");
	CHECK_STR(st.provider_code, "400000");
	CHECK(st.provider_message == NULL);
	CHECK_STR(st.message, "fuuffy answered HTTP 422");

	/* a long message is cut at 1 KiB, on a UTF-8 boundary (3-byte characters) */
	off = (size_t)snprintf(big, sizeof(big), "{\"error\": {\"message\": \"");
	for (int i = 0; i < 700; i++)
		off += (size_t)snprintf(big + off, sizeof(big) - off, "\xe4\xb8\xad");
	off += (size_t)snprintf(big + off, sizeof(big) - off, "\"}}");
	sg_http_resp r2 = {500, big, off, NULL, 0, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r2, &a, &st), SG_EUP_UNAVAIL);
	CHECK(st.provider_message != NULL && strlen(st.provider_message) == 1023);

	/* 429: a rate-limit header of garbage or of a control byte is left out */
	static const char hdrs[] = "HTTP/1.1 429 x\r\n"
	                           "X-RateLimit-Limit: 100 per minute\r\n"
	                           "X-RateLimit-Remaining: \x01\r\n"
	                           "X-RateLimit-Reset: 1765273031\r\n"
	                           "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n";
	sg_http_resp r3 = {429, NULL, 0, hdrs, sizeof(hdrs) - 1, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r3, &a, &st), SG_EUP_RATELIMIT);
	CHECK_STR(st.message, "fuuffy answered HTTP 429 [X-RateLimit-Reset: 1765273031]");
	CHECK_INT(st.retry_after_ms, 0); /* an HTTP-date: this layer reads no clock */

	/* three values of the longest length kept (32 bytes), and one longer one left out */
	static const char longh[] = "HTTP/1.1 429 x\r\n"
	                            "X-RateLimit-Limit: 12345678901234567890123456789012\r\n"
	                            "X-RateLimit-Remaining: 12345678901234567890123456789012\r\n"
	                            "X-RateLimit-Reset: 12345678901234567890123456789012\r\n"
	                            "X-RateLimit-Limit: 123456789012345678901234567890123\r\n\r\n";
	sg_http_resp r3b = {429, NULL, 0, longh, sizeof(longh) - 1, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r3b, &a, &st), SG_EUP_RATELIMIT);
	CHECK_STR(st.message, "fuuffy answered HTTP 429 [X-RateLimit-Limit: "
	                      "12345678901234567890123456789012, X-RateLimit-Remaining: "
	                      "12345678901234567890123456789012, X-RateLimit-Reset: "
	                      "12345678901234567890123456789012]");
	static const char longer[] =
	        "HTTP/1.1 429 x\r\n"
	        "X-RateLimit-Remaining: 123456789012345678901234567890123\r\n\r\n";
	sg_http_resp r3c = {429, NULL, 0, longer, sizeof(longer) - 1, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r3c, &a, &st), SG_EUP_RATELIMIT);
	CHECK_STR(st.message, "fuuffy answered HTTP 429");

	/* ORDER_NOT_FOUND becomes NOT_FOUND only where the status said "bad request" */
	static const char onf[] = "{\"error\": {\"code\": \"401000\", \"error_code\": "
	                          "\"ORDER_NOT_FOUND\"}}";
	sg_http_resp r4 = {401, onf, sizeof(onf) - 1, NULL, 0, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r4, &a, &st), SG_EUP_UNAUTH);
	CHECK_STR(st.provider_code, "ORDER_NOT_FOUND");
	/* a json-string error that holds an array, or a duplicate key: status alone */
	static const char arr[] = "{\"error\": \"[1, 2]\"}";
	sg_http_resp r5 = {403, arr, sizeof(arr) - 1, NULL, 0, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r5, &a, &st), SG_EUP_FORBIDDEN);
	CHECK(st.provider_code == NULL && st.nviolations == 0);
	static const char dup[] = "{\"error\": {\"code\": \"1\", \"code\": \"2\"}}";
	sg_http_resp r6 = {400, dup, sizeof(dup) - 1, NULL, 0, NULL};
	sg_status_clear(&st);
	CHECK_INT(sg_fuuffy_http_error(&r6, &a, &st), SG_EUP_BADREQ);
	CHECK(st.provider_code == NULL);
	CHECK_STR(st.message, "fuuffy answered HTTP 400");
	sg_arena_fini(&a);
	CASE_END();
}

/* ================================================================== the mapping tables */

static void
test_mapping(void)
{
	static const struct {
		const char *code;
		Shipgate__V1__TrackingStatus want;
		const char *sub;
	} ev[] = {
	        {"50", TS(PICKED_UP), "collected"},
	        {"54", TS(PICKED_UP), "collected"},
	        {"30", TS(IN_TRANSIT), "in_transit"},
	        {"31", TS(IN_TRANSIT), "in_transit"},
	        {"36", TS(IN_TRANSIT), "in_transit"},
	        {"105", TS(IN_TRANSIT), "in_transit"},
	        {"106", TS(IN_TRANSIT), "in_transit"},
	        {"310", TS(IN_TRANSIT), "in_transit"},
	        {"70", TS(IN_TRANSIT), "arrived_at_destination"},
	        {"44", TS(OUT_FOR_DELIVERY), "out_for_delivery"},
	        {"204", TS(OUT_FOR_DELIVERY), "out_for_delivery"},
	        {"80", TS(DELIVERED), "delivered"},
	        {"631", TS(RETURNED), "returned"},
	        {"9999", TS(UNKNOWN), ""},
	        {"050", TS(UNKNOWN), ""}, /* exact codes only */
	        {" 50", TS(UNKNOWN), ""},
	        {"5", TS(UNKNOWN), ""},
	        {"", TS(UNKNOWN), ""},
	        {NULL, TS(UNKNOWN), ""},
	};
	static const struct {
		const char *text;
		Shipgate__V1__TrackingStatus want;
	} os[] = {
	        {"DRAFT", TS(PENDING)},
	        {"PENDING_CONFIRM", TS(PENDING)},
	        {"PROCESSING", TS(PENDING)},
	        {"PENDING_PROCESSING", TS(PENDING)},
	        {"READY_TO_SHIP", TS(INFO_RECEIVED)},
	        {"PENDING_PICKUP", TS(INFO_RECEIVED)},
	        {"PICKUP_COMPLETED", TS(PICKED_UP)},
	        {"IN_TRANSIT", TS(IN_TRANSIT)},
	        {"DELIVERED", TS(DELIVERED)},
	        {"COMPLETED", TS(DELIVERED)},
	        {"CANCELLED", TS(CANCELLED)},
	        {"canceled", TS(CANCELLED)},
	        {"列印及安排取件", TS(INFO_RECEIVED)},
	        {" 列印及安排取件\t", TS(INFO_RECEIVED)},
	        {"pending-pickup", TS(INFO_RECEIVED)},
	        {"In Transit", TS(IN_TRANSIT)},
	        {"IN__TRANSIT", TS(UNKNOWN)},
	        {"DELIVERED!", TS(UNKNOWN)},
	        {"列印", TS(UNKNOWN)},
	        {"", TS(UNKNOWN)},
	        {NULL, TS(UNKNOWN)},
	        {"a status text that is much longer than any order status we know of, really",
	         TS(UNKNOWN)},
	};
	CASE_BEGIN("mapping");
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		const char *sub = "?";
		CHECK_INT(sg_fuuffy_event_status(ev[i].code, &sub), ev[i].want);
		CHECK_STR(sub, ev[i].sub);
	}
	for (size_t i = 0; i < sizeof(os) / sizeof(os[0]); i++)
		CHECK_INT(sg_fuuffy_order_status(os[i].text), os[i].want);
	CASE_END();
}

/* ================================================================== the registry */

static void
test_registry(void)
{
	CASE_BEGIN("registry");
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY);
	CHECK(p != NULL && strcmp(p->name, "fuuffy") == 0);
	CHECK(p->track.build == sg_fuuffy_track_build && p->track.parse == sg_fuuffy_track_parse);
	CHECK(p->auth.build == sg_fuuffy_auth_build && p->auth.parse == sg_fuuffy_auth_parse);
	CHECK(p->get_order.build == NULL && p->create_order.build == NULL);
	CHECK(sg_provider_by_name("Fuuffy") == p);

	/* the wrong request type is a bug, reported as such */
	sg_cases_result r = sg_cases_wrong_requests(
	        SG_FUUFFY_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY, &fuuffy_conf);
	CHECK_INT(r.failed, 0);
	CHECK_INT(r.ncases, 1);
	CASE_END();
}

/* ================================================================== the token op */

static void
test_auth_build(void)
{
	const sg_provider *p = sg_provider_by_name("fuuffy");
	sg_pconf pc = cred_conf;
	sg_http_req hr;
	sg_status st;
	sg_arena a;

	CASE_BEGIN("token build");
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	CHECK_INT(p->auth.build(&pc, &a, &hr, &st), SG_OK);
	CHECK_STR(hr.method, "POST");
	CHECK_STR(hr.url, "http://fuuffy.test:4004/v1/auth/token");
	CHECK_INT(hr.nheaders, 2);
	CHECK_STR(hr.headers[0], "Content-Type: application/x-www-form-urlencoded");
	CHECK_STR(hr.headers[1], "Accept: application/json");
	/* a form body, as Fuuffy's Authentication page sends it: the secret's '"' and '\\'
	 * percent-encoded, and so every byte that could split the form */
	CHECK_STR(hr.body,
	          "grant_type=client_credentials&client_id=shop-42&client_secret=s3cr%22et%5Cx");
	CHECK_INT(hr.body_len, strlen(hr.body));
	pc.client_secret = "a&b=c+d%e f";
	CHECK_INT(p->auth.build(&pc, &a, &hr, &st), SG_OK);
	CHECK_STR(hr.body, "grant_type=client_credentials&client_id=shop-42&client_secret="
	                   "a%26b%3Dc%2Bd%25e%20f");
	pc = cred_conf;
	/* a static token is not sent to the token endpoint */
	pc.token = "static";
	CHECK_INT(p->auth.build(&pc, &a, &hr, &st), SG_OK);
	CHECK_INT(hr.nheaders, 2);

	/* missing or unusable credentials: SG_ENOCRED, nothing to send, the secret unquoted */
	static const struct {
		const char *id, *secret, *msg;
	} bad[] = {
	        {NULL, "x", "fuuffy: client_id not configured"},
	        {"", "x", "fuuffy: client_id not configured"},
	        {"id", NULL, "fuuffy: client_secret not configured"},
	        {"id", "", "fuuffy: client_secret not configured"},
	        {"id", "secret\n", "fuuffy: client_secret holds a control or non-ASCII byte"},
	        {"id\r\nX: 1", "x", "fuuffy: client_id holds a control or non-ASCII byte"},
	        {"id", "s\xc3\xa9", "fuuffy: client_secret holds a control or non-ASCII byte"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pc = cred_conf;
		pc.client_id = bad[i].id;
		pc.client_secret = bad[i].secret;
		sg_status_clear(&st);
		CHECK_INT(p->auth.build(&pc, &a, &hr, &st), SG_ENOCRED);
		CHECK_STR(st.message, bad[i].msg);
		CHECK_STR(st.provider, "fuuffy");
		CHECK(hr.method == NULL && hr.url == NULL && hr.body == NULL && hr.nheaders == 0);
	}
	/* no base_url: not configured, before the credentials */
	pc = cred_conf;
	pc.base_url = NULL;
	pc.client_id = NULL;
	sg_status_clear(&st);
	CHECK_INT(p->auth.build(&pc, &a, &hr, &st), SG_ENOPROVIDER);
	sg_arena_fini(&a);

	/* every arena cap: SG_ENOMEM and nothing left, until it fits */
	size_t cap, nomem = 0;
	for (cap = 16; cap < 4096; cap += 16) {
		sg_arena_init(&a, 64, cap);
		sg_status_clear(&st);
		sg_err rv = p->auth.build(&cred_conf, &a, &hr, &st);
		sg_arena_fini(&a);
		if (rv == SG_OK)
			break;
		nomem++;
		CHECK_INT(rv, SG_ENOMEM);
		CHECK_STR(st.provider, "fuuffy");
		CHECK(hr.method == NULL && hr.body == NULL);
	}
	CHECK(cap < 4096 && nomem > 3);
	CASE_END();
}

/* One token answer through the auth op's parse. */
static sg_err
token_parse(int status, const char *body, const char *hdrs, sg_arena *a, const char **tok,
            int64_t *ttl, sg_status *st)
{
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY);
	sg_http_resp r = {status,
	                  body,
	                  body != NULL ? strlen(body) : 0,
	                  hdrs,
	                  hdrs != NULL ? strlen(hdrs) : 0,
	                  NULL};
	sg_status_clear(st);
	return p->auth.parse(&cred_conf, &r, a, tok, ttl, st);
}

static void
test_auth_parse(void)
{
	static const char ok[] = "{\"access_token\": \"fuuffy_sbx.1765276629.0123456789abcdef\", "
	                         "\"token_type\": \"Bearer\", \"expires_in\": 3600}";
	const char *tok = "?";
	int64_t ttl = -1;
	sg_status st;
	sg_arena a;

	CASE_BEGIN("token parse");
	sg_arena_init(&a, 0, 0);
	CHECK_INT(token_parse(200, ok, NULL, &a, &tok, &ttl, &st), SG_OK);
	CHECK_STR(tok, "fuuffy_sbx.1765276629.0123456789abcdef");
	CHECK_INT(ttl, 3600);
	/* lower-case scheme, lifetime as a decimal string */
	CHECK_INT(token_parse(200,
	                      "{\"access_token\": \"t\", \"token_type\": \"bearer\", "
	                      "\"expires_in\": \"120\"}",
	                      NULL, &a, &tok, &ttl, &st),
	          SG_OK);
	CHECK_STR(tok, "t");
	CHECK_INT(ttl, 120);
	/* the answer as Fuuffy's Authentication page shows it: wrapped in "data" */
	CHECK_INT(token_parse(
	                  200,
	                  "{\"data\": {\"access_token\": \"sk-418e41a74ca2e7d941fa4456d73dbed7\", "
	                  "\"token_type\": \"Bearer\", \"expires_in\": 3600}}",
	                  NULL, &a, &tok, &ttl, &st),
	          SG_OK);
	CHECK_STR(tok, "sk-418e41a74ca2e7d941fa4456d73dbed7");
	CHECK_INT(ttl, 3600);
	/* a wrapper that holds no token says where */
	CHECK_INT(token_parse(200, "{\"data\": {\"token_type\": \"Bearer\"}}", NULL, &a, &tok, &ttl,
	                      &st),
	          SG_EUP_MALFORMED);
	CHECK_STR(st.message, "data.access_token: missing");
	CHECK_INT(token_parse(200, "{\"data\": [\"t\"]}", NULL, &a, &tok, &ttl, &st),
	          SG_EUP_MALFORMED);
	CHECK(strstr(st.message, "data") != NULL);
	CHECK_INT(token_parse(200, "{\"data\": null, \"access_token\": \"t\"}", NULL, &a, &tok,
	                      &ttl, &st),
	          SG_EUP_MALFORMED);
	/* no lifetime, no type: the documented 3600 s */
	CHECK_INT(token_parse(201, "{\"access_token\": \"t2\", \"expires_in\": null}", NULL, &a,
	                      &tok, &ttl, &st),
	          SG_OK);
	CHECK_INT(ttl, SG_FUUFFY_DEFAULT_TOKEN_TTL_S);

	/* answers that cannot give a usable bearer token */
	static const struct {
		const char *body, *msg;
	} bad[] = {
	        {"{\"access_token\": 12345, \"token_type\": \"Bearer\", \"expires_in\": \"3600\"}",
	         "access_token: expected string, got integer"}, /* the sandbox WRONGTYPE */
	        {"{\"token_type\": \"Bearer\"}", "access_token: missing"},
	        {"{\"access_token\": \"\"}", "access_token: empty or longer than 4096 bytes"},
	        {"{\"access_token\": \"a b\"}",
	         "access_token: holds a byte that cannot go in a header"},
	        {"{\"access_token\": \"a\\r\\nX-Admin: 1\"}",
	         "access_token: holds a byte that cannot go in a header"},
	        {"{\"access_token\": \"caf\\u00e9\"}",
	         "access_token: holds a byte that cannot go in a header"},
	        {"{\"access_token\": \"t\", \"token_type\": \"MAC\"}",
	         "token_type: expected \"Bearer\""},
	        {"{\"access_token\": \"t\", \"expires_in\": 0}", "expires_in: 0 is not a lifetime"},
	        {"{\"access_token\": \"t\", \"expires_in\": -5}",
	         "expires_in: -5 is not a lifetime"},
	        {"{\"access_token\": \"t\", \"expires_in\": 1.5}",
	         "expires_in: expected integer or decimal string, got number"},
	        {"[]", "$: expected object, got array"},
	        {"", "empty body where JSON was expected"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tok = "?";
		ttl = -1;
		CHECK_INT(token_parse(200, bad[i].body[0] != '\0' ? bad[i].body : NULL, NULL, &a,
		                      &tok, &ttl, &st),
		          SG_EUP_MALFORMED);
		CHECK_STR(st.message, bad[i].msg);
		CHECK(tok == NULL && ttl == 0);
		CHECK_STR(st.provider, "fuuffy");
		CHECK_INT(st.http_status, 200);
	}
	/* a 5000-byte token is refused (it goes into a header line) */
	char *longtok = malloc(5100);
	memcpy(longtok, "{\"access_token\": \"", 18);
	memset(longtok + 18, 'a', 5000);
	memcpy(longtok + 5018, "\"}", 3);
	CHECK_INT(token_parse(200, longtok, NULL, &a, &tok, &ttl, &st), SG_EUP_MALFORMED);
	free(longtok);

	/* errors through the envelope */
	CHECK_INT(token_parse(401,
	                      "{\"error\": {\"code\": \"invalid_client\", \"message\": \"bad "
	                      "client\"}}",
	                      NULL, &a, &tok, &ttl, &st),
	          SG_EUP_UNAUTH);
	CHECK_STR(st.provider_code, "invalid_client");
	CHECK_STR(st.provider_message, "bad client");
	CHECK_INT(st.http_status, 401);
	CHECK(tok == NULL && ttl == 0);
	CHECK_INT(
	        token_parse(400,
	                    "{\"error\": {\"code\": \"400000\", \"code_reason\": \"BAD_REQUEST\", "
	                    "\"message\": \"Bad Request\", \"error_trace\": [{\"field\": "
	                    "\"grant_type\", \"message\": \"grant_type must be "
	                    "client_credentials\"}]}}",
	                    NULL, &a, &tok, &ttl, &st),
	        SG_EUP_BADREQ);
	CHECK_INT(st.nviolations, 1);
	CHECK_STR(st.violations[0].field, "grant_type");
	CHECK_STR(st.violations[0].description, "grant_type must be client_credentials");
	CHECK_INT(token_parse(503, "<html>down</html>", "HTTP/1.1 503 x\r\nRetry-After: 7\r\n\r\n",
	                      &a, &tok, &ttl, &st),
	          SG_EUP_UNAVAIL);
	CHECK_INT(st.retry_after_ms, 7000);
	CHECK_STR(st.message, "fuuffy answered HTTP 503");
	CHECK(sg_err_retryable(st.err));
	sg_arena_fini(&a);

	/* every arena cap: SG_ENOMEM with no token, until it fits */
	size_t cap, nomem = 0;
	for (cap = 16; cap < 4096; cap += 16) {
		sg_arena_init(&a, 64, cap);
		tok = "?";
		sg_err rv = token_parse(200, ok, NULL, &a, &tok, &ttl, &st);
		if (rv == SG_OK) {
			CHECK_STR(tok, "fuuffy_sbx.1765276629.0123456789abcdef");
			sg_arena_fini(&a);
			break;
		}
		nomem++;
		CHECK_INT(rv, SG_ENOMEM);
		CHECK(tok == NULL);
		CHECK_STR(st.provider, "fuuffy");
		sg_arena_fini(&a);
	}
	CHECK(cap < 4096 && nomem > 0);
	CASE_END();
}

int
main(void)
{
	test_cases();
	test_arena_caps();
	test_hostile_ids();
	test_big_list();
	test_jsonstring_cap();
	test_jansson_oom();
	test_errors();
	test_mapping();
	test_registry();
	test_auth_build();
	test_auth_parse();
	TEST_MAIN_END();
}
