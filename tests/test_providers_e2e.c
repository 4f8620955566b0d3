/*
 * test_providers_e2e.c - every provider document through the real gateway and sandbox.
 *
 * usage: test_providers_e2e SHIPGATED SANDBOX DATA_DIR CLI
 *
 * Requests are written as proto3 JSON and sent as real RpcRequests over tcp. Beyond each
 * document's example, it covers routing, error detail per provider, the CreateOrder body the
 * provider receives, idempotency under 100 concurrent callers, and Fuuffy's token cache.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "create_order.h"
#include "harness.h"
#include "pbjson.h"
#include "testutil.h"

static const char *gw_bin, *sb_bin, *data_dir, *cli_bin;
static char sandbox[256];

/* ------------------------------------------------------------------ helpers */

/* Calls method with a JSON request; returns the reply (caller frees) or NULL. */
static Shipgate__V1__RpcReply *
call_json(nng_socket s, const char *method, const char *json, int64_t deadline_ms, const char *key)
{
	const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, method);
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error err;
	if (m == NULL ||
	    sgc_pbjson_decode(json, strlen(json), m->input, NULL, 0, &req, &err) != 0) {
		fprintf(stderr, "bad test request %s: %s\n", json, m ? err.text : "no method");
		CHECK(0);
		return NULL;
	}
	Shipgate__V1__RpcReply *r = hs_call(s, method, req, deadline_ms, key);
	protobuf_c_message_free_unpacked(req, NULL);
	return r;
}

/* The OK payload of r as JSON (proto field names), or NULL. */
static json_t *
payload_json(const Shipgate__V1__RpcReply *r, const char *method)
{
	const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, method);
	if (hs_code(r) != 0) {
		fprintf(stderr, "  %s failed: %d %s %s\n", method, hs_code(r), hs_reason(r),
		        r && r->status ? r->status->message : "");
		return NULL;
	}
	ProtobufCMessage *msg = hs_payload(r, m->output);
	if (msg == NULL)
		return NULL;
	sgc_pbjson_error err;
	json_t *j = sgc_pbjson_from_message(msg, SGC_PBJSON_ORIG_NAMES, &err);
	protobuf_c_message_free_unpacked(msg, NULL);
	return j;
}

/* json at a dotted path ("tracking.events.0.status"), borrowed, or NULL. */
static json_t *
at(json_t *j, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *tok = strtok(buf, "."); tok != NULL && j != NULL; tok = strtok(NULL, ".")) {
		if (json_is_array(j))
			j = json_array_get(j, (size_t)atoi(tok));
		else
			j = json_object_get(j, tok);
	}
	return j;
}

static const char *
str_at(json_t *j, const char *path)
{
	return json_string_value(at(j, path));
}

static long long
int_at(json_t *j, const char *path)
{
	json_t *v = at(j, path);
	if (json_is_string(v)) /* int64 as a string in proto3 JSON */
		return atoll(json_string_value(v));
	return json_is_number(v) ? (long long)json_number_value(v) : -1;
}

static json_t *
sandbox_requests(void)
{
	char url[300], *body = NULL;
	snprintf(url, sizeof(url), "%s/__sandbox/requests", sandbox);
	hs_http("GET", url, &body);
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	free(body);
	return j;
}

static void
sandbox_reset(void)
{
	char url[300];
	snprintf(url, sizeof(url), "%s/__sandbox/reset", sandbox);
	CHECK_INT(hs_http("POST", url, NULL), 200);
}

/* Requests the sandbox recorded with this method and path prefix. */
static int
count_requests(json_t *rec, const char *method, const char *prefix)
{
	int n = 0;
	size_t i;
	json_t *e;
	json_array_foreach(rec, i, e)
	{
		const char *m = json_string_value(json_object_get(e, "method"));
		const char *p = json_string_value(json_object_get(e, "path"));
		if (m && p && strcmp(m, method) == 0 && strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	}
	return n;
}

/* count_requests over the sandbox's record as it is now. */
static int
sandbox_count_of(const char *method, const char *path)
{
	json_t *rec = sandbox_requests();
	int n = count_requests(rec, method, path);
	json_decref(rec);
	return n;
}

static void
free_reply(Shipgate__V1__RpcReply *r)
{
	if (r != NULL)
		shipgate__v1__rpc_reply__free_unpacked(r, NULL);
}

/* ------------------------------------------------------------------ the documents */

static void
test_bosonline_track(nng_socket s)
{
	Shipgate__V1__RpcReply *r = call_json(
	        s, "Track",
	        "{\"provider\":\"PROVIDER_BOSONLINE\",\"trackingNumber\":\"IDE987651421\"}", 5000,
	        NULL);
	json_t *j = payload_json(r, "Track");
	CHECK(j != NULL);
	CHECK_INT(json_array_size(at(j, "tracking.events")), 15);
	CHECK_STR(str_at(j, "tracking.events.0.status"), "TRACKING_STATUS_PICKED_UP");
	CHECK_INT(int_at(j, "tracking.events.0.time_unix"), 1748772436);
	CHECK_STR(str_at(j, "tracking.events.14.status"), "TRACKING_STATUS_DELIVERED");
	CHECK_STR(str_at(j, "tracking.status"), "TRACKING_STATUS_DELIVERED");
	CHECK_STR(str_at(j, "tracking.events.13.status"), "TRACKING_STATUS_OUT_FOR_DELIVERY");
	CHECK_INT(int_at(j, "tracking.cod.order_time_unix"), 1748765886);
	CHECK(at(j, "tracking.cod.reconciled_time_unix") == NULL); /* null stays absent */
	CHECK_INT(int_at(j, "tracking.last_update_unix"), 1748829434);
	json_decref(j);
	free_reply(r);
}

static void
test_biteship(nng_socket s)
{
	Shipgate__V1__RpcReply *r = call_json(
	        s, "GetOrder",
	        "{\"provider\":\"PROVIDER_BITESHIP\",\"orderId\":\"5dd599ebdefcd4158eb8470b\"}",
	        5000, NULL);
	json_t *j = payload_json(r, "GetOrder");
	CHECK(j != NULL);
	CHECK_STR(str_at(j, "order.id"), "5dd599ebdefcd4158eb8470b");
	CHECK_STR(str_at(j, "order.short_id"), "URf_UO2nY3V");
	CHECK(at(j, "order.draft_order_id") == NULL);
	CHECK_STR(str_at(j, "order.shipper.organization"), "Biteship Org");
	CHECK_STR(str_at(j, "order.destination.cash_on_delivery.amount_currency"), "IDR");
	CHECK(json_number_value(at(j, "order.destination.coordinate.longitude")) > 106.77);
	CHECK_STR(str_at(j, "order.courier.waybill_id"), "WYB-1112223333442");
	CHECK_INT(json_array_size(at(j, "order.courier.history")), 2);
	CHECK_INT(json_array_size(at(j, "order.items")), 1);
	CHECK_STR(str_at(j, "order.raw_status"), "allocated");
	CHECK_STR(str_at(j, "order.status"), "TRACKING_STATUS_PICKUP_IN_PROGRESS");
	CHECK(json_number_value(at(j, "order.price")) == 27500);
	json_decref(j);
	free_reply(r);

	r = call_json(
	        s, "Track",
	        "{\"provider\":\"PROVIDER_BITESHIP\",\"orderId\":\"5dd599ebdefcd4158eb8470b\"}",
	        5000, NULL);
	j = payload_json(r, "Track");
	CHECK(j != NULL);
	CHECK_INT(json_array_size(at(j, "tracking.events")), 2);
	CHECK_STR(str_at(j, "tracking.tracking_number"), "WYB-1112223333442");
	CHECK_INT(int_at(j, "tracking.events.0.time_unix"), 1610348621); /* 14:03:41+07:00 */
	CHECK_STR(str_at(j, "tracking.events.0.offset_source"), "OFFSET_SOURCE_TEXT");
	json_decref(j);
	free_reply(r);

	/* Biteship's own error code is kept */
	r = call_json(s, "GetOrder", "{\"provider\":\"PROVIDER_BITESHIP\",\"orderId\":\"ERR-404\"}",
	              5000, NULL);
	CHECK_INT(hs_code(r), 5);
	CHECK(r && r->status && r->status->detail && r->status->detail->provider_code[0] != '\0');
	free_reply(r);
}

static void
test_fuuffy(nng_socket s)
{
	static const char *const reqs[] = {
	        "{\"provider\":\"PROVIDER_FUUFFY\",\"orderId\":\"3550875\"}",
	        "{\"provider\":\"PROVIDER_FUUFFY\",\"trackingNumber\":\"SF7444700508450\"}",
	        "{\"provider\":\"PROVIDER_FUUFFY\",\"orderId\":\"JSONSTRING\"}",
	};
	sandbox_reset();
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		Shipgate__V1__RpcReply *r = call_json(s, "Track", reqs[i], 5000, NULL);
		json_t *j = payload_json(r, "Track");
		CHECK(j != NULL);
		CHECK_INT(json_array_size(at(j, "tracking.events")), 1);
		CHECK_STR(str_at(j, "tracking.events.0.status"), "TRACKING_STATUS_PICKED_UP");
		/* 2025-12-09 17:37:09 at UTC+8 */
		CHECK_INT(int_at(j, "tracking.events.0.time_unix"), 1765273029);
		CHECK_INT(int_at(j, "tracking.events.0.utc_offset_seconds"), 28800);
		CHECK_STR(str_at(j, "tracking.status_text"), "列印及安排取件");
		json_decref(j);
		free_reply(r);
	}
	/* one token fetch served all three calls */
	json_t *rec = sandbox_requests();
	CHECK_INT(count_requests(rec, "POST", "/fuuffy/v1/auth/token"), 1);
	CHECK_INT(count_requests(rec, "GET", "/fuuffy/v1/tracking/get"), 3);
	json_decref(rec);

	/* neither id: refused before any request */
	sandbox_reset();
	Shipgate__V1__RpcReply *r =
	        call_json(s, "Track", "{\"provider\":\"PROVIDER_FUUFFY\"}", 5000, NULL);
	CHECK_INT(hs_code(r), 3);
	CHECK(r && r->status && r->status->detail && r->status->detail->n_field_violations >= 1);
	free_reply(r);
	rec = sandbox_requests();
	CHECK_INT(json_array_size(rec), 0);
	json_decref(rec);

	/* the provider's error_trace becomes field violations */
	r = call_json(s, "Track", "{\"provider\":\"PROVIDER_FUUFFY\",\"orderId\":\"ERR-400\"}",
	              5000, NULL);
	CHECK_INT(hs_code(r), 3);
	CHECK(r && r->status && r->status->detail && r->status->detail->n_field_violations == 1 &&
	      strcmp(r->status->detail->field_violations[0]->field, "order_id") == 0);
	CHECK_INT(r && r->status && r->status->detail ? r->status->detail->upstream_http_status : 0,
	          400);
	free_reply(r);
}

