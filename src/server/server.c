/*
 * server.c - REP socket, context pool, envelope decoding, dispatch, replies.
 *
 * Life of one call (one struct work, touched by one thread at a time):
 *
 *   W_RECV --recv done--> decode, dispatch --immediate answer------------------> W_SEND
 *                                    \--upstream call--> W_UPSTREAM --engine cb--> W_SEND
 *                                    \--same key in flight--> W_PARKED --owner's outcome
 *                                                              or own deadline--> W_SEND
 *   W_SEND --send done--> reset arena, post the next receive -> W_RECV
 *
 * The receive and send callbacks run on nng's threads; the upstream completion runs on the
 * engine thread. Both only decode, translate and queue a send: nothing here blocks.
 */
#include "server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
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
#include "core/utf8.h"
#include "providers/common.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"
#include "upstream/engine.h"

#include "flight.h"
#include "reaper.h"

#ifndef SG_VERSION
#define SG_VERSION "0.1.0"
#endif

/* Upper bound of upstream.threads. */
#define SG_MAX_ENGINES 16

/* CreateOrderResponse.replayed: appended to a payload that answers a repeated key. */
#define REPLAYED_FIELD 8
/* TrackResponse.cache and GetOrderResponse.cache: appended to a cached answer. */
#define CACHE_FIELD 2

/* ------------------------------------------------------------------ types */

enum work_state {
	W_INIT,     /* not started */
	W_RECV,     /* a receive is posted */
	W_UPSTREAM, /* waiting for the engine */
	W_FLIGHT,   /* looking its key up (idempotency or cache) */
	W_PARKED,   /* waiting for the owner of its key, its deadline with the reaper */
	W_AUTH,     /* waiting for a provider token */
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
	const sg_op *op;                         /* provider operation of an upstream call */
	sg_http_req hreq;                        /* upstream request (arena strings) */
	sg_status st;                            /* outcome of the call */
	int64_t start_ms;                        /* when the request was received */
	int64_t deadline_ms;                     /* absolute sg_now_ms() deadline */
	enum method_kind kind;                   /* what the method does */
	const sg_provider *prov;                 /* provider of an upstream call */
	sg_pconf pc_call;                        /* its config, with the token to use */
	struct work *auth_next;                  /* calls queued for a provider token (links, */
	struct work *auth_prev;                  /*   valid while auth_queued) */
	bool auth_queued;                        /* in its provider's token queue */
	bool auth_retried;                       /* already retried after a 401 */
	bool idem_owner;                         /* owns its idempotency key: must finish it */
	const char *cache_key;                   /* lookup cache key (arena), or NULL */
	bool cache_owner;                        /* owns cache_key: must finish it */
	bool cache_store;                        /* bypassed the cache: store a fresh answer */
	sg_flight_waiter waiter;                 /* parks the call behind the key's owner */
	/* Parked (W_PARKED behind the owner of its key, or W_AUTH behind a token fetch): the
	 * party that ends the wait (work_park_settle) and the deadline (work_park_expired, on the
	 * reaper thread) race; exactly one of them runs park_then. */
	void (*park_then)(struct work *w);  /* how the call goes on once its wait is over */
	bool (*park_leave)(struct work *w); /* takes it out of its queue; false: too late */
	sg_reaper_item park_timer;          /* its deadline, queued with the server's reaper */
	pthread_mutex_t park_mtx;           /* guards the two flags below */
	bool park_ready;                    /* the wait is over: w holds what it waited for */
	bool park_timer_gone;               /* the deadline came first, too late to take it back */
};

/* One provider's fetched token. */
struct token_cache {
	pthread_mutex_t mtx;  /* guards the fields below */
	char *token;          /* malloc'd bearer token, or NULL */
	int64_t expires_ms;   /* sg_now_ms() after which it is not used */
	bool fetching;        /* a fetch is running */
	struct work *waiters; /* calls waiting for it, linked by auth_next */
};

struct sg_server {
	const sg_config *cfg;                         /* borrowed; outlives the server */
	nng_socket sock;                              /* the REP socket */
	bool sock_open;                               /* sock needs closing */
	nng_listener listeners[SG_CONFIG_MAX_LISTEN]; /* one per configured URL */
	size_t nlisteners;                            /* listeners started */
	char bound[SG_CONFIG_MAX_LISTEN][256];        /* listen URLs with tcp port 0 resolved */
	sg_engine *engines[SG_MAX_ENGINES];           /* upstream HTTP, one thread each */
	int nengines;                                 /* engines in use */
	atomic_uint next_engine;                      /* round-robin over engines */
	sg_flight *idem;                              /* CreateOrder idempotency keys */
	sg_flight *cache;                             /* Track/GetOrder answers, or NULL */
	sg_reaper *reaper;                            /* deadlines of parked calls */
	struct token_cache tokens[SG_PROVIDER_COUNT]; /* fetched provider tokens */
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

/* The engine for the next upstream transfer: round-robin, so that every engine thread's
 * connection cache and translation work stay 1/K of the load. Any thread. */
static sg_engine *
pick_engine(struct sg_server *s)
{
	return s->engines[atomic_fetch_add(&s->next_engine, 1) % (unsigned)s->nengines];
}

/* True when calls to p fetch their bearer token (OAuth2 client credentials) rather than
 * using the configured static token. One predicate for every path that needs to know. */
static bool
fetches_token(const sg_provider *p, const sg_pconf *pc)
{
	return p->auth.build != NULL && pc->client_id != NULL && pc->client_secret != NULL;
}

/*
 * The provider operations, with jansson allocating from the call's arena meanwhile
 * (sg_json_use_arenas): the JSON a provider parses or builds dies with the call, no malloc.
 */
static sg_err
op_build(const sg_op *op, const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
         sg_http_req *out, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = op->build(pc, req, a, out, st);
	sg_json_arena_set(NULL);
	return err;
}

static sg_err
op_parse(const sg_op *op, const sg_pconf *pc, const ProtobufCMessage *req, const sg_http_resp *resp,
         sg_arena *a, ProtobufCMessage **reply, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = op->parse(pc, req, resp, a, reply, st);
	sg_json_arena_set(NULL);
	return err;
}

static sg_err
auth_build(const sg_provider *p, const sg_pconf *pc, sg_arena *a, sg_http_req *out, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = p->auth.build(pc, a, out, st);
	sg_json_arena_set(NULL);
	return err;
}

static sg_err
auth_parse(const sg_provider *p, const sg_pconf *pc, const sg_http_resp *resp, sg_arena *a,
           const char **token, int64_t *lifetime_s, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = p->auth.parse(pc, resp, a, token, lifetime_s, st);
	sg_json_arena_set(NULL);
	return err;
}

/* The provider's cached token when it is still good (tc->mtx held): true, and *out its copy in
 * a (NULL when a is full). False when there is none or it expired. */
static bool
token_take(struct token_cache *tc, sg_arena *a, const char **out)
{
	if (tc->token == NULL || sg_now_ms() >= tc->expires_ms)
		return false;
	*out = sg_arena_strdup(a, tc->token);
	return true;
}

static void work_cb(void *arg);
static void work_recv(struct work *w);
static void work_release(struct work *w);
static void work_fail(struct work *w, sg_err err, const char *msg);
static void work_with_token(struct work *w);
static bool work_idem_begin(struct work *w);
static void work_upstream_done(void *arg, sg_err err, const sg_http_resp *resp);
static void token_invalidate(struct sg_server *s, const sg_provider *p, const char *tok);

/* ------------------------------------------------------------------ replies */

/* Bytes a varint takes. */
static size_t
varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Packs msg into the arena as o's payload. Returns 0 or -1 (arena full). */
static int
pack_payload(sg_arena *a, const ProtobufCMessage *msg, sg_flight_outcome *o)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = sg_arena_alloc(a, n ? n : 1);
	if (buf == NULL)
		return -1;
	o->payload = buf;
	o->payload_len = protobuf_c_message_pack(msg, buf);
	return 0;
}

