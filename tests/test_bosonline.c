/*
 * test_bosonline.c - bosOnline: store tracking (Track) and checkout (CreateOrder).
 *
 * Data-driven first: every case file in tests/fixtures/bosonline/cases/ runs build + parse with
 * no sockets through the shared runner (provider_cases.h; format in tests/fixtures/README.md),
 * and the heaviest ones again under every arena cap. Then coded cases for what JSON cannot say
 * well: hostile AWBs and form ids, a 500-event history, jansson allocation failures, the note
 * table, values a JSON request cannot carry (NaN, unknown enum numbers, invalid UTF-8), and the
 * exactness of the doubles sent.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/status.h"
#include "providers/bosonline.h"
#include "providers/common.h"
#include "providers/provider.h"
#include "provider_cases.h"
#include "testutil.h"

#define FIX   SG_FIXTURES_DIR "/bosonline"
#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* bosOnline's config in every case unless the case says otherwise (see fixtures/README.md). */
static const sg_pconf bosonline_conf = {
        .name = SG_BOSONLINE_NAME,
        .base_url = "http://bosonline.test:4004",
        .token = "test-token",
        .timeout_ms = 5000,
};

static const sg_provider *
prov(void)
{
	return sg_provider_get(SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE);
}

/* The document's create-order request, typed (the `request` of case 02), in arena a. */
static Shipgate__V1__CreateOrderRequest *
doc_order(sg_arena *a)
{
	json_t *c = sg_cases_load_json(FIX "/cases/02-create-order-example.json");
	ProtobufCMessage *m = NULL;

	if (c != NULL)
		m = sg_cases_pb_from_json(&shipgate__v1__create_order_request__descriptor,
		                          json_object_get(c, "request"), a);
	json_decref(c);
	return (Shipgate__V1__CreateOrderRequest *)m;
}

/* ================================================================== the data-driven cases */

static void
test_cases(void)
{
	sg_cases_result r =
	        sg_cases_run(SG_BOSONLINE_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE, FIX,
	                     &bosonline_conf);

	CASE_BEGIN("fixture cases");
	CHECK_INT(r.failed, 0);
	CHECK(r.ncases >= 70); /* a lost or renamed fixture directory shows here */
	CASE_END();
}

/* ================================================================== hostile ids */

/* Every id of hostile_ids.json, as an AWB (Track) and as a form id (CreateOrder): refused before
 * anything is built, with the one violation the file gives. */
static void
test_hostile_ids(void)
{
	const sg_provider *p = prov();
	Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	sg_arena a;

	CASE_BEGIN("hostile ids");
	sg_arena_init(&a, 0, 0);
	Shipgate__V1__CreateOrderRequest *co = doc_order(&a);
	CHECK(co != NULL);
	const sg_cases_idtarget targets[] = {
	        /* an empty AWB is refused by bosOnline's own check first */
	        {&p->track, &tr.base, "tracking_number", SG_ID_STRICT,
	         "is required (bosOnline tracks by AWB)"},
	        {&p->create_order, co != NULL ? &co->base : NULL, "form_id", SG_ID_STRICT, NULL},
	};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		if (targets[i].base == NULL)
			continue;
		sg_cases_result r = sg_cases_hostile_ids(SG_BOSONLINE_NAME, FIX "/hostile_ids.json",
		                                         &targets[i], &bosonline_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.ncases >= 20);
	}
	sg_arena_fini(&a);
	CASE_END();
}

/* ================================================================== 500 events */

