/*
 * test_biteship.c - Biteship Retrieve Order (GetOrder and Track) and the ISO-8601 helpers.
 *
 * Data-driven first: every case file in tests/fixtures/biteship/cases/ runs build + parse with
 * no sockets through the shared runner (provider_cases.h; format in tests/fixtures/README.md),
 * and a few of them again under every arena cap. Then coded cases for what JSON cannot say
 * well: hostile ids with NUL, every documented error code, a 500-event history, jansson
 * allocation failures, the status table and the time parser one by one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/status.h"
#include "providers/biteship.h"
#include "providers/common.h"
#include "providers/provider.h"
#include "provider_cases.h"
#include "testutil.h"

#define FIX   SG_FIXTURES_DIR "/biteship"
#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x
#define OS(x) SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_##x

/* ================================================================== the data-driven cases */

/* Biteship's config in every case unless the case says otherwise: the raw key, no Bearer. */
static const sg_pconf biteship_conf = {
        .name = SG_BITESHIP_NAME,
        .base_url = "https://api.biteship.test",
        .token = "biteship_test.k",
        .auth_scheme = "",
        .timeout_ms = 5000,
};

static void
test_cases(void)
{
	sg_cases_result r = sg_cases_run(
	        SG_BITESHIP_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP, FIX, &biteship_conf);

	CASE_BEGIN("fixture cases");
	CHECK_INT(r.failed, 0);
	CHECK(r.ncases >= 90); /* a lost or renamed fixture directory shows here */
	CASE_END();
}

/* Every arena cap from 16 bytes up: build + parse fail cleanly with SG_ENOMEM until it fits. */
static void
test_arena_caps(void)
{
	static const struct {
		const char *file, *method;
	} cases[] = {
	        {"01-example-get-order.json", "GetOrder"}, /* acceptance: the full order */
	        {"02-example-track.json", "Track"},
	        {"79-json-members.json", "GetOrder"},            /* JSON text of extra, metadata */
	        {"90-unsorted-duplicated.json", "Track"},        /* normalisation's scratch index */
	        {"10-http-400-40002001.json", "GetOrder"},       /* the error mapping */
	        {"38-200-refused-with-order.json", "GetOrder"},  /* success false, "error" wins */
	        {"27-http-400-long-error.json", "GetOrder"},     /* a long message */
	        {"c4-invalid-id-before-token.json", "GetOrder"}, /* a refused id */
	};

	CASE_BEGIN("arena caps");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), FIX "/cases/%s", cases[i].file);
		sg_cases_result r =
		        sg_cases_oom_sweep(SG_BITESHIP_NAME, cases[i].method, path, &biteship_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.fit_cap > 0);
		if (i == 0)
			CHECK(r.nomem_caps > 50);
	}
	CASE_END();
}

/* ================================================================== hostile ids */

/* Every id of hostile_ids.json: refused by the validator (NUL included) and by both builds. */
static void
test_hostile_ids(void)
{
	const sg_provider *p = sg_provider_by_name("biteship");
	Shipgate__V1__GetOrderRequest g = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	Shipgate__V1__TrackRequest t = SHIPGATE__V1__TRACK_REQUEST__INIT;
	const sg_cases_idtarget targets[] = {
	        {&p->get_order, &g.base, "order_id", SG_ID_STRICT, NULL},
	        {&p->track, &t.base, "order_id", SG_ID_STRICT, NULL},
	};

	CASE_BEGIN("hostile ids");
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		sg_cases_result r = sg_cases_hostile_ids(SG_BITESHIP_NAME, FIX "/hostile_ids.json",
		                                         &targets[i], &biteship_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.ncases >= 30);
	}
	CASE_END();
}

/* ================================================================== documented error codes */

/* Every documented code, in a 200 "success": false and under its own HTTP status: kept
 * verbatim, and the class follows the code (200) or the status (non-2xx). */