/* Packs w->st as a shipgate.v1.Status into the arena. Returns 0 or -1 (arena full). */
static int
work_pack_status(struct work *w, sg_flight_outcome *o)
{
	sg_arena *a = &w->arena;
	Shipgate__V1__Status status = SHIPGATE__V1__STATUS__INIT;
	Shipgate__V1__ErrorDetail det = SHIPGATE__V1__ERROR_DETAIL__INIT;
	sg_status *st = &w->st;

	/* Every string of a reply is valid UTF-8 (proto3's rule; strict decoders refuse the
	 * message otherwise): provider texts may be anything, so each one is made valid. */
#define TEXT(s) ((char *)sg_utf8_clean(a, (s) ? (s) : ""))
	status.code = (Shipgate__V1__Code)sg_err_code(st->err);
	if (st->err != SG_OK) {
		status.message = TEXT(st->message ? st->message : sg_strerror(st->err));
		status.detail = &det;
		det.reason = (char *)sg_err_reason(st->err);
		det.retryable = sg_err_retryable(st->err);
		det.upstream_http_status = st->http_status;
		det.provider = TEXT(st->provider);
		det.provider_code = TEXT(st->provider_code);
		det.provider_message = TEXT(st->provider_message);
		det.retry_after_ms = st->retry_after_ms;
		Shipgate__V1__FieldViolation *fv =
		        st->nviolations ? sg_arena_calloc(a, st->nviolations, sizeof(*fv)) : NULL;
		Shipgate__V1__FieldViolation **fvp =
		        st->nviolations ? sg_arena_calloc(a, st->nviolations, sizeof(*fvp)) : NULL;
		if (fv != NULL && fvp != NULL) {
			for (size_t i = 0; i < st->nviolations; i++) {
				shipgate__v1__field_violation__init(&fv[i]);
				fv[i].field = TEXT(st->violations[i].field);
				fv[i].description = TEXT(st->violations[i].description);
				fvp[i] = &fv[i];
			}
			det.field_violations = fvp;
			det.n_field_violations = st->nviolations;
		}
	}
#undef TEXT
	size_t n = shipgate__v1__status__get_packed_size(&status);
	uint8_t *buf = sg_arena_alloc(a, n);
	if (buf == NULL)
		return -1;
	o->status = buf;
	o->status_len = shipgate__v1__status__pack(&status, buf);
	return 0;
}

/*
 * Packs the outcome of w: its status and, when OK, its response message. A response that does
 * not fit the call's memory turns the status into RESOURCE_EXHAUSTED.
 */
static int
work_pack_outcome(struct work *w, sg_flight_outcome *o)
{
	memset(o, 0, sizeof(*o));
	if (w->st.err == SG_OK && w->reply != NULL && pack_payload(&w->arena, w->reply, o) != 0)
		sg_status_set(&w->st, &w->arena, SG_ENOMEM,
		              "reply does not fit the call's memory cap");
	return work_pack_status(w, o);
}

/*
 * Writes the RpcReply {request_id, status, payload} into w->msg by hand, so that a stored
 * outcome can be sent to any caller without decoding it. `extra` (encoded fields) is appended
 * to the payload: protobuf merges it, a later field winning (CreateOrderResponse.replayed,
 * TrackResponse.cache).
 */
static int
work_encode_reply(struct work *w, const sg_flight_outcome *o, const uint8_t *extra,
                  size_t extra_len)
{
	const char *rid = w->env != NULL ? w->env->request_id : "";
	size_t rlen = strlen(rid);
	size_t plen = o->payload != NULL ? o->payload_len + extra_len : 0;
	size_t len = (rlen ? 1 + varint_len(rlen) + rlen : 0) + 1 + varint_len(o->status_len) +
	             o->status_len + (o->payload != NULL ? 1 + varint_len(plen) + plen : 0);
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
	uint8_t *p = nng_msg_body(w->msg);
	if (rlen) {
		*p++ = (1 << 3) | 2;
		p = put_varint(p, rlen);
		memcpy(p, rid, rlen);
		p += rlen;
	}
	*p++ = (2 << 3) | 2; /* status is always present, even when OK (empty) */
	p = put_varint(p, o->status_len);
	memcpy(p, o->status, o->status_len);
	p += o->status_len;
	if (o->payload != NULL) {
		*p++ = (3 << 3) | 2;
		p = put_varint(p, plen);
		memcpy(p, o->payload, o->payload_len);
		p += o->payload_len;
		if (extra_len) {
			memcpy(p, extra, extra_len);
			p += extra_len;
		}
	}
	return 0;
}