static void
test_big_history(void)
{
	const int n = 500, ndup = 10;
	const int64_t t0 = 1748772436;
	const sg_provider *p = prov();
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	sg_pconf pc = bosonline_conf;
	json_t *root = json_object(), *data = json_array();
	ProtobufCMessage *reply = NULL;
	sg_http_resp resp = {0};
	sg_status st;
	sg_arena a;

	CASE_BEGIN("500 events");
	/* times are t0 + 60 * k, unsorted, with exact duplicates of the first ten. The middle
	 * cycles through departed / arrived / a bare "Paket telah diterima", which is DELIVERED
	 * only as the newest (k = n - 1). */
	for (int i = 0; i < n + ndup; i++) {
		int k = sg_cases_shuffled(i, n);
		json_t *e = json_object();
		char note[64];
		if (k == 0)
			snprintf(note, sizeof(note), "Paket telah diterima oleh JUWANA");
		else if (k == n - 1 || k % 3 == 0)
			snprintf(note, sizeof(note), "Paket telah diterima");
		else if (k % 3 == 1)
			snprintf(note, sizeof(note), "Paket akan dikirimkan ke HUB%d", k);
		else
			snprintf(note, sizeof(note), "Paket telah sampai di HUB%d - Mobil", k);
		json_object_set_new(e, "note", json_string(note));
		json_object_set_new(e, "description", json_string(k % 2 ? "Mobil" : ""));
		json_object_set_new(e, "branch", json_sprintf("HUB%d", k));
		json_object_set_new(e, "tm", json_sprintf("%" PRId64, t0 + 60 * k));
		json_object_set_new(e, "tm_order", json_string("1748765886"));
		json_object_set_new(e, "tm_recon",
		                    k == n - 1 ? json_string("1748999999") : json_null());
		json_object_set_new(e, "reconciled", json_string(k == n - 1 ? "1" : "0"));
		json_object_set_new(e, "time", json_string("08:57"));
		json_object_set_new(e, "date", json_string("02 Jun"));
		json_array_append_new(data, e);
	}
	json_object_set_new(root, "data", data);
	char *body = json_dumps(root, JSON_COMPACT);
	json_decref(root);

	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	req.tracking_number = "BIG-500";
	resp.status = 200;
	resp.body = body;
	resp.body_len = strlen(body);
	CHECK_INT(p->track.parse(&pc, &req.base, &resp, &a, &reply, &st), SG_OK);
	if (reply != NULL) {
		const Shipgate__V1__Tracking *t = ((Shipgate__V1__TrackResponse *)reply)->tracking;
		bool mapped = true;
		int delivered = 0;
		CHECK_INT(t->n_events, n);
		CHECK(sg_cases_events_in_order(t, t0, 60));
		for (size_t i = 0; i < t->n_events; i++) {
			const Shipgate__V1__TrackingEvent *ev = t->events[i];
			if (ev->status == TS(UNKNOWN))
				mapped = false;
			if (ev->status == TS(DELIVERED))
				delivered++;
		}
		CHECK(mapped);
		CHECK_INT(delivered, 1);
		CHECK_INT(t->events[0]->status, TS(PICKED_UP));
		CHECK_INT(t->events[3]->status, TS(IN_TRANSIT)); /* a bare "diterima" mid-way */
		CHECK_STR(t->events[3]->sub_status, "received");
		CHECK_INT(t->status, TS(DELIVERED));
		CHECK(t->terminal);
		CHECK_INT(t->last_update_unix, t0 + 60 * (n - 1));
		CHECK(t->cod != NULL && t->cod->reconciled != NULL && t->cod->reconciled->value);
		CHECK(t->cod != NULL && t->cod->reconciled_time_unix != NULL &&
		      t->cod->reconciled_time_unix->value == 1748999999);
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
	        "01-track-example.json",        /* the full tracking reply */
	        "02-create-order-example.json", /* the body, and the full create-order reply */
	        "13-track-http-429.json",       /* the error mapping: detail in the arena */
	        "40-unsorted-duplicated.json",  /* normalisation's scratch index */
	        "46-cod-reconciled.json",       /* every COD wrapper */
	        "60-create-order-missing-fields.json", /* many violations, formatted field names */
	        "53-hostile-before-token.json",        /* a refused AWB */
	};

	CASE_BEGIN("arena caps");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), FIX "/cases/%s", cases[i]);
		sg_cases_result r =
		        sg_cases_oom_sweep(SG_BOSONLINE_NAME, NULL, path, &bosonline_conf);
		CHECK_INT(r.failed, 0);
		CHECK(r.fit_cap > 0);
		if (i < 2)
			CHECK(r.nomem_caps > 10);
	}
	CASE_END();
}

/* One create-order build of co in arena a, for the jansson sweep. */
static sg_cases_jcall
order_build(void *co, sg_arena *a)
{
	sg_cases_jcall call = {0};
	sg_http_req hr;
	sg_status st;

	sg_status_clear(&st);
	call.rv = prov()->create_order.build(
	        &bosonline_conf, &((Shipgate__V1__CreateOrderRequest *)co)->base, a, &hr, &st);
	call.left = call.rv != SG_OK && !sg_cases_req_empty(&hr);
	return call;
}

