/*
 * test_gateway.c - the call pipeline (src/gateway/) against a fake transport and a fake
 * upstream: no sockets, no nng, no curl.
 *
 * The fake upstream records every request the pipeline sends and completes it only when the
 * test says so, with a canned HTTP answer (the sandbox's documents) or an engine error. So
 * each test can hold a call at the provider while others arrive, and check exactly how many
 * requests went out: singleflight, idempotency, the token queue, the 401 retry, parked
 * deadlines and the drain.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "pbjson.h"
#include "gateway/gateway.h"
#include "providers/common.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"
#include "testutil.h"

/* ------------------------------------------------------------------ the fake upstream */

#define MAX_REQ 64

/* One request the pipeline sent. */
struct sent {
	char method[8];    /* HTTP method */
	char url[512];     /* URL */
	char auth[256];    /* Authorization header value, or "" */
	char idem[128];    /* Idempotency-Key header value, or "" */
	sg_upstream_cb cb; /* its completion */
	void *arg;         /* and argument */
	bool done;         /* completed already */
};

static struct {
	pthread_mutex_t mtx; /* guards everything below */
	pthread_cond_t cv;   /* signalled on every submit and every reply */
	struct sent req[MAX_REQ];
	int nreq;      /* requests sent so far */
	sg_err refuse; /* != SG_OK: submit fails with it */
} up = {.mtx = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void
header_value(const sg_http_req *req, const char *name, char *out, size_t n)
{
	size_t k = strlen(name);
	out[0] = '\0';
	for (size_t i = 0; i < req->nheaders; i++)
		if (strncasecmp(req->headers[i], name, k) == 0 && req->headers[i][k] == ':')
			snprintf(out, n, "%s", req->headers[i] + k + 2);
}

static sg_err
fake_submit(void *impl, const sg_http_req *req, int64_t deadline_ms, sg_upstream_cb cb, void *arg)
{
	pthread_mutex_lock(&up.mtx);
	if (up.refuse != SG_OK || up.nreq == MAX_REQ) {
		sg_err e = up.refuse != SG_OK ? up.refuse : SG_ENOMEM;
		pthread_mutex_unlock(&up.mtx);
		return e;
	}
	struct sent *s = &up.req[up.nreq++];
	memset(s, 0, sizeof(*s));
	snprintf(s->method, sizeof(s->method), "%s", req->method);
	snprintf(s->url, sizeof(s->url), "%s", req->url);
	header_value(req, "Authorization", s->auth, sizeof(s->auth));
	header_value(req, "Idempotency-Key", s->idem, sizeof(s->idem));
	s->cb = cb;
	s->arg = arg;
	pthread_cond_broadcast(&up.cv);
	pthread_mutex_unlock(&up.mtx);
	return SG_OK;
}

static int
sent_count(void)
{
	pthread_mutex_lock(&up.mtx);
	int n = up.nreq;
	pthread_mutex_unlock(&up.mtx);
	return n;
}

/* Completes request i as the backend thread would: an HTTP answer (err SG_OK) or an error. */
static void
complete(int i, sg_err err, int status, const char *body)
{
	pthread_mutex_lock(&up.mtx);
	CHECK(i < up.nreq && !up.req[i].done);
	if (i >= up.nreq || up.req[i].done) {
		pthread_mutex_unlock(&up.mtx);
		return;
	}
	up.req[i].done = true;
	sg_upstream_cb cb = up.req[i].cb;
	void *arg = up.req[i].arg;
	pthread_mutex_unlock(&up.mtx);
	sg_http_resp resp = {.status = status, .body = body, .body_len = body ? strlen(body) : 0};
	cb(arg, err, err == SG_OK ? &resp : NULL);
}

/* ------------------------------------------------------------------ the fake transport */

#define NCALLS 16

/* One call slot: what the transport would keep per context. */
struct slot {
	sg_call call;
	uint8_t *buf;                  /* the reply buffer handed out */
	size_t len;                    /* its size */
	bool sent;                     /* send ran */
	Shipgate__V1__RpcReply *reply; /* decoded once sent */
};

static struct slot slots[NCALLS];
static pthread_mutex_t tr_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tr_cv = PTHREAD_COND_INITIALIZER;

static uint8_t *
fake_reply_buf(sg_call *c, size_t len)
{
	struct slot *s = c->transport;
	free(s->buf);
	s->buf = malloc(len ? len : 1);
	s->len = len;
	return s->buf;
}

static void
fake_send(sg_call *c)
{
	struct slot *s = c->transport;
	pthread_mutex_lock(&tr_mtx);
	s->reply = s->buf ? shipgate__v1__rpc_reply__unpack(NULL, s->len, s->buf) : NULL;
	s->sent = true;
	pthread_cond_broadcast(&tr_cv);
	pthread_mutex_unlock(&tr_mtx);
}

/* Waits (bounded) until slot i's reply was sent; returns it (NULL on timeout). */
static Shipgate__V1__RpcReply *
wait_reply(int i)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&tr_mtx);
	while (!slots[i].sent)
		if (pthread_cond_timedwait(&tr_cv, &tr_mtx, &ts) != 0)
			break;
	Shipgate__V1__RpcReply *r = slots[i].sent ? slots[i].reply : NULL;
	pthread_mutex_unlock(&tr_mtx);
	CHECK(r != NULL);
	return r;
}