/* CreateOrderResponse.replayed = true, appended to a replayed payload. */
static const uint8_t replayed_field[] = {(REPLAYED_FIELD << 3) | 0, 1};

/* Encodes an outcome as w's reply into w->msg, with extra fields appended to its payload, and
 * drops the call's memory (the reply no longer needs it). Without memory even for the reply,
 * w->msg is freed and left NULL: the reply is dropped and the caller's deadline fires. */
static void
work_encode_outcome(struct work *w, const sg_flight_outcome *o, const uint8_t *extra,
                    size_t extra_len)
{
	if (work_encode_reply(w, o, extra, extra_len) != 0) {
		nng_msg_free(w->msg);
		w->msg = NULL;
	}
	work_release(w);
}

/* Sends the reply encoded in w->msg; without one, goes straight to the next request. */
static void
work_send_msg(struct work *w)
{
	if (w->msg == NULL) {
		work_recv(w);
		return;
	}
	w->state = W_SEND;
	nng_aio_set_msg(w->aio, w->msg);
	w->msg = NULL; /* owned by the aio now; back to us only if the send fails */
	nng_ctx_send(w->ctx, w->aio);
}

/* Sends an encoded outcome as w's reply, with extra fields appended to its payload. */
static void
work_send_outcome_x(struct work *w, const sg_flight_outcome *o, const uint8_t *extra,
                    size_t extra_len)
{
	work_encode_outcome(w, o, extra, extra_len);
	work_send_msg(w);
}

/* Sends an encoded outcome; `replayed` marks CreateOrderResponse.replayed = true. */
static void
work_send_outcome(struct work *w, const sg_flight_outcome *o, bool replayed)
{
	work_send_outcome_x(w, o, replayed_field, replayed ? sizeof(replayed_field) : 0);
}

/* Sends a cached outcome with its TrackResponse/GetOrderResponse.cache (field 2). */
static void
work_send_cached(struct work *w, const sg_flight_outcome *o, int64_t age_ms, bool stale)
{
	uint8_t info[16], extra[20];
	uint8_t *p = info;
	*p++ = (1 << 3) | 0; /* hit */
	*p++ = 1;
	if (age_ms > 0) {
		*p++ = (2 << 3) | 0; /* age_ms */
		p = put_varint(p, (uint64_t)age_ms);
	}
	if (stale) {
		*p++ = (3 << 3) | 0;
		*p++ = 1;
	}
	size_t n = (size_t)(p - info);
	extra[0] = (CACHE_FIELD << 3) | 2;
	extra[1] = (uint8_t)n;
	memcpy(extra + 2, info, n);
	w->st.err = SG_OK;
	work_send_outcome_x(w, o, extra, n + 2);
}

/*
 * Whether an owner's outcome is kept for its idempotency key. Kept: success, and any failure
 * after which the provider may have created the order. Released: the request was refused
 * before it could take effect (never sent, or a 4xx), so a retry may run it again.
 */
static bool
idem_keep(sg_err err)
{
	switch (err) {
	case SG_EUP_CONNECT:
	case SG_EDEADLINE:
	case SG_ENOCRED:
	case SG_EINVAL:
	case SG_EUP_BADREQ:
	case SG_EUP_UNAUTH:
	case SG_EUP_FORBIDDEN:
	case SG_EUP_NOTFOUND:
	case SG_EUP_CONFLICT:
	case SG_EUP_RATELIMIT: return false;
	default: return true;
	}
}

/* Logs the call (verbose 2, or internal errors at 1). */
static void
work_log(struct work *w)
{
	const sg_config *cfg = w->srv->cfg;
	if (cfg->verbose >= 2 || (cfg->verbose >= 1 && sg_err_code(w->st.err) == 13)) {
		fprintf(stderr, "shipgated: %s %s %s %lldms%s%s\n",
		        w->method ? w->method->name : "-", sg_err_reason(w->st.err),
		        w->env && w->env->request_id[0] ? w->env->request_id : "-",
		        (long long)(sg_now_ms() - w->start_ms), w->st.message ? ": " : "",
		        w->st.message ? w->st.message : "");
	}
}

/* Sends the reply for w (status from w->st, payload from w->reply). Any thread. */
static void
work_send(struct work *w)
{
	sg_flight_outcome o;

	if (w->idem_owner && w->st.err != SG_OK && idem_keep(w->st.err)) {
		/* Every caller of this key will get this answer: say what it means. */
		w->st.message = sg_arena_printf(
		        &w->arena,
		        "outcome unknown (%s): the provider may have created the order; this "
		        "idempotency key will keep returning this answer, so check with the "
		        "provider before retrying under a new key",
		        w->st.message ? w->st.message : sg_strerror(w->st.err));
		w->st.err = SG_EOUTCOME;
	}
	work_log(w);
	if (work_pack_outcome(w, &o) != 0) {
		memset(&o, 0, sizeof(o)); /* no memory for the status: send it empty (UNKNOWN) */
		o.status = (const uint8_t *)"\x08\x02";
		o.status_len = 2;
	}
	if (w->idem_owner) {
		w->idem_owner = false;
		sg_flight_finish(w->srv->idem, w->env->idempotency_key,
		                 w->st.err == SG_OK || idem_keep(w->st.err),
		                 w->srv->cfg->idem_ttl_ms, 0, &o);
	}
	if (w->cache_owner || (w->cache_store && w->st.err == SG_OK)) {
		int i = w->prov->id - 1;
		int64_t ttl = w->srv->cfg->cache_ttl_ms[i], stale = w->srv->cfg->cache_stale_ms[i];
		if (w->cache_owner)
			sg_flight_finish(w->srv->cache, w->cache_key, w->st.err == SG_OK, ttl,
			                 stale, &o);
		else
			sg_flight_put(w->srv->cache, w->cache_key, ttl, stale, &o);
		w->cache_owner = w->cache_store = false;
	}
	work_send_outcome(w, &o, false);
}

