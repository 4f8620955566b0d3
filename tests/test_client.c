/*
 * test_client.c - the C client (clients/c) against fake gateways started in this process.
 *
 * A fake gateway is an nng rep0 socket listening on inproc://, tcp://127.0.0.1:<random> or
 * ipc://<temp dir>, with one thread that records every RpcRequest it receives and answers
 * with a canned RpcReply chosen by its `fake` settings. Every wait is bounded; the whole file
 * runs in a few seconds.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "shipgate/client.h"
#include "testutil.h"

/* ------------------------------------------------------------------ the fake gateway */

#define FAKE_MAX_SEEN 64

typedef struct fake {
	nng_socket sock; /* rep0 */
	char url[256];   /* where it listens (the bound port filled in for tcp) */
	nng_thread *thr; /* the answering loop */
	nng_mtx *mtx;    /* guards everything below */
	/* ---- behaviour ---- */
	int fail_first;      /* answer UNAVAILABLE to the first N requests */
	int64_t retry_after; /* ErrorDetail.retry_after_ms of those answers */
	bool silent;         /* never answer */
	bool drop;           /* close the connection the request came on, without answering */
	bool deadline;       /* answer DEADLINE_EXCEEDED / DEADLINE_EXPIRED (the gateway's own) */
	bool not_found;      /* answer NOT_FOUND with a full ErrorDetail */
	bool garbage;        /* answer bytes that are not an RpcReply */
	bool wrong_id;       /* answer with another request_id */
	bool bad_payload;    /* answer OK with a payload that is not the method's response */
	size_t big;          /* OK Health replies carry a version string this long */
	bool health_ok;      /* answer Health normally whatever the above say, and count it in
	                        n_health only: the keyed calls' fleet probe gets through */
	const char *fleet;   /* Health says scope "fleet" with this fleet_id; NULL: "node" */
	bool unknown;        /* answer UNKNOWN / OUTCOME_UNKNOWN (the gateway's own) */
	int drop_calls;      /* close the connection on the next N requests other than Health */
	/* ---- record ---- */
	int n;                            /* requests received (Health with health_ok aside) */
	int n_health;                     /* Health requests answered because of health_ok */
	char methods[FAKE_MAX_SEEN][64];  /* their methods */
	char keys[FAKE_MAX_SEEN][64];     /* their idempotency keys */
	char ids[FAKE_MAX_SEEN][64];      /* their request ids */
	int64_t deadlines[FAKE_MAX_SEEN]; /* their deadline_ms */
	Shipgate__V1__RpcRequest *last;   /* the last request, unpacked */
} fake;

static void
set_status(Shipgate__V1__RpcReply *rep, Shipgate__V1__Status *st, Shipgate__V1__ErrorDetail *d,
           Shipgate__V1__Code code)
{
	st->code = code;
	st->detail = d;
	rep->status = st;
}