/* ------------------------------------------------------------------ CreateOrder */

static void
test_create_order(nng_socket s)
{
	sandbox_reset();
	Shipgate__V1__RpcReply *r = call_json(s, "CreateOrder", CREATE_JSON, 5000, "order-e2e-1");
	json_t *j = payload_json(r, "CreateOrder");
	CHECK(j != NULL);
	CHECK(json_number_value(at(j, "total_payment")) == 102200);
	CHECK_STR(str_at(j, "payment_accounts.0.bank_code"), "BCA");
	CHECK_STR(str_at(j, "cs_phone"), "6289765183712");
	CHECK_INT(json_array_size(at(j, "social_media")), 2);
	CHECK(at(j, "replayed") == NULL || !json_is_true(at(j, "replayed")));
	json_decref(j);
	free_reply(r);

	/* the body the provider received is the document's example body */
	json_t *rec = sandbox_requests();
	CHECK_INT(count_requests(rec, "POST", "/bosonline/order/"), 1);
	json_t *e = json_array_get(rec, 0);
	CHECK_STR(json_string_value(json_object_get(e, "path")),
	          "/bosonline/order/d9cc7807-36c2-4eb1-b910-ece18a1bbb6e");
	CHECK_STR(json_string_value(json_object_get(e, "authorization")), "Bearer sandbox-token");
	const char *body = json_string_value(json_object_get(e, "body"));
	char path[512];
	snprintf(path, sizeof(path), "%s/bosonline_create_order_request.json", data_dir);
	json_t *want = json_load_file(path, 0, NULL);
	json_t *got = body ? json_loads(body, 0, NULL) : NULL;
	CHECK(want != NULL && got != NULL && json_equal(want, got));
	json_decref(want);
	json_decref(got);
	json_decref(rec);

	/* the same key again: the stored answer, marked replayed, and no second POST */
	r = call_json(s, "CreateOrder", CREATE_JSON, 5000, "order-e2e-1");
	j = payload_json(r, "CreateOrder");
	CHECK(json_is_true(at(j, "replayed")));
	CHECK(json_number_value(at(j, "total_payment")) == 102200);
	json_decref(j);
	free_reply(r);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);

	/* the same key with another request is refused */
	char other[sizeof(CREATE_JSON) + 16];
	snprintf(other, sizeof(other), "%s", CREATE_JSON);
	char *p = strstr(other, "\"serviceCode\":\"00\"");
	p[15] = '1';
	r = call_json(s, "CreateOrder", other, 5000, "order-e2e-1");
	CHECK_INT(hs_code(r), 9);
	CHECK_STR(hs_reason(r), "IDEMPOTENCY_KEY_REUSED");
	free_reply(r);

	/* no key at all */
	r = call_json(s, "CreateOrder", CREATE_JSON, 5000, NULL);
	CHECK_INT(hs_code(r), 3);
	CHECK_STR(hs_reason(r), "IDEMPOTENCY_KEY_INVALID");
	free_reply(r);

	/* a refusal (400) releases the key: the retry goes upstream again */
	sandbox_reset();
	char bad[sizeof(CREATE_JSON) + 16];
	snprintf(bad, sizeof(bad), "%s", CREATE_JSON);
	memcpy(strstr(bad, "d9cc7807-36c2-4eb1-b910-ece18a1bbb6e"), "ERR-400", 7);
	memmove(strstr(bad, "ERR-400") + 7, strstr(bad, "ERR-400") + 36,
	        strlen(strstr(bad, "ERR-400") + 36) + 1);
	for (int i = 0; i < 2; i++) {
		r = call_json(s, "CreateOrder", bad, 5000, "order-e2e-400");
		CHECK_INT(hs_code(r), 3);
		CHECK_STR(hs_reason(r), "UPSTREAM_BAD_REQUEST");
		free_reply(r);
	}
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 2);

	/* a timeout may have created the order: the key keeps that answer, retryable no more */
	snprintf(bad, sizeof(bad), "%s", CREATE_JSON);
	memcpy(strstr(bad, "d9cc7807-36c2-4eb1-b910-ece18a1bbb6e"), "SLOW-3000", 9);
	memmove(strstr(bad, "SLOW-3000") + 9, strstr(bad, "SLOW-3000") + 36,
	        strlen(strstr(bad, "SLOW-3000") + 36) + 1);
	sandbox_reset();
	for (int i = 0; i < 2; i++) {
		r = call_json(s, "CreateOrder", bad, 300, "order-e2e-slow");
		CHECK_INT(hs_code(r), 2);
		CHECK_STR(hs_reason(r), "OUTCOME_UNKNOWN");
		CHECK(r && r->status && r->status->detail && !r->status->detail->retryable);
		free_reply(r);
	}
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);
}

/* ------------------------------------------------------------------ envelope strings */

/* A protobuf field: tag, then (for wire type 2) length and bytes. Appends to b at *n. */
static void
put_field(uint8_t *b, size_t *n, unsigned field, const void *data, size_t len)
{
	uint64_t v = (uint64_t)field << 3 | 2;
	do {
		b[(*n)++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		v >>= 7;
	} while (v != 0);
	v = len;
	do {
		b[(*n)++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		v >>= 7;
	} while (v != 0);
	memcpy(b + *n, data, len);
	*n += len;
}

/* Independent of the gateway's own check: decodes each code point (RFC 3629 ranges). */
static bool
strict_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k;
		if (s[i] == 0)
			return false; /* a NUL is valid UTF-8 but no string of ours carries one */
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xE0) == 0xC0)
			k = 2, cp = s[i] & 0x1F;
		else if ((s[i] & 0xF0) == 0xE0)
			k = 3, cp = s[i] & 0x0F;
		else if ((s[i] & 0xF8) == 0xF0)
			k = 4, cp = s[i] & 0x07;
		else
			return false;
		if (i + k > n)
			return false;
		for (size_t j = 1; j < k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k;
	}
	return true;
}

/*
 * True when every string in the encoded message d (and in the messages it nests, and in
 * RpcReply.payload decoded as `payload`) is valid UTF-8 without NUL: what a strict proto3
 * decoder requires.
 */
static bool
strict_message(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
               const ProtobufCMessageDescriptor *payload)
{
	while (p < end) {
		uint64_t tag = 0, n = 0;
		for (int sh = 0; p < end; sh += 7) {
			tag |= (uint64_t)(*p & 0x7f) << sh;
			if ((*p++ & 0x80) == 0)
				break;
		}
		switch (tag & 7) {
		case 0:
			while (p < end && (*p++ & 0x80) != 0) {
			}
			continue;
		case 1: p += 8; continue;
		case 5: p += 4; continue;
		case 2: break;
		default: return false;
		}
		for (int sh = 0; p < end; sh += 7) {
			n |= (uint64_t)(*p & 0x7f) << sh;
			if ((*p++ & 0x80) == 0)
				break;
		}
		if (n > (uint64_t)(end - p))
			return false;
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && !strict_utf8(p, (size_t)n))
			return false;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    !strict_message(f->descriptor, p, p + n, NULL))
			return false;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_BYTES && payload != NULL &&
		    !strict_message(payload, p, p + n, NULL))
			return false;
		p += n;
	}
	return p == end;
}

/* Sends raw envelope bytes; returns the decoded reply (NULL if none), and whether its raw bytes
 * passed the strict check (payload checked as `out` when given). */
static Shipgate__V1__RpcReply *
raw_call(nng_socket s, const uint8_t *env, size_t len, const ProtobufCMessageDescriptor *out,
         bool *strict)
{
	void *rb = NULL;
	size_t rlen = 0;
	*strict = false;
	if (hs_roundtrip_raw(s, env, len, &rb, &rlen) != 0)
		return NULL;
	*strict = strict_message(&shipgate__v1__rpc_reply__descriptor, rb,
	                         (const uint8_t *)rb + rlen, out);
	Shipgate__V1__RpcReply *r = shipgate__v1__rpc_reply__unpack(NULL, rlen, rb);
	free(rb);
	return r;
}

/*
 * Envelope strings are checked like payload strings: a NUL or bad UTF-8 in the method, the
 * request_id, the idempotency key or the metadata is INVALID_ARGUMENT, before anything else
 * (protobuf-c would cut at the NUL: "k\0AAA" and "k\0BBB" were one key, and a Health\0junk
 * method was served as Health). Every reply string is valid UTF-8, also under mutated input.
 */
