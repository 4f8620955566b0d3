/*
 * test_envelope.c - src/gateway/envelope.c: the method table, envelope decoding with its
 * string checks, and the hand-written reply checked against protobuf-c's own decoder.
 */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "gateway/envelope.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"
#include "testutil.h"

static void
test_methods(void)
{
	size_t n;
	const sg_method *ms = sg_methods(&n);
	CHECK_INT(n, shipgate__v1__shipgate__descriptor.n_methods);
	int keyed = 0, cached = 0;
	for (size_t i = 0; i < n; i++) {
		keyed += ms[i].needs_key;
		cached += ms[i].cacheable;
		CHECK(ms[i].kind != SG_M_UNSERVED);
	}
	CHECK_INT(keyed, 1);
	CHECK_INT(cached, 2);

	const sg_method *m = sg_method_resolve("/shipgate.v1.Shipgate/CreateOrder");
	CHECK(m != NULL && m->kind == SG_M_CREATE_ORDER && m->needs_key && m->upstream &&
	      !m->cacheable && m->replayed_field == 8);
	m = sg_method_resolve("/shipgate.v1.Shipgate/Track");
	CHECK(m != NULL && m->kind == SG_M_TRACK && m->cacheable && m->cache_field == 2);
	m = sg_method_resolve("/shipgate.v1.Shipgate/Health");
	CHECK(m != NULL && m->kind == SG_M_HEALTH && !m->upstream);
	/* the one accepted spelling */
	CHECK(sg_method_resolve("Track") == NULL);
	CHECK(sg_method_resolve("/shipgate.v1.Shipgate/track") == NULL);
	CHECK(sg_method_resolve("/shipgate.v1.Shipgat/Track") == NULL);
	CHECK(sg_method_resolve("/shipgate.v1.ShipgateX/Track") == NULL);
	CHECK(sg_method_resolve("") == NULL);

	/* the provider field, read through the table */
	Shipgate__V1__GetOrderRequest g = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	g.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP;
	CHECK_INT(sg_method_provider(sg_method_resolve("/shipgate.v1.Shipgate/GetOrder"), &g.base),
	          SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP);
}

/* Raw protobuf bytes: one length-delimited field. */
static size_t
put(uint8_t *b, size_t n, unsigned field, const void *data, size_t len)
{
	b[n++] = (uint8_t)(field << 3 | 2);
	b[n++] = (uint8_t)len;
	memcpy(b + n, data, len);
	return n + len;
}