/* jansson's own allocations fail one after another: SG_ENOMEM, never a crash or a leak. */
static void
test_jansson_oom(void)
{
	const sg_provider *p = prov();
	Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	size_t tlen = 0, olen = 0;
	char *tbody = sg_cases_slurp(FIX "/bodies/tracking-example.json", &tlen);
	char *obody = sg_cases_slurp(FIX "/bodies/create-order-reply.json", &olen);
	sg_arena ra;

	sg_arena_init(&ra, 0, 0);
	/* the typed request is made before jansson's budget starts to count */
	Shipgate__V1__CreateOrderRequest *co = doc_order(&ra);
	tr.tracking_number = "IDE987651421";
	sg_cases_parse track = {
	        &p->track, &bosonline_conf, &tr.base, {200, tbody, tlen, NULL, 0, NULL}};
	sg_cases_parse order = {&p->create_order,
	                        &bosonline_conf,
	                        co != NULL ? &co->base : NULL,
	                        {200, obody, olen, NULL, 0, NULL}};
	const struct {
		const char *name;
		sg_cases_jfn fn;
		void *arg;
		bool parses; /* building parses nothing: only SG_ENOMEM there */
	} sweeps[] = {
	        {"jansson oom: track parse", sg_cases_jparse, &track, true},
	        {"jansson oom: create order build", order_build, co, false},
	        {"jansson oom: create order parse", sg_cases_jparse, &order, true},
	};

	CHECK(tbody != NULL && obody != NULL);
	CHECK(co != NULL);
	for (size_t i = 0; co != NULL && i < sizeof(sweeps) / sizeof(sweeps[0]); i++) {
		CASE_BEGIN(sweeps[i].name);
		/* jansson reports most failures as out of memory; a few come back as a parse
		 * error, which the provider cannot tell apart (counted, never a crash) */
		sg_cases_result r = sg_cases_jansson_sweep(sweeps[i].name, sweeps[i].fn,
		                                           sweeps[i].arg, SG_OK, sweeps[i].parses);
		CHECK_INT(r.failed, 0);
		CHECK(r.nomem_caps > 3); /* jansson was really used, and failed */
		CASE_END();
	}
	sg_arena_fini(&ra);
	free(tbody);
	free(obody);
}

/* ================================================================== the note table */