/*
 * Parking: a call waits behind another (the owner of its key, or a token fetch) until that one
 * ends its wait or the call's own deadline passes, whichever comes first. The ender stores
 * what the call waited for in it and calls work_park_settle(); the reaper calls
 * work_park_expired(). Each of the two may find the other half-way; the per-call lock decides
 * which one goes on with the call.
 */

/* Before w becomes findable by an ender (a flight lookup, a token queue): no wait of its own
 * is pending then, so plain stores do. */
static void
work_park_reset(struct work *w)
{
	w->park_ready = w->park_timer_gone = false;
}

/* Queues w's deadline, or goes on at once if its wait is already over. then: how it goes on;
 * leave: how to take it back from the queue the caller linked it in. */
static void
work_park(struct work *w, void (*then)(struct work *w), bool (*leave)(struct work *w))
{
	pthread_mutex_lock(&w->park_mtx);
	if (w->park_ready) {
		pthread_mutex_unlock(&w->park_mtx);
		then(w);
		return;
	}
	w->park_then = then;
	w->park_leave = leave;
	w->park_timer.node.deadline = w->deadline_ms;
	/* cannot fail: the reaper has a slot for every context, and w is in none */
	(void)sg_reaper_add(w->srv->reaper, &w->park_timer);
	pthread_mutex_unlock(&w->park_mtx);
}

/* The ender of w's wait has stored its result in w. True when the caller must now go on with
 * w; false when w's parker or the reaper will. */
static bool
work_park_settle(struct work *w)
{
	pthread_mutex_lock(&w->park_mtx);
	w->park_ready = true;
	bool go = sg_reaper_remove(w->srv->reaper, &w->park_timer) || w->park_timer_gone;
	pthread_mutex_unlock(&w->park_mtx);
	return go;
}

static bool token_leave(struct work *w);

/* The deadline of a parked call passed. Reaper thread. */
static void
work_park_expired(sg_reaper_item *it)
{
	struct work *w = (struct work *)((char *)it - offsetof(struct work, park_timer));

	pthread_mutex_lock(&w->park_mtx);
	bool ready = w->park_ready;
	pthread_mutex_unlock(&w->park_mtx);
	if (!ready) {
		/* take it back from the queue it waits in: then the ender will not see it */
		if (w->park_leave(w)) {
			work_fail(w, SG_EDEADLINE,
			          w->park_leave == token_leave
			                  ? "deadline passed while waiting for the provider's token"
			                  : "deadline passed while waiting for the same call (same "
			                    "key) in flight");
			return;
		}
		/* the ender has it: it settles soon, or has just done so */
		pthread_mutex_lock(&w->park_mtx);
		ready = w->park_ready;
		w->park_timer_gone = !ready;
		pthread_mutex_unlock(&w->park_mtx);
	}
	if (ready)
		w->park_then(w);
}

/* A call that waited behind the owner of its key gets the owner's outcome. Runs on the
 * owner's thread: encodes the reply now (o is borrowed), then sends it unless the parker or
 * the reaper will. */
static void
work_flight_done(sg_flight_waiter *wt, const sg_flight_outcome *o)
{
	struct work *w = (struct work *)((char *)wt - offsetof(struct work, waiter));
	bool replay = w->kind == M_CREATE_ORDER; /* an idempotent replay says so */

	work_encode_outcome(w, o, replayed_field, replay ? sizeof(replayed_field) : 0);
	if (work_park_settle(w))
		work_send_msg(w);
}

/* The table a call's key lives in: idempotency for CreateOrder, else the lookup cache. */
static sg_flight *
work_flight_table(const struct work *w)
{
	return w->kind == M_CREATE_ORDER ? w->srv->idem : w->srv->cache;
}

static bool
work_flight_leave(struct work *w)
{
	return sg_flight_leave(work_flight_table(w), &w->waiter);
}

/* Parks w behind the owner of its key (sg_flight_begin said WAITING). */
static void
work_park_flight(struct work *w)
{
	w->state = W_PARKED;
	work_park(w, work_send_msg, work_flight_leave);
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
		err = op_parse(w->op, &w->pc_call, w->req, resp, &w->arena, &w->reply, &w->st);
		w->st.err = err;
		if (err == SG_EUP_UNAUTH && fetches_token(w->prov, &w->pc_call) &&
		    !w->auth_retried) {
			/* the cached token was revoked or expired early: once more, fresh */
			atomic_fetch_sub(&s->upstream, 1);
			token_invalidate(s, w->prov, w->pc_call.token);
			w->auth_retried = true;
			sg_status_clear(&w->st);
			w->st.provider = w->prov->name;
			w->reply = NULL;
			work_with_token(w);
			return;
		}
	} else {
		sg_status_set(&w->st, &w->arena, err, "%s: %s", w->prov->name, sg_strerror(err));
		w->st.provider = w->prov->name;
	}
	if (w->st.err != SG_OK)
		w->reply = NULL;
	atomic_fetch_sub(&s->upstream, 1);
	work_send(w);
}

/* ------------------------------------------------------------------ upstream calls */