/* Builds the reply to req as f is set up to answer; NULL: answer nothing. Lock held. */
static nng_msg *
fake_answer(fake *f, const Shipgate__V1__RpcRequest *req)
{
	Shipgate__V1__RpcReply rep = SHIPGATE__V1__RPC_REPLY__INIT;
	Shipgate__V1__Status st = SHIPGATE__V1__STATUS__INIT;
	Shipgate__V1__ErrorDetail d = SHIPGATE__V1__ERROR_DETAIL__INIT;
	Shipgate__V1__FieldViolation v1 = SHIPGATE__V1__FIELD_VIOLATION__INIT;
	Shipgate__V1__FieldViolation v2 = SHIPGATE__V1__FIELD_VIOLATION__INIT;
	Shipgate__V1__FieldViolation *vs[2] = {&v1, &v2};
	/* possible payloads */
	Shipgate__V1__TrackResponse tr = SHIPGATE__V1__TRACK_RESPONSE__INIT;
	Shipgate__V1__Tracking t = SHIPGATE__V1__TRACKING__INIT;
	Shipgate__V1__TrackingEvent e1 = SHIPGATE__V1__TRACKING_EVENT__INIT;
	Shipgate__V1__TrackingEvent e2 = SHIPGATE__V1__TRACKING_EVENT__INIT;
	Shipgate__V1__TrackingEvent *evs[2] = {&e1, &e2};
	Shipgate__V1__HealthResponse hr = SHIPGATE__V1__HEALTH_RESPONSE__INIT;
	Shipgate__V1__Provider provs[2] = {SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD,
	                                   SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY};
	Shipgate__V1__CreateOrderResponse cr = SHIPGATE__V1__CREATE_ORDER_RESPONSE__INIT;
	Google__Protobuf__StringValue awb = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
	Shipgate__V1__GetOrderResponse gr = SHIPGATE__V1__GET_ORDER_RESPONSE__INIT;
	Shipgate__V1__Order order = SHIPGATE__V1__ORDER__INIT;
	Shipgate__V1__TrackRequest *treq = NULL;
	ProtobufCMessage *payload = NULL;
	uint8_t *pbuf = NULL;
	char *bigv = NULL;
	nng_msg *m = NULL;
	size_t n;

	bool probe = f->health_ok && strcmp(req->method, SHIPGATE_METHOD_HEALTH) == 0;

	if (f->garbage && !probe) {
		nng_msg_alloc(&m, 0);
		nng_msg_append(m, "\xff\xff\xff", 3);
		return m;
	}
	rep.request_id = f->wrong_id && !probe ? "someone-else" : req->request_id;
	if (f->bad_payload && !probe) {
		set_status(&rep, &st, NULL, SHIPGATE__V1__CODE__OK);
		rep.payload.data = (uint8_t *)"\xff\xff\xff";
		rep.payload.len = 3;
	} else if (!probe && f->n <= f->fail_first) {
		set_status(&rep, &st, &d, SHIPGATE__V1__CODE__UNAVAILABLE);
		st.message = "provider unavailable";
		d.reason = "UPSTREAM_UNAVAILABLE";
		d.retryable = 1;
		d.retry_after_ms = f->retry_after;
	} else if (!probe && f->unknown) {
		set_status(&rep, &st, &d, SHIPGATE__V1__CODE__UNKNOWN);
		st.message = "the outcome of the first call with this key is unknown";
		d.reason = "OUTCOME_UNKNOWN";
	} else if (!probe && f->deadline) {
		set_status(&rep, &st, &d, SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
		st.message = "deadline exceeded";
		d.reason = "DEADLINE_EXPIRED";
		d.retryable = 1;
	} else if (!probe && f->not_found) {
		set_status(&rep, &st, &d, SHIPGATE__V1__CODE__NOT_FOUND);
		st.message = "order not found";
		d.reason = "UPSTREAM_NOT_FOUND";
		d.upstream_http_status = 404;
		d.provider = "boscod";
		d.provider_code = "E404";
		d.provider_message = "Order tidak ditemukan";
		v1.field = "order_id";
		v1.description = "no such order";
		v2.field = "receiver.phone";
		v2.description = "too short";
		d.n_field_violations = 2;
		d.field_violations = vs;
		d.retry_after_ms = 1500;
	} else if (strcmp(req->method, SHIPGATE_METHOD_TRACK) == 0) {
		set_status(&rep, &st, NULL, SHIPGATE__V1__CODE__OK);
		treq = shipgate__v1__track_request__unpack(NULL, req->payload.len,
		                                           req->payload.data);
		t.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
		t.order_id = treq != NULL ? treq->order_id : "?";
		t.status = SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_DELIVERED;
		t.terminal = 1;
		e1.status = SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_PICKED_UP;
		e1.time_unix = 1717290000;
		e1.location = "Jakarta";
		e2.status = SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_DELIVERED;
		e2.time_unix = 1717376400;
		t.n_events = 2;
		t.events = evs;
		tr.tracking = &t;
		payload = &tr.base;
	} else if (strcmp(req->method, SHIPGATE_METHOD_HEALTH) == 0) {
		set_status(&rep, &st, NULL, SHIPGATE__V1__CODE__OK);
		hr.idempotency_scope = f->fleet != NULL ? "fleet" : "node";
		hr.fleet_id = f->fleet != NULL ? (char *)f->fleet : "";
		hr.status = SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING;
		hr.version = "fake";
		if (f->big > 0 && (bigv = malloc(f->big + 1)) != NULL) {
			memset(bigv, 'v', f->big);
			bigv[f->big] = '\0';
			hr.version = bigv;
		}
		hr.n_providers = 2;
		hr.providers = provs;
		payload = &hr.base;
	} else if (strcmp(req->method, SHIPGATE_METHOD_CREATE_ORDER) == 0) {
		set_status(&rep, &st, NULL, SHIPGATE__V1__CODE__OK);
		awb.value = "AWB-1";
		cr.awb = &awb;
		payload = &cr.base;
	} else if (strcmp(req->method, SHIPGATE_METHOD_GET_ORDER) == 0) {
		set_status(&rep, &st, NULL, SHIPGATE__V1__CODE__OK);
		order.id = "ORD-1";
		gr.order = &order;
		payload = &gr.base;
	} else {
		set_status(&rep, &st, &d, SHIPGATE__V1__CODE__UNIMPLEMENTED);
		st.message = "unknown method";
		d.reason = "UNKNOWN_METHOD";
	}
	if (payload != NULL) {
		rep.payload.len = protobuf_c_message_get_packed_size(payload);
		pbuf = malloc(rep.payload.len + 1);
		protobuf_c_message_pack(payload, pbuf);
		rep.payload.data = pbuf;
	}
	n = shipgate__v1__rpc_reply__get_packed_size(&rep);
	if (nng_msg_alloc(&m, n) == 0)
		shipgate__v1__rpc_reply__pack(&rep, nng_msg_body(m));
	if (treq != NULL)
		shipgate__v1__track_request__free_unpacked(treq, NULL);
	free(pbuf);
	free(bigv);
	return m;
}

static void
fake_loop(void *arg)
{
	fake *f = arg;

	for (;;) {
		Shipgate__V1__RpcRequest *req;
		nng_msg *m, *out = NULL;

		if (nng_recvmsg(f->sock, &m, 0) != 0)
			return; /* closed */
		req = shipgate__v1__rpc_request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		nng_pipe pipe = nng_msg_get_pipe(m);
		nng_msg_free(m);
		if (req == NULL)
			continue;
		nng_mtx_lock(f->mtx);
		if (f->health_ok && strcmp(req->method, SHIPGATE_METHOD_HEALTH) == 0) {
			f->n_health++;
			out = fake_answer(f, req);
			shipgate__v1__rpc_request__free_unpacked(req, NULL);
			nng_mtx_unlock(f->mtx);
			if (out != NULL && nng_sendmsg(f->sock, out, 0) != 0)
				nng_msg_free(out);
			continue;
		}
		if (f->n < FAKE_MAX_SEEN) {
			snprintf(f->methods[f->n], 64, "%s", req->method);
			snprintf(f->keys[f->n], 64, "%s", req->idempotency_key);
			snprintf(f->ids[f->n], 64, "%s", req->request_id);
			f->deadlines[f->n] = req->deadline_ms;
		}
		f->n++;
		bool drop = f->drop || f->drop_calls > 0;
		if (f->drop_calls > 0)
			f->drop_calls--;
		if (drop) /* like a gateway killed mid-call; after the request is counted */
			nng_pipe_close(pipe);
		if (!f->silent && !drop)
			out = fake_answer(f, req);
		if (f->last != NULL)
			shipgate__v1__rpc_request__free_unpacked(f->last, NULL);
		f->last = req;
		nng_mtx_unlock(f->mtx);
		if (out != NULL && nng_sendmsg(f->sock, out, 0) != 0)
			nng_msg_free(out);
	}
}

/* Starts a fake listening on url ("tcp://127.0.0.1:0" gets a free port). */
static fake *
fake_start(const char *url)
{
	fake *f = calloc(1, sizeof(*f));
	nng_listener l;
	int port = 0;

	nng_mtx_alloc(&f->mtx);
	if (nng_rep0_open(&f->sock) != 0 ||
	    nng_socket_set_size(f->sock, NNG_OPT_RECVMAXSZ, 1 << 20) ||
	    nng_listen(f->sock, url, &l, 0) != 0) {
		fprintf(stderr, "fake: cannot listen on %s\n", url);
		abort();
	}
	snprintf(f->url, sizeof(f->url), "%s", url);
	if (strncmp(url, "tcp://", 6) == 0 &&
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
		snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%d", port);
	nng_thread_create(&f->thr, fake_loop, f);
	return f;
}

static int
fake_count(fake *f)
{
	int n;
	nng_mtx_lock(f->mtx);
	n = f->n;
	nng_mtx_unlock(f->mtx);
	return n;
}

static int
fake_health(fake *f)
{
	int n;
	nng_mtx_lock(f->mtx);
	n = f->n_health;
	nng_mtx_unlock(f->mtx);
	return n;
}

static void
fake_stop(fake *f)
{
	nng_close(f->sock);
	nng_thread_destroy(f->thr);
	if (f->last != NULL)
		shipgate__v1__rpc_request__free_unpacked(f->last, NULL);
	nng_mtx_free(f->mtx);
	free(f);
}

/* ------------------------------------------------------------------ helpers */

static shipgate_client *
client_for(const char *const *urls, size_t n, int max_attempts)
{
	shipgate_client_opts o = {0};
	shipgate_client *c = NULL;

	o.urls = urls;
	o.n_urls = n;
	o.default_deadline_ms = 3000;
	o.retry.max_attempts = max_attempts;
	o.retry.backoff_base_ms = 10;
	o.retry.backoff_cap_ms = 40;
	CHECK_INT(shipgate_client_new(&c, &o), SHIPGATE_OK);
	return c;
}

/* Waits (bounded) until the client has n live connections. */
static void
wait_connected(shipgate_client *c, size_t n)
{
	for (int i = 0; i < 200 && shipgate_client_connected(c) < n; i++)
		nng_msleep(10);
	CHECK_INT(shipgate_client_connected(c), n);
}

static int
track(shipgate_client *c, const char *order, const shipgate_call_opts *o,
      Shipgate__V1__TrackResponse **rep, shipgate_status *st)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = (char *)order;
	return shipgate_track(c, &req, o, rep, st);
}

static int
create_order(shipgate_client *c, const shipgate_call_opts *o, shipgate_status *st)
{
	Shipgate__V1__CreateOrderRequest req = SHIPGATE__V1__CREATE_ORDER_REQUEST__INIT;
	Shipgate__V1__CreateOrderResponse *rep = NULL;
	int code;

	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE;
	req.form_id = "form-1";
	code = shipgate_create_order(c, &req, o, &rep, st);
	if (rep != NULL) {
		CHECK_STR(rep->awb != NULL ? rep->awb->value : NULL, "AWB-1");
		shipgate__v1__create_order_response__free_unpacked(rep, NULL);
	}
	return code;
}

static int
health(shipgate_client *c, const shipgate_call_opts *o, shipgate_status *st)
{
	Shipgate__V1__HealthRequest req = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	Shipgate__V1__HealthResponse *rep = NULL;
	int code = shipgate_health(c, &req, o, &rep, st);

	if (rep != NULL)
		shipgate__v1__health_response__free_unpacked(rep, NULL);
	return code;
}

/* ------------------------------------------------------------------ tests */

/* What goes into the envelope, and an OK reply decoded. */
static void
test_envelope_and_ok(void)
{
	fake *f = fake_start("inproc://env");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 1);
	shipgate_metadata md[] = {{"caller", "test_client"}, {"trace-id", "t-42"}};
	shipgate_call_opts o = {0};
	shipgate_status st = SHIPGATE_STATUS_INIT;
	Shipgate__V1__TrackResponse *rep = NULL;
	Shipgate__V1__TrackRequest *sent;

	o.deadline_ms = 2000;
	o.idempotency_key = "key-1";
	o.metadata = md;
	o.n_metadata = 2;
	o.request_id = "rid-1";
	CHECK_INT(track(c, "BOS123", &o, &rep, &st), 0);
	CHECK_INT(st.code, SHIPGATE__V1__CODE__OK);
	CHECK_INT(st.attempts, 1);
	CHECK_STR(st.request_id, "rid-1");
	CHECK(st.message == NULL && st.reason == NULL);
	CHECK(rep != NULL && rep->tracking != NULL);
	if (rep != NULL && rep->tracking != NULL) {
		CHECK_STR(rep->tracking->order_id, "BOS123");
		CHECK_INT(rep->tracking->n_events, 2);
		CHECK_INT(rep->tracking->events[1]->status,
		          SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_DELIVERED);
		CHECK_STR(rep->tracking->events[0]->location, "Jakarta");
	}
	shipgate__v1__track_response__free_unpacked(rep, NULL);

	nng_mtx_lock(f->mtx);
	CHECK_INT(f->n, 1);
	CHECK_STR(f->methods[0], "/shipgate.v1.Shipgate/Track");
	CHECK(f->deadlines[0] > 1500 && f->deadlines[0] <= 2000);
	CHECK_STR(f->keys[0], "key-1");
	CHECK_STR(f->ids[0], "rid-1");
	CHECK_INT(f->last->n_metadata, 2);
	if (f->last->n_metadata == 2) {
		CHECK_STR(f->last->metadata[0]->key, "caller");
		CHECK_STR(f->last->metadata[0]->value, "test_client");
		CHECK_STR(f->last->metadata[1]->key, "trace-id");
		CHECK_STR(f->last->metadata[1]->value, "t-42");
	}
	sent = shipgate__v1__track_request__unpack(NULL, f->last->payload.len,
	                                           f->last->payload.data);
	CHECK(sent != NULL && strcmp(sent->order_id, "BOS123") == 0 &&
	      sent->provider == SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD);
	shipgate__v1__track_request__free_unpacked(sent, NULL);
	nng_mtx_unlock(f->mtx);

	/* defaults: the client's deadline, a generated request id; the other method spellings */
	CHECK_INT(
	        shipgate_call(c, "shipgate.v1.Shipgate.Health",
	                      &(Shipgate__V1__HealthRequest)SHIPGATE__V1__HEALTH_REQUEST__INIT.base,
	                      &shipgate__v1__health_response__descriptor, NULL, NULL, &st),
	        0);
	CHECK_INT(
	        shipgate_call(c, "Health",
	                      &(Shipgate__V1__HealthRequest)SHIPGATE__V1__HEALTH_REQUEST__INIT.base,
	                      &shipgate__v1__health_response__descriptor, NULL, NULL, NULL),
	        0);
	nng_mtx_lock(f->mtx);
	CHECK_INT(f->n, 3);
	CHECK_STR(f->methods[1], SHIPGATE_METHOD_HEALTH);
	CHECK_STR(f->methods[2], SHIPGATE_METHOD_HEALTH);
	CHECK(f->deadlines[1] > 2500 && f->deadlines[1] <= 3000);
	CHECK_INT(strlen(f->ids[1]), 16);
	CHECK(strcmp(f->ids[1], f->ids[2]) != 0);
	CHECK_STR(st.request_id, f->ids[1]);
	CHECK_STR(f->keys[1], "");
	CHECK_INT(f->last->n_metadata, 0);
	nng_mtx_unlock(f->mtx);

	/* raw bytes in and out */
	{
		Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
		Shipgate__V1__TrackResponse *r;
		uint8_t buf[64];
		void *out = NULL;
		size_t n, outlen = 0;
		req.order_id = "RAW-1";
		n = shipgate__v1__track_request__pack(&req, buf);
		CHECK_INT(shipgate_call_raw(c, "Track", buf, n, NULL, &out, &outlen, &st), 0);
		r = shipgate__v1__track_response__unpack(NULL, outlen, out);
		CHECK(r != NULL && r->tracking != NULL &&
		      strcmp(r->tracking->order_id, "RAW-1") == 0);
		shipgate__v1__track_response__free_unpacked(r, NULL);
		shipgate_buf_free(out);
	}
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f);
}