static void
test_mapping(void)
{
	static const struct {
		const char *note;
		bool newest;
		Shipgate__V1__TrackingStatus want;
		const char *sub;
	} m[] = {
	        /* the documented example */
	        {"Paket telah diterima", true, TS(DELIVERED), "delivered"},
	        {"Paket telah diterima", false, TS(IN_TRANSIT), "received"},
	        {"Paket telah diterima oleh JUWANA", true, TS(PICKED_UP), "received_at_origin"},
	        {"Paket telah diterima oleh JUWANA", false, TS(PICKED_UP), "received_at_origin"},
	        {"Paket akan dikirim ke alamat penerima", false, TS(OUT_FOR_DELIVERY),
	         "out_for_delivery"},
	        {"Paket akan dikirimkan ke KRANGGAN", false, TS(IN_TRANSIT), "departed"},
	        {"Paket akan dikirimkan ke TCTNU041 - Mobil", true, TS(IN_TRANSIT), "departed"},
	        {"Paket telah sampai di SRG_GATEWAY - Mobil", false, TS(IN_TRANSIT), "arrived"},
	        /* case, blanks and a final dot */
	        {"paket TELAH diterima", true, TS(DELIVERED), "delivered"},
	        {" \tPaket  telah\r\nditerima.  ", true, TS(DELIVERED), "delivered"},
	        {"PAKET AKAN DIKIRIM KE ALAMAT PENERIMA.", false, TS(OUT_FOR_DELIVERY),
	         "out_for_delivery"},
	        /* whole notes only where whole notes are meant */
	        {"Paket telah diterima..", true, TS(UNKNOWN), ""},
	        {"Paket telah diterima tetangga", true, TS(UNKNOWN), ""},
	        {"Paket telah diterimaoleh X", true, TS(UNKNOWN), ""},
	        {"Paket telah sampai diKRANGGAN", false, TS(UNKNOWN), ""},
	        {"Paket telah sampai di", false, TS(IN_TRANSIT), "arrived"},
	        {"Paket akan dikirim ke alamat penerima besok", false, TS(IN_TRANSIT), "departed"},
	        /* heads win over words in the place name */
	        {"Paket telah sampai di GUDANG RETUR", false, TS(IN_TRANSIT), "arrived"},
	        {"Paket akan dikirimkan ke BATAL-HUB", false, TS(IN_TRANSIT), "departed"},
	        /* the inferred vocabulary */
	        {"Paket telah diterima oleh pengirim", true, TS(RETURNED), "returned_to_sender"},
	        {"Paket telah dikembalikan ke pengirim", true, TS(RETURNED), "returned_to_sender"},
	        {"Paket retur telah diterima", true, TS(RETURNED), "returned_to_sender"},
	        {"Paket akan dikirimkan ke pengirim", false, TS(RETURNING), "returning_to_sender"},
	        {"Paket retur akan dikirimkan ke JUWANA", false, TS(RETURNING), "returning"},
	        {"Paket diretur", false, TS(RETURNING), "returning"},
	        {"Return to sender", false, TS(RETURNING), "returning"},
	        {"Pengiriman gagal, paket akan diretur", false, TS(RETURNING), "returning"},
	        {"Paket gagal dikirim", false, TS(DELIVERY_FAILED), "delivery_failed"},
	        {"Delivery FAILED: alamat salah", false, TS(DELIVERY_FAILED), "delivery_failed"},
	        {"Paket tidak  berhasil diantar", false, TS(DELIVERY_FAILED), "delivery_failed"},
	        {"Paket gagal dijemput", false, TS(EXCEPTION), "pickup_failed"},
	        {"Pesanan dibatalkan", true, TS(CANCELLED), "cancelled"},
	        {"Order cancelled by seller", true, TS(CANCELLED), "cancelled"},
	        {"Paket ditahan (alamat tidak lengkap)", false, TS(ON_HOLD), "on_hold"},
	        {"Shipment ON HOLD", false, TS(ON_HOLD), "on_hold"},
	        {"Paket hilang", false, TS(EXCEPTION), "lost"},
	        {"Paket rusak", false, TS(EXCEPTION), "damaged"},
	        {"Paket sedang diantar oleh kurir", false, TS(OUT_FOR_DELIVERY),
	         "out_for_delivery"},
	        {"Paket telah tiba di KRANGGAN", false, TS(IN_TRANSIT), "arrived"},
	        /* words start at a word: no match inside another word */
	        {"Paket dipegang satpam", false, TS(UNKNOWN), ""},
	        {"Paket masuk antrean prebatal", false, TS(UNKNOWN), ""},
	        {"Paket diterima", true, TS(UNKNOWN), ""},
	        {"", true, TS(UNKNOWN), ""},
	        {"   ", true, TS(UNKNOWN), ""},
	        {NULL, true, TS(UNKNOWN), ""},
	        {"Paket telah diterima oleh \xe6\x9d\xb1\xe4\xba\xac", false, TS(PICKED_UP),
	         "received_at_origin"},
	        {"Paket \xc3\xa9gagal", false, TS(UNKNOWN), ""}, /* non-ASCII is part of a word */
	};

	CASE_BEGIN("note table");
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		const char *sub = "?";
		Shipgate__V1__TrackingStatus got =
		        sg_bosonline_event_status(m[i].note, m[i].newest, &sub);
		if (got != m[i].want || strcmp(sub, m[i].sub) != 0)
			fprintf(stderr, "note %zu \"%s\" (newest %d): got %d \"%s\"\n", i,
			        m[i].note != NULL ? m[i].note : "(null)", m[i].newest, got, sub);
		CHECK_INT(got, m[i].want);
		CHECK_STR(sub, m[i].sub);
	}

	/* keywords are looked for in the first 1024 bytes only; heads do not care */
	char *longnote = malloc(4096);
	const char *sub = "?";
	memset(longnote, 'x', 4095);
	longnote[4095] = '\0';
	memcpy(longnote + 4000, " gagal", 6);
	CHECK_INT(sg_bosonline_event_status(longnote, false, &sub), TS(UNKNOWN));
	memcpy(longnote + 1000, " gagal", 6);
	CHECK_INT(sg_bosonline_event_status(longnote, false, &sub), TS(DELIVERY_FAILED));
	memcpy(longnote, "Paket telah sampai di ", 22);
	CHECK_INT(sg_bosonline_event_status(longnote, false, &sub), TS(IN_TRANSIT));
	free(longnote);
	CASE_END();
}

/* ================================================================== registry */