static void
test_envelope_strings(nng_socket s)
{
	const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, "CreateOrder");
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error perr;
	uint8_t payload[2048], env[4096];
	size_t plen, n;
	bool strict;
	Shipgate__V1__RpcReply *r;
	static const char create[] = "/shipgate.v1.Shipgate/CreateOrder";

	CHECK_INT(
	        sgc_pbjson_decode(CREATE_JSON, strlen(CREATE_JSON), m->input, NULL, 0, &req, &perr),
	        0);
	if (req == NULL)
		return;
	plen = protobuf_c_message_pack(req, payload);
	protobuf_c_message_free_unpacked(req, NULL);

	/* two keys that differ after a NUL: each refused, neither stored, nothing sent */
	sandbox_reset();
	static const char *const keys[] = {"k\0AAA", "k\0BBB"};
	for (int i = 0; i < 2; i++) {
		n = 0;
		put_field(env, &n, 1, create, strlen(create));
		put_field(env, &n, 2, "rid-nul", 7);
		put_field(env, &n, 5, keys[i], 5);
		put_field(env, &n, 6, payload, plen);
		r = raw_call(s, env, n, NULL, &strict);
		CHECK(strict);
		CHECK_INT(hs_code(r), 3);
		CHECK_STR(hs_reason(r), "INVALID_FIELD");
		CHECK(r && r->status && r->status->detail &&
		      r->status->detail->n_field_violations == 1 &&
		      strcmp(r->status->detail->field_violations[0]->field, "idempotency_key") ==
		              0);
		CHECK_STR(r ? r->request_id : NULL, ""); /* not echoed: the envelope was refused */
		free_reply(r);
	}
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 0);

	/* a NUL in the method is not a shorter method */
	static const char health_junk[] = "/shipgate.v1.Shipgate/Health\0junk";
	n = 0;
	put_field(env, &n, 1, health_junk, sizeof(health_junk) - 1);
	r = raw_call(s, env, n, NULL, &strict);
	CHECK(strict);
	CHECK_INT(hs_code(r), 3);
	CHECK(r && r->status && r->status->detail && r->status->detail->n_field_violations == 1 &&
	      strcmp(r->status->detail->field_violations[0]->field, "method") == 0);
	free_reply(r);

	/* a request_id that is not UTF-8 is refused, never echoed */
	static const char *const rids[] = {"\xff\xfe", "ok\xc3", "\xed\xa0\x80", "\xc0\xaf"};
	for (size_t i = 0; i < sizeof(rids) / sizeof(rids[0]); i++) {
		static const char health[] = "/shipgate.v1.Shipgate/Health";
		n = 0;
		put_field(env, &n, 1, health, strlen(health));
		put_field(env, &n, 2, rids[i], strlen(rids[i]));
		r = raw_call(s, env, n, NULL, &strict);
		CHECK(strict);
		CHECK_INT(hs_code(r), 3);
		CHECK_STR(r ? r->request_id : NULL, "");
		free_reply(r);
	}

	/* metadata keys and values are strings too (map entries: key 1, value 2) */
	static const char *const md[][2] = {{"trace\xff", "x"}, {"k", "v\0w"}};
	for (size_t i = 0; i < 2; i++) {
		static const char health[] = "/shipgate.v1.Shipgate/Health";
		uint8_t entry[64];
		size_t en = 0;
		put_field(entry, &en, 1, md[i][0], strlen(md[i][0]));
		put_field(entry, &en, 2, md[i][1], i == 1 ? 3 : strlen(md[i][1]));
		n = 0;
		put_field(env, &n, 1, health, strlen(health));
		put_field(env, &n, 4, entry, en);
		r = raw_call(s, env, n, NULL, &strict);
		CHECK(strict);
		CHECK_INT(hs_code(r), 3);
		free_reply(r);
	}

	/* an unknown method of 150 three-byte characters: the message cuts it on a boundary */
	char longm[512];
	size_t ln = (size_t)snprintf(longm, sizeof(longm), "/shipgate.v1.Shipgate/");
	for (int i = 0; i < 150; i++, ln += 3)
		memcpy(longm + ln, "\xe2\x82\xac", 3);
	n = 0;
	put_field(env, &n, 1, longm, ln);
	put_field(env, &n, 2, "rid-long", 8);
	r = raw_call(s, env, n, NULL, &strict);
	CHECK(strict);
	CHECK_INT(hs_code(r), 12);
	CHECK_STR(r ? r->request_id : NULL, "rid-long");
	free_reply(r);

	/* mutated envelopes: whatever comes back decodes under a strict proto3 decoder */
	static const char track[] = "/shipgate.v1.Shipgate/Track";
	uint8_t tpay[64];
	size_t tn = 0;
	tpay[tn++] = 0x08; /* provider = BOSCOD */
	tpay[tn++] = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	put_field(tpay, &tn, 2, "BOS123", 6);
	uint8_t seeds[3][4096];
	size_t seedlen[3] = {0, 0, 0};
	put_field(seeds[0], &seedlen[0], 1, track, strlen(track));
	put_field(seeds[0], &seedlen[0], 2, "fuzz-\xe2\x82\xac-1", 10);
	put_field(seeds[0], &seedlen[0], 6, tpay, tn);
	put_field(seeds[1], &seedlen[1], 1, create, strlen(create));
	put_field(seeds[1], &seedlen[1], 2, "fuzz-2", 6);
	put_field(seeds[1], &seedlen[1], 5, "fuzz-key-\xc3\xa9", 11);
	put_field(seeds[1], &seedlen[1], 6, payload, plen);
	memcpy(seeds[2], env, n); /* the long unknown method */
	seedlen[2] = n;
	static const uint8_t hostile[] = {0x00, 0xff, 0xc3, 0xe2, 0x80, 0xed, 0xf4, 0x7f};
	uint32_t rng = 12345;
	int sent = 0, answered = 0, ok_strict = 0;
	for (int round = 0; round < 1500; round++) {
		int which = round % 3;
		uint8_t buf[4200];
		size_t bl = seedlen[which];
		memcpy(buf, seeds[which], bl);
		int edits = 1 + (int)((rng = rng * 1103515245u + 12345u) >> 16) % 3;
		for (int e = 0; e < edits && bl > 1; e++) {
			rng = rng * 1103515245u + 12345u;
			size_t at = (rng >> 8) % bl;
			uint8_t val = hostile[(rng >> 4) % sizeof(hostile)];
			switch ((rng >> 28) % 3) {
			case 0: buf[at] = val; break;
			case 1:
				memmove(buf + at + 1, buf + at, bl - at);
				buf[at] = val;
				bl++;
				break;
			default: buf[at] ^= (uint8_t)(1u << ((rng >> 12) % 8)); break;
			}
		}
		/* what a strict client expects in the payload: the mutated method's output */
		Shipgate__V1__RpcRequest *me = shipgate__v1__rpc_request__unpack(NULL, bl, buf);
		const ProtobufCMessageDescriptor *out = NULL;
		if (me != NULL) {
			const char *mn = strrchr(me->method, '/');
			const ProtobufCMethodDescriptor *md2 =
			        mn ? protobuf_c_service_descriptor_get_method_by_name(
			                     &shipgate__v1__shipgate__descriptor, mn + 1)
			           : NULL;
			out = md2 ? md2->output : NULL;
			shipgate__v1__rpc_request__free_unpacked(me, NULL);
		}
		sent++;
		r = raw_call(s, buf, bl, out, &strict);
		answered += r != NULL;
		ok_strict += r != NULL && strict;
		free_reply(r);
	}
	fprintf(stderr, "  %d mutated envelopes: %d answered, %d strictly decodable\n", sent,
	        answered, ok_strict);
	CHECK_INT(answered, sent);
	CHECK_INT(ok_strict, sent);
}

/* The document's CreateOrder with form id form_id, as an envelope under key: the payload is
 * packed into buf (2 KiB at least), which env points at. */
static void
create_env(Shipgate__V1__RpcRequest *env, uint8_t *buf, const char *form_id, const char *key,
           int64_t deadline_ms)
{
	const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, "CreateOrder");
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error err;

	shipgate__v1__rpc_request__init(env);
	CHECK_INT(
	        sgc_pbjson_decode(CREATE_JSON, strlen(CREATE_JSON), m->input, NULL, 0, &req, &err),
	        0);
	if (req == NULL)
		return;
	Shipgate__V1__CreateOrderRequest *co = (Shipgate__V1__CreateOrderRequest *)req;
	char *keep = co->form_id;
	co->form_id = (char *)form_id;
	env->method = "/shipgate.v1.Shipgate/CreateOrder";
	env->idempotency_key = (char *)key;
	env->deadline_ms = deadline_ms;
	env->payload.data = buf;
	env->payload.len = protobuf_c_message_pack(req, buf);
	co->form_id = keep; /* freed with the message */
	protobuf_c_message_free_unpacked(req, NULL);
}

/* 100 callers, one key, all at once: one upstream POST, 100 identical answers. */
static void
test_create_order_concurrent(const char *url)
{
	enum { N = 100 };
	nng_socket s;
	/* a slow form id keeps the first call in flight while the others arrive */
	uint8_t payload[2048];
	Shipgate__V1__RpcRequest env;
	create_env(&env, payload, "SLOW-500", "order-e2e-100", 10000);
	env.request_id = "c100";

	sandbox_reset();
	CHECK_INT(hs_dial(&s, url), 0);
	Shipgate__V1__RpcReply *replies[N];
	CHECK_INT(hs_fanout(s, &env, N, replies), N);
	int same = 0, replayed = 0;
	double total = -1;
	for (int i = 0; i < N; i++) {
		Shipgate__V1__CreateOrderResponse *cr = (void *)hs_payload(
		        replies[i], &shipgate__v1__create_order_response__descriptor);
		if (hs_code(replies[i]) == 0 && cr != NULL && cr->total_payment != NULL) {
			if (total < 0)
				total = cr->total_payment->value;
			same += cr->total_payment->value == total;
			replayed += cr->replayed;
		}
		if (cr)
			protobuf_c_message_free_unpacked(&cr->base, NULL);
		free_reply(replies[i]);
	}
	nng_close(s);
	CHECK_INT(same, N);
	CHECK_INT(replayed, N - 1); /* all but the caller that made the order */
	CHECK(total == 102200);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);
	fprintf(stderr, "  100 concurrent CreateOrder: %d identical answers\n", same);
}

/* A call made on its own socket from another thread (it stays in flight meanwhile). */
struct bg_call {
	const char *url;               /* gateway */
	const char *method;            /* RPC */
	const ProtobufCMessage *req;   /* its request */
	const char *key;               /* idempotency key or NULL */
	Shipgate__V1__RpcReply *reply; /* the reply, or NULL */
	pthread_t thr;                 /* the thread */
};

static void *
bg_call_main(void *arg)
{
	struct bg_call *c = arg;
	nng_socket s;
	if (hs_dial(&s, c->url) == 0) {
		c->reply = hs_call(s, c->method, c->req, 10000, c->key);
		nng_close(s);
	}
	return NULL;
}

/* Waits (5 s at most) until the sandbox has received n requests of method under prefix. */
static bool
sandbox_wait(const char *method, const char *prefix, int n)
{
	for (int i = 0; i < 250; i++) {
		int got = sandbox_count_of(method, prefix);
		if (got >= n)
			return true;
		hs_sleep_ms(20);
	}
	return false;
}

/*
 * A call parked behind the owner of its key (idempotency or cache singleflight) is answered
 * DEADLINE_EXCEEDED when its own deadline passes, not when the owner finishes; the owner still
 * gets its answer, and the key keeps it.
 */