/* A gateway error status arrives whole; it is not retried (NOT_FOUND). */
static void
test_error_status(void)
{
	fake *f = fake_start("inproc://notfound");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 3);
	shipgate_status st = SHIPGATE_STATUS_INIT, copy = SHIPGATE_STATUS_INIT;
	Shipgate__V1__TrackResponse *rep = (void *)1;

	f->not_found = true;
	CHECK_INT(track(c, "ERR-404", NULL, &rep, &st), SHIPGATE__V1__CODE__NOT_FOUND);
	CHECK(rep == NULL);
	CHECK_INT(st.code, SHIPGATE__V1__CODE__NOT_FOUND);
	CHECK_STR(st.message, "order not found");
	CHECK_STR(st.reason, "UPSTREAM_NOT_FOUND");
	CHECK(!st.retryable);
	CHECK(!st.local);
	CHECK_INT(st.upstream_http_status, 404);
	CHECK_STR(st.provider, "boscod");
	CHECK_STR(st.provider_code, "E404");
	CHECK_STR(st.provider_message, "Order tidak ditemukan");
	CHECK_INT(st.retry_after_ms, 1500);
	CHECK_INT(st.n_violations, 2);
	if (st.n_violations == 2) {
		CHECK_STR(st.violations[1].field, "receiver.phone");
		CHECK_STR(st.violations[1].description, "too short");
	}
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f), 1);
	CHECK_STR(shipgate_code_name(st.code), "NOT_FOUND");

	CHECK_INT(shipgate_status_copy(&copy, &st), SHIPGATE_OK);
	shipgate_status_fini(&st);
	CHECK_STR(copy.violations[0].field, "order_id");
	CHECK_STR(copy.provider, "boscod");
	CHECK_STR(copy.request_id, f->ids[0]);
	shipgate_status_fini(&copy);
	shipgate_status_fini(&copy); /* twice is fine */

	/* a method this client does not know is passed through */
	f->not_found = false;
	{
		Shipgate__V1__HealthRequest hq = SHIPGATE__V1__HEALTH_REQUEST__INIT;
		ProtobufCMessage *out = NULL;
		CHECK_INT(shipgate_call(c, "/other.v1.Svc/Do", &hq.base,
		                        &shipgate__v1__health_response__descriptor, NULL, &out,
		                        &st),
		          SHIPGATE__V1__CODE__UNIMPLEMENTED);
		CHECK_STR(f->methods[1], "/other.v1.Svc/Do");
		CHECK_INT(st.attempts, 1);
	}
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f);
}

