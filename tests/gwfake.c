/*
 * gwfake.c - the fake transport and upstream of gwfake.h.
 */
#include "gwfake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "create_order.h"
#include "pbjson.h"
#include "providers/common.h"
#include "testutil.h"

/* ------------------------------------------------------------------ the fake upstream */

struct fake_up up = {.mtx = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

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
	s->cb = cb;
	s->arg = arg;
	pthread_cond_broadcast(&up.cv);
	pthread_mutex_unlock(&up.mtx);
	return SG_OK;
}

int
sent_count(void)
{
	pthread_mutex_lock(&up.mtx);
	int n = up.nreq;
	pthread_mutex_unlock(&up.mtx);
	return n;
}

/* Completes request i as the backend thread would: an HTTP answer (err SG_OK) or an error. */
void
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

struct slot slots[NCALLS];
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
	if (s->sent) { /* one reply per call, never two: slot_end checks (on the test's thread) */
		s->doubled++;
		pthread_mutex_unlock(&tr_mtx);
		return;
	}
	s->reply = s->buf ? shipgate__v1__rpc_reply__unpack(NULL, s->len, s->buf) : NULL;
	s->sent = true;
	pthread_cond_broadcast(&tr_cv);
	pthread_mutex_unlock(&tr_mtx);
}

/* Waits (bounded) until slot i's reply was sent; returns it (NULL on timeout). */
Shipgate__V1__RpcReply *
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

bool
is_sent(int i)
{
	pthread_mutex_lock(&tr_mtx);
	bool s = slots[i].sent;
	pthread_mutex_unlock(&tr_mtx);
	return s;
}

/* Frees slot i's reply and ends its call, so that the slot can be used again. */
void
slot_end(int i)
{
	struct slot *s = &slots[i];
	pthread_mutex_lock(&tr_mtx);
	CHECK_INT(s->doubled, 0);
	s->doubled = 0;
	pthread_mutex_unlock(&tr_mtx);
	if (s->reply != NULL)
		shipgate__v1__rpc_reply__free_unpacked(s->reply, NULL);
	s->reply = NULL;
	free(s->buf);
	s->buf = NULL;
	s->sent = false;
	sg_call_end(&s->call);
}

/* ------------------------------------------------------------------ requests */

sg_gateway *gw;
sg_config cfg;
char *doc_boscod, *doc_fuuffy, *doc_create;

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
const char *gwfake_token;
int gwfake_peer_local = 1; /* an in-process caller, as inproc:// */
long gwfake_peer_uid = -1;
int gwfake_peer_caller = 0;
void (*gwfake_configure)(sg_config *cfg);

void
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
	char bearer[300];
	Shipgate__V1__RpcRequest__MetadataEntry md =
	        SHIPGATE__V1__RPC_REQUEST__METADATA_ENTRY__INIT;
	Shipgate__V1__RpcRequest__MetadataEntry *mds[] = {&md};
	if (gwfake_token != NULL) {
		snprintf(bearer, sizeof(bearer), "Bearer %s", gwfake_token);
		md.key = "authorization";
		md.value = bearer;
		env.metadata = mds;
		env.n_metadata = 1;
	}
	size_t n = shipgate__v1__rpc_request__pack(&env, ebuf);
	slots[i].call.peer_local = gwfake_peer_local;
	slots[i].call.peer_uid = gwfake_peer_uid;
	slots[i].call.peer_caller = gwfake_peer_caller;
	sg_call_start(&slots[i].call, ebuf, n);
}

void
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

ProtobufCMessage *create_req; /* CREATE_JSON, decoded once */

/* Slot i's CreateOrder under key; service_code varies the request under one key. */
void
create(int i, const char *key, const char *service_code, int64_t deadline_ms)
{
	Shipgate__V1__CreateOrderRequest *co = (void *)create_req;
	char *keep = co->service_code;
	co->service_code = (char *)service_code;
	start(i, "CreateOrder", create_req, deadline_ms, key);
	co->service_code = keep;
}

int
code(const Shipgate__V1__RpcReply *r)
{
	return r && r->status ? (int)r->status->code : -1;
}

const char *
reason(const Shipgate__V1__RpcReply *r)
{
	return r && r->status && r->status->detail ? r->status->detail->reason : "";
}

/* The reply's payload decoded as desc (free with protobuf_c_message_free_unpacked). */
ProtobufCMessage *
payload(const Shipgate__V1__RpcReply *r, const ProtobufCMessageDescriptor *d)
{
	if (r == NULL || r->payload.data == NULL)
		return NULL;
	return protobuf_c_message_unpack(d, NULL, r->payload.len, r->payload.data);
}

bool
gwfake_start(void)
{
	char err[256];
	sgc_pbjson_error perr;
	static const sg_upstream_backend backend = {fake_submit, NULL};
	static const sg_transport tr = {fake_reply_buf, fake_send};

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
	cfg.idem_store = "memory"; /* answers inline: the steps are checked one by one */
	if (gwfake_configure != NULL)
		gwfake_configure(&cfg);
	CHECK_INT(sg_config_validate(&cfg, err, sizeof(err)), 0);
	CHECK_INT(sg_gateway_new(&gw, &cfg, &backend, &tr, NCALLS, err, sizeof(err)), SG_OK);
	if (gw == NULL || create_req == NULL)
		return false;
	for (int i = 0; i < NCALLS; i++)
		sg_call_init(gw, &slots[i].call, &slots[i]);

	return true;
}

void
gwfake_stop(void)
{
}