static void
test_parked_deadline(const char *url)
{
	const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, "CreateOrder");
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error err;
	nng_socket s;
	Shipgate__V1__RpcReply *r;

	CHECK_INT(hs_dial(&s, url), 0);
	CHECK_INT(
	        sgc_pbjson_decode(CREATE_JSON, strlen(CREATE_JSON), m->input, NULL, 0, &req, &err),
	        0);
	Shipgate__V1__CreateOrderRequest *co = (Shipgate__V1__CreateOrderRequest *)req;
	char *form_id = co->form_id;
	co->form_id = "SLOW-1500";

	/* CreateOrder: the owner is at the provider for 1.5 s; a caller with 300 ms gives up */
	sandbox_reset();
	struct bg_call owner = {url, "CreateOrder", req, "order-e2e-park", NULL, 0};
	CHECK_INT(pthread_create(&owner.thr, NULL, bg_call_main, &owner), 0);
	CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-1500", 1));
	r = hs_call(s, "CreateOrder", req, 300, "order-e2e-park");
	CHECK_INT(hs_code(r), 4);
	CHECK_STR(hs_reason(r), "DEADLINE_EXPIRED");
	free_reply(r);
	pthread_join(owner.thr, NULL);
	Shipgate__V1__CreateOrderResponse *cr =
	        (void *)hs_payload(owner.reply, &shipgate__v1__create_order_response__descriptor);
	CHECK_INT(hs_code(owner.reply), 0);
	CHECK(cr != NULL && !cr->replayed && cr->total_payment != NULL &&
	      cr->total_payment->value == 102200);
	if (cr)
		protobuf_c_message_free_unpacked(&cr->base, NULL);
	free_reply(owner.reply);
	/* the key kept the owner's answer: a retry gets it */
	r = hs_call(s, "CreateOrder", req, 5000, "order-e2e-park");
	cr = (void *)hs_payload(r, &shipgate__v1__create_order_response__descriptor);
	CHECK_INT(hs_code(r), 0);
	CHECK(cr != NULL && cr->replayed);
	if (cr)
		protobuf_c_message_free_unpacked(&cr->base, NULL);
	free_reply(r);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);

	/* the owner's answer and the waiters' deadlines arriving together, round after round:
	 * every waiter gets exactly one answer, the owner's or DEADLINE_EXCEEDED */
	enum { ROUNDS = 8, N = 16 };
	co->form_id = "SLOW-200";
	uint8_t payload[1024];
	char key[32];
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	env.method = "/shipgate.v1.Shipgate/CreateOrder";
	env.idempotency_key = key;
	env.payload.data = payload;
	env.payload.len = protobuf_c_message_pack(req, payload);
	int answered = 0, replayed = 0, expired = 0;
	for (int round = 0; round < ROUNDS; round++) {
		snprintf(key, sizeof(key), "order-e2e-race-%d", round);
		env.deadline_ms = 150 + 10 * round; /* around the owner's ≈ 180 ms still to go */
		struct bg_call o2 = {url, "CreateOrder", req, key, NULL, 0};
		sandbox_reset();
		CHECK_INT(pthread_create(&o2.thr, NULL, bg_call_main, &o2), 0);
		CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-200", 1));
		Shipgate__V1__RpcReply *replies[N];
		answered += hs_fanout(s, &env, N, replies);
		for (int i = 0; i < N; i++) {
			replayed += hs_code(replies[i]) == 0;
			expired += hs_code(replies[i]) == 4;
			free_reply(replies[i]);
		}
		pthread_join(o2.thr, NULL);
		CHECK_INT(hs_code(o2.reply), 0);
		free_reply(o2.reply);
	}
	CHECK_INT(answered, ROUNDS * N);
	CHECK_INT(replayed + expired, ROUNDS * N);
	fprintf(stderr, "  parked callers at the owner's finish: %d answered, %d expired\n",
	        replayed, expired);
	co->form_id = form_id;
	protobuf_c_message_free_unpacked(req, NULL);

	/* Track: the same behind a cache miss in flight */
	Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	tr.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	tr.order_id = "SLOW-1500";
	sandbox_reset();
	struct bg_call tracker = {url, "Track", &tr.base, NULL, NULL, 0};
	CHECK_INT(pthread_create(&tracker.thr, NULL, bg_call_main, &tracker), 0);
	CHECK(sandbox_wait("GET", "/boscod/v1/order/tracking/SLOW-1500", 1));
	r = hs_call(s, "Track", &tr.base, 300, NULL);
	CHECK_INT(hs_code(r), 4);
	CHECK_STR(hs_reason(r), "DEADLINE_EXPIRED");
	free_reply(r);
	pthread_join(tracker.thr, NULL);
	CHECK_INT(hs_code(tracker.reply), 0);
	free_reply(tracker.reply);
	CHECK_INT(sandbox_count_of("GET", "/boscod/v1/order/tracking/SLOW-1500"), 1);
	nng_close(s);
}

/*
 * Calls queued behind a provider token fetch (Fuuffy's OAuth2) are answered DEADLINE_EXCEEDED
 * at their own deadline, while the fetch goes on; the fetcher gets its answer with the token.
 * The sandbox delays the token by 1.5 s for the client_id SLOW-1500.
 */
static void
test_token_wait_deadline(void)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	const char *const extra[] = {"--set", "fuuffy.client_id=SLOW-1500", NULL};
	hs_proc gw;
	char url[256];
	nng_socket s;

	CHECK_INT(hs_gateway_start(&gw, gw_bin, sandbox, listen, extra), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	sandbox_reset();
	Shipgate__V1__TrackRequest fr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	fr.provider = SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY;
	fr.order_id = "3550875";
	struct bg_call fetcher = {url, "Track", &fr.base, NULL, NULL, 0};
	CHECK_INT(pthread_create(&fetcher.thr, NULL, bg_call_main, &fetcher), 0);
	CHECK(sandbox_wait("POST", "/fuuffy/v1/auth/token", 1));

	/* another Track (another key: not the cache's singleflight) queues for the token */
	Shipgate__V1__TrackRequest wr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	wr.provider = SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY;
	wr.tracking_number = "SF7444700508450";
	Shipgate__V1__RpcReply *r = hs_call(s, "Track", &wr.base, 300, NULL);
	CHECK_INT(hs_code(r), 4);
	CHECK_STR(hs_reason(r), "DEADLINE_EXPIRED");
	CHECK(r != NULL && r->status != NULL && strstr(r->status->message, "token") != NULL);
	free_reply(r);

	pthread_join(fetcher.thr, NULL);
	CHECK_INT(hs_code(fetcher.reply), 0);
	free_reply(fetcher.reply);
	/* the token is cached now: the same call goes through */
	r = hs_call(s, "Track", &wr.base, 5000, NULL);
	CHECK_INT(hs_code(r), 0);
	free_reply(r);
	json_t *rec = sandbox_requests();
	CHECK_INT(count_requests(rec, "POST", "/fuuffy/v1/auth/token"), 1);
	CHECK_INT(count_requests(rec, "GET", "/fuuffy/v1/tracking/get"), 2);
	json_decref(rec);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

/* Track with a cache info, decoded; NULL on failure. */
static Shipgate__V1__TrackResponse *
track_cached(nng_socket s, const char *id, bool bypass)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = (char *)id;
	req.bypass_cache = bypass;
	Shipgate__V1__RpcReply *r = hs_call(s, "Track", &req.base, 5000, NULL);
	Shipgate__V1__TrackResponse *t =
	        (void *)hs_payload(r, &shipgate__v1__track_response__descriptor);
	CHECK_INT(hs_code(r), 0);
	free_reply(r);
	return t;
}

/* A Track envelope for BosCOD order id, deadline 10 s; payload is its buffer (64 bytes). */
static void
track_env(Shipgate__V1__RpcRequest *env, uint8_t *payload, const char *id)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = (char *)id;
	shipgate__v1__rpc_request__init(env);
	env->method = "/shipgate.v1.Shipgate/Track";
	env->deadline_ms = 10000;
	env->payload.data = payload;
	env->payload.len = shipgate__v1__track_request__pack(&req, payload);
}