/* Local argument checks: nothing is sent. */
static void
test_invalid_arguments(void)
{
	fake *f = fake_start("inproc://args");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 3);
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_metadata bad_md[] = {{"Caller", "x"}};
	shipgate_call_opts o = {0};
	Shipgate__V1__HealthRequest hq = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	ProtobufCMessage *out = NULL;
	shipgate_client *c2 = NULL;
	shipgate_client_opts co = {0};
	const char *bad_urls[] = {"foo://nowhere"};

	CHECK_INT(shipgate_call(c, "Nope", &hq.base, &shipgate__v1__health_response__descriptor,
	                        NULL, &out, &st),
	          SHIPGATE__V1__CODE__INVALID_ARGUMENT);
	CHECK_STR(st.reason, "CLIENT_INVALID_ARGUMENT");
	CHECK(st.local);
	CHECK_INT(st.attempts, 0);
	/* Track does not take a HealthRequest */
	CHECK_INT(shipgate_call(c, "Track", &hq.base, &shipgate__v1__track_response__descriptor,
	                        NULL, &out, &st),
	          SHIPGATE__V1__CODE__INVALID_ARGUMENT);
	CHECK(st.message != NULL && strstr(st.message, "shipgate.v1.TrackRequest") != NULL);
	o.metadata = bad_md;
	o.n_metadata = 1;
	CHECK_INT(health(c, &o, &st), SHIPGATE__V1__CODE__INVALID_ARGUMENT);
	CHECK(st.message != NULL && strstr(st.message, "Caller") != NULL);
	CHECK_INT(shipgate_call(c, "Health", NULL, &shipgate__v1__health_response__descriptor, NULL,
	                        &out, &st),
	          SHIPGATE__V1__CODE__INVALID_ARGUMENT);
	CHECK_INT(fake_count(f), 0);

	co.urls = bad_urls;
	co.n_urls = 1;
	CHECK_INT(shipgate_client_new(&c2, &co), SHIPGATE_EADDR);
	CHECK(c2 == NULL);
	co.retry.max_attempts = -1;
	CHECK_INT(shipgate_client_new(&c2, &co), SHIPGATE_EINVAL);
	CHECK_STR(shipgate_strerror(SHIPGATE_EADDR), "malformed URL or unsupported transport");
	shipgate_client_free(NULL);

	/* method names */
	{
		char buf[64];
		CHECK(shipgate_method_lookup("Track", buf, sizeof(buf)) != NULL);
		CHECK_STR(buf, SHIPGATE_METHOD_TRACK);
		CHECK(shipgate_method_lookup("shipgate.v1.Shipgate.CreateOrder", buf,
		                             sizeof(buf)) != NULL);
		CHECK_STR(buf, SHIPGATE_METHOD_CREATE_ORDER);
		CHECK(shipgate_method_lookup("/shipgate.v1.Shipgate/GetOrder", NULL, 0) != NULL);
		CHECK(shipgate_method_lookup("/shipgate.v1.Other/GetOrder", NULL, 0) == NULL);
		CHECK(shipgate_method_lookup("shipgate.v1.Shipgate/Track", NULL, 0) == NULL);
		CHECK(shipgate_method_idempotent("Track"));
		CHECK(shipgate_method_idempotent(SHIPGATE_METHOD_GET_ORDER));
		CHECK(shipgate_method_idempotent("Health"));
		CHECK(!shipgate_method_idempotent("CreateOrder"));
		CHECK(!shipgate_method_idempotent("/x.Y/Z"));
		CHECK_STR(shipgate_code_name(14), "UNAVAILABLE");
		CHECK_STR(shipgate_code_name(99), "UNKNOWN_CODE");
	}
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f);
}

/* Retries: idempotent methods on UNAVAILABLE; CreateOrder only with a key, the same key. */
static void
test_retries(void)
{
	fake *f = fake_start("inproc://retry");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 3);
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_call_opts o = {0};
	Shipgate__V1__TrackResponse *rep = NULL;
	nng_time t0;

	/* Track: two UNAVAILABLE, then OK */
	f->fail_first = 2;
	CHECK_INT(track(c, "R1", NULL, &rep, &st), 0);
	CHECK_INT(st.attempts, 3);
	CHECK_INT(fake_count(f), 3);
	CHECK(strcmp(f->ids[0], f->ids[2]) == 0); /* one call, one request id */
	shipgate__v1__track_response__free_unpacked(rep, NULL);
	rep = NULL;

	/* Track: always UNAVAILABLE: gives up after max_attempts with the gateway's status */
	f->n = 0;
	f->fail_first = 100;
	CHECK_INT(track(c, "R2", NULL, &rep, &st), SHIPGATE__V1__CODE__UNAVAILABLE);
	CHECK_INT(st.attempts, 3);
	CHECK_STR(st.reason, "UPSTREAM_UNAVAILABLE");
	CHECK(!st.local);
	CHECK_INT(fake_count(f), 3);
	CHECK(rep == NULL);

	/* GetOrder and Health are idempotent too */
	f->n = 0;
	f->fail_first = 1;
	{
		Shipgate__V1__GetOrderRequest gq = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
		Shipgate__V1__GetOrderResponse *gr = NULL;
		gq.order_id = "ORD-1";
		CHECK_INT(shipgate_get_order(c, &gq, NULL, &gr, &st), 0);
		CHECK_INT(st.attempts, 2);
		CHECK(gr != NULL && gr->order != NULL && strcmp(gr->order->id, "ORD-1") == 0);
		shipgate__v1__get_order_response__free_unpacked(gr, NULL);
	}
	f->n = 0;
	CHECK_INT(health(c, NULL, &st), 0);
	CHECK_INT(st.attempts, 2);

	/* CreateOrder without a key: never retried after it went out */
	f->health_ok = true; /* the keyed calls' fleet probe is answered (and not counted) */
	f->n = 0;
	f->fail_first = 1;
	CHECK_INT(create_order(c, NULL, &st), SHIPGATE__V1__CODE__UNAVAILABLE);
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f), 1);

	/* CreateOrder with a key: retried, with the same key every time */
	f->n = 0;
	f->fail_first = 2;
	o.idempotency_key = "idem-77";
	CHECK_INT(create_order(c, &o, &st), 0);
	CHECK_INT(st.attempts, 3);
	CHECK_INT(fake_count(f), 3);
	CHECK_STR(f->keys[0], "idem-77");
	CHECK_STR(f->keys[1], "idem-77");
	CHECK_STR(f->keys[2], "idem-77");
	f->health_ok = false;

	/* the gateway's retry_after_ms lengthens the backoff */
	f->n = 0;
	f->fail_first = 1;
	f->retry_after = 250;
	t0 = nng_clock();
	CHECK_INT(health(c, NULL, &st), 0);
	CHECK(nng_clock() - t0 >= 240);
	CHECK_INT(st.attempts, 2);

	/* ... but not beyond the deadline: the last status is reported at once */
	f->n = 0;
	f->fail_first = 1;
	f->retry_after = 5000;
	o.idempotency_key = NULL;
	o.deadline_ms = 1000;
	t0 = nng_clock();
	CHECK_INT(health(c, &o, &st), SHIPGATE__V1__CODE__UNAVAILABLE);
	CHECK(nng_clock() - t0 < 500);
	CHECK_INT(st.attempts, 1);
	CHECK_INT(st.retry_after_ms, 5000);

	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f);
}