static void
test_error_codes(void)
{
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP);
	Shipgate__V1__GetOrderRequest req = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	sg_pconf pc = biteship_conf;
	long codes[40];
	size_t n = 0;

	codes[n++] = 40000001;
	for (long c = 40101001; c <= 40101003; c++)
		codes[n++] = c;
	for (long c = 40301001; c <= 40301002; c++)
		codes[n++] = c;
	for (long c = 40002001; c <= 40002021; c++)
		codes[n++] = c;
	req.order_id = "5dd599ebdefcd4158eb8470b";

	CASE_BEGIN("documented error codes");
	for (size_t i = 0; i < n; i++) {
		int http = (int)(codes[i] / 100000);
		sg_err want = http == 400   ? SG_EUP_BADREQ
		              : http == 401 ? SG_EUP_UNAUTH
		                            : SG_EUP_FORBIDDEN;
		char body[160], code[16], msg[64];
		snprintf(code, sizeof(code), "%ld", codes[i]);
		snprintf(msg, sizeof(msg), "documented error %ld", codes[i]);
		snprintf(body, sizeof(body),
		         "{\"success\": false, \"error\": \"%s\", \"code\": %s}", msg, code);
		for (int status = 200; status != 0; status = status == 200 ? http : 0) {
			sg_http_resp resp = {status, body, strlen(body), NULL, 0, NULL};
			ProtobufCMessage *reply = (ProtobufCMessage *)&req;
			sg_status st;
			sg_arena a;
			sg_arena_init(&a, 0, 0);
			sg_status_clear(&st);
			CHECK_INT(p->get_order.parse(&pc, &req.base, &resp, &a, &reply, &st), want);
			CHECK(reply == NULL);
			CHECK_STR(st.provider_code, code);
			CHECK_STR(st.provider_message, msg);
			CHECK_INT(st.http_status, status);
			CHECK_STR(st.provider, "biteship");
			sg_arena_fini(&a);
		}
	}
	CASE_END();
}

/* ================================================================== 500 events */

/* ISO-8601 text of epoch t at +07:00, as Biteship writes it. */
static void
iso_wib(char *buf, size_t n, int64_t t)
{
	time_t local = (time_t)(t + 7 * 3600);
	struct tm tm;
	gmtime_r(&local, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%S+07:00", &tm);
}

static void
test_big_history(void)
{
	static const char *const middle[] = {"allocated", "picking_up", "picked", "dropping_off"};
	const int n = 500, ndup = 10;
	const int64_t t0 = 1610348621;
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP);
	Shipgate__V1__TrackRequest treq = SHIPGATE__V1__TRACK_REQUEST__INIT;
	Shipgate__V1__GetOrderRequest greq = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	sg_pconf pc = biteship_conf;
	json_t *root = json_object(), *courier = json_object(), *hist = json_array();
	ProtobufCMessage *reply;
	sg_http_resp resp = {0};
	sg_status st;
	sg_arena a;

	CASE_BEGIN("500 events");
	/* times are t0 + 60 * k, unsorted, with exact duplicates of the first ten */
	for (int i = 0; i < n + ndup; i++) {
		int k = sg_cases_shuffled(i, n);
		char when[40];
		json_t *e = json_object();
		const char *s = k == 0 ? "confirmed" : k == n - 1 ? "delivered" : middle[k % 4];
		iso_wib(when, sizeof(when), t0 + 60 * k);
		json_object_set_new(e, "service_type", json_string("-"));
		json_object_set_new(e, "status", json_string(s));
		json_object_set_new(e, "note", json_sprintf("event %d", k));
		json_object_set_new(e, "updated_at", json_string(when));
		json_array_append_new(hist, e);
	}
	json_object_set_new(courier, "waybill_id", json_string("WYB-BIG"));
	json_object_set_new(courier, "company", json_string("jne"));
	json_object_set_new(courier, "history", hist);
	json_object_set_new(root, "success", json_true());
	json_object_set_new(root, "id", json_string("BIG-500"));
	json_object_set_new(root, "courier", courier);
	json_object_set_new(root, "status", json_string("delivered"));
	char *body = json_dumps(root, JSON_COMPACT);
	json_decref(root);

	resp.status = 200;
	resp.body = body;
	resp.body_len = strlen(body);
	treq.order_id = greq.order_id = "BIG-500";

	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	CHECK_INT(p->track.parse(&pc, &treq.base, &resp, &a, &reply, &st), SG_OK);
	if (reply != NULL) {
		const Shipgate__V1__Tracking *t = ((Shipgate__V1__TrackResponse *)reply)->tracking;
		bool zoned = true;
		CHECK_INT(t->n_events, n);
		CHECK(sg_cases_events_in_order(t, t0, 60));
		for (size_t i = 0; i < t->n_events; i++)
			if (t->events[i]->offset_source != OS(TEXT) ||
			    t->events[i]->utc_offset_seconds != 25200)
				zoned = false;
		CHECK(zoned);
		CHECK_INT(t->events[0]->status, TS(INFO_RECEIVED));
		CHECK_INT(t->status, TS(DELIVERED));
		CHECK(t->terminal);
		CHECK_INT(t->last_update_unix, t0 + 60 * (n - 1));
		CHECK_STR(t->status_text, "event 499");
		CHECK_STR(t->tracking_number, "WYB-BIG");
		CHECK(sg_cases_round_trip(reply, &a));
	}
	sg_arena_reset(&a);
	sg_status_clear(&st);
	CHECK_INT(p->get_order.parse(&pc, &greq.base, &resp, &a, &reply, &st), SG_OK);
	if (reply != NULL) {
		const Shipgate__V1__Order *o = ((Shipgate__V1__GetOrderResponse *)reply)->order;
		CHECK_INT(o->courier->n_history, n);
		CHECK_INT(o->courier->history[n - 1]->status, TS(DELIVERED));
		CHECK_STR(o->courier->history[n - 1]->sub_status, "delivered");
		CHECK(sg_cases_round_trip(reply, &a));
	}
	sg_arena_fini(&a);
	free(body);
	CASE_END();
}