static bool
is_sent(int i)
{
	pthread_mutex_lock(&tr_mtx);
	bool s = slots[i].sent;
	pthread_mutex_unlock(&tr_mtx);
	return s;
}

/* Frees slot i's reply and ends its call, so that the slot can be used again. */
static void
slot_end(int i)
{
	struct slot *s = &slots[i];
	if (s->reply != NULL)
		shipgate__v1__rpc_reply__free_unpacked(s->reply, NULL);
	s->reply = NULL;
	free(s->buf);
	s->buf = NULL;
	s->sent = false;
	sg_call_end(&s->call);
}

/* ------------------------------------------------------------------ requests */

static sg_gateway *gw;
static sg_config cfg;
static char *doc_boscod, *doc_fuuffy, *doc_create;

static char *
slurp(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", SG_SANDBOX_DATA, name);
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	if (f == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *b = malloc((size_t)n + 1);
	b[fread(b, 1, (size_t)n, f)] = '\0';
	fclose(f);
	return b;
}

/* Starts slot i's call: method, payload message, deadline and key. */
static void
start(int i, const char *method, const ProtobufCMessage *payload, int64_t deadline_ms,
      const char *key)
{
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	char name[128];
	uint8_t pbuf[4096], ebuf[8192];
	snprintf(name, sizeof(name), "/shipgate.v1.Shipgate/%s", method);
	env.method = name;
	env.request_id = "gw-test";
	env.deadline_ms = deadline_ms;
	env.idempotency_key = (char *)(key ? key : "");
	env.payload.data = pbuf;
	env.payload.len = payload ? protobuf_c_message_pack(payload, pbuf) : 0;
	size_t n = shipgate__v1__rpc_request__pack(&env, ebuf);
	sg_call_start(&slots[i].call, ebuf, n);
}

static void
track(int i, int provider, const char *id, bool bypass, int64_t deadline_ms)
{
	Shipgate__V1__TrackRequest t = SHIPGATE__V1__TRACK_REQUEST__INIT;
	t.provider = provider;
	if (provider == SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY)
		t.tracking_number = (char *)id;
	else
		t.order_id = (char *)id;
	t.bypass_cache = bypass;
	start(i, "Track", &t.base, deadline_ms, NULL);
}

/* The document's CreateOrder example (bosOnline), as proto3 JSON. */
static const char CREATE_JSON[] =
        "{\"provider\":\"PROVIDER_BOSONLINE\",\"formId\":\"d9cc7807-36c2-4eb1-b910-ece18a1bbb6e\","
        "\"sender\":{\"warehouseName\":\"Alfian\",\"name\":\"Alfian\",\"phone\":\"081732131321\","
        "\"addressId\":\"15022\",\"detail\":\"Bukit Kismadani 6\",\"latitude\":2.9372132131231,"
        "\"longitude\":3.41321312312312},"
        "\"receiver\":{\"name\":\"Faisol\",\"phone\":\"083131412312\",\"addressId\":\"15022\","
        "\"address\":\"BUkit Kismadani1\",\"extraFields\":["
        "{\"fieldName\":\"Nama Pembeli\",\"value\":\"kiroomin Muqorrobin\"}]},"
        "\"pickupVia\":\"PICKUP_METHOD_PICKUP\",\"serviceCode\":\"00\",\"insuranceType\":1,"
        "\"courierCode\":\"idx\",\"payment\":{\"type\":\"PAYMENT_TYPE_COD\"},\"orderType\":0,"
        "\"waValidation\":true,\"items\":[{\"sku\":\"BAT-AA-001-01\",\"quantity\":\"1\"}]}";

static ProtobufCMessage *create_req; /* CREATE_JSON, decoded once */

/* Slot i's CreateOrder under key; service_code varies the request under one key. */
static void
create(int i, const char *key, const char *service_code, int64_t deadline_ms)
{
	Shipgate__V1__CreateOrderRequest *co = (void *)create_req;
	char *keep = co->service_code;
	co->service_code = (char *)service_code;
	start(i, "CreateOrder", create_req, deadline_ms, key);
	co->service_code = keep;
}

static int
code(const Shipgate__V1__RpcReply *r)
{
	return r && r->status ? (int)r->status->code : -1;
}

static const char *
reason(const Shipgate__V1__RpcReply *r)
{
	return r && r->status && r->status->detail ? r->status->detail->reason : "";
}

/* The reply's payload decoded as desc (free with protobuf_c_message_free_unpacked). */
static ProtobufCMessage *
payload(const Shipgate__V1__RpcReply *r, const ProtobufCMessageDescriptor *d)
{
	if (r == NULL || r->payload.data == NULL)
		return NULL;
	return protobuf_c_message_unpack(d, NULL, r->payload.len, r->payload.data);
}

/* ------------------------------------------------------------------ the cases */

#define BOSCOD    SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD
#define FUUFFY    SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY
#define TOKEN_OK  "{\"access_token\":\"tok-1\",\"token_type\":\"Bearer\",\"expires_in\":3600}"
#define TOKEN_OK2 "{\"access_token\":\"tok-2\",\"token_type\":\"Bearer\",\"expires_in\":3600}"

static void
test_health(void)
{
	Shipgate__V1__HealthRequest h = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	int before = sent_count();
	start(0, "Health", &h.base, 1000, NULL);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 0);
	CHECK_STR(r ? r->request_id : NULL, "gw-test");
	Shipgate__V1__HealthResponse *hr =
	        (void *)payload(r, &shipgate__v1__health_response__descriptor);
	CHECK(hr != NULL && hr->n_providers == 4 && hr->in_flight == 1 &&
	      hr->status == SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING);
	if (hr)
		protobuf_c_message_free_unpacked(&hr->base, NULL);
	CHECK_INT(sent_count(), before); /* never upstream */
	slot_end(0);
}

