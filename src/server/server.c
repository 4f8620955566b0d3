/*
 * server.c - REP socket, context pool, envelope decoding, dispatch, replies.
 *
 * Life of one call (one struct work, touched by one thread at a time):
 *
 *   W_RECV --recv done--> decode, dispatch --immediate answer------------------> W_SEND
 *                                    \--upstream call--> W_UPSTREAM --engine cb--> W_SEND
 *   W_SEND --send done--> reset arena, post the next receive -> W_RECV
 *
 * The receive and send callbacks run on nng's threads; the upstream completion runs on the
 * engine thread. Both only decode, translate and queue a send: nothing here blocks.
 */
#include "server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/status.h"
#include "providers/common.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"
#include "upstream/engine.h"

#ifndef SG_VERSION
#define SG_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------------ types */

enum work_state {
	W_INIT,     /* not started */
	W_RECV,     /* a receive is posted */
	W_UPSTREAM, /* waiting for the engine */
	W_SEND,     /* a reply is being sent */
};

/* What a method does once its request is decoded. */
enum method_kind {
	M_UNKNOWN = 0,
	M_HEALTH,       /* answered by the server itself */
	M_TRACK,        /* provider->track */
	M_GET_ORDER,    /* provider->get_order */
	M_CREATE_ORDER, /* provider->create_order */
};

struct work {
	enum work_state state;                   /* see the diagram above */
	nng_aio *aio;                            /* the context's one aio (recv, then send) */
	nng_ctx ctx;                             /* REP context: one request/reply at a time */
	nng_msg *msg;                            /* request message, reused for the reply */
	struct sg_server *srv;                   /* owner */
	sg_arena arena;                          /* everything of this call; reset per call */
	Shipgate__V1__RpcRequest *env;           /* decoded envelope (arena) or NULL */
	const ProtobufCMethodDescriptor *method; /* resolved method or NULL */
	ProtobufCMessage *req;                   /* decoded payload (arena) */
	ProtobufCMessage *reply;                 /* response message to send when OK (arena) */
	const sg_pconf *pconf;                   /* provider config of an upstream call */
	const sg_op *op;                         /* provider operation of an upstream call */
	sg_http_req hreq;                        /* upstream request (arena strings) */
	sg_status st;                            /* outcome of the call */
	int64_t start_ms;                        /* when the request was received */
	int64_t deadline_ms;                     /* absolute sg_now_ms() deadline */
};

struct sg_server {
	const sg_config *cfg;                         /* borrowed; outlives the server */
	nng_socket sock;                              /* the REP socket */
	bool sock_open;                               /* sock needs closing */
	nng_listener listeners[SG_CONFIG_MAX_LISTEN]; /* one per configured URL */
	size_t nlisteners;                            /* listeners started */
	char bound[SG_CONFIG_MAX_LISTEN][256];        /* listen URLs with tcp port 0 resolved */
	sg_engine *engine;                            /* upstream HTTP */
	struct work *works;                           /* the context pool */
	int nworks;                                   /* entries in works[] */
	int64_t started_ms;                           /* for Health uptime */
	atomic_bool draining;                         /* stop requested: refuse new calls */
	atomic_int busy;           /* calls between receive and send completion */
	atomic_int upstream;       /* calls waiting for the engine */
	bool stopped;              /* sg_server_stop has run */
	enum method_kind kinds[8]; /* by method index in the service descriptor */
	pthread_t watchdog;        /* ipc listener watchdog thread */
	bool watchdog_running;     /* watchdog was started and must be joined */
	pthread_mutex_t wd_mtx;    /* guards wd_stop */
	pthread_cond_t wd_cv;      /* wakes the watchdog to stop */
	bool wd_stop;              /* the watchdog must exit */
};

static const ProtobufCServiceDescriptor *const service = &shipgate__v1__shipgate__descriptor;

static void work_cb(void *arg);
static void work_recv(struct work *w);

/* ------------------------------------------------------------------ replies */