/* The lookup cache through the real gateway: hit, bypass, singleflight, stale-while-revalidate. */
static void
test_cache(void)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	hs_proc gw;
	char url[256];
	nng_socket s;

	/* ---- a long TTL: hits, bypass, singleflight */
	CHECK_INT(hs_gateway_start(&gw, gw_bin, sandbox, listen, NULL), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	sandbox_reset();
	Shipgate__V1__TrackResponse *t = track_cached(s, "CACHE1", false);
	CHECK(t != NULL && (t->cache == NULL || !t->cache->hit));
	CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	for (int i = 0; i < 5; i++) {
		t = track_cached(s, "CACHE1", false);
		CHECK(t != NULL && t->cache != NULL && t->cache->hit && !t->cache->stale);
		CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
		CHECK(t != NULL && t->cache != NULL && t->cache->age_ms >= 0);
		if (t)
			protobuf_c_message_free_unpacked(&t->base, NULL);
	}
	CHECK_INT(sandbox_count_of("GET", "/boscod/v1/order/tracking/CACHE1"), 1);
	/* bypass: goes upstream, and says it is not from the cache */
	t = track_cached(s, "CACHE1", true);
	CHECK(t != NULL && (t->cache == NULL || !t->cache->hit));
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	CHECK_INT(sandbox_count_of("GET", "/boscod/v1/order/tracking/CACHE1"), 2);

	/* 50 identical concurrent misses on a slow provider: one upstream call */
	enum { N = 50 };
	uint8_t payload[64];
	Shipgate__V1__RpcRequest env;
	track_env(&env, payload, "SLOW-300");
	Shipgate__V1__RpcReply *replies[N];
	hs_fanout(s, &env, N, replies);
	int ok = 0;
	for (int i = 0; i < N; i++) {
		ok += hs_code(replies[i]) == 0;
		free_reply(replies[i]);
	}
	CHECK_INT(ok, N);
	CHECK_INT(sandbox_count_of("GET", "/boscod/v1/order/tracking/SLOW-300"), 1);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* ---- a 1 ms TTL: the next call is served stale and one refresh goes upstream */
	const char *const extra[] = {"--set", "boscod.cache_ttl_ms=1", NULL};
	CHECK_INT(hs_gateway_start(&gw, gw_bin, sandbox, listen, extra), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	sandbox_reset();
	t = track_cached(s, "CACHE2", false);
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	hs_sleep_ms(20);
	t = track_cached(s, "CACHE2", false);
	CHECK(t != NULL && t->cache != NULL && t->cache->hit && t->cache->stale);
	CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	int seen = 0;
	for (int i = 0; i < 100 && seen < 2; i++) { /* the refresh runs in the background */
		seen = sandbox_count_of("GET", "/boscod/v1/order/tracking/CACHE2");
		if (seen < 2)
			hs_sleep_ms(20);
	}
	CHECK_INT(seen, 2);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

/* Each document's example through the CLI too, as a user would run it. */
static void
test_cli(const char *url, const char *examples)
{
	static const struct {
		const char *method; /* RPC */
		const char *json;   /* request, or "@file" for docs/examples */
		const char *key;    /* idempotency key or NULL */
		const char *expect; /* text the JSON output must contain */
	} calls[] = {
	        {"Track", "{\"provider\":\"PROVIDER_BOSCOD\",\"orderId\":\"BOS123\"}", NULL,
	         "\"podPhotoUrl\": \"https://picsum.photos/id/208/600/400\""},
	        {"Track",
	         "{\"provider\":\"PROVIDER_BOSONLINE\",\"trackingNumber\":\"IDE987651421\"}", NULL,
	         "\"orderTimeUnix\": \"1748765886\""},
	        {"GetOrder",
	         "{\"provider\":\"PROVIDER_BITESHIP\",\"orderId\":\"5dd599ebdefcd4158eb8470b\"}",
	         NULL, "\"driverPlateNumber\": \"B 1234 ABC\""},
	        {"Track",
	         "{\"provider\":\"PROVIDER_BITESHIP\",\"orderId\":\"5dd599ebdefcd4158eb8470b\"}",
	         NULL, "\"TRACKING_STATUS_PICKUP_IN_PROGRESS\""},
	        {"Track",
	         "{\"provider\":\"PROVIDER_FUUFFY\",\"trackingNumber\":\"SF7444700508450\"}", NULL,
	         "\"statusText\": \"列印及安排取件\""},
	        {"CreateOrder", "@bosonline-create-order.json", "cli-e2e-1",
	         "\"totalPayment\": 102200"},
	};
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		char cmd[2048];
		if (calls[i].json[0] == '@')
			snprintf(cmd, sizeof(cmd), "'%s' -a '%s' %s%s call %s - < '%s/%s'", cli_bin,
			         url, calls[i].key ? "-k " : "", calls[i].key ? calls[i].key : "",
			         calls[i].method, examples, calls[i].json + 1);
		else
			snprintf(cmd, sizeof(cmd), "'%s' -a '%s' call %s '%s'", cli_bin, url,
			         calls[i].method, calls[i].json);
		FILE *f = popen(cmd, "r");
		char *buf = calloc(1, 1 << 20);
		size_t n = f ? fread(buf, 1, (1 << 20) - 1, f) : 0;
		int st = f ? pclose(f) : -1;
		buf[n] = '\0';
		CHECK_INT(st, 0);
		if (strstr(buf, calls[i].expect) == NULL)
			fprintf(stderr, "  CLI %s %s: no %s in output\n", calls[i].method,
			        calls[i].json, calls[i].expect);
		CHECK(strstr(buf, calls[i].expect) != NULL);
		free(buf);
	}
}

/* True when r is an OK CreateOrder answer that says it is a replay. */
static bool
replayed(const Shipgate__V1__RpcReply *r)
{
	Shipgate__V1__CreateOrderResponse *cr =
	        (void *)hs_payload(r, &shipgate__v1__create_order_response__descriptor);
	bool yes = cr != NULL && cr->replayed;
	if (cr)
		protobuf_c_message_free_unpacked(&cr->base, NULL);
	return yes;
}

/* Runs shipgated's operator command: store settings (shell words), then the command's
 * arguments. Its stdout into out[n]; returns its exit status, or -1. */
static int
op_run(const char *store, const char *args, char *out, size_t n)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "timeout 20 '%s' %s %s 2>/dev/null", gw_bin, store, args);
	FILE *pf = popen(cmd, "r");
	size_t got = pf ? fread(out, 1, n - 1, pf) : 0;
	out[got] = '\0';
	int st = pf ? pclose(pf) : -1;
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The awb of a CreateOrder reply, or "". */
static const char *
reply_awb(const Shipgate__V1__RpcReply *r, char *buf, size_t n)
{
	Shipgate__V1__CreateOrderResponse *cr =
	        (void *)hs_payload(r, &shipgate__v1__create_order_response__descriptor);
	snprintf(buf, n, "%s", cr != NULL && cr->awb != NULL ? cr->awb->value : "");
	if (cr)
		protobuf_c_message_free_unpacked(&cr->base, NULL);
	return buf;
}

/* Sends a CreateOrder (form id, key, deadline) on s without waiting for its reply. */
static void
send_create(nng_socket s, const char *form_id, const char *key, int64_t deadline_ms)
{
	uint8_t payload[2048], buf[4096];
	Shipgate__V1__RpcRequest env;

	create_env(&env, payload, form_id, key, deadline_ms);
	size_t n = shipgate__v1__rpc_request__pack(&env, buf);
	CHECK_INT(nng_send(s, buf, n, 0), 0);
}

/* A CreateOrder with form id form_id under key, waited for. */
static Shipgate__V1__RpcReply *
call_create(nng_socket s, const char *form_id, const char *key, int64_t deadline_ms)
{
	char json[sizeof(CREATE_JSON) + 64];
	const char *at = strstr(CREATE_JSON, "d9cc7807-36c2-4eb1-b910-ece18a1bbb6e");
	snprintf(json, sizeof(json), "%.*s%s%s", (int)(at - CREATE_JSON), CREATE_JSON, form_id,
	         at + strlen("d9cc7807-36c2-4eb1-b910-ece18a1bbb6e"));
	return call_json(s, "CreateOrder", json, deadline_ms, key);
}

/* Closes the two sockets, then stops their gateways: each must exit 0. */
static void
stop_two(nng_socket s1, nng_socket s2, hs_proc *g1, hs_proc *g2)
{
	nng_close(s1);
	nng_close(s2);
	CHECK_INT(hs_proc_stop(g1, SIGTERM), 0);
	CHECK_INT(hs_proc_stop(g2, SIGTERM), 0);
}

/* One half of a fan-out over two gateways: hs_fanout on its own thread. */
struct fan {
	nng_socket s;                        /* its gateway */
	const Shipgate__V1__RpcRequest *env; /* the call */
	Shipgate__V1__RpcReply **out;        /* its replies */
	int n;                               /* how many */
	pthread_t thr;                       /* the thread */
};

static void *
fan_main(void *arg)
{
	struct fan *f = arg;
	hs_fanout(f->s, f->env, f->n, f->out);
	return NULL;
}