static void
start_late(void *arg)
{
	nng_msleep(300);
	*(fake **)arg = fake_start("inproc://late");
}

/* An attempt that never left (no connection) is retried even for CreateOrder without a key,
 * and the gateway sees the call exactly once. */
static void
test_retry_not_connected(void)
{
	const char *urls[] = {"inproc://late"};
	shipgate_client_opts co = {0};
	shipgate_client *c = NULL;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_call_opts o = {0};
	nng_thread *starter;
	fake *f = NULL;
	int code;

	co.urls = urls;
	co.n_urls = 1;
	co.connect_timeout_ms = 100;
	co.retry.max_attempts = 20;
	co.retry.backoff_base_ms = 20;
	co.retry.backoff_cap_ms = 50;
	CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);

	/* nothing listens yet: a short deadline ends not connected (UNAVAILABLE, or
	 * DEADLINE_EXCEEDED when the last wait used the budget up) */
	o.deadline_ms = 250;
	code = create_order(c, &o, &st);
	CHECK(code == SHIPGATE__V1__CODE__UNAVAILABLE ||
	      code == SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
	CHECK_STR(st.reason, "TRANSPORT_NOT_CONNECTED");
	CHECK(st.attempts >= 2);

	/* the gateway comes up while the call waits */
	nng_thread_create(&starter, start_late, &f);
	o.deadline_ms = 4000;
	CHECK_INT(create_order(c, &o, &st), 0);
	CHECK(st.attempts >= 2);
	nng_thread_destroy(starter);
	CHECK_INT(fake_count(f), 1);
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f);
}

/* Deadlines: a silent gateway, an expired budget, per-attempt timeouts. */
static void
test_deadlines(void)
{
	fake *f = fake_start("inproc://silent");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 3);
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_call_opts o = {0};
	shipgate_client_opts co = {0};
	shipgate_client *c2 = NULL;
	nng_time t0, dt;

	f->silent = true;
	o.deadline_ms = 300;
	t0 = nng_clock();
	CHECK_INT(health(c, &o, &st), SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
	dt = nng_clock() - t0;
	CHECK(dt >= 280 && dt < 1500);
	CHECK_STR(st.reason, "TRANSPORT_TIMEOUT");
	CHECK(st.local);
	CHECK_INT(st.attempts, 1); /* the budget is spent: no retry */
	CHECK_INT(fake_count(f), 1);
	/* the envelope carries the budget less the reply margin: min(50, 300 / 5) */
	CHECK(f->deadlines[0] > 200 && f->deadlines[0] <= 250);

	/* already expired: fails locally, sends nothing */
	o.deadline_ms = -1;
	t0 = nng_clock();
	CHECK_INT(health(c, &o, &st), SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
	CHECK(nng_clock() - t0 < 200);
	CHECK_STR(st.reason, "CLIENT_DEADLINE_EXPIRED");
	CHECK_INT(st.attempts, 0);
	CHECK_INT(fake_count(f), 1);

	/* attempt_timeout_ms < deadline: a transport timeout leaves budget, and idempotent
	 * calls are retried within it; each envelope carries the attempt's budget */
	co.urls = urls;
	co.n_urls = 1;
	co.retry.max_attempts = 10;
	co.retry.attempt_timeout_ms = 150;
	co.retry.backoff_base_ms = 10;
	co.retry.backoff_cap_ms = 20;
	CHECK_INT(shipgate_client_new(&c2, &co), SHIPGATE_OK);
	wait_connected(c2, 1);
	f->n = 0;
	o.deadline_ms = 700;
	t0 = nng_clock();
	CHECK_INT(health(c2, &o, &st), SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
	dt = nng_clock() - t0;
	CHECK(dt >= 400 && dt < 1500);
	CHECK(st.attempts >= 3 && st.attempts <= 5);
	CHECK_INT(fake_count(f), st.attempts);
	CHECK(f->deadlines[0] <= 120 && f->deadlines[0] > 80); /* 150 less min(50, 150 / 5) */
	/* CreateOrder (with or without a key): one attempt only, and its outcome is unknown
	 * (the keyed one's Health probe answered: scope node) */
	f->health_ok = true;
	f->n = 0;
	CHECK_INT(create_order(c2, &o, &st), SHIPGATE__V1__CODE__UNKNOWN);
	CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
	CHECK(st.local && !st.retryable);
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f), 1);
	o.idempotency_key = "idem-timeout";
	CHECK_INT(create_order(c2, &o, &st), SHIPGATE__V1__CODE__UNKNOWN);
	CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f), 2);
	o.idempotency_key = NULL;
	f->health_ok = false;

	/* the gateway's own DEADLINE_EXCEEDED is never retried, budget left or not */
	f->silent = false;
	f->deadline = true;
	f->n = 0;
	CHECK_INT(health(c2, &o, &st), SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
	CHECK_STR(st.reason, "DEADLINE_EXPIRED");
	CHECK(!st.local);
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f), 1);

	shipgate_status_fini(&st);
	shipgate_client_free(c2);
	shipgate_client_free(c);
	fake_stop(f);
}

/*
 * Fleets (client_policy.json, "fleet"): a keyed call asks Health once per connection, and
 * moves to another gateway after its request went out unanswered only when both report the
 * same fleet; whatever the retry gets that does not settle the key is OUTCOME_UNKNOWN.
 */