/* Builds the provider request and hands it to the engine (or answers the call). */
static void
work_build_submit(struct work *w)
{
	struct sg_server *s = w->srv;
	const sg_pconf *pc = &w->pc_call;
	sg_err err = op_build(w->op, pc, w->req, &w->arena, &w->hreq, &w->st);
	if (err != SG_OK) {
		w->st.err = err;
		work_send(w);
		return;
	}
	/* (a call resumed after a token wait or a 401 already owns its key) */
	if (w->kind == M_CREATE_ORDER && !w->idem_owner && !work_idem_begin(w))
		return; /* answered, or parked behind the key's owner */
	int64_t deadline = w->deadline_ms;
	if (w->env->deadline_ms == 0 && pc->timeout_ms > 0)
		deadline = w->start_ms + pc->timeout_ms;
	w->state = W_UPSTREAM;
	atomic_fetch_add(&s->upstream, 1);
	err = sg_engine_submit(pick_engine(s), &w->hreq, deadline, work_upstream_done, w);
	if (err != SG_OK) {
		atomic_fetch_sub(&s->upstream, 1);
		sg_status_set(&w->st, &w->arena, err, "%s: %s", w->prov->name, sg_strerror(err));
		work_send(w);
	}
}

/* ------------------------------------------------------------------ provider tokens */

/*
 * Providers with an auth op (OAuth2 client credentials) get their bearer token from the
 * provider itself. One token per provider is cached until shortly before it expires; calls that
 * find no valid token queue behind one fetch (the first of them makes it), then all continue
 * with the new token, or all fail with the fetch's status. A 401 on a call made with a cached
 * token drops that token and retries the call once with a fresh one.
 */

/* Margin before the provider's expiry at which a token stops being used. */
static int64_t
token_margin_ms(int64_t lifetime_ms)
{
	int64_t m = lifetime_ms / 10;
	return m > 60000 ? 60000 : m;
}

/* Stores the outcome of a token fetch in a call that waited for it (err SG_OK: tok is the
 * token; else fst says why it failed), copied into the call's arena: tok and fst belong to the
 * fetcher. */
static void
work_token_adopt(struct work *w, sg_err err, const char *tok, const sg_status *fst)
{
	if (err == SG_OK) {
		w->pc_call.token = sg_arena_strdup(&w->arena, tok);
		if (w->pc_call.token == NULL)
			sg_status_set(&w->st, &w->arena, SG_ENOMEM, NULL);
		return;
	}
	if (fst != &w->st) {
		/* the fetcher's status, with its strings copied into this call's arena */
		w->st = *fst;
		w->st.message = sg_arena_strdup(&w->arena, fst->message);
		w->st.provider_code = sg_arena_strdup(&w->arena, fst->provider_code);
		w->st.provider_message = sg_arena_strdup(&w->arena, fst->provider_message);
		w->st.nviolations = 0;
	}
	w->st.err = err;
}

/* Goes on with a call whose token wait is over (work_token_adopt ran): upstream with the
 * token, or its failure as the reply. */
static void
work_token_continue(struct work *w)
{
	if (w->st.err == SG_OK) {
		work_build_submit(w);
		return;
	}
	w->reply = NULL;
	work_send(w);
}

/* Engine callback of a token fetch; arg is the fetching call. */
static void
work_token_fetched(void *arg, sg_err err, const sg_http_resp *resp)
{
	struct work *f = arg;
	struct sg_server *s = f->srv;
	struct token_cache *tc = &s->tokens[f->prov->id - 1];
	const char *tok = NULL;
	int64_t lifetime_s = 0;

	atomic_fetch_sub(&s->upstream, 1);
	if (err == SG_OK)
		err = auth_parse(f->prov, &f->pc_call, resp, &f->arena, &tok, &lifetime_s, &f->st);
	else if (f->st.err == SG_OK) /* an engine error; a build error already said why */
		sg_status_set(&f->st, &f->arena, err, "%s token: %s", f->prov->name,
		              sg_strerror(err));
	if (err == SG_OK && (tok == NULL || tok[0] == '\0'))
		err = sg_status_set(&f->st, &f->arena, SG_EUP_MALFORMED, "%s token: empty",
		                    f->prov->name);
	pthread_mutex_lock(&tc->mtx);
	struct work *waiters = tc->waiters;
	tc->waiters = NULL;
	tc->fetching = false;
	for (struct work *w = waiters; w != NULL; w = w->auth_next)
		w->auth_queued = false; /* taken: token_leave says so from now on */
	if (err == SG_OK) {
		char *copy = strdup(tok);
		if (copy != NULL) {
			free(tc->token);
			tc->token = copy;
			int64_t life = (lifetime_s > 0 ? lifetime_s : 300) * 1000;
			tc->expires_ms = sg_now_ms() + life - token_margin_ms(life);
		}
	}
	pthread_mutex_unlock(&tc->mtx);
	/*
	 * Each waiter continues (or fails) on this thread. The fetcher goes last: tok and the
	 * status strings live in its arena, which its own reply may reset.
	 */
	while (waiters != NULL) {
		struct work *w = waiters;
		waiters = w->auth_next;
		if (w == f)
			continue; /* goes last, below */
		work_token_adopt(w, err, tok, &f->st);
		if (work_park_settle(w))
			work_token_continue(w);
	}
	work_token_adopt(f, err, tok, &f->st);
	work_token_continue(f);
}

/* Takes a call waiting for a token fetch out of the queue. True when it was still there (the
 * fetch will not continue it); false when the fetch has already taken the queue. */
static bool
token_leave(struct work *w)
{
	struct token_cache *tc = &w->srv->tokens[w->prov->id - 1];
	bool queued;

	pthread_mutex_lock(&tc->mtx);
	if ((queued = w->auth_queued)) { /* unlink in O(1) */
		if (w->auth_prev != NULL)
			w->auth_prev->auth_next = w->auth_next;
		else
			tc->waiters = w->auth_next;
		if (w->auth_next != NULL)
			w->auth_next->auth_prev = w->auth_prev;
		w->auth_queued = false;
		w->auth_next = w->auth_prev = NULL;
	}
	pthread_mutex_unlock(&tc->mtx);
	return queued;
}