static void
test_registry(void)
{
	const sg_provider *p = prov();

	CASE_BEGIN("registry");
	CHECK(p != NULL && strcmp(p->name, "bosonline") == 0);
	CHECK(sg_provider_by_name("BosOnline") == p);
	CHECK(p->track.build == sg_bosonline_track_build &&
	      p->track.parse == sg_bosonline_track_parse);
	CHECK(p->create_order.build == sg_bosonline_create_order_build &&
	      p->create_order.parse == sg_bosonline_create_order_parse);
	CHECK(p->get_order.build == NULL && p->get_order.parse == NULL);
	CHECK(p->auth.build == NULL && p->auth.parse == NULL);

	/* the wrong request type (a TrackRequest to CreateOrder too) is a bug, reported as such,
	 * with nothing left behind */
	sg_cases_result r = sg_cases_wrong_requests(
	        SG_BOSONLINE_NAME, SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE, &bosonline_conf);
	CHECK_INT(r.failed, 0);
	CHECK_INT(r.ncases, 2);
	CASE_END();
}

/* ================================================================== create order, coded */

/* Builds co and returns the result; *hr gets the request. */
static sg_err
build_order(Shipgate__V1__CreateOrderRequest *co, sg_arena *a, sg_http_req *hr, sg_status *st)
{
	sg_pconf pc = bosonline_conf;

	sg_status_clear(st);
	return prov()->create_order.build(&pc, &co->base, a, hr, st);
}

/* True when the violations in st are exactly fields[] (in order). */
static bool
has_violations(const sg_status *st, const char *const *fields, size_t n)
{
	bool same = st->nviolations == n;

	for (size_t i = 0; same && i < n; i++)
		same = strcmp(st->violations[i].field, fields[i]) == 0;
	if (!same)
		for (size_t i = 0; i < st->nviolations; i++)
			fprintf(stderr, "  violation %s: %s\n", st->violations[i].field,
			        st->violations[i].description);
	return same;
}

/* Members of got and want in the same order, recursively (what body_json cannot check). */
static bool
same_member_order(json_t *got, json_t *want)
{
	if (json_is_object(want)) {
		void *ig = json_object_iter(got), *iw = json_object_iter(want);
		for (; iw != NULL;
		     iw = json_object_iter_next(want, iw), ig = json_object_iter_next(got, ig)) {
			if (ig == NULL ||
			    strcmp(json_object_iter_key(ig), json_object_iter_key(iw)) != 0 ||
			    !same_member_order(json_object_iter_value(ig),
			                       json_object_iter_value(iw)))
				return false;
		}
		return ig == NULL;
	}
	if (json_is_array(want)) {
		if (json_array_size(got) != json_array_size(want))
			return false;
		for (size_t i = 0; i < json_array_size(want); i++)
			if (!same_member_order(json_array_get(got, i), json_array_get(want, i)))
				return false;
	}
	return true;
}

static void
test_order_body(void)
{
	sg_arena a;
	sg_http_req hr;
	sg_status st;
	json_error_t je;

	CASE_BEGIN("create order body");
	sg_arena_init(&a, 0, 0);
	Shipgate__V1__CreateOrderRequest *co = doc_order(&a);
	CHECK(co != NULL);
	if (co == NULL)
		goto done;
	CHECK_INT(build_order(co, &a, &hr, &st), SG_OK);
	CHECK(hr.body != NULL && hr.body[hr.body_len] == '\0' && strlen(hr.body) == hr.body_len);
	/* the members come in the document's order too */
	json_t *got = json_loadb(hr.body, hr.body_len, JSON_REJECT_DUPLICATES, &je);
	json_t *doc = sg_cases_load_json(FIX "/bodies/create-order-request.json");
	CHECK(got != NULL && doc != NULL && json_equal(got, doc));
	CHECK(same_member_order(got, doc));
	CHECK(strncmp(hr.body, "{\"sender\":{\"warehouse_name\":\"Alfian\",", 37) == 0);
	json_decref(got);
	json_decref(doc);

	/* doubles go out round-trip exact: the provider reads back the caller's very double */
	static const double lats[] = {0.1,  1.0 / 3.0, -6.208763,          2.9372132131231,
	                              90.0, -90.0,     89.99999999999999,  5e-324,
	                              -0.0, 1e-7,      0.30000000000000004};
	Google__Protobuf__DoubleValue lat = GOOGLE__PROTOBUF__DOUBLE_VALUE__INIT;
	co->sender->latitude = &lat;
	for (size_t i = 0; i < sizeof(lats) / sizeof(lats[0]); i++) {
		lat.value = lats[i];
		CHECK_INT(build_order(co, &a, &hr, &st), SG_OK);
		json_t *b = json_loadb(hr.body, hr.body_len, 0, &je);
		json_t *v = json_object_get(json_object_get(b, "sender"), "sender_latitude");
		double back = json_real_value(v);
		CHECK(json_is_real(v));
		CHECK(memcmp(&back, &lats[i], sizeof(back)) == 0);
		json_decref(b);
	}
done:
	sg_arena_fini(&a);
	CASE_END();
}