/* ================================================================== jansson allocation failures */

/* The example with extra, metadata and tax_lines set, so that JSON text is made too. */
static char *
rich_body(void)
{
	json_t *root = sg_cases_load_json(FIX "/bodies/example.json");
	char *s;

	json_object_set_new(root, "extra", json_pack("{s:f, s:[i, f, n]}", "a", 15.2, "b", 1, 0.1));
	json_object_set_new(root, "metadata", json_pack("{s:f}", "lng", 106.77492000000007));
	json_object_set_new(root, "tax_lines",
	                    json_pack("[{s:s, s:f}]", "name", "PPN", "amount", 2722.5));
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

/* jansson's own allocations (parse, dump, read back) fail one after another: SG_ENOMEM or a
 * parse error, never a crash, a leak or a partial reply. */
static void
test_jansson_oom(void)
{
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP);
	Shipgate__V1__GetOrderRequest req = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	size_t len;
	char *bodies[2] = {sg_cases_slurp(FIX "/bodies/example.json", &len), rich_body()};

	CASE_BEGIN("jansson out of memory");
	req.order_id = "5dd599ebdefcd4158eb8470b";
	for (size_t b = 0; b < 2; b++) {
		sg_cases_parse parse = {&p->get_order,
		                        &biteship_conf,
		                        &req.base,
		                        {200, bodies[b], strlen(bodies[b]), NULL, 0, NULL}};
		char name[64];
		snprintf(name, sizeof(name), "jansson oom (body %zu)", b);
		sg_cases_result r =
		        sg_cases_jansson_sweep(name, sg_cases_jparse, &parse, SG_OK, true);
		CHECK_INT(r.failed, 0);
	}
	free(bodies[0]);
	free(bodies[1]);
	CASE_END();
}

/* ================================================================== status table */

static void
test_status_map(void)
{
	static const struct {
		const char *raw;
		Shipgate__V1__TrackingStatus want;
		const char *sub;
	} m[] = {
	        {"confirmed", TS(INFO_RECEIVED), "confirmed"},
	        {"scheduled", TS(INFO_RECEIVED), "scheduled"},
	        {"allocated", TS(PICKUP_IN_PROGRESS), "allocated"},
	        {"picking_up", TS(PICKUP_IN_PROGRESS), "picking_up"},
	        {"picked", TS(PICKED_UP), "picked"},
	        {"cancelled", TS(CANCELLED), "cancelled"},
	        {"on_hold", TS(ON_HOLD), "on_hold"},
	        {"dropping_off", TS(OUT_FOR_DELIVERY), "dropping_off"},
	        {"return_in_transit", TS(RETURNING), "return_in_transit"},
	        {"returned", TS(RETURNED), "returned"},
	        {"rejected", TS(EXCEPTION), "rejected"},
	        {"disposed", TS(EXCEPTION), "disposed"},
	        {"courier_not_found", TS(CANCELLED), "courier_not_found"},
	        {"delivered", TS(DELIVERED), "delivered"},
	        /* spellings */
	        {"pickingUp", TS(PICKUP_IN_PROGRESS), "picking_up"},
	        {"PICKING_UP", TS(PICKUP_IN_PROGRESS), "picking_up"},
	        {"picking-up", TS(PICKUP_IN_PROGRESS), "picking_up"},
	        {"Picking Up", TS(PICKUP_IN_PROGRESS), "picking_up"},
	        {"droppingOff", TS(OUT_FOR_DELIVERY), "dropping_off"},
	        {"returnInTransit", TS(RETURNING), "return_in_transit"},
	        {"onHold", TS(ON_HOLD), "on_hold"},
	        {"courierNotFound", TS(CANCELLED), "courier_not_found"},
	        {"COURIER_NOT_FOUND", TS(CANCELLED), "courier_not_found"},
	        {"\tDelivered\t", TS(DELIVERED), "delivered"},
	        {"canceled", TS(CANCELLED), "cancelled"},
	        {"placed", TS(PENDING), "placed"},
	        /* nothing guessed */
	        {"deliveredd", TS(UNKNOWN), ""},
	        {"not_delivered", TS(UNKNOWN), ""},
	        {"delivered.", TS(UNKNOWN), ""},
	        {"picked2", TS(UNKNOWN), ""},
	        {"", TS(UNKNOWN), ""},
	        {"___", TS(UNKNOWN), ""},
	        {"d\xc3\xa9livered", TS(UNKNOWN), ""},
	        {"in_transit", TS(UNKNOWN), ""},
	        {"a_status_name_that_is_far_too_long_to_be_one", TS(UNKNOWN), ""},
	        {NULL, TS(UNKNOWN), ""},
	};

	CASE_BEGIN("status table");
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		const char *sub = "?";
		CHECK_INT(sg_biteship_status(m[i].raw, &sub), m[i].want);
		CHECK_STR(sub, m[i].sub);
	}
	CASE_END();
}