/* A miss goes upstream once; identical calls meanwhile wait for it (singleflight); later
 * ones are hits; bypass_cache goes upstream again and refreshes the stored answer. */
static void
test_cache(void)
{
	int n0 = sent_count();
	track(0, BOSCOD, "BOS123", false, 5000);
	track(1, BOSCOD, "BOS123", false, 5000);
	CHECK_INT(sent_count(), n0 + 1);
	CHECK(strstr(up.req[n0].url, "BOS123") != NULL);
	CHECK(!is_sent(0) && !is_sent(1));
	complete(n0, SG_OK, 200, doc_boscod);
	for (int i = 0; i < 2; i++) {
		Shipgate__V1__RpcReply *r = wait_reply(i);
		CHECK_INT(code(r), 0);
		Shipgate__V1__TrackResponse *t =
		        (void *)payload(r, &shipgate__v1__track_response__descriptor);
		CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
		/* the owner's answer is its own; the waiter got the same bytes */
		CHECK(t != NULL && (t->cache == NULL || !t->cache->hit));
		if (t)
			protobuf_c_message_free_unpacked(&t->base, NULL);
		slot_end(i);
	}
	/* a hit: answered at once, nothing sent, cache.hit set */
	track(2, BOSCOD, "BOS123", false, 5000);
	Shipgate__V1__RpcReply *r = wait_reply(2);
	CHECK_INT(code(r), 0);
	Shipgate__V1__TrackResponse *t =
	        (void *)payload(r, &shipgate__v1__track_response__descriptor);
	CHECK(t != NULL && t->cache != NULL && t->cache->hit && !t->cache->stale);
	CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	CHECK_INT(sent_count(), n0 + 1);
	slot_end(2);
	/* bypass: upstream again */
	track(3, BOSCOD, "BOS123", true, 5000);
	CHECK_INT(sent_count(), n0 + 2);
	complete(n0 + 1, SG_OK, 200, doc_boscod);
	CHECK_INT(code(wait_reply(3)), 0);
	slot_end(3);
	/* a failed miss is not stored: the next call goes upstream */
	track(4, BOSCOD, "BOS-FAIL", false, 5000);
	complete(n0 + 2, SG_OK, 503, "{\"message\":\"down\"}");
	r = wait_reply(4);
	CHECK_INT(code(r), 14);
	CHECK(r && r->status && r->status->detail &&
	      r->status->detail->upstream_http_status == 503);
	slot_end(4);
	track(4, BOSCOD, "BOS-FAIL", false, 5000);
	CHECK_INT(sent_count(), n0 + 4);
	complete(n0 + 3, SG_EUP_CONNECT, 0, NULL);
	r = wait_reply(4);
	CHECK_INT(code(r), 14);
	CHECK_STR(reason(r), "UPSTREAM_UNREACHABLE");
	slot_end(4);
}