static void
test_fleet(void)
{
	fake *f1 = fake_start("inproc://fleet-1"), *f2 = fake_start("inproc://fleet-2");
	const char *urls[] = {f1->url, f2->url};
	shipgate_client *c;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_call_opts o = {.idempotency_key = "idem-fleet"};
	Shipgate__V1__TrackResponse *rep = NULL;

	f1->health_ok = f2->health_ok = true;

	/* one gateway: Health once per connection, before the first keyed call; reads and
	 * calls without a key never ask */
	c = client_for(urls, 1, 3);
	wait_connected(c, 1);
	CHECK_INT(track(c, "T-1", NULL, &rep, &st), 0);
	shipgate__v1__track_response__free_unpacked(rep, NULL);
	rep = NULL;
	CHECK_INT(create_order(c, NULL, &st), 0);
	CHECK_INT(fake_health(f1), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(create_order(c, &o, &st), 0);
		CHECK_INT(st.attempts, 1);
	}
	CHECK_INT(fake_health(f1), 1);
	CHECK_INT(fake_count(f1), 5);
	/* a new connection (the gateway dropped the old one) is asked again */
	f1->drop_calls = 1;
	CHECK_INT(create_order(c, NULL, &st), SHIPGATE__V1__CODE__UNKNOWN);
	for (int i = 0; i < 200 && shipgate_client_connected(c) == 1; i++)
		nng_msleep(5); /* the drop may not be seen yet */
	wait_connected(c, 1);
	CHECK_INT(create_order(c, &o, &st), 0);
	CHECK_INT(fake_health(f1), 2);
	shipgate_client_free(c);

	/* the same fleet on both: lost on the first, answered by the second */
	f1->fleet = f2->fleet = "redis://fleet-a";
	f1->n = f2->n = f1->n_health = f2->n_health = 0;
	f1->drop_calls = 1;
	c = client_for(urls, 2, 3);
	wait_connected(c, 2);
	CHECK_INT(create_order(c, &o, &st), 0);
	CHECK_INT(st.attempts, 2);
	CHECK_INT(fake_count(f1), 1);
	CHECK_INT(fake_count(f2), 1);
	CHECK_STR(f2->keys[0], "idem-fleet");
	CHECK_INT(fake_health(f1), 1);
	CHECK_INT(fake_health(f2), 1);
	shipgate_client_free(c);

	/* ... also after the first stays silent past the attempt timeout */
	{
		shipgate_client_opts co = {.urls = urls, .n_urls = 2};
		co.retry.attempt_timeout_ms = 200;
		f1->n = f2->n = 0;
		f1->silent = true;
		CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);
		wait_connected(c, 2);
		o.deadline_ms = 3000;
		CHECK_INT(create_order(c, &o, &st), 0);
		CHECK_INT(st.attempts, 2);
		CHECK_INT(fake_count(f1), 1);
		CHECK_INT(fake_count(f2), 1);
		shipgate_client_free(c);
		f1->silent = false;
		/* a silent gateway never answers the probe either: the keyed call is not sent,
		 * and its attempts time out as any other call's (nothing went out, so no
		 * OUTCOME_UNKNOWN) */
		f1->health_ok = false;
		f1->silent = true;
		f1->n = 0;
		co.n_urls = 1;
		CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);
		wait_connected(c, 1);
		o.deadline_ms = 500;
		CHECK_INT(create_order(c, &o, &st), SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
		CHECK_STR(st.reason, "TRANSPORT_TIMEOUT");
		CHECK(st.message != NULL && strstr(st.message, "Health") != NULL);
		CHECK(fake_count(f1) >= 1);
		for (int i = 0; i < fake_count(f1) && i < FAKE_MAX_SEEN; i++)
			CHECK_STR(f1->methods[i], SHIPGATE_METHOD_HEALTH);
		shipgate_client_free(c);
		f1->silent = false;
		f1->health_ok = true;
		o.deadline_ms = 0;
	}

	/* another fleet, or none, on the second: OUTCOME_UNKNOWN, and it never gets the call */
	for (int k = 0; k < 2; k++) {
		f1->fleet = "redis://fleet-a";
		f2->fleet = k == 0 ? "redis://fleet-b" : NULL;
		f1->n = f2->n = 0;
		f1->drop_calls = 1;
		c = client_for(urls, 2, 3);
		wait_connected(c, 2);
		CHECK_INT(create_order(c, &o, &st), SHIPGATE__V1__CODE__UNKNOWN);
		CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
		CHECK(st.local && !st.retryable);
		if (st.message == NULL ||
		    strstr(st.message, k == 0 ? "of fleet redis://fleet-b" : "of no fleet") == NULL)
			fprintf(stderr, "  fleet mismatch %d: \"%s\"\n", k,
			        st.message ? st.message : "(none)");
		CHECK(st.message != NULL && strstr(st.message, k == 0 ? "of fleet redis://fleet-b"
		                                                      : "of no fleet") != NULL);
		CHECK_INT(fake_count(f1), 1);
		CHECK_INT(fake_count(f2), 0);
		shipgate_client_free(c);
	}

	/* the retry's answer does not settle the key: OUTCOME_UNKNOWN; the gateway's own
	 * OUTCOME_UNKNOWN settles it and is reported as it is */
	f2->fleet = "redis://fleet-a";
	for (int k = 0; k < 4; k++) {
		f1->n = f2->n = 0;
		f1->drop_calls = 1;
		f2->deadline = k == 0;
		f2->fail_first = k == 1 ? 100 : 0;
		f2->unknown = k == 2;
		f2->silent = k == 3;
		{
			shipgate_client_opts co = {.urls = urls, .n_urls = 2};
			co.retry.max_attempts = 2;
			co.retry.attempt_timeout_ms = k == 3 ? 200 : 0;
			CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);
		}
		wait_connected(c, 2);
		CHECK_INT(create_order(c, &o, &st), SHIPGATE__V1__CODE__UNKNOWN);
		CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
		CHECK_INT(st.local, k != 2);
		CHECK_INT(st.attempts, 2);
		CHECK_INT(fake_count(f2), 1);
		if (k == 0)
			CHECK(st.message != NULL && strstr(st.message, "DEADLINE_EXPIRED") != NULL);
		if (k == 1)
			CHECK(st.message != NULL &&
			      strstr(st.message, "UPSTREAM_UNAVAILABLE") != NULL);
		shipgate_client_free(c);
	}
	f2->deadline = f2->unknown = f2->silent = false;
	f2->fail_first = 0;
	shipgate_status_fini(&st);
	fake_stop(f1);
	fake_stop(f2);
}

/*
 * A CreateOrder whose connection breaks, or whose gateway stays silent, after it went out is
 * not retried, on this address or another: its outcome is UNKNOWN / OUTCOME_UNKNOWN. A read in
 * the same situation moves on to the next gateway.
 */