/* n calls of env at each of s1 and s2, all at once; their replies into r1 and r2. */
static void
fan_two(nng_socket s1, nng_socket s2, const Shipgate__V1__RpcRequest *env,
        Shipgate__V1__RpcReply **r1, Shipgate__V1__RpcReply **r2, int n)
{
	struct fan fans[2] = {{s1, env, r1, n, 0}, {s2, env, r2, n, 0}};
	for (int i = 0; i < 2; i++)
		CHECK_INT(pthread_create(&fans[i].thr, NULL, fan_main, &fans[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(fans[i].thr, NULL);
}

/*
 * A fleet: two gateways on one Redis (a redis-server of the test's own), 100 concurrent
 * CreateOrders with one key, half on each: one POST, one first answer and 99 replays. Then
 * Redis stopped: CreateOrder fails closed with a clear status and Track keeps answering; Redis
 * back: CreateOrder works again, with no restart. Health says "fleet", with its id.
 */
static void
test_redis_fleet(void)
{
	enum { N = 100 };
	hs_proc rd, g1, g2;
	int port = 0;
	char set_url[128], u1[256], u2[256];

	if (hs_redis_start(&rd, &port) != 0) {
		fprintf(stderr, "  redis-server did not start (.ci/deps installs it)\n");
		CHECK(0);
		return;
	}
	snprintf(set_url, sizeof(set_url), "idempotency.redis_url=redis://127.0.0.1:%d", port);
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	const char *const extra[] = {"--set", "idempotency.store=redis",        "--set", set_url,
	                             "--set", "idempotency.fleet_id=e2e-fleet", NULL};
	if (hs_gateway_start(&g1, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_start(&g2, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&g1, 0, u1, sizeof(u1)) != 0 ||
	    hs_gateway_url(&g2, 0, u2, sizeof(u2)) != 0) {
		CHECK(0);
		hs_proc_stop(&rd, SIGTERM);
		return;
	}
	nng_socket s1, s2;
	CHECK_INT(hs_dial(&s1, u1), 0);
	CHECK_INT(hs_dial(&s2, u2), 0);
	Shipgate__V1__HealthRequest hq = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	Shipgate__V1__RpcReply *r = hs_call(s2, "Health", &hq.base, 2000, NULL);
	Shipgate__V1__HealthResponse *h =
	        (void *)hs_payload(r, &shipgate__v1__health_response__descriptor);
	CHECK(h != NULL && strcmp(h->idempotency_store, "redis") == 0 &&
	      strcmp(h->idempotency_scope, "fleet") == 0 && strcmp(h->fleet_id, "e2e-fleet") == 0);
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
	free_reply(r);

	/* one key, 100 callers, split over the two gateways, while the provider holds the POST */
	sandbox_reset();
	uint8_t payload[2048];
	Shipgate__V1__RpcRequest env;
	create_env(&env, payload, "SLOW-500", "e2e-fleet-100", 10000);
	static Shipgate__V1__RpcReply *rep1[N / 2], *rep2[N / 2];
	fan_two(s1, s2, &env, rep1, rep2, N / 2);
	int ok = 0, first = 0, replays = 0;
	for (int i = 0; i < N; i++) {
		Shipgate__V1__RpcReply *x = i < N / 2 ? rep1[i] : rep2[i - N / 2];
		if (hs_code(x) == 0) {
			ok++;
			Shipgate__V1__CreateOrderResponse *cr = (void *)hs_payload(
			        x, &shipgate__v1__create_order_response__descriptor);
			if (cr != NULL && cr->replayed)
				replays++;
			else if (cr != NULL)
				first++;
			if (cr)
				protobuf_c_message_free_unpacked(&cr->base, NULL);
		} else if (x != NULL) {
			fprintf(stderr, "  fleet: %d %s\n", hs_code(x), hs_reason(x));
		}
		free_reply(x);
	}
	CHECK_INT(ok, N);
	CHECK_INT(first, 1);
	CHECK_INT(replays, N - 1);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);
	fprintf(stderr, "  fleet of 2 on one redis: %d answers, %d first, %d replays, 1 POST\n", ok,
	        first, replays);

	/* a drain ends a CreateOrder that waits for another gateway's outcome: g2 stops at once,
	 * its caller told ABORTED / IDEMPOTENCY_KEY_IN_PROGRESS (retry with the key); one POST */
	sandbox_reset();
	send_create(s1, "SLOW-2000", "e2e-fleet-drain", 5000);
	CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-2000", 1));
	{
		Shipgate__V1__RpcRequest denv;
		uint8_t dpayload[2048];
		Shipgate__V1__RpcReply *waited = NULL;
		create_env(&denv, dpayload, "SLOW-2000", "e2e-fleet-drain", 10000);
		struct fan f = {s2, &denv, &waited, 1, 0};
		CHECK_INT(pthread_create(&f.thr, NULL, fan_main, &f), 0);
		hs_sleep_ms(300); /* g2 finds the key in progress at g1, and waits */
		int64_t t0 = hs_now_ms();
		CHECK_INT(hs_proc_stop(&g2, SIGTERM), 0);
		pthread_join(f.thr, NULL);
		CHECK(hs_now_ms() - t0 < 1500); /* not the 10 s lease */
		CHECK_INT(hs_code(waited), 10);
		CHECK_STR(hs_reason(waited), "IDEMPOTENCY_KEY_IN_PROGRESS");
		free_reply(waited);
		nng_close(s2);
		CHECK_INT(hs_gateway_start(&g2, gw_bin, sandbox, listen, extra), 0);
		CHECK_INT(hs_gateway_url(&g2, 0, u2, sizeof(u2)), 0);
		CHECK_INT(hs_dial(&s2, u2), 0);
		hs_sleep_ms(2000); /* g1's POST ends */
		CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);
	}

	/* kill -9 of the gateway holding a POST: the other gateway waits for it (the same key),
	 * then answers OUTCOME_UNKNOWN once the dead owner's lease is over; never a second POST */
	sandbox_reset();
	send_create(s1, "SLOW-1500", "e2e-fleet-kill", 2000);
	CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-1500", 1));
	CHECK_INT(WTERMSIG(hs_proc_stop(&g1, SIGKILL)), SIGKILL);
	nng_close(s1);
	r = call_create(s2, "SLOW-1500", "e2e-fleet-kill", 5000);
	CHECK_INT(hs_code(r), 2);
	CHECK_STR(hs_reason(r), "OUTCOME_UNKNOWN");
	free_reply(r);
	hs_sleep_ms(200);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);

	/* the operator's view of the fleet's store: the dead owner's key is listed; resolved
	 * with the order found at the provider, every gateway replays it */
	{
		char store[200], out[4096], awb[64];
		snprintf(store, sizeof(store), "--set idempotency.store=redis --set '%s'", set_url);
		CHECK_INT(op_run(store, "--idempotency-unknown", out, sizeof(out)), 0);
		CHECK(strncmp(out, "bosonline\te2e-fleet-kill\t", 25) == 0);
		CHECK(strstr(out, "the gateway stopped before the call ended") != NULL);
		CHECK_INT(op_run(store, "--idempotency-resolve e2e-fleet-kill '{\"awb\":\"OP-9\"}'",
		                 out, sizeof(out)),
		          0);
		CHECK_INT(op_run(store, "--idempotency-resolve e2e-fleet-kill '{\"awb\":\"OP-9\"}'",
		                 out, sizeof(out)),
		          1);
		r = call_create(s2, "SLOW-1500", "e2e-fleet-kill", 5000);
		CHECK_INT(hs_code(r), 0);
		CHECK(replayed(r));
		CHECK_STR(reply_awb(r, awb, sizeof(awb)), "OP-9");
		free_reply(r);
		CHECK_INT(op_run(store, "--idempotency-unknown", out, sizeof(out)), 0);
		CHECK(strstr(out, "e2e-fleet-kill") == NULL);
		CHECK_INT(op_run("--set idempotency.store=redis --set "
		                 "idempotency.redis_url=redis://127.0.0.1:1",
		                 "--idempotency-unknown", out, sizeof(out)),
		          2); /* unreachable: a clear failure */
	}
	if (hs_gateway_start(&g1, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&g1, 0, u1, sizeof(u1)) != 0) {
		CHECK(0);
		hs_proc_stop(&rd, SIGTERM);
		return;
	}
	CHECK_INT(hs_dial(&s1, u1), 0);

	/* Redis stopped: CreateOrder refused with the store named; Track answers as before */
	CHECK_INT(hs_proc_stop(&rd, SIGTERM), 0);
	r = call_create(s1, "SLOW-1", "e2e-fleet-down", 3000);
	CHECK_INT(hs_code(r), 14);
	CHECK_STR(hs_reason(r), "IDEMPOTENCY_STORE_UNAVAILABLE");
	CHECK(r && r->status && strstr(r->status->message, "redis") != NULL);
	free_reply(r);
	r = call_json(s1, "Track", "{\"provider\":\"PROVIDER_BOSCOD\",\"orderId\":\"BOS123\"}",
	              3000, NULL);
	CHECK_INT(hs_code(r), 0);
	free_reply(r);
	/* Redis back on the same port: the gateways recover by themselves */
	CHECK_INT(hs_redis_start(&rd, &port), 0);
	r = call_create(s2, "SLOW-1", "e2e-fleet-down", 3000);
	CHECK_INT(hs_code(r), 0);
	free_reply(r);
	stop_two(s1, s2, &g1, &g2);
	hs_proc_stop(&rd, SIGTERM);
}

/*
 * A provider that echoes its request's headers into its error text (the sandbox's reserved id
 * ECHO-HEADERS): the credential reaches neither the caller nor the log, for a static bearer
 * token (BosCOD), a raw key (Biteship) and a fetched OAuth token (Fuuffy). The log is the
 * gateway's stderr at verbose 2, a line per call, into a file of the test's own.
 */
static void
test_secret_redaction(void)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	static const char *const extra[] = {"--set", "verbose=2", NULL};
	char logpath[128], url[256];
	hs_proc gw;
	nng_socket s;

	snprintf(logpath, sizeof(logpath), "/tmp/shipgate-e2e-redact-%d.log", (int)getpid());
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(2);
	CHECK(logfd >= 0 && saved >= 0);
	dup2(logfd, 2); /* the gateway inherits it */
	int up = hs_gateway_start(&gw, gw_bin, sandbox, listen, extra);
	dup2(saved, 2);
	close(saved);
	close(logfd);
	CHECK_INT(up, 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	static const char *const calls[][2] = {
	        {"Track", "{\"provider\":\"PROVIDER_BOSCOD\",\"orderId\":\"ECHO-HEADERS\"}"},
	        {"Track",
	         "{\"provider\":\"PROVIDER_BOSONLINE\",\"trackingNumber\":\"ECHO-HEADERS\"}"},
	        {"GetOrder", "{\"provider\":\"PROVIDER_BITESHIP\",\"orderId\":\"ECHO-HEADERS\"}"},
	        {"Track", "{\"provider\":\"PROVIDER_FUUFFY\",\"orderId\":\"ECHO-HEADERS\"}"},
	};
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		Shipgate__V1__RpcReply *r = call_json(s, calls[i][0], calls[i][1], 5000, NULL);
		CHECK_INT(hs_code(r), 3); /* the provider's 400 */
		const Shipgate__V1__ErrorDetail *d =
		        r != NULL && r->status != NULL ? r->status->detail : NULL;
		const char *pm = d != NULL ? d->provider_message : "";
		const char *msg = r != NULL && r->status != NULL ? r->status->message : "";
		if (strstr(pm, "[redacted]") == NULL)
			fprintf(stderr, "  %s: provider_message \"%s\"\n", calls[i][1], pm);
		CHECK(strstr(pm, "Authorization") != NULL && strstr(pm, "[redacted]") != NULL);
		CHECK(strstr(msg, "[redacted]") != NULL);
		CHECK(strstr(pm, "sandbox-token") == NULL && strstr(msg, "sandbox-token") == NULL);
		CHECK(strstr(pm, "biteship_test.sandbox") == NULL &&
		      strstr(msg, "biteship_test.sandbox") == NULL);
		CHECK(strstr(pm, "Bearer fu") == NULL); /* (the sandbox's fetched tokens) */
		free_reply(r);
	}
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	/* the log has a line per call, and no credential in any of them */
	FILE *f = fopen(logpath, "r");
	char line[4096];
	int lines = 0, redacted = 0, leaked = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		lines++;
		redacted += strstr(line, "[redacted]") != NULL;
		leaked += strstr(line, "sandbox-token") != NULL ||
		          strstr(line, "biteship_test.sandbox") != NULL;
	}
	if (f)
		fclose(f);
	CHECK(lines >= 4);
	CHECK_INT(redacted, 4);
	CHECK_INT(leaked, 0);
	unlink(logpath);
	fprintf(stderr,
	        "  a provider echoing its headers: 4 calls, the credential redacted in every "
	        "answer and log line\n");
}

/* A GET count at the sandbox for one tracking id. */
static int
track_gets(const char *id)
{
	char path[128];
	snprintf(path, sizeof(path), "/boscod/v1/order/tracking/%s", id);
	return sandbox_count_of("GET", path);
}

/* Track through gateway s: OK, 11 events; its cache info into hit/stale (may be NULL). */
static void
track_check(nng_socket s, const char *id, bool *hit, bool *stale)
{
	Shipgate__V1__TrackResponse *t = track_cached(s, id, false);
	CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
	if (hit)
		*hit = t != NULL && t->cache != NULL && t->cache->hit;
	if (stale)
		*stale = t != NULL && t->cache != NULL && t->cache->stale;
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
}