/* Runs the call with the provider's cached token, fetching one first when needed. */
static void
work_with_token(struct work *w)
{
	struct sg_server *s = w->srv;
	struct token_cache *tc = &s->tokens[w->prov->id - 1];

	pthread_mutex_lock(&tc->mtx);
	if (token_take(tc, &w->arena, &w->pc_call.token)) {
		pthread_mutex_unlock(&tc->mtx);
		if (w->pc_call.token == NULL) {
			work_fail(w, SG_ENOMEM, NULL);
			return;
		}
		work_build_submit(w);
		return;
	}
	w->state = W_AUTH;
	work_park_reset(w);
	w->auth_prev = NULL;
	w->auth_next = tc->waiters;
	if (tc->waiters != NULL)
		tc->waiters->auth_prev = w;
	tc->waiters = w;
	w->auth_queued = true;
	bool fetch = !tc->fetching;
	tc->fetching = true;
	pthread_mutex_unlock(&tc->mtx);
	if (!fetch) {
		/* another call is fetching: work_token_fetched continues this one, unless its
		 * deadline comes first */
		work_park(w, work_token_continue, token_leave);
		return;
	}

	sg_err err = auth_build(w->prov, &w->pc_call, &w->arena, &w->hreq, &w->st);
	if (err == SG_OK) {
		atomic_fetch_add(&s->upstream, 1);
		err = sg_engine_submit(pick_engine(s), &w->hreq, w->deadline_ms, work_token_fetched,
		                       w);
		if (err == SG_OK)
			return;
		atomic_fetch_sub(&s->upstream, 1);
		sg_status_set(&w->st, &w->arena, err, "%s token: %s", w->prov->name,
		              sg_strerror(err));
	}
	/* could not even ask: fail everyone queued, as if the fetch had failed */
	atomic_fetch_add(&s->upstream, 1);
	w->st.err = err;
	work_token_fetched(w, err, NULL);
}

/* Drops tok from the cache if it is still the cached token (after a 401). */
static void
token_invalidate(struct sg_server *s, const sg_provider *p, const char *tok)
{
	struct token_cache *tc = &s->tokens[p->id - 1];
	pthread_mutex_lock(&tc->mtx);
	if (tc->token != NULL && tok != NULL && strcmp(tc->token, tok) == 0) {
		free(tc->token);
		tc->token = NULL;
	}
	pthread_mutex_unlock(&tc->mtx);
}

/* True when key is acceptable: 1..255 bytes of printable ASCII. */
static bool
idem_key_ok(const char *key)
{
	size_t n = 0;
	for (; key[n] != '\0'; n++)
		if (key[n] < 0x21 || key[n] > 0x7e || n >= 255)
			return false;
	return n > 0;
}

/*
 * CreateOrder's idempotency: true when this call owns its key and goes upstream; false when it
 * was answered (replay, conflict, bad key) or parked behind the owner.
 */
static bool
work_idem_begin(struct work *w)
{
	struct sg_server *s = w->srv;
	const char *key = w->env->idempotency_key;
	sg_flight_outcome o;

	if (!idem_key_ok(key)) {
		sg_status_violation(&w->st, "idempotency_key",
		                    "1 to 255 printable ASCII characters");
		work_fail(
		        w, SG_EIDEMKEY,
		        key[0] ? "idempotency_key: 1 to 255 printable ASCII characters"
		               : "CreateOrder requires an idempotency_key in the request envelope");
		return false;
	}
	sg_flight_fp fp =
	        sg_flight_fingerprint(w->env->method, w->env->payload.data, w->env->payload.len);
	int64_t age;
	bool refresh;
	w->state = W_FLIGHT;
	work_park_reset(w);
	switch (sg_flight_begin(s->idem, key, fp, &w->waiter, &w->arena, &o, &age, &refresh)) {
	case SG_FLIGHT_OWNER: w->idem_owner = true; return true;
	case SG_FLIGHT_WAITING: work_park_flight(w); return false;
	case SG_FLIGHT_HIT:
	case SG_FLIGHT_STALE: work_send_outcome(w, &o, true); return false;
	case SG_FLIGHT_CONFLICT:
		work_fail(w, SG_EIDEMCONFLICT,
		          "idempotency_key was already used with a different request");
		return false;
	case SG_FLIGHT_FULL:
	default: work_fail(w, SG_EBUSY, "idempotency table full; retry later"); return false;
	}
}

/* ------------------------------------------------------------------ lookup cache */

/*
 * Track and GetOrder answers are cached per provider for cache_ttl_ms, then served stale for
 * cache_stale_ms while one background refresh runs. Identical concurrent misses make one
 * upstream call (singleflight). bypass_cache skips the lookup and stores the fresh answer.
 * A hit is answered on the receiving thread, without a hand-off.
 */

/* One background refresh of a stale key: a call with no caller. */
struct refresh {
	struct sg_server *srv;   /* owner */
	sg_arena arena;          /* everything of the refresh */
	const sg_provider *prov; /* provider */
	const sg_op *op;         /* the operation to repeat */
	sg_pconf pc;             /* its config, with the token to use */
	ProtobufCMessage *req;   /* the request (arena copy) */
	sg_http_req hreq;        /* the upstream request */
	sg_status st;            /* outcome */
	char *key;               /* the cache key (arena) */
};

static const uint8_t empty_status[1] = {0};

static void
refresh_free(struct refresh *r)
{
	sg_arena_fini(&r->arena);
	free(r);
}

static void
refresh_done(void *arg, sg_err err, const sg_http_resp *resp)
{
	struct refresh *r = arg;
	struct sg_server *s = r->srv;
	ProtobufCMessage *reply = NULL;
	sg_flight_outcome o = {empty_status, 0, NULL, 0};

	bool parsed = err == SG_OK &&
	              op_parse(r->op, &r->pc, r->req, resp, &r->arena, &reply, &r->st) == SG_OK;
	bool keep = parsed && reply != NULL && pack_payload(&r->arena, reply, &o) == 0;
	int i = r->prov->id - 1;
	sg_flight_finish(s->cache, r->key, keep, s->cfg->cache_ttl_ms[i], s->cfg->cache_stale_ms[i],
	                 &o);
	refresh_free(r);
	atomic_fetch_sub(&s->upstream, 1);
}