static void
test_create_order_outcome_unknown(void)
{
	fake *f1 = fake_start("inproc://gone"), *f2 = fake_start("inproc://other");
	const char *urls[] = {f1->url, f2->url};
	shipgate_client_opts co = {0};
	shipgate_client *c;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_call_opts o = {0};
	Shipgate__V1__TrackResponse *rep = NULL;

	/* each case with a new client connected to both: its first attempt goes to the first */

	/* the first gateway drops the connection the request came on (kill -9 mid-call); both
	 * answer the keyed call's Health probe (scope node) */
	f1->drop = true;
	f1->health_ok = f2->health_ok = true;
	c = client_for(urls, 2, 3);
	wait_connected(c, 2);
	o.idempotency_key = "idem-lost";
	CHECK_INT(create_order(c, &o, &st), SHIPGATE__V1__CODE__UNKNOWN);
	CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
	CHECK(st.local && !st.retryable);
	CHECK(st.message != NULL && strstr(st.message, "TRANSPORT_CONNECTION_LOST") != NULL);
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f1), 1);
	CHECK_INT(fake_count(f2), 0);
	shipgate_client_free(c);

	/* without a key, the same */
	c = client_for(urls, 2, 3);
	wait_connected(c, 2);
	CHECK_INT(create_order(c, NULL, &st), SHIPGATE__V1__CODE__UNKNOWN);
	CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f1), 2);
	CHECK_INT(fake_count(f2), 0);
	shipgate_client_free(c);

	/* a read moves on to the other gateway */
	c = client_for(urls, 2, 3);
	wait_connected(c, 2);
	CHECK_INT(track(c, "LOST-1", NULL, &rep, &st), 0);
	CHECK_INT(st.attempts, 2);
	shipgate__v1__track_response__free_unpacked(rep, NULL);
	rep = NULL;
	CHECK_INT(fake_count(f1), 3);
	CHECK_INT(fake_count(f2), 1);
	shipgate_client_free(c);

	/* a silent first gateway and an attempt timeout: the same for CreateOrder */
	f1->drop = false;
	f1->silent = true;
	f1->n = f2->n = 0;
	co.urls = urls;
	co.n_urls = 2;
	co.retry.max_attempts = 3;
	co.retry.attempt_timeout_ms = 200;
	CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);
	wait_connected(c, 2);
	o.deadline_ms = 2000;
	CHECK_INT(create_order(c, &o, &st), SHIPGATE__V1__CODE__UNKNOWN);
	CHECK_STR(st.reason, "OUTCOME_UNKNOWN");
	CHECK(st.message != NULL && strstr(st.message, "TRANSPORT_TIMEOUT") != NULL);
	CHECK_INT(st.attempts, 1);
	CHECK_INT(fake_count(f1), 1);
	CHECK_INT(fake_count(f2), 0);
	shipgate_client_free(c);
	/* ... while Track is retried on the next gateway after the transport timeout */
	CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);
	wait_connected(c, 2);
	CHECK_INT(track(c, "SILENT-1", &o, &rep, &st), 0);
	CHECK_INT(st.attempts, 2);
	shipgate__v1__track_response__free_unpacked(rep, NULL);
	CHECK_INT(fake_count(f1), 2);
	CHECK_INT(fake_count(f2), 1);

	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f1);
	fake_stop(f2);
}

/* Round robin over inproc, tcp and ipc gateways. */
static void
test_round_robin(void)
{
	char dir[] = "/tmp/sgc-test-XXXXXX", ipc[128];
	fake *fs[3];
	const char *urls[3];
	shipgate_client *c;
	shipgate_status st = SHIPGATE_STATUS_INIT;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(ipc, sizeof(ipc), "ipc://%s/gw.sock", dir);
	fs[0] = fake_start("inproc://rr");
	fs[1] = fake_start("tcp://127.0.0.1:0");
	fs[2] = fake_start(ipc);
	for (int i = 0; i < 3; i++)
		urls[i] = fs[i]->url;
	CHECK(strcmp(fs[1]->url, "tcp://127.0.0.1:0") != 0);
	c = client_for(urls, 3, 1);
	wait_connected(c, 3);
	for (int i = 0; i < 9; i++)
		CHECK_INT(health(c, NULL, &st), 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(fake_count(fs[i]), 3);

	/* one gateway down: calls go to the live ones, none fail */
	fake_stop(fs[1]);
	for (int i = 0; i < 50 && shipgate_client_connected(c) > 2; i++)
		nng_msleep(10);
	for (int i = 0; i < 6; i++)
		CHECK_INT(health(c, NULL, &st), 0);
	CHECK_INT(fake_count(fs[0]), 6);
	CHECK_INT(fake_count(fs[2]), 6);

	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(fs[0]);
	fake_stop(fs[2]);
	rmdir(dir);
}

/* ---- async ---- */

typedef struct async_rec {
	atomic_int calls;    /* times the callback ran */
	atomic_int code;     /* last status code */
	atomic_int ok_reply; /* the reply was there and right */
	char reason[64];     /* last reason */
} async_rec;

static atomic_int async_done;

static void
async_cb(void *arg, const shipgate_status *st, ProtobufCMessage *reply)
{
	async_rec *r = arg;
	Shipgate__V1__TrackResponse *tr = (Shipgate__V1__TrackResponse *)reply;

	atomic_fetch_add(&r->calls, 1);
	atomic_store(&r->code, st->code);
	snprintf(r->reason, sizeof(r->reason), "%s", st->reason != NULL ? st->reason : "");
	if (tr != NULL && tr->tracking != NULL && tr->tracking->n_events == 2)
		atomic_store(&r->ok_reply, 1);
	if (reply != NULL)
		protobuf_c_message_free_unpacked(reply, NULL);
	atomic_fetch_add(&async_done, 1);
}

static void
wait_async(int n)
{
	for (int i = 0; i < 300 && atomic_load(&async_done) < n; i++)
		nng_msleep(10);
}

static void
test_async(void)
{
	fake *f = fake_start("tcp://127.0.0.1:0");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 3);
	static async_rec recs[16];
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	shipgate_call_opts o = {0};
	int ok = 0, once = 0;

	req.order_id = "A1";
	atomic_store(&async_done, 0);
	for (int i = 0; i < 16; i++)
		CHECK_INT(shipgate_call_async(c, "Track", &req.base,
		                              &shipgate__v1__track_response__descriptor, NULL,
		                              async_cb, &recs[i]),
		          SHIPGATE_OK);
	shipgate_client_wait_all(c);
	for (int i = 0; i < 16; i++) {
		once += atomic_load(&recs[i].calls) == 1;
		ok += atomic_load(&recs[i].code) == 0 && atomic_load(&recs[i].ok_reply) == 1;
	}
	CHECK_INT(once, 16);
	CHECK_INT(ok, 16);
	CHECK_INT(fake_count(f), 16);

	/* a local failure also completes through the callback, once */
	memset(recs, 0, sizeof(recs));
	atomic_store(&async_done, 0);
	o.deadline_ms = -5;
	CHECK_INT(shipgate_call_async(c, "Track", &req.base,
	                              &shipgate__v1__track_response__descriptor, &o, async_cb,
	                              &recs[0]),
	          SHIPGATE_OK);
	CHECK_INT(shipgate_call_async(c, "Bogus", &req.base,
	                              &shipgate__v1__track_response__descriptor, NULL, async_cb,
	                              &recs[1]),
	          SHIPGATE_OK);
	shipgate_client_wait_all(c);
	CHECK_INT(atomic_load(&recs[0].calls), 1);
	CHECK_INT(atomic_load(&recs[0].code), SHIPGATE__V1__CODE__DEADLINE_EXCEEDED);
	CHECK_STR(recs[0].reason, "CLIENT_DEADLINE_EXPIRED");
	CHECK_INT(atomic_load(&recs[1].calls), 1);
	CHECK_INT(atomic_load(&recs[1].code), SHIPGATE__V1__CODE__INVALID_ARGUMENT);
	CHECK_INT(shipgate_call_async(c, "Track", &req.base, NULL, NULL, NULL, NULL),
	          SHIPGATE_EINVAL);

	/* cancel_all: calls waiting on a silent gateway end at once with CANCELLED */
	memset(recs, 0, sizeof(recs));
	atomic_store(&async_done, 0);
	f->silent = true;
	for (int i = 0; i < 4; i++)
		shipgate_call_async(c, "Track", &req.base,
		                    &shipgate__v1__track_response__descriptor, NULL, async_cb,
		                    &recs[i]);
	for (int i = 0; i < 100 && fake_count(f) < 16 + 4; i++)
		nng_msleep(10);
	shipgate_client_cancel_all(c);
	wait_async(4);
	once = 0;
	for (int i = 0; i < 4; i++)
		once += atomic_load(&recs[i].calls) == 1 &&
		        atomic_load(&recs[i].code) == SHIPGATE__V1__CODE__CANCELLED;
	CHECK_INT(once, 4);

	/* free with calls in flight: each callback runs once, before free returns */
	memset(recs, 0, sizeof(recs));
	atomic_store(&async_done, 0);
	for (int i = 0; i < 4; i++)
		shipgate_call_async(c, "Track", &req.base,
		                    &shipgate__v1__track_response__descriptor, NULL, async_cb,
		                    &recs[i]);
	shipgate_client_free(c);
	CHECK_INT(atomic_load(&async_done), 4);
	for (int i = 0; i < 4; i++)
		CHECK_INT(atomic_load(&recs[i].code), SHIPGATE__V1__CODE__CANCELLED);
	fake_stop(f);
}