/* Builds the RpcReply for w (status from w->st, payload from w->reply) into w->msg. */
static int
work_encode_reply(struct work *w)
{
	sg_arena *a = &w->arena;
	Shipgate__V1__RpcReply rep = SHIPGATE__V1__RPC_REPLY__INIT;
	Shipgate__V1__Status status = SHIPGATE__V1__STATUS__INIT;
	Shipgate__V1__ErrorDetail det = SHIPGATE__V1__ERROR_DETAIL__INIT;
	sg_status *st = &w->st;

	rep.request_id = w->env != NULL ? w->env->request_id : "";
	rep.status = &status;
	if (st->err == SG_OK && w->reply != NULL) {
		size_t n = protobuf_c_message_get_packed_size(w->reply);
		uint8_t *buf = sg_arena_alloc(a, n);
		if (buf == NULL) {
			sg_status_set(st, a, SG_ENOMEM, "reply does not fit the call's memory cap");
		} else {
			protobuf_c_message_pack(w->reply, buf);
			rep.payload.data = buf;
			rep.payload.len = n;
		}
	}
	status.code = (Shipgate__V1__Code)sg_err_code(st->err);
	if (st->err != SG_OK) {
		status.message = (char *)(st->message ? st->message : sg_strerror(st->err));
		status.detail = &det;
		det.reason = (char *)sg_err_reason(st->err);
		det.retryable = sg_err_retryable(st->err);
		det.upstream_http_status = st->http_status;
		det.provider = (char *)(st->provider ? st->provider : "");
		det.provider_code = (char *)(st->provider_code ? st->provider_code : "");
		det.provider_message = (char *)(st->provider_message ? st->provider_message : "");
		det.retry_after_ms = st->retry_after_ms;
		Shipgate__V1__FieldViolation *fv =
		        st->nviolations ? sg_arena_calloc(a, st->nviolations, sizeof(*fv)) : NULL;
		Shipgate__V1__FieldViolation **fvp =
		        st->nviolations ? sg_arena_calloc(a, st->nviolations, sizeof(*fvp)) : NULL;
		if (fv != NULL && fvp != NULL) {
			for (size_t i = 0; i < st->nviolations; i++) {
				shipgate__v1__field_violation__init(&fv[i]);
				fv[i].field = (char *)st->violations[i].field;
				fv[i].description = (char *)st->violations[i].description;
				fvp[i] = &fv[i];
			}
			det.field_violations = fvp;
			det.n_field_violations = st->nviolations;
		}
	}
	size_t len = shipgate__v1__rpc_reply__get_packed_size(&rep);
	int rv;
	if (w->msg == NULL) {
		if ((rv = nng_msg_alloc(&w->msg, len)) != 0)
			return rv;
	} else {
		nng_msg_clear(w->msg);
		nng_msg_header_clear(w->msg);
		if ((rv = nng_msg_realloc(w->msg, len)) != 0)
			return rv;
	}
	shipgate__v1__rpc_reply__pack(&rep, nng_msg_body(w->msg));
	return 0;
}

/* Sends the reply for w. Any thread. */
static void
work_send(struct work *w)
{
	const sg_config *cfg = w->srv->cfg;
	if (cfg->verbose >= 2 || (cfg->verbose >= 1 && sg_err_code(w->st.err) == 13)) {
		fprintf(stderr, "shipgated: %s %s %s %lldms%s%s\n",
		        w->method ? w->method->name : "-", sg_err_reason(w->st.err),
		        w->env && w->env->request_id[0] ? w->env->request_id : "-",
		        (long long)(sg_now_ms() - w->start_ms), w->st.message ? ": " : "",
		        w->st.message ? w->st.message : "");
	}
	if (work_encode_reply(w) != 0) {
		/* No memory even for the reply: drop it; the caller's deadline will fire. */
		nng_msg_free(w->msg);
		w->msg = NULL;
		work_recv(w);
		return;
	}
	w->state = W_SEND;
	nng_aio_set_msg(w->aio, w->msg);
	w->msg = NULL; /* owned by the aio now; back to us only if the send fails */
	nng_ctx_send(w->ctx, w->aio);
}

/* Records err (message optional) and sends the reply. */
static void
work_fail(struct work *w, sg_err err, const char *msg)
{
	sg_status_set(&w->st, &w->arena, err, msg ? "%s" : NULL, msg);
	w->reply = NULL;
	work_send(w);
}

/* ------------------------------------------------------------------ upstream */

static void
work_upstream_done(void *arg, sg_err err, const sg_http_resp *resp)
{
	struct work *w = arg;
	struct sg_server *s = w->srv;

	if (err == SG_OK) {
		err = w->op->parse(w->pconf, w->req, resp, &w->arena, &w->reply, &w->st);
		w->st.err = err;
	} else {
		sg_status_set(&w->st, &w->arena, err, "%s: %s", w->pconf->name, sg_strerror(err));
		w->st.provider = w->pconf->name;
	}
	if (w->st.err != SG_OK)
		w->reply = NULL;
	atomic_fetch_sub(&s->upstream, 1);
	work_send(w);
}