/* One key, one POST: a second call with the key waits for the owner and gets its answer
 * (replayed); later calls get the stored answer; another request under the key is refused. */
static void
test_idempotency(void)
{
	int n0 = sent_count();
	create(0, "key-1", "00", 5000);
	create(1, "key-1", "00", 5000);
	CHECK_INT(sent_count(), n0 + 1);
	CHECK_STR(up.req[n0].method, "POST");
	complete(n0, SG_OK, 200, doc_create);
	for (int i = 0; i < 2; i++) {
		Shipgate__V1__RpcReply *r = wait_reply(i);
		CHECK_INT(code(r), 0);
		Shipgate__V1__CreateOrderResponse *co =
		        (void *)payload(r, &shipgate__v1__create_order_response__descriptor);
		CHECK(co != NULL && co->replayed == (i == 1));
		if (co)
			protobuf_c_message_free_unpacked(&co->base, NULL);
		slot_end(i);
	}
	create(2, "key-1", "00", 5000);
	Shipgate__V1__RpcReply *r = wait_reply(2);
	CHECK_INT(code(r), 0);
	Shipgate__V1__CreateOrderResponse *co =
	        (void *)payload(r, &shipgate__v1__create_order_response__descriptor);
	CHECK(co != NULL && co->replayed);
	if (co)
		protobuf_c_message_free_unpacked(&co->base, NULL);
	slot_end(2);
	create(3, "key-1", "01", 5000);
	r = wait_reply(3);
	CHECK_INT(code(r), 9);
	CHECK_STR(reason(r), "IDEMPOTENCY_KEY_REUSED");
	slot_end(3);
	CHECK_INT(sent_count(), n0 + 1);

	/* no key, a bad key: refused before anything is sent */
	create(4, NULL, "00", 5000);
	CHECK_INT(code(wait_reply(4)), 3);
	slot_end(4);
	create(4, "bad key", "00", 5000);
	CHECK_INT(code(wait_reply(4)), 3);
	slot_end(4);
	CHECK_INT(sent_count(), n0 + 1);

	/* sent, no answer: the outcome is unknown, and stays so under the key */
	create(5, "key-2", "00", 5000);
	complete(n0 + 1, SG_EUP_BROKEN, 0, NULL);
	r = wait_reply(5);
	CHECK_INT(code(r), 2);
	CHECK_STR(reason(r), "OUTCOME_UNKNOWN");
	CHECK(r && r->status && r->status->detail && !r->status->detail->retryable);
	slot_end(5);
	create(5, "key-2", "00", 5000);
	r = wait_reply(5);
	CHECK_STR(reason(r), "OUTCOME_UNKNOWN");
	slot_end(5);
	CHECK_INT(sent_count(), n0 + 2);

	/* nothing sent (connect refused), or refused by the provider (4xx): the key is released
	 * and a retry goes upstream again */
	create(6, "key-3", "00", 5000);
	complete(n0 + 2, SG_EUP_CONNECT, 0, NULL);
	CHECK_STR(reason(wait_reply(6)), "UPSTREAM_UNREACHABLE");
	slot_end(6);
	create(6, "key-3", "00", 5000);
	CHECK_INT(sent_count(), n0 + 4);
	complete(n0 + 3, SG_OK, 400, "{\"message\":\"bad form\"}");
	CHECK_INT(code(wait_reply(6)), 3);
	slot_end(6);
	create(6, "key-3", "00", 5000);
	CHECK_INT(sent_count(), n0 + 5);
	complete(n0 + 4, SG_OK, 200, doc_create);
	CHECK_INT(code(wait_reply(6)), 0);
	slot_end(6);

	/* a caller behind the owner gives up at its own deadline; the owner carries on */
	create(7, "key-4", "00", 5000);
	create(8, "key-4", "00", 150);
	r = wait_reply(8);
	CHECK_INT(code(r), 4);
	CHECK(r && r->status && strstr(r->status->message, "same call") != NULL);
	slot_end(8);
	CHECK(!is_sent(7));
	complete(n0 + 5, SG_OK, 200, doc_create);
	CHECK_INT(code(wait_reply(7)), 0);
	slot_end(7);
	create(8, "key-4", "00", 5000);
	r = wait_reply(8);
	co = (void *)payload(r, &shipgate__v1__create_order_response__descriptor);
	CHECK(co != NULL && co->replayed);
	if (co)
		protobuf_c_message_free_unpacked(&co->base, NULL);
	slot_end(8);
	CHECK_INT(sent_count(), n0 + 6);
}