/* Replies over max_reply_size: refused without building them; nng does not resend after the
 * connection drops (the client fails the call before it can). */
static void
test_max_reply(void)
{
	const char *proto[] = {"inproc://big", "tcp://127.0.0.1:0"};

	for (int k = 0; k < 2; k++) {
		fake *f = fake_start(proto[k]);
		const char *urls[] = {f->url};
		shipgate_client_opts co = {0};
		shipgate_client *c = NULL;
		shipgate_status st = SHIPGATE_STATUS_INIT;
		shipgate_call_opts o = {0};
		nng_time t0;

		co.urls = urls;
		co.n_urls = 1;
		co.max_reply_size = 4096;
		co.retry.max_attempts = 1;
		CHECK_INT(shipgate_client_new(&c, &co), SHIPGATE_OK);
		wait_connected(c, 1);
		f->big = 1000; /* under the cap */
		CHECK_INT(health(c, NULL, &st), 0);
		f->big = 64 * 1024;
		o.deadline_ms = 2000;
		t0 = nng_clock();
		if (k == 0) {
			CHECK_INT(health(c, &o, &st), SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED);
			CHECK_STR(st.reason, "TRANSPORT_REPLY_TOO_LARGE");
		} else {
			/* tcp: nng drops the connection on an over-size message */
			CHECK_INT(health(c, &o, &st), SHIPGATE__V1__CODE__UNAVAILABLE);
			CHECK_STR(st.reason, "TRANSPORT_CONNECTION_LOST");
		}
		CHECK(nng_clock() - t0 < 1500);
		CHECK_INT(st.attempts, 1);
		/* the dialer reconnects; nng 1.5.2 would resend the request then */
		wait_connected(c, 1);
		nng_msleep(300);
		CHECK_INT(fake_count(f), 2);
		f->big = 0;
		CHECK_INT(health(c, NULL, &st), 0);
		CHECK_INT(fake_count(f), 3);
		shipgate_status_fini(&st);
		shipgate_client_free(c);
		fake_stop(f);
	}
}

/* Replies that do not decode, or answer another request. */
static void
test_bad_replies(void)
{
	fake *f = fake_start("inproc://bad");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 3);
	shipgate_status st = SHIPGATE_STATUS_INIT;

	f->garbage = true;
	CHECK_INT(health(c, NULL, &st), SHIPGATE__V1__CODE__INTERNAL);
	CHECK_STR(st.reason, "CLIENT_BAD_REPLY");
	CHECK_INT(st.attempts, 1);
	f->garbage = false;
	f->wrong_id = true;
	CHECK_INT(health(c, NULL, &st), SHIPGATE__V1__CODE__INTERNAL);
	CHECK(st.message != NULL && strstr(st.message, "someone-else") != NULL);
	/* an OK reply whose payload does not decode as the method's response */
	f->wrong_id = false;
	f->bad_payload = true;
	CHECK_INT(health(c, NULL, &st), SHIPGATE__V1__CODE__INTERNAL);
	CHECK(st.message != NULL && strstr(st.message, "shipgate.v1.HealthResponse") != NULL);
	CHECK_INT(fake_count(f), 3);
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	fake_stop(f);
}

/* Many threads share one client. */
typedef struct worker {
	shipgate_client *c; /* shared */
	int ok;             /* calls that returned OK */
} worker;

static void
worker_run(void *arg)
{
	worker *w = arg;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	Shipgate__V1__TrackResponse *rep = NULL;

	for (int i = 0; i < 20; i++) {
		if (track(w->c, "MT", NULL, &rep, &st) == 0)
			w->ok++;
		shipgate__v1__track_response__free_unpacked(rep, NULL);
		rep = NULL;
	}
	shipgate_status_fini(&st);
}

static void
test_threads(void)
{
	fake *f = fake_start("inproc://mt");
	const char *urls[] = {f->url};
	shipgate_client *c = client_for(urls, 1, 1);
	worker w[4];
	nng_thread *t[4];
	int ok = 0;

	for (int i = 0; i < 4; i++) {
		w[i].c = c;
		w[i].ok = 0;
		nng_thread_create(&t[i], worker_run, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		nng_thread_destroy(t[i]);
		ok += w[i].ok;
	}
	CHECK_INT(ok, 80);
	CHECK_INT(fake_count(f), 80);
	shipgate_client_free(c);
	fake_stop(f);
}

int
main(void)
{
	nng_time t0 = nng_clock();

	test_envelope_and_ok();
	test_error_status();
	test_invalid_arguments();
	test_retries();
	test_retry_not_connected();
	test_deadlines();
	test_create_order_outcome_unknown();
	test_fleet();
	test_round_robin();
	test_async();
	test_max_reply();
	test_bad_replies();
	test_threads();
	printf("took %" PRIu64 " ms\n", (uint64_t)(nng_clock() - t0));
	TEST_MAIN_END();
}