/* Starts refreshing key with w's request; on any failure the stale answer stays. */
static void
cache_refresh_start(struct work *w, const char *key)
{
	struct sg_server *s = w->srv;
	struct refresh *r = calloc(1, sizeof(*r));
	sg_flight_outcome none = {empty_status, 0, NULL, 0};
	int i = w->prov->id - 1;

	if (r == NULL)
		goto fail;
	sg_arena_init(&r->arena, 8192, s->cfg->arena_cap);
	r->srv = s;
	r->prov = w->prov;
	r->op = w->op;
	r->pc = w->pc_call;
	r->key = sg_arena_strdup(&r->arena, key);
	r->req = protobuf_c_message_unpack(w->method->input, sg_arena_pb(&r->arena),
	                                   w->env->payload.len, w->env->payload.data);
	if (r->key == NULL || r->req == NULL)
		goto fail;
	if (fetches_token(w->prov, &w->pc_call)) {
		/* use the cached provider token; without one, leave the stale answer be */
		struct token_cache *tc = &s->tokens[i];
		pthread_mutex_lock(&tc->mtx);
		if (!token_take(tc, &r->arena, &r->pc.token))
			r->pc.token = NULL;
		pthread_mutex_unlock(&tc->mtx);
		if (r->pc.token == NULL)
			goto fail;
	}
	if (op_build(r->op, &r->pc, r->req, &r->arena, &r->hreq, &r->st) != SG_OK)
		goto fail;
	atomic_fetch_add(&s->upstream, 1);
	if (sg_engine_submit(pick_engine(s), &r->hreq, sg_now_ms() + r->pc.timeout_ms, refresh_done,
	                     r) == SG_OK)
		return;
	atomic_fetch_sub(&s->upstream, 1);
fail:
	sg_flight_finish(s->cache, key, false, 0, 0, &none);
	if (r != NULL)
		refresh_free(r);
}

/* The cache key of a Track or GetOrder request (arena), or NULL when it is not cacheable:
 * "<kind>|<provider>|<id>|<id2>". Built by hand: it is on every hit's path. */
static const char *
cache_key(struct work *w, bool *bypass)
{
	const char *id, *id2 = "";
	int provider;
	char kind;

	if (w->kind == M_TRACK) {
		const Shipgate__V1__TrackRequest *t = (const void *)w->req;
		*bypass = t->bypass_cache;
		kind = 'T';
		provider = (int)t->provider;
		id = t->order_id;
		id2 = t->tracking_number;
	} else {
		const Shipgate__V1__GetOrderRequest *g = (const void *)w->req;
		*bypass = g->bypass_cache;
		kind = 'G';
		provider = (int)g->provider;
		id = g->order_id;
	}
	size_t n1 = strlen(id), n2 = strlen(id2);
	if (n1 > 256 || n2 > 256 || provider < 0 || provider > 9)
		return NULL; /* providers are single digits; ids are validated later anyway */
	char *k = sg_arena_alloc(&w->arena, n1 + n2 + 6), *p = k;
	if (k == NULL)
		return NULL;
	*p++ = kind;
	*p++ = '|';
	*p++ = (char)('0' + provider);
	*p++ = '|';
	memcpy(p, id, n1);
	p += n1;
	*p++ = '|';
	memcpy(p, id2, n2);
	p[n2] = '\0';
	return k;
}

/* The lookup: true when the call must go upstream; false when it was answered or parked. */
static bool
work_cache_begin(struct work *w)
{
	struct sg_server *s = w->srv;
	static const sg_flight_fp none = {0, 0};
	sg_flight_outcome o;
	int64_t age = 0;
	bool bypass = false, refresh = false;
	const char *key = cache_key(w, &bypass);

	if (key == NULL)
		return true;
	w->cache_key = key;
	if (bypass) {
		w->cache_store = true;
		return true;
	}
	w->state = W_FLIGHT;
	work_park_reset(w);
	switch (sg_flight_begin(s->cache, key, none, &w->waiter, &w->arena, &o, &age, &refresh)) {
	case SG_FLIGHT_OWNER: w->cache_owner = true; return true;
	case SG_FLIGHT_WAITING: work_park_flight(w); return false;
	case SG_FLIGHT_HIT: work_send_cached(w, &o, age, false); return false;
	case SG_FLIGHT_STALE:
		if (refresh)
			cache_refresh_start(w, key);
		work_send_cached(w, &o, age, true);
		return false;
	default: w->cache_key = NULL; return true; /* no room: uncached */
	}
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
	if (sg_pconf_check(pc, &w->arena, &w->st) != SG_OK) { /* before the cache and tokens */
		work_send(w);
		return;
	}
	w->prov = p;
	w->pc_call = *pc; /* per-call copy: a fetched token replaces pc->token */
	if ((kind == M_TRACK || kind == M_GET_ORDER) && s->cache != NULL &&
	    s->cfg->cache_ttl_ms[id - 1] > 0 && !work_cache_begin(w))
		return; /* answered from the cache, or waiting for the same call */
	if (fetches_token(p, pc)) {
		work_with_token(w);
		return;
	}
	work_build_submit(w);
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
	/* protobuf-c cuts strings at an embedded NUL and accepts bad UTF-8: refuse both, in the
	 * envelope (method, request_id, idempotency_key, metadata) as in the payload below. Until
	 * the envelope passes, the reply carries no request_id: it is not known to be text. */
	if (sg_pb_check_strings(&shipgate__v1__rpc_request__descriptor, nng_msg_body(w->msg), len,
	                        &w->arena, &w->st) != SG_OK) {
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
		              "unknown method \"%.*s\"; methods are named \"/%s/<Method>\"",
		              sg_utf8_prefix(w->env->method, 200), w->env->method, service->name);
		work_send(w);
		return;
	}
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
	enum method_kind kind = w->kind = s->kinds[w->method - service->methods];
	if (kind != M_HEALTH && atomic_load(&s->draining)) {
		work_fail(w, SG_ESHUTDOWN, NULL);
		return;
	}
	if (w->env->deadline_ms < 0) {
		work_fail(w, SG_EDEADLINE, "deadline expired before the call started");
		return;
	}
	/* capped before the addition: a caller's deadline near INT64_MAX must not overflow */
	int64_t budget = w->env->deadline_ms ? w->env->deadline_ms : cfg->default_deadline_ms;
	w->deadline_ms =
	        w->start_ms + (budget < cfg->max_deadline_ms ? budget : cfg->max_deadline_ms);
	switch (kind) {
	case M_HEALTH: work_health(w); return;
	case M_TRACK:
	case M_GET_ORDER:
	case M_CREATE_ORDER: work_call_provider(w, kind); return;
	default: work_fail(w, SG_ENOMETHOD, "method declared but not served"); return;
	}
}