/* Fuuffy fetches its bearer token: one fetch for the calls that need it, the token cached for
 * the next; a 401 drops it and retries the call once with a fresh one. */
static void
test_auth(void)
{
	int n0 = sent_count();
	track(0, FUUFFY, "SF7444700508450", false, 5000);
	track(1, FUUFFY, "SF7444700508451", false, 5000);
	CHECK_INT(sent_count(), n0 + 1); /* one token fetch; the second call waits for it */
	CHECK_STR(up.req[n0].method, "POST");
	CHECK(strstr(up.req[n0].url, "/auth/token") != NULL);
	complete(n0, SG_OK, 200, TOKEN_OK);
	CHECK_INT(sent_count(), n0 + 3); /* both calls went on, with the token */
	CHECK_STR(up.req[n0 + 1].auth, "Bearer tok-1");
	CHECK_STR(up.req[n0 + 2].auth, "Bearer tok-1");
	complete(n0 + 1, SG_OK, 200, doc_fuuffy);
	complete(n0 + 2, SG_OK, 200, doc_fuuffy);
	CHECK_INT(code(wait_reply(0)), 0);
	CHECK_INT(code(wait_reply(1)), 0);
	slot_end(0);
	slot_end(1);

	/* cached: straight to the call */
	track(2, FUUFFY, "SF7444700508452", false, 5000);
	CHECK_INT(sent_count(), n0 + 4);
	CHECK_STR(up.req[n0 + 3].auth, "Bearer tok-1");
	/* the provider revoked it: 401, the token is dropped, fetched again, the call retried */
	complete(n0 + 3, SG_OK, 401, "{\"message\":\"token expired\"}");
	CHECK_INT(sent_count(), n0 + 5);
	CHECK(strstr(up.req[n0 + 4].url, "/auth/token") != NULL);
	complete(n0 + 4, SG_OK, 200, TOKEN_OK2);
	CHECK_INT(sent_count(), n0 + 6);
	CHECK_STR(up.req[n0 + 5].auth, "Bearer tok-2");
	complete(n0 + 5, SG_OK, 200, doc_fuuffy);
	CHECK_INT(code(wait_reply(2)), 0);
	slot_end(2);

	/* a second 401 in a row is the answer: no loop */
	track(3, FUUFFY, "SF7444700508453", false, 5000);
	complete(n0 + 6, SG_OK, 401, "{\"message\":\"no\"}");
	complete(n0 + 7, SG_OK, 200, TOKEN_OK);
	complete(n0 + 8, SG_OK, 401, "{\"message\":\"still no\"}");
	Shipgate__V1__RpcReply *r = wait_reply(3);
	CHECK_INT(code(r), 16);
	slot_end(3);
	CHECK_INT(sent_count(), n0 + 9);

	/* the fetch itself fails: every queued call fails with its status, nothing cached */
	track(4, FUUFFY, "SF7444700508454", false, 5000);
	complete(n0 + 9, SG_OK, 401, "{\"message\":\"token expired\"}"); /* tok-1 dropped */
	CHECK(strstr(up.req[n0 + 10].url, "/auth/token") != NULL);
	track(5, FUUFFY, "SF7444700508455", false, 5000);
	CHECK_INT(sent_count(), n0 + 11);
	complete(n0 + 10, SG_EUP_CONNECT, 0, NULL);
	for (int i = 4; i <= 5; i++) {
		r = wait_reply(i);
		CHECK_STR(reason(r), "UPSTREAM_UNREACHABLE");
		CHECK(r && r->status && strstr(r->status->message, "token") != NULL);
		slot_end(i);
	}
	CHECK_INT(sent_count(), n0 + 11);

	/* a call queued behind a slow fetch gives up at its own deadline */
	track(6, FUUFFY, "SF7444700508456", false, 5000);
	track(7, FUUFFY, "SF7444700508457", false, 150);
	r = wait_reply(7);
	CHECK_INT(code(r), 4);
	CHECK(r && r->status && strstr(r->status->message, "token") != NULL);
	slot_end(7);
	complete(n0 + 11, SG_OK, 200, TOKEN_OK);
	complete(n0 + 12, SG_OK, 200, doc_fuuffy);
	CHECK_INT(code(wait_reply(6)), 0);
	slot_end(6);
	CHECK_INT(sent_count(), n0 + 13);
}