/* ================================================================== ISO-8601 */

static void
test_iso8601(void)
{
	static const struct {
		const char *s;
		int64_t wall;
		int32_t off;
		bool has_off;
	} good[] = {
	        {"2021-01-11T14:03:41+07:00", 1610373821, 25200, true},
	        {"2021-01-11T14:03:41", 1610373821, 0, false},
	        {"2021-01-11 14:03:41", 1610373821, 0, false},
	        {"2021-01-11t14:03:41z", 1610373821, 0, true},
	        {"2021-01-11T14:03:41Z", 1610373821, 0, true},
	        {"2021-01-11T14:03:41.999999Z", 1610373821, 0, true},
	        {"2021-01-11T14:03:41,5+07:00", 1610373821, 25200, true},
	        {"2023-09-24T12:00+07:00", 1695556800, 25200, true},
	        {"2023-09-24T12:00", 1695556800, 0, false},
	        {"2021-01-11T14:03:41-03:30", 1610373821, -12600, true},
	        {"2021-01-11T14:03:41+0530", 1610373821, 19800, true},
	        {"2021-01-11T14:03:41+07", 1610373821, 25200, true},
	        {"2021-01-11T14:03:41-00:00", 1610373821, 0, true},
	        {"2021-01-11T14:03:41+18:00", 1610373821, 64800, true},
	        {"1970-01-01T00:00:00Z", 0, 0, true},
	        {"1969-12-31T23:59:59Z", -1, 0, true},
	        {"2000-02-29T00:00:00Z", 951782400, 0, true},
	        {"2024-02-29T23:59:60Z", 1709251200, 0, true}, /* a leap second reads as :00 next */
	        {"2100-12-31T23:59:59Z", 4133980799, 0, true},
	        {"0001-01-01T00:00:00Z", -62135596800, 0, true},
	        {"9999-12-31T23:59:59Z", 253402300799, 0, true},
	};
	static const char *const bad[] = {
	        "",
	        "2021-01-11",
	        "2021-01-11T14",
	        "2021-01-11T14:03:4",
	        "2021-01-11T14:03:41+7:00",
	        "2021-01-11T14:03:41+07:0",
	        "2021-01-11T14:03:41+07:00:00",
	        "2021-01-11T14:03:41+19:00",
	        "2021-01-11T14:03:41+18:01",
	        "2021-01-11T14:03:41+07:60",
	        "2021-01-11T14:03:41 +07:00",
	        "2021-01-11T14:03:41Z ",
	        "2021-01-11T14:03:41ZZ",
	        "2021-01-11T14:03:41.",
	        "2021-01-11T14:03:41.Z",
	        "2021-01-11T24:00:00Z",
	        "2021-01-11T14:60:00Z",
	        "2021-01-11T14:03:61Z",
	        "2021-13-11T14:03:41Z",
	        "2021-00-11T14:03:41Z",
	        "2021-01-00T14:03:41Z",
	        "2021-02-29T14:03:41Z",
	        "1900-02-29T00:00:00Z",
	        "2021-04-31T00:00:00Z",
	        "2021/01/11T14:03:41Z",
	        "2021-01-11X14:03:41Z",
	        "21-01-11T14:03:41Z",
	        "+2021-01-11T14:03:41Z",
	        "2021-01-11T14:03:41+07:00\n",
	        "20210111T140341Z",
	        "yesterday",
	        "2021-01-11T1a:03:41Z",
	};
	sg_isotime t;

	CASE_BEGIN("iso8601");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bool ok = sg_iso8601_parse(good[i].s, strlen(good[i].s), &t);
		CHECK(ok);
		if (!ok) {
			fprintf(stderr, "  refused: %s\n", good[i].s);
			continue;
		}
		CHECK_INT(t.wall_s, good[i].wall);
		CHECK_INT(t.offset_s, good[i].off);
		CHECK_INT(t.has_offset, good[i].has_off);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t.wall_s = 7;
		bool ok = sg_iso8601_parse(bad[i], strlen(bad[i]), &t);
		CHECK(!ok);
		if (ok)
			fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
		CHECK(t.wall_s == 0 && t.offset_s == 0 && !t.has_offset);
	}
	/* the length is what counts: an embedded NUL or a longer buffer is not read past len */
	CHECK(!sg_iso8601_parse("2021-01-11T14:03:41\0Z", 21, &t));
	CHECK(sg_iso8601_parse("2021-01-11T14:03:41+07:00 trailing", 25, &t) && t.has_offset);
	CHECK(!sg_iso8601_parse(NULL, 0, &t));

	/* the zone: the text's, else the config's, else the provider's */
	sg_pconf pc = biteship_conf;
	int64_t utc;
	int32_t off;
	Shipgate__V1__OffsetSource src;
	const char *z = "2021-01-11T14:03:41", *o = "2021-01-11T14:03:41+07:00";
	CHECK(sg_time_iso(&pc, 25200, o, strlen(o), &utc, &off, &src));
	CHECK(utc == 1610348621 && off == 25200 && src == OS(TEXT));
	CHECK(sg_time_iso(&pc, 25200, z, strlen(z), &utc, &off, &src));
	CHECK(utc == 1610348621 && off == 25200 && src == OS(PROVIDER_DEFAULT));
	CHECK(sg_time_iso(NULL, 28800, z, strlen(z), &utc, &off, &src));
	CHECK(utc == 1610373821 - 28800 && off == 28800 && src == OS(PROVIDER_DEFAULT));
	pc.utc_offset_set = true;
	pc.utc_offset_s = -3600;
	CHECK(sg_time_iso(&pc, 25200, z, strlen(z), &utc, &off, &src));
	CHECK(utc == 1610373821 + 3600 && off == -3600 && src == OS(CONFIG));
	CHECK(sg_time_iso(&pc, 25200, o, strlen(o), &utc, &off, &src));
	CHECK(utc == 1610348621 && off == 25200 && src == OS(TEXT));
	CHECK(!sg_time_iso(&pc, 25200, "soon", 4, &utc, &off, &src));
	CHECK(utc == 0 && off == 0 && src == OS(UNSPECIFIED));
	CASE_END();
}