/* ------------------------------------------------------------------ the state machine */

/* Drops everything of w's call: its arena (the decoded request, the provider's parsed body,
 * the reply) and the pointers into it. Runs once the reply is encoded into its nng message,
 * so that a reply waiting for nng to send it holds only that message. Idempotent. */
static void
work_release(struct work *w)
{
	sg_arena_reset(&w->arena);
	w->env = NULL;
	w->method = NULL;
	w->req = NULL;
	w->reply = NULL;
	w->op = NULL;
	w->idem_owner = false;
	w->cache_owner = false;
	w->cache_store = false;
	w->cache_key = NULL;
	w->auth_retried = false;
	w->prov = NULL;
	memset(&w->hreq, 0, sizeof(w->hreq));
	sg_status_clear(&w->st);
}

static void
work_recv(struct work *w)
{
	if (w->state != W_INIT)
		atomic_fetch_sub(&w->srv->busy, 1);
	work_release(w);
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
	for (int i = 0; i < SG_PROVIDER_COUNT; i++)
		pthread_mutex_init(&s->tokens[i].mtx, NULL);
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
	sg_flight_conf idem_conf = {.max_entries = cfg->idem_max_entries, .evict = false};
	sg_flight_conf cache_conf = {.max_entries = cfg->cache_max_entries,
	                             .max_bytes = cfg->cache_max_bytes,
	                             .evict = true};
	if ((s->idem = sg_flight_new(&idem_conf)) == NULL ||
	    (cfg->cache_max_bytes > 0 && (s->cache = sg_flight_new(&cache_conf)) == NULL)) {
		e = SG_ENOMEM;
		goto fail;
	}
	/* each engine gets its share of the connection caps */
	sg_engine_conf ec = cfg->engine;
	s->nengines = cfg->engine_threads < 1 ? 1 : cfg->engine_threads;
	if (s->nengines > SG_MAX_ENGINES)
		s->nengines = SG_MAX_ENGINES;
	if (ec.max_host_conns > 0)
		ec.max_host_conns = (ec.max_host_conns + s->nengines - 1) / s->nengines;
	if (ec.max_total_conns > 0)
		ec.max_total_conns = (ec.max_total_conns + s->nengines - 1) / s->nengines;
	for (int i = 0; i < s->nengines; i++) {
		if ((e = sg_engine_new(&s->engines[i], &ec)) != SG_OK) {
			snprintf(err, errlen, "upstream engine: %s", sg_strerror(e));
			goto fail;
		}
	}
	s->nworks = cfg->workers;
	if ((s->works = calloc((size_t)s->nworks, sizeof(*s->works))) == NULL) {
		e = SG_ENOMEM;
		goto fail;
	}
	if ((s->reaper = sg_reaper_new((size_t)s->nworks)) == NULL) {
		e = SG_ENOMEM;
		goto fail;
	}
	for (int i = 0; i < s->nworks; i++) {
		pthread_mutex_init(&s->works[i].park_mtx, NULL);
		s->works[i].park_timer.expired = work_park_expired;
	}
	for (int i = 0; i < s->nworks; i++) {
		struct work *w = &s->works[i];
		w->srv = s;
		w->state = W_INIT;
		sg_arena_init(&w->arena, 2048, cfg->arena_cap); /* idle workers keep 2 KiB */
		w->waiter.done = work_flight_done;
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
	/* 2. The rest complete with SG_ESHUTDOWN and are answered UNAVAILABLE. The engines stay
	 * allocated (sg_server_free frees them): a continuation on another thread may still
	 * submit, and gets SG_ESHUTDOWN. */
	for (int i = 0; i < s->nengines; i++)
		sg_engine_stop(s->engines[i]);
	/* 3. Wait for every reply to be handed to its pipe, then give the pipes a moment. */
	until = sg_now_ms() + 2000;
	while (atomic_load(&s->busy) > 0 && sg_now_ms() < until)
		sleep_ms(2);
	sleep_ms(50);
	/* 4. No call is parked any more (their owners finished in 2): stop the deadlines. */
	sg_reaper_stop(s->reaper);
	/* 5. Close, then stop each aio (never from a callback), then free. */
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
	}
	for (int i = 0; i < s->nengines; i++) {
		sg_engine_free(s->engines[i]);
		s->engines[i] = NULL;
	}
	sg_reaper_free(s->reaper); /* before the contexts its callbacks use */
	s->reaper = NULL;
	for (int i = 0; s->works != NULL && i < s->nworks; i++) {
		struct work *w = &s->works[i];
		if (w->aio != NULL) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_free(w->aio);
		}
		nng_msg_free(w->msg);
		sg_arena_fini(&w->arena);
		pthread_mutex_destroy(&w->park_mtx);
	}
	free(s->works);
	sg_flight_free(s->idem);
	sg_flight_free(s->cache);
	for (int i = 0; i < SG_PROVIDER_COUNT; i++) {
		free(s->tokens[i].token);
		pthread_mutex_destroy(&s->tokens[i].mtx);
	}
	watchdog_stop(s);
	pthread_mutex_destroy(&s->wd_mtx);
	pthread_cond_destroy(&s->wd_cv);
	free(s);
}