/* A backend that refuses at once: the call is answered, and nothing stays in flight. */
static void
test_refused_submit(void)
{
	pthread_mutex_lock(&up.mtx);
	up.refuse = SG_ESHUTDOWN;
	pthread_mutex_unlock(&up.mtx);
	track(0, BOSCOD, "BOS-REFUSED", false, 5000);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 14);
	CHECK_STR(reason(r), "SHUTTING_DOWN");
	slot_end(0);
	pthread_mutex_lock(&up.mtx);
	up.refuse = SG_OK;
	pthread_mutex_unlock(&up.mtx);
	CHECK(sg_gateway_wait_upstream(gw, sg_now_ms()));
}

/* Draining: Health says NOT_SERVING, other calls are refused; the idle wait sees every call
 * ended. */
static void
test_drain(void)
{
	CHECK(sg_gateway_wait_upstream(gw, sg_now_ms() + 1000));
	CHECK(sg_gateway_wait_idle(gw, sg_now_ms() + 1000));
	sg_gateway_drain(gw);
	track(0, BOSCOD, "BOS123", false, 5000);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 14);
	CHECK_STR(reason(r), "SHUTTING_DOWN");
	slot_end(0);
	Shipgate__V1__HealthRequest h = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	start(1, "Health", &h.base, 1000, NULL);
	r = wait_reply(1);
	Shipgate__V1__HealthResponse *hr =
	        (void *)payload(r, &shipgate__v1__health_response__descriptor);
	CHECK(hr != NULL &&
	      hr->status ==
	              SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING);
	if (hr)
		protobuf_c_message_free_unpacked(&hr->base, NULL);
	slot_end(1);
	CHECK(sg_gateway_wait_idle(gw, sg_now_ms()));
}

int
main(void)
{
	char err[256];
	sgc_pbjson_error perr;
	const sg_upstream_backend backend = {fake_submit, NULL};
	const sg_transport tr = {fake_reply_buf, fake_send};

	sg_json_use_arenas();
	doc_boscod = slurp("boscod_tracking.json");
	doc_fuuffy = slurp("fuuffy_tracking.json");
	doc_create = slurp("bosonline_create_order.json");
	const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, "CreateOrder");
	CHECK_INT(sgc_pbjson_decode(CREATE_JSON, strlen(CREATE_JSON), m->input, NULL, 0,
	                            &create_req, &perr),
	          0);
	sg_config_defaults(&cfg);
	CHECK_INT(sg_config_validate(&cfg, err, sizeof(err)), 0);
	CHECK_INT(sg_gateway_new(&gw, &cfg, &backend, &tr, NCALLS, err, sizeof(err)), SG_OK);
	if (gw == NULL || create_req == NULL)
		TEST_MAIN_END();
	for (int i = 0; i < NCALLS; i++)
		sg_call_init(gw, &slots[i].call, &slots[i]);

	test_health();
	test_cache();
	test_idempotency();
	test_auth();
	test_refused_submit();
	test_drain();

	sg_gateway_stop(gw);
	for (int i = 0; i < NCALLS; i++)
		sg_call_fini(&slots[i].call);
	sg_gateway_free(gw);
	protobuf_c_message_free_unpacked(create_req, NULL);
	free(doc_boscod);
	free(doc_fuuffy);
	free(doc_create);
	TEST_MAIN_END();
}