/* ================================================================== registry and misuse */

static void
test_registry(void)
{
	const sg_provider *p = sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP);
	Shipgate__V1__GetOrderRequest g = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	sg_pconf pc = biteship_conf;
	sg_http_resp resp = {200, "{}", 2, NULL, 0, NULL};
	ProtobufCMessage *reply;
	sg_arena a;
	sg_status st;

	CASE_BEGIN("registry");
	CHECK(p != NULL && strcmp(p->name, "biteship") == 0);
	CHECK(sg_provider_by_name("BITESHIP") == p);
	CHECK(p->get_order.build == sg_biteship_get_order_build &&
	      p->get_order.parse == sg_biteship_get_order_parse);
	CHECK(p->track.build == sg_biteship_track_build &&
	      p->track.parse == sg_biteship_track_parse);
	CHECK(p->create_order.build == NULL && p->auth.build == NULL);

	/* the wrong request type (each other's too) is a bug, reported as such */
	sg_cases_result r = sg_cases_wrong_requests(
	        SG_BITESHIP_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP, &biteship_conf);
	CHECK_INT(r.failed, 0);
	CHECK_INT(r.ncases, 2);
	/* and the right ones work, with an empty order */
	sg_arena_init(&a, 0, 0);
	g.order_id = "ABC";
	sg_status_clear(&st);
	CHECK_INT(p->get_order.parse(&pc, &g.base, &resp, &a, &reply, &st), SG_OK);
	CHECK(reply != NULL &&
	      strcmp(((Shipgate__V1__GetOrderResponse *)reply)->order->id, "ABC") == 0);
	sg_arena_fini(&a);
	CASE_END();
}

int
main(void)
{
	test_cases();
	test_arena_caps();
	test_hostile_ids();
	test_error_codes();
	test_big_history();
	test_jansson_oom();
	test_status_map();
	test_iso8601();
	test_registry();
	TEST_MAIN_END();
}