/* Provider-backed methods: pick the provider and operation, build, hand to the engine. */
static void
work_call_provider(struct work *w, enum method_kind kind)
{
	struct sg_server *s = w->srv;
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field_by_name(w->req->descriptor, "provider");
	int id = f != NULL ? *(const int *)((const char *)w->req + f->offset) : 0;
	const sg_provider *p = sg_provider_get((Shipgate__V1__Provider)id);
	const sg_pconf *pc = sg_config_provider(s->cfg, id);

	if (p == NULL || pc == NULL) {
		sg_status_violation(&w->st, "provider", "unspecified or unknown provider");
		work_fail(w, SG_ENOPROVIDER, id == 0 ? "provider: required" : "provider: unknown");
		return;
	}
	w->st.provider = p->name;
	w->op = kind == M_TRACK       ? &p->track
	        : kind == M_GET_ORDER ? &p->get_order
	                              : &p->create_order;
	if (w->op->build == NULL || w->op->parse == NULL) {
		sg_status_set(&w->st, &w->arena, SG_EUNSUPPORTED, "%s does not support %s", p->name,
		              w->method->name);
		work_send(w);
		return;
	}
	if (pc->base_url == NULL) {
		sg_status_set(&w->st, &w->arena, SG_ENOPROVIDER, "%s: no base_url configured",
		              p->name);
		work_send(w);
		return;
	}
	w->pconf = pc;
	sg_err err = w->op->build(pc, w->req, &w->arena, &w->hreq, &w->st);
	if (err != SG_OK) {
		w->st.err = err;
		work_send(w);
		return;
	}
	int64_t deadline = w->deadline_ms;
	if (w->env->deadline_ms == 0 && pc->timeout_ms > 0)
		deadline = w->start_ms + pc->timeout_ms;
	w->state = W_UPSTREAM;
	atomic_fetch_add(&s->upstream, 1);
	err = sg_engine_submit(s->engine, &w->hreq, deadline, work_upstream_done, w);
	if (err != SG_OK) {
		atomic_fetch_sub(&s->upstream, 1);
		sg_status_set(&w->st, &w->arena, err, "%s: %s", p->name, sg_strerror(err));
		work_send(w);
	}
}

/* ------------------------------------------------------------------ dispatch */

static void
work_health(struct work *w)
{
	struct sg_server *s = w->srv;
	Shipgate__V1__HealthResponse *r = sg_arena_alloc(&w->arena, sizeof(*r));
	Shipgate__V1__Provider *prov = sg_arena_calloc(&w->arena, SG_PROVIDER_COUNT, sizeof(*prov));
	if (r == NULL || prov == NULL) {
		work_fail(w, SG_ENOMEM, NULL);
		return;
	}
	shipgate__v1__health_response__init(r);
	r->status =
	        atomic_load(&s->draining)
	                ? SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING
	                : SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING;
	r->version = SG_VERSION;
	r->uptime_ms = sg_now_ms() - s->started_ms;
	r->in_flight = atomic_load(&s->busy);
	for (int i = 0; i < SG_PROVIDER_COUNT; i++)
		if (s->cfg->providers[i].base_url != NULL)
			prov[r->n_providers++] = (Shipgate__V1__Provider)(i + 1);
	r->providers = prov;
	w->reply = &r->base;
	work_send(w);
}

/*
 * Resolves "/shipgate.v1.Shipgate/Track" to its method descriptor. The gRPC form is the one
 * accepted spelling, so that the method name stays a stable contract.
 */
static const ProtobufCMethodDescriptor *
resolve_method(const char *name)
{
	size_t n = strlen(service->name);
	if (name[0] != '/' || strncmp(name + 1, service->name, n) != 0 || name[n + 1] != '/')
		return NULL;
	return protobuf_c_service_descriptor_get_method_by_name(service, name + n + 2);
}