static void
test_decode(void)
{
	sg_arena a;
	sg_status st;
	Shipgate__V1__RpcRequest *env;
	uint8_t b[256];
	size_t n;

	sg_arena_init(&a, 1024, 1 << 20);
	n = put(b, 0, 1, "/shipgate.v1.Shipgate/Health", 28);
	n = put(b, n, 2, "r-1", 3);
	sg_status_clear(&st);
	CHECK_INT(sg_envelope_decode(b, n, &a, &env, &st), SG_OK);
	CHECK(env != NULL && strcmp(env->request_id, "r-1") == 0);

	/* a NUL or bad UTF-8 in any envelope string: INVALID_ARGUMENT naming the field */
	static const struct {
		unsigned field;
		const char *bytes;
		size_t len;
		const char *name;
	} bad[] = {
	        {1, "/shipgate.v1.Shipgate/Health\0x", 30, "method"},
	        {2, "r\xff", 2, "request_id"},
	        {5, "k\0AAA", 5, "idempotency_key"},
	        {5, "\xed\xa0\x80", 3, "idempotency_key"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = put(b, 0, bad[i].field, bad[i].bytes, bad[i].len);
		sg_status_clear(&st);
		CHECK_INT(sg_envelope_decode(b, n, &a, &env, &st), SG_EINVAL);
		CHECK(env == NULL);
		CHECK(st.nviolations == 1 && strcmp(st.violations[0].field, bad[i].name) == 0);
	}
	/* metadata entries are checked too */
	uint8_t entry[32];
	size_t en = put(entry, 0, 1, "k", 1);
	en = put(entry, en, 2, "v\xc3", 2);
	n = put(b, 0, 4, entry, en);
	sg_status_clear(&st);
	CHECK_INT(sg_envelope_decode(b, n, &a, &env, &st), SG_EINVAL);
	/* not an envelope at all */
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	sg_status_clear(&st);
	CHECK_INT(sg_envelope_decode(junk, sizeof(junk), &a, &env, &st), SG_EDECODE);

	/* the payload gets the same checks against its own message */
	const sg_method *m = sg_method_resolve("/shipgate.v1.Shipgate/Track");
	Shipgate__V1__RpcRequest e2 = SHIPGATE__V1__RPC_REQUEST__INIT;
	uint8_t p[32];
	e2.payload.data = p;
	e2.payload.len = put(p, 0, 2, "BOS\0", 4);
	ProtobufCMessage *req;
	sg_status_clear(&st);
	CHECK_INT(sg_payload_decode(m, &e2, &a, &req, &st), SG_EINVAL);
	CHECK(st.nviolations == 1 && strcmp(st.violations[0].field, "order_id") == 0);
	e2.payload.len = put(p, 0, 2, "BOS1", 4);
	sg_status_clear(&st);
	CHECK_INT(sg_payload_decode(m, &e2, &a, &req, &st), SG_OK);
	CHECK(req != NULL &&
	      strcmp(((Shipgate__V1__TrackRequest *)(void *)req)->order_id, "BOS1") == 0);
	sg_arena_fini(&a);
}

static void
test_reply(void)
{
	sg_arena a;
	sg_status st;
	sg_outcome o;
	uint8_t extra[SG_REPLY_EXTRA_MAX];

	sg_arena_init(&a, 1024, 1 << 20);
	/* an error: every string valid UTF-8, whatever the provider sent */
	sg_status_clear(&st);
	sg_status_set(&st, &a, SG_EUP_BADREQ, "bad \xff request");
	st.provider = "boscod";
	st.provider_message = "<html>\xc3</html>";
	st.http_status = 400;
	memset(&o, 0, sizeof(o));
	CHECK_INT(sg_status_pack(&st, &a, &o), 0);
	size_t n = sg_reply_size("rid-\xe2\x82\xac", &o, 0);
	uint8_t *buf = malloc(n);
	CHECK_INT(sg_reply_write(buf, "rid-\xe2\x82\xac", &o, NULL, 0), n);
	Shipgate__V1__RpcReply *r = shipgate__v1__rpc_reply__unpack(NULL, n, buf);
	CHECK(r != NULL && r->status != NULL && r->status->detail != NULL);
	if (r != NULL && r->status != NULL && r->status->detail != NULL) {
		CHECK_STR(r->request_id, "rid-\xe2\x82\xac");
		CHECK_INT(r->status->code, SHIPGATE__V1__CODE__INVALID_ARGUMENT);
		CHECK(sg_utf8_valid(r->status->message, strlen(r->status->message)));
		CHECK_STR(r->status->detail->provider_message, "<html>\xef\xbf\xbd</html>");
		CHECK_INT(r->status->detail->upstream_http_status, 400);
		CHECK(r->payload.data == NULL);
	}
	shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	free(buf);

	/* OK with a payload, and `replayed` appended: protobuf merges it */
	const sg_method *m = sg_method_resolve("/shipgate.v1.Shipgate/CreateOrder");
	Shipgate__V1__CreateOrderResponse co = SHIPGATE__V1__CREATE_ORDER_RESPONSE__INIT;
	co.cs_phone = "6289765183712";
	sg_status_clear(&st);
	memset(&o, 0, sizeof(o));
	CHECK_INT(sg_payload_pack(&co.base, &a, &o), 0);
	CHECK_INT(sg_status_pack(&st, &a, &o), 0);
	size_t xn = sg_reply_replayed_field(m, extra);
	CHECK(xn > 0);
	n = sg_reply_size(NULL, &o, xn);
	buf = malloc(n);
	CHECK_INT(sg_reply_write(buf, NULL, &o, extra, xn), n);
	r = shipgate__v1__rpc_reply__unpack(NULL, n, buf);
	CHECK(r != NULL && r->status != NULL && r->status->code == 0 && r->request_id[0] == '\0');
	Shipgate__V1__CreateOrderResponse *back = r ? shipgate__v1__create_order_response__unpack(
	                                                      NULL, r->payload.len, r->payload.data)
	                                            : NULL;
	CHECK(back != NULL && back->replayed && strcmp(back->cs_phone, "6289765183712") == 0);
	shipgate__v1__create_order_response__free_unpacked(back, NULL);
	shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	free(buf);
	CHECK_INT(sg_reply_replayed_field(sg_method_resolve("/shipgate.v1.Shipgate/Track"), extra),
	          0);

	/* the cache field on a Track answer, largest age */
	m = sg_method_resolve("/shipgate.v1.Shipgate/Track");
	Shipgate__V1__TrackResponse tr = SHIPGATE__V1__TRACK_RESPONSE__INIT;
	memset(&o, 0, sizeof(o));
	CHECK_INT(sg_payload_pack(&tr.base, &a, &o), 0);
	CHECK_INT(sg_status_pack(&st, &a, &o), 0);
	xn = sg_reply_cache_field(m, INT64_MAX, true, extra);
	CHECK(xn > 0 && xn <= SG_REPLY_EXTRA_MAX);
	n = sg_reply_size("x", &o, xn);
	buf = malloc(n);
	sg_reply_write(buf, "x", &o, extra, xn);
	r = shipgate__v1__rpc_reply__unpack(NULL, n, buf);
	Shipgate__V1__TrackResponse *t =
	        r ? shipgate__v1__track_response__unpack(NULL, r->payload.len, r->payload.data)
	          : NULL;
	CHECK(t != NULL && t->cache != NULL && t->cache->hit && t->cache->stale &&
	      t->cache->age_ms == INT64_MAX);
	shipgate__v1__track_response__free_unpacked(t, NULL);
	shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	free(buf);
	sg_arena_fini(&a);
}

int
main(void)
{
	char err[200];
	CHECK_INT(sg_envelope_init(err, sizeof(err)), 0);
	CHECK_INT(sg_envelope_init(err, sizeof(err)), 0); /* idempotent */
	test_methods();
	test_decode();
	test_reply();
	TEST_MAIN_END();
}