/* What a JSON request cannot carry: NaN, unknown enum numbers, NULL elements, bad UTF-8. */
static void
test_order_checks(void)
{
	sg_arena a;
	sg_http_req hr;
	sg_status st;

	CASE_BEGIN("create order checks");
	sg_arena_init(&a, 0, 0);
	Shipgate__V1__CreateOrderRequest *co = doc_order(&a);
	CHECK(co != NULL);
	if (co == NULL)
		goto done;

	Google__Protobuf__DoubleValue nan = GOOGLE__PROTOBUF__DOUBLE_VALUE__INIT, inf = nan;
	nan.value = NAN;
	inf.value = -INFINITY;
	co->sender->latitude = &nan;
	co->sender->longitude = &inf;
	co->pickup_via = (Shipgate__V1__PickupMethod)5;
	co->payment->type = (Shipgate__V1__PaymentType)7;
	Shipgate__V1__OrderLine *lines[] = {NULL, co->items[1]};
	co->items = lines;
	co->receiver->address = "Jl. \xff";                /* not UTF-8 */
	co->receiver->extra_fields[1]->value = "\xc0\xaf"; /* overlong '/' */
	Google__Protobuf__StringValue note = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
	note.value = "\xed\xa0\x80"; /* a surrogate */
	co->note = &note;
	co->courier_code = "id\xe2\x82"; /* cut short */
	static const char *const want[] = {
	        "sender.latitude",
	        "sender.longitude",
	        "receiver.address",
	        "receiver.extra_fields[1].value",
	        "pickup_via",
	        "courier_code",
	        "note",
	        "payment.type",
	        "items[0].sku",
	        "items[0].quantity",
	};
	CHECK_INT(build_order(co, &a, &hr, &st), SG_EINVAL);
	CHECK(sg_cases_req_empty(&hr));
	CHECK(has_violations(&st, want, sizeof(want) / sizeof(want[0])));
	CHECK_STR(st.violations[2].description, "is not valid UTF-8");
	CHECK_STR(st.violations[7].description, "must be PAYMENT_TYPE_COD or PAYMENT_TYPE_BANK");
	CHECK(st.message != NULL &&
	      strncmp(st.message, "sender.latitude: must be a finite", 33) == 0);

	/* valid non-ASCII (4-byte sequences included) goes through */
	co = doc_order(&a);
	co->receiver->name = "Ica \xf0\x9f\x91\xa9 \xe6\x9d\xb1";
	CHECK_INT(build_order(co, &a, &hr, &st), SG_OK);
	CHECK(hr.body != NULL && strstr(hr.body, "Ica \xf0\x9f\x91\xa9 \xe6\x9d\xb1") != NULL);

	/* more bad fields than the status holds: the first 16 are kept, nothing overflows */
	co = doc_order(&a);
	Shipgate__V1__OrderLine bad = SHIPGATE__V1__ORDER_LINE__INIT, *many[40];
	for (size_t i = 0; i < 40; i++)
		many[i] = &bad;
	co->items = many;
	co->n_items = 40;
	CHECK_INT(build_order(co, &a, &hr, &st), SG_EINVAL);
	CHECK_INT(st.nviolations, SG_STATUS_MAX_VIOLATIONS);
	CHECK_STR(st.violations[15].field, "items[7].quantity");
	CHECK(sg_cases_req_empty(&hr));

	/* a COD order that names a bank sends it (the document's field is nullable, not banned) */
	co = doc_order(&a);
	Google__Protobuf__StringValue bank = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
	bank.value = "BCA";
	co->payment->bank = &bank;
	CHECK_INT(build_order(co, &a, &hr, &st), SG_OK);
	CHECK(hr.body != NULL &&
	      strstr(hr.body, "\"payment_method\":{\"type\":\"cod\",\"bank\":\"BCA\"}") != NULL);
done:
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
	test_mapping();
	test_registry();
	test_order_body();
	test_order_checks();
	TEST_MAIN_END();
}