/* A request arrived in w->msg: decode and dispatch. nng callback thread. */
static void
work_dispatch(struct work *w)
{
	struct sg_server *s = w->srv;
	const sg_config *cfg = s->cfg;
	size_t len = nng_msg_len(w->msg);

	w->start_ms = sg_now_ms();
	if (len > cfg->max_request_bytes) {
		sg_status_set(&w->st, &w->arena, SG_ETOOBIG,
		              "request of %zu bytes exceeds max_request_bytes (%zu)", len,
		              cfg->max_request_bytes);
		work_send(w);
		return;
	}
	w->env = shipgate__v1__rpc_request__unpack(sg_arena_pb(&w->arena), len,
	                                           nng_msg_body(w->msg));
	if (w->env == NULL) {
		work_fail(w, SG_EDECODE, "request envelope is not a valid shipgate.v1.RpcRequest");
		return;
	}
	if ((w->method = resolve_method(w->env->method)) == NULL) {
		sg_status_set(&w->st, &w->arena, SG_ENOMETHOD,
		              "unknown method \"%.200s\"; methods are named \"/%s/<Method>\"",
		              w->env->method, service->name);
		work_send(w);
		return;
	}
	/* protobuf-c cuts strings at an embedded NUL and accepts bad UTF-8: refuse both first. */
	if (sg_pb_check_strings(w->method->input, w->env->payload.data, w->env->payload.len,
	                        &w->arena, &w->st) != SG_OK) {
		work_send(w);
		return;
	}
	w->req = protobuf_c_message_unpack(w->method->input, sg_arena_pb(&w->arena),
	                                   w->env->payload.len, w->env->payload.data);
	if (w->req == NULL) {
		sg_status_set(&w->st, &w->arena, SG_EDECODE, "payload is not a valid %s",
		              w->method->input->name);
		work_send(w);
		return;
	}
	enum method_kind kind = s->kinds[w->method - service->methods];
	if (kind != M_HEALTH && atomic_load(&s->draining)) {
		work_fail(w, SG_ESHUTDOWN, NULL);
		return;
	}
	if (w->env->deadline_ms < 0) {
		work_fail(w, SG_EDEADLINE, "deadline expired before the call started");
		return;
	}
	w->deadline_ms = w->start_ms +
	                 (w->env->deadline_ms ? w->env->deadline_ms : cfg->default_deadline_ms);
	switch (kind) {
	case M_HEALTH: work_health(w); return;
	case M_TRACK:
	case M_GET_ORDER:
	case M_CREATE_ORDER: work_call_provider(w, kind); return;
	default: work_fail(w, SG_ENOMETHOD, "method declared but not served"); return;
	}
}

/* ------------------------------------------------------------------ the state machine */

static void
work_recv(struct work *w)
{
	if (w->state != W_INIT)
		atomic_fetch_sub(&w->srv->busy, 1);
	sg_arena_reset(&w->arena);
	w->env = NULL;
	w->method = NULL;
	w->req = NULL;
	w->reply = NULL;
	w->op = NULL;
	w->pconf = NULL;
	memset(&w->hreq, 0, sizeof(w->hreq));
	sg_status_clear(&w->st);
	w->state = W_RECV;
	nng_ctx_recv(w->ctx, w->aio);
}

static void
work_cb(void *arg)
{
	struct work *w = arg;
	int rv = nng_aio_result(w->aio);

	switch (w->state) {
	case W_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return; /* shutting down */
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		atomic_fetch_add(&w->srv->busy, 1);
		w->msg = nng_aio_get_msg(w->aio);
		nng_aio_set_msg(w->aio, NULL);
		work_dispatch(w);
		return;
	case W_SEND:
		if (rv != 0) {
			/* A failed send leaves the message with us. */
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_set_msg(w->aio, NULL);
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				atomic_fetch_sub(&w->srv->busy, 1);
				w->state = W_INIT;
				return;
			}
		}
		work_recv(w);
		return;
	default: return;
	}
}

/* ------------------------------------------------------------------ ipc watchdog */

/*
 * nng 1.5.2 (#1518, fixed in 1.6.0): when a peer connects to an ipc listener and hangs up
 * before the SP handshake completes, the listener reads the error as its own closure and never
 * accepts again. Established connections keep working, new ones hang. nng's own "address in
 * use" check on ipc does exactly that connect-and-close, so a second process started on the
 * same path is enough to trigger it. The watchdog calls Health through each ipc listener now
 * and then, and re-creates a listener that stopped answering.
 */

/*
 * True when the listener at url answers a Health call within timeout_ms. A handshake alone is
 * not enough: a broken 1.5.2 ipc listener still accepts and negotiates, but never hands the new
 * pipe to the socket, so the request is never read.
 */