/* Two gateways with cache.backend = redis (on free ports, on rd's Redis) and extra settings. */
static bool
cache_fleet_start(hs_proc *g1, hs_proc *g2, nng_socket *s1, nng_socket *s2, int port,
                  const char *ttl)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	char set_url[128], u1[256], u2[256];
	snprintf(set_url, sizeof(set_url), "cache.redis_url=redis://127.0.0.1:%d/1", port);
	const char *const extra[] = {"--set", "cache.backend=redis", "--set", set_url, "--set", ttl,
	                             NULL};
	if (hs_gateway_start(g1, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_start(g2, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(g1, 0, u1, sizeof(u1)) != 0 ||
	    hs_gateway_url(g2, 0, u2, sizeof(u2)) != 0)
		return false;
	return hs_dial(s1, u1) == 0 && hs_dial(s2, u2) == 0;
}

/*
 * The fleet's lookup cache: two gateways with cache.backend = redis on a redis-server of the
 * test's own. One gateway's answer serves the other (one GET); 50 concurrent misses over both
 * make one GET; a stale answer is refreshed once for the fleet; a corrupt answer in Redis is
 * never served; Redis stopped: lookups go on (to the provider), and come back to the fleet's
 * cache once Redis is back, with no restart.
 */
static void
test_cache_fleet(void)
{
	enum { N = 50 };
	hs_proc rd, g1, g2;
	nng_socket s1, s2;
	int port = 0;
	bool hit = false, stale = false;

	if (hs_redis_start(&rd, &port) != 0) {
		fprintf(stderr, "  redis-server did not start (.ci/deps installs it)\n");
		CHECK(0);
		return;
	}
	if (!cache_fleet_start(&g1, &g2, &s1, &s2, port, "boscod.cache_ttl_ms=60000")) {
		CHECK(0);
		hs_proc_stop(&rd, SIGTERM);
		return;
	}
	sandbox_reset();
	/* one gateway's answer is the other's: a fleet hit, then a local one */
	track_check(s1, "FLEET1", &hit, NULL);
	CHECK(!hit);
	track_check(s2, "FLEET1", &hit, &stale);
	CHECK(hit && !stale);
	track_check(s2, "FLEET1", &hit, NULL);
	CHECK(hit);
	CHECK_INT(track_gets("FLEET1"), 1);

	/* 50 identical concurrent misses, half on each gateway, on a slow provider: one GET */
	uint8_t payload[64];
	Shipgate__V1__RpcRequest env;
	track_env(&env, payload, "SLOW-400");
	static Shipgate__V1__RpcReply *rep1[N / 2], *rep2[N / 2];
	fan_two(s1, s2, &env, rep1, rep2, N / 2);
	int ok = 0;
	for (int i = 0; i < N; i++) {
		Shipgate__V1__RpcReply *x = i < N / 2 ? rep1[i] : rep2[i - N / 2];
		ok += hs_code(x) == 0;
		free_reply(x);
	}
	CHECK_INT(ok, N);
	CHECK_INT(track_gets("SLOW-400"), 1);
	fprintf(stderr, "  cache fleet of 2: %d concurrent misses over both, %d GET\n", ok,
	        track_gets("SLOW-400"));

	/* g1 fetches a slow answer for the fleet: g2's caller with a short deadline gets
	 * DEADLINE_EXCEEDED saying so (no second GET) */
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = "SLOW-1500";
	track_env(&env, payload, req.order_id);
	Shipgate__V1__RpcReply *slow = NULL;
	struct fan holder = {s1, &env, &slow, 1, 0};
	CHECK_INT(pthread_create(&holder.thr, NULL, fan_main, &holder), 0);
	hs_sleep_ms(300); /* g1 holds the key's lock, and its GET is out */
	Shipgate__V1__RpcReply *r = hs_call(s2, "Track", &req.base, 300, NULL);
	CHECK_INT(hs_code(r), 4);
	CHECK(r != NULL && r->status != NULL && strstr(r->status->message, "another gateway"));
	free_reply(r);
	pthread_join(holder.thr, NULL);
	CHECK_INT(hs_code(slow), 0);
	free_reply(slow);
	CHECK_INT(track_gets("SLOW-1500"), 1);

	/* a corrupt answer in Redis (its payload is not a TrackResponse): a gateway with an empty
	 * cache of its own fetches it again instead of serving it, and puts it right */
	redisContext *rc = redisConnect("127.0.0.1", port);
	CHECK(rc != NULL && rc->err == 0);
	int corrupted = 0;
	if (rc != NULL && rc->err == 0) {
		freeReplyObject(redisCommand(rc, "SELECT 1"));
		redisReply *k = redisCommand(rc, "KEYS shipgate:cache:*FLEET1*");
		for (size_t i = 0; k != NULL && k->type == REDIS_REPLY_ARRAY && i < k->elements;
		     i++)
			if (strstr(k->element[i]->str, ":lock:") == NULL) {
				freeReplyObject(redisCommand(rc, "HSET %s payload %b",
				                             k->element[i]->str, "\xff\xff\xff",
				                             (size_t)3));
				corrupted++;
			}
		freeReplyObject(k);
	}
	CHECK_INT(corrupted, 1);
	/* a draining gateway stops waiting for another gateway's fetch: its caller is answered
	 * UNAVAILABLE / SHUTTING_DOWN at once, not left to its deadline */
	track_env(&env, payload, "SLOW-1400");
	Shipgate__V1__RpcReply *waiting = NULL;
	struct fan h1 = {s1, &env, &slow, 1, 0}, h2 = {s2, &env, &waiting, 1, 0};
	CHECK_INT(pthread_create(&h1.thr, NULL, fan_main, &h1), 0);
	hs_sleep_ms(300);
	CHECK_INT(pthread_create(&h2.thr, NULL, fan_main, &h2), 0);
	hs_sleep_ms(200);
	CHECK_INT(hs_proc_stop(&g2, SIGTERM), 0);
	pthread_join(h2.thr, NULL);
	CHECK_INT(hs_code(waiting), 14);
	CHECK_STR(hs_reason(waiting), "SHUTTING_DOWN");
	free_reply(waiting);
	pthread_join(h1.thr, NULL);
	CHECK_INT(hs_code(slow), 0);
	free_reply(slow);
	CHECK_INT(track_gets("SLOW-1400"), 1);
	nng_close(s2);
	{
		static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
		char set_url[128], u2[256];
		snprintf(set_url, sizeof(set_url), "cache.redis_url=redis://127.0.0.1:%d/1", port);
		const char *const extra[] = {"--set", "cache.backend=redis", "--set", set_url,
		                             NULL};
		CHECK_INT(hs_gateway_start(&g2, gw_bin, sandbox, listen, extra), 0);
		CHECK_INT(hs_gateway_url(&g2, 0, u2, sizeof(u2)), 0);
		CHECK_INT(hs_dial(&s2, u2), 0);
	}
	track_check(s2, "FLEET1", &hit, NULL);
	CHECK(!hit);
	CHECK_INT(track_gets("FLEET1"), 2);
	if (rc != NULL && rc->err == 0) { /* put right (the put follows the reply): it decodes */
		size_t len = 0;
		for (int tries = 0; tries < 200 && len <= 100; tries++) {
			redisReply *k = redisCommand(rc, "KEYS shipgate:cache:*FLEET1*");
			for (size_t i = 0;
			     k != NULL && k->type == REDIS_REPLY_ARRAY && i < k->elements; i++)
				if (strstr(k->element[i]->str, ":lock:") == NULL) {
					redisReply *v = redisCommand(rc, "HGET %s payload",
					                             k->element[i]->str);
					len = v != NULL && v->type == REDIS_REPLY_STRING ? v->len
					                                                 : 0;
					freeReplyObject(v);
				}
			freeReplyObject(k);
			if (len <= 100)
				hs_sleep_ms(10);
		}
		CHECK(len > 100);
	}

	/* Redis stopped: a lookup still answers (from the provider), promptly */
	CHECK_INT(hs_proc_stop(&rd, SIGTERM) >= 0, 1);
	int64_t t0 = hs_now_ms();
	track_check(s1, "FLEET2", &hit, NULL);
	CHECK(!hit);
	CHECK(hs_now_ms() - t0 < 2000);
	CHECK_INT(track_gets("FLEET2"), 1);
	/* back on its port: after the gateways leave it alone for a second, the fleet shares
	 * again, without a restart */
	CHECK_INT(hs_redis_start(&rd, &port), 0);
	hs_sleep_ms(1200);
	track_check(s1, "FLEET3", &hit, NULL);
	track_check(s2, "FLEET3", &hit, NULL);
	for (int i = 0; i < 20 && !hit; i++) { /* (s2 may still be in its second alone) */
		hs_sleep_ms(100);
		track_check(s2, "FLEET3", &hit, NULL);
	}
	CHECK(hit);
	CHECK_INT(track_gets("FLEET3"), 1);
	stop_two(s1, s2, &g1, &g2);

	/* a stale answer is refreshed once for the fleet: a TTL of 1 s, both gateways stale */
	if (!cache_fleet_start(&g1, &g2, &s1, &s2, port, "boscod.cache_ttl_ms=1000")) {
		CHECK(0);
		hs_proc_stop(&rd, SIGTERM);
		return;
	}
	sandbox_reset();
	track_check(s1, "FLEET4", NULL, NULL);
	track_check(s2, "FLEET4", &hit, NULL); /* from the fleet */
	CHECK(hit);
	hs_sleep_ms(1100);
	track_check(s1, "FLEET4", &hit, &stale); /* stale at g1: g1 refreshes for the fleet */
	CHECK(hit && stale);
	for (int i = 0; i < 100 && track_gets("FLEET4") < 2; i++)
		hs_sleep_ms(10);
	CHECK_INT(track_gets("FLEET4"), 2);
	hs_sleep_ms(100);
	track_check(s2, "FLEET4", &hit, &stale); /* stale at g2 too: its refresh finds g1's */
	CHECK(hit && stale);
	for (int i = 0; i < 50 && stale; i++) { /* once its refresh is back: a fresh local hit */
		hs_sleep_ms(10);
		track_check(s2, "FLEET4", &hit, &stale);
	}
	CHECK(hit && !stale);
	CHECK_INT(track_gets("FLEET4"), 2);

	redisFree(rc);
	stop_two(s1, s2, &g1, &g2);
	hs_proc_stop(&rd, SIGTERM);
}

/*
 * With the SQLite store, the claim outlives the gateway:
 * - kill -9 while the POST is in flight, restart on the same file, retry with the same key:
 *   IDEMPOTENCY_KEY_IN_PROGRESS while the dead owner's lease runs, then OUTCOME_UNKNOWN; never
 *   a second POST;
 * - SIGTERM (the drain lets the call finish and store its outcome), restart, retry: the stored
 *   answer, replayed; one POST.
 */
static void
test_sqlite_restart(void)
{
	char db[128], set_path[160];
	snprintf(db, sizeof(db), "/tmp/shipgate-e2e-%d.db", (int)getpid());
	snprintf(set_path, sizeof(set_path), "idempotency.path=%s", db);
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	const char *const extra[] = {"--set", "idempotency.store=sqlite", "--set", set_path, NULL};
	hs_proc gw;
	char url[256];
	nng_socket s;
	Shipgate__V1__RpcReply *r;

	/* kill -9 with the POST at the provider */
	sandbox_reset();
	if (hs_gateway_start(&gw, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		return;
	}
	CHECK_INT(hs_dial(&s, url), 0);
	/* Health says where the keys are, and their scope */
	Shipgate__V1__HealthRequest hq = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	r = hs_call(s, "Health", &hq.base, 2000, NULL);
	Shipgate__V1__HealthResponse *h =
	        (void *)hs_payload(r, &shipgate__v1__health_response__descriptor);
	CHECK(h != NULL && strcmp(h->idempotency_store, "sqlite") == 0 &&
	      strcmp(h->idempotency_scope, "node") == 0);
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
	free_reply(r);
	send_create(s, "SLOW-1500", "e2e-sqlite-kill", 2500);
	CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-1500", 1));
	CHECK_INT(WTERMSIG(hs_proc_stop(&gw, SIGKILL)), SIGKILL);
	nng_close(s);
	if (hs_gateway_start(&gw, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		return;
	}
	CHECK_INT(hs_dial(&s, url), 0);
	r = call_create(s, "SLOW-1500", "e2e-sqlite-kill", 5000);
	CHECK_INT(hs_code(r), 10); /* ABORTED: the dead owner's lease still runs */
	CHECK_STR(hs_reason(r), "IDEMPOTENCY_KEY_IN_PROGRESS");
	CHECK(r && r->status && r->status->detail && r->status->detail->retryable);
	free_reply(r);
	hs_sleep_ms(2600); /* past the lease (and past the provider's hold) */
	for (int i = 0; i < 2; i++) {
		r = call_create(s, "SLOW-1500", "e2e-sqlite-kill", 5000);
		CHECK_INT(hs_code(r), 2);
		CHECK_STR(hs_reason(r), "OUTCOME_UNKNOWN");
		CHECK(r && r->status && r->status->detail && !r->status->detail->retryable);
		free_reply(r);
	}
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);

	/* the operator's view: the key is listed as unknown; once released (the operator made
	 * sure the provider created nothing), the next call goes upstream */
	char cmd[512], out[4096];
	snprintf(cmd, sizeof(cmd),
	         "timeout 20 '%s' --set idempotency.store=sqlite --set '%s' --idempotency-unknown "
	         "2>/dev/null",
	         gw_bin, set_path);
	FILE *pf = popen(cmd, "r");
	size_t n = pf ? fread(out, 1, sizeof(out) - 1, pf) : 0;
	out[n] = '\0';
	CHECK(pf != NULL && pclose(pf) == 0);
	CHECK(strncmp(out, "bosonline\te2e-sqlite-kill\t", 26) == 0);
	CHECK(strstr(out, "the gateway stopped before the call ended") != NULL);
	snprintf(cmd, sizeof(cmd),
	         "timeout 20 '%s' --set idempotency.store=sqlite --set '%s' --idempotency-release "
	         "e2e-sqlite-kill 2>/dev/null",
	         gw_bin, set_path);
	int st = system(cmd);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = system(cmd); /* nothing left to release */
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	r = call_create(s, "SLOW-1500", "e2e-sqlite-kill", 5000);
	CHECK_INT(hs_code(r), 0);
	free_reply(r);
	r = call_create(s, "SLOW-1500", "e2e-sqlite-kill", 5000); /* and is kept from then on */
	CHECK(replayed(r));
	free_reply(r);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 2);

	/* SIGTERM: the drain lets the call finish, and the outcome is on disk */
	sandbox_reset();
	send_create(s, "SLOW-500", "e2e-sqlite-term", 5000);
	CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-500", 1));
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	nng_close(s);
	if (hs_gateway_start(&gw, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		return;
	}
	CHECK_INT(hs_dial(&s, url), 0);
	r = call_create(s, "SLOW-500", "e2e-sqlite-term", 5000);
	CHECK_INT(hs_code(r), 0);
	CHECK(replayed(r));
	free_reply(r);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* SIGTERM with a drain too short for the provider: the call's answer is OUTCOME_UNKNOWN,
	 * and that is what the key keeps across the restart; still one POST */
	const char *const shortdrain[] = {"--set", "idempotency.store=sqlite", "--set", set_path,
	                                  "--set", "drain_timeout_ms=100",     NULL};
	sandbox_reset();
	if (hs_gateway_start(&gw, gw_bin, sandbox, listen, shortdrain) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		return;
	}
	CHECK_INT(hs_dial(&s, url), 0);
	send_create(s, "SLOW-1500", "e2e-sqlite-short", 5000);
	CHECK(sandbox_wait("POST", "/bosonline/order/SLOW-1500", 1));
	kill(gw.pid, SIGTERM);
	char *rb = NULL;
	size_t rlen = 0;
	CHECK_INT(nng_recv(s, &rb, &rlen, NNG_FLAG_ALLOC), 0);
	r = rb ? shipgate__v1__rpc_reply__unpack(NULL, rlen, (const uint8_t *)rb) : NULL;
	if (rb)
		nng_free(rb, rlen);
	CHECK_INT(hs_code(r), 2);
	CHECK_STR(hs_reason(r), "OUTCOME_UNKNOWN");
	free_reply(r);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	nng_close(s);
	if (hs_gateway_start(&gw, gw_bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		return;
	}
	CHECK_INT(hs_dial(&s, url), 0);
	hs_sleep_ms(1600); /* past the provider's hold: a second POST would show by now */
	r = call_create(s, "SLOW-1500", "e2e-sqlite-short", 5000);
	CHECK_INT(hs_code(r), 2); /* the unknown outcome survived the restart */
	CHECK_STR(hs_reason(r), "OUTCOME_UNKNOWN");
	free_reply(r);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);

	/* the operator lists the kept unknown outcome, finds the order at the provider and
	 * resolves the key with it: every later call replays that order, and nothing is sent */
	char store[256], awb[64];
	snprintf(store, sizeof(store), "--set idempotency.store=sqlite --set '%s'", set_path);
	CHECK_INT(op_run(store, "--idempotency-unknown", out, sizeof(out)), 0);
	CHECK(strstr(out, "bosonline\te2e-sqlite-short\t") != NULL);
	CHECK(strstr(out, "OUTCOME_UNKNOWN") != NULL);
	CHECK_INT(op_run(store, "--idempotency-resolve e2e-sqlite-short '{\"awb\":'", out,
	                 sizeof(out)),
	          2); /* not JSON */
	CHECK_INT(op_run(store, "--idempotency-resolve e2e-sqlite-short '{\"nope\":1}'", out,
	                 sizeof(out)),
	          2); /* not a CreateOrderResponse */
	CHECK_INT(op_run(store, "--idempotency-resolve e2e-sqlite-short", out, sizeof(out)), 2);
	CHECK_INT(op_run(store, "--idempotency-resolve no-such-key '{\"awb\":\"X\"}'", out,
	                 sizeof(out)),
	          1);
	CHECK_INT(op_run(store,
	                 "--idempotency-resolve e2e-sqlite-short "
	                 "'{\"awb\":\"OP-AWB-7\",\"message\":\"found by the operator\"}'",
	                 out, sizeof(out)),
	          0);
	for (int i = 0; i < 2; i++) {
		r = call_create(s, "SLOW-1500", "e2e-sqlite-short", 5000);
		CHECK_INT(hs_code(r), 0);
		CHECK(replayed(r));
		CHECK_STR(reply_awb(r, awb, sizeof(awb)), "OP-AWB-7");
		free_reply(r);
	}
	CHECK_INT(op_run(store, "--idempotency-resolve e2e-sqlite-short '{\"awb\":\"Y\"}'", out,
	                 sizeof(out)),
	          1); /* known now: nothing changes */
	CHECK_INT(op_run(store, "--idempotency-unknown", out, sizeof(out)), 0);
	CHECK(strstr(out, "e2e-sqlite-short") == NULL);
	CHECK_INT(sandbox_count_of("POST", "/bosonline/order/"), 1);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	char f[160];
	unlink(db);
	snprintf(f, sizeof(f), "%s-wal", db);
	unlink(f);
	snprintf(f, sizeof(f), "%s-shm", db);
	unlink(f);
	fprintf(stderr,
	        "  sqlite store: kill -9, SIGTERM and short-drain restarts, one POST each\n");
}

static void
test_missing_credential(void)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	const char *const extra[] = {"--set", "bosonline.token=", NULL};
	hs_proc gw;
	char url[256];
	nng_socket s;
	CHECK_INT(hs_gateway_start(&gw, gw_bin, sandbox, listen, extra), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	sandbox_reset();
	Shipgate__V1__RpcReply *r = call_json(s, "CreateOrder", CREATE_JSON, 5000, "k-nocred");
	CHECK_INT(hs_code(r), 9);
	CHECK_STR(hs_reason(r), "MISSING_CREDENTIAL");
	free_reply(r);
	json_t *rec = sandbox_requests();
	CHECK_INT(json_array_size(rec), 0);
	json_decref(rec);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

int
main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s SHIPGATED SANDBOX DATA_DIR CLI EXAMPLES_DIR\n", argv[0]);
		return 2;
	}
	gw_bin = argv[1];
	sb_bin = argv[2];
	data_dir = argv[3];
	cli_bin = argv[4];
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	hs_proc sb, gw;
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	char url[256];
	if (hs_sandbox_start(&sb, sb_bin, sandbox, sizeof(sandbox)) != 0 ||
	    hs_gateway_start(&gw, gw_bin, sandbox, listen, NULL) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		hs_proc_stop(&sb, SIGTERM);
		TEST_MAIN_END();
	}
	nng_socket s;
	CHECK_INT(hs_dial(&s, url), 0);
	test_bosonline_track(s);
	test_biteship(s);
	test_fuuffy(s);
	test_create_order(s);
	test_envelope_strings(s);
	nng_close(s);
	test_cli(url, argv[5]);
	test_create_order_concurrent(url);
	test_parked_deadline(url);
	test_token_wait_deadline();
	test_cache();
	test_missing_credential();
	test_sqlite_restart();
	test_redis_fleet();
	test_cache_fleet();
	test_secret_redaction();
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	curl_global_cleanup();
	TEST_MAIN_END();
}