static bool
listener_probe(const char *url, int timeout_ms)
{
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	uint8_t buf[64];
	nng_socket p;
	nng_msg *m = NULL;
	bool ok = false;

	env.method = "/shipgate.v1.Shipgate/Health";
	env.request_id = "ipc-watchdog";
	env.deadline_ms = timeout_ms;
	size_t len = shipgate__v1__rpc_request__pack(&env, buf);
	if (nng_req0_open(&p) != 0)
		return true; /* no resources: not the listener's fault */
	nng_socket_set_ms(p, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(p, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(p, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_size(p, NNG_OPT_RECVMAXSZ, 65536);
	if (nng_dial(p, url, NULL, 0) == 0 && nng_send(p, buf, len, 0) == 0 &&
	    nng_recvmsg(p, &m, 0) == 0) {
		ok = true;
		nng_msg_free(m);
	}
	nng_close(p);
	return ok;
}

static void *
ipc_watchdog(void *arg)
{
	struct sg_server *s = arg;
	int misses[SG_CONFIG_MAX_LISTEN] = {0};
	int64_t period = s->cfg->ipc_watchdog_ms;

	pthread_mutex_lock(&s->wd_mtx);
	while (!s->wd_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (period % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->wd_cv, &s->wd_mtx, &ts);
		if (s->wd_stop)
			break;
		pthread_mutex_unlock(&s->wd_mtx);
		for (size_t i = 0; i < s->nlisteners; i++) {
			const char *url = s->cfg->listen[i];
			if (strncmp(url, "ipc://", 6) != 0)
				continue;
			if (listener_probe(url, 1000)) {
				misses[i] = 0;
				continue;
			}
			if (++misses[i] < 2)
				continue; /* one slow answer under load is not a dead listener */
			fprintf(stderr,
			        "shipgated: %s stopped accepting (nng #1518); re-listening\n", url);
			nng_listener_close(s->listeners[i]);
			int rv = nng_listen(s->sock, url, &s->listeners[i], 0);
			if (rv != 0)
				fprintf(stderr, "shipgated: re-listen %s: %s\n", url,
				        nng_strerror(rv));
			misses[i] = 0;
		}
		pthread_mutex_lock(&s->wd_mtx);
	}
	pthread_mutex_unlock(&s->wd_mtx);
	return NULL;
}

static void
watchdog_stop(struct sg_server *s)
{
	if (!s->watchdog_running)
		return;
	pthread_mutex_lock(&s->wd_mtx);
	s->wd_stop = true;
	pthread_cond_signal(&s->wd_cv);
	pthread_mutex_unlock(&s->wd_mtx);
	pthread_join(s->watchdog, NULL);
	s->watchdog_running = false;
}

/* ------------------------------------------------------------------ lifecycle */

sg_err
sg_server_new(sg_server **out, const sg_config *cfg, char *err, size_t errlen)
{
	struct sg_server *s = calloc(1, sizeof(*s));
	int rv;
	sg_err e;

	if (s == NULL)
		return SG_ENOMEM;
	s->cfg = cfg;
	pthread_mutex_init(&s->wd_mtx, NULL);
	pthread_cond_init(&s->wd_cv, NULL);
	atomic_init(&s->draining, false);
	atomic_init(&s->busy, 0);
	atomic_init(&s->upstream, 0);
	for (unsigned i = 0; i < service->n_methods && i < 8; i++) {
		const char *n = service->methods[i].name;
		s->kinds[i] = strcmp(n, "Health") == 0        ? M_HEALTH
		              : strcmp(n, "Track") == 0       ? M_TRACK
		              : strcmp(n, "GetOrder") == 0    ? M_GET_ORDER
		              : strcmp(n, "CreateOrder") == 0 ? M_CREATE_ORDER
		                                              : M_UNKNOWN;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		snprintf(err, errlen, "nng_rep0_open: %s", nng_strerror(rv));
		e = SG_EINTERNAL;
		goto fail;
	}
	s->sock_open = true;
	/* Before any listener: nng would otherwise allocate whatever length a peer announces. */
	if ((rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, cfg->recv_max_bytes)) != 0) {
		snprintf(err, errlen, "NNG_OPT_RECVMAXSZ: %s", nng_strerror(rv));
		e = SG_EINTERNAL;
		goto fail;
	}
	if ((e = sg_engine_new(&s->engine, &cfg->engine)) != SG_OK) {
		snprintf(err, errlen, "upstream engine: %s", sg_strerror(e));
		goto fail;
	}
	s->nworks = cfg->workers;
	if ((s->works = calloc((size_t)s->nworks, sizeof(*s->works))) == NULL) {
		e = SG_ENOMEM;
		goto fail;
	}
	for (int i = 0; i < s->nworks; i++) {
		struct work *w = &s->works[i];
		w->srv = s;
		w->state = W_INIT;
		sg_arena_init(&w->arena, 16384, cfg->arena_cap);
		if ((rv = nng_aio_alloc(&w->aio, work_cb, w)) != 0 ||
		    (rv = nng_ctx_open(&w->ctx, s->sock)) != 0) {
			snprintf(err, errlen, "context %d: %s", i, nng_strerror(rv));
			e = SG_ENOMEM;
			goto fail;
		}
	}
	*out = s;
	return SG_OK;
fail:
	sg_server_free(s);
	return e;
}

sg_err
sg_server_start(sg_server *s, char *err, size_t errlen)
{
	int rv;
	for (size_t i = 0; i < s->cfg->nlisten; i++) {
		const char *url = s->cfg->listen[i];
		if ((rv = nng_listen(s->sock, url, &s->listeners[i], 0)) != 0) {
			snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
			return SG_EINTERNAL;
		}
		s->nlisteners++;
		snprintf(s->bound[i], sizeof(s->bound[i]), "%s", url);
		int port;
		const char *colon = strrchr(url, ':');
		if (strncmp(url, "tcp://", 6) == 0 && colon != NULL && strcmp(colon, ":0") == 0 &&
		    nng_listener_get_int(s->listeners[i], NNG_OPT_TCP_BOUND_PORT, &port) == 0)
			snprintf(s->bound[i], sizeof(s->bound[i]), "%.*s:%d", (int)(colon - url),
			         url, port);
	}
	s->started_ms = sg_now_ms();
	for (int i = 0; i < s->nworks; i++)
		work_recv(&s->works[i]);
	bool has_ipc = false;
	for (size_t i = 0; i < s->nlisteners; i++)
		has_ipc |= strncmp(s->cfg->listen[i], "ipc://", 6) == 0;
	if (has_ipc && s->cfg->ipc_watchdog_ms > 0) {
		if (pthread_create(&s->watchdog, NULL, ipc_watchdog, s) != 0) {
			snprintf(err, errlen, "ipc watchdog: cannot start thread");
			return SG_EINTERNAL;
		}
		s->watchdog_running = true;
	}
	return SG_OK;
}

const char *
sg_server_url(const sg_server *s, size_t i)
{
	return i < s->nlisteners ? s->bound[i] : NULL;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

void
sg_server_stop(sg_server *s)
{
	if (s == NULL || s->stopped)
		return;
	s->stopped = true;
	watchdog_stop(s);
	atomic_store(&s->draining, true);
	/* 1. Let upstream calls finish, up to the drain timeout. */
	int64_t until = sg_now_ms() + s->cfg->drain_timeout_ms;
	while (atomic_load(&s->upstream) > 0 && sg_now_ms() < until)
		sleep_ms(5);
	/* 2. The rest complete with SG_ESHUTDOWN and are answered UNAVAILABLE. */
	sg_engine_free(s->engine);
	s->engine = NULL;
	/* 3. Wait for every reply to be handed to its pipe, then give the pipes a moment. */
	until = sg_now_ms() + 2000;
	while (atomic_load(&s->busy) > 0 && sg_now_ms() < until)
		sleep_ms(2);
	sleep_ms(50);
	/* 4. Close, then stop each aio (never from a callback), then free. */
	if (s->sock_open) {
		nng_close(s->sock);
		s->sock_open = false;
	}
	for (int i = 0; i < s->nworks; i++)
		if (s->works[i].aio != NULL)
			nng_aio_stop(s->works[i].aio);
}

void
sg_server_free(sg_server *s)
{
	if (s == NULL)
		return;
	if (!s->stopped && s->nlisteners > 0) {
		sg_server_stop(s);
	} else {
		if (s->sock_open)
			nng_close(s->sock);
		s->sock_open = false;
		for (int i = 0; s->works != NULL && i < s->nworks; i++)
			if (s->works[i].aio != NULL)
				nng_aio_stop(s->works[i].aio);
		sg_engine_free(s->engine);
		s->engine = NULL;
	}
	for (int i = 0; s->works != NULL && i < s->nworks; i++) {
		struct work *w = &s->works[i];
		if (w->aio != NULL) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_free(w->aio);
		}
		nng_msg_free(w->msg);
		sg_arena_fini(&w->arena);
	}
	free(s->works);
	watchdog_stop(s);
	pthread_mutex_destroy(&s->wd_mtx);
	pthread_cond_destroy(&s->wd_cv);
	free(s);
}
