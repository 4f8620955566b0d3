/*
 * gateway.c - the call pipeline, from envelope bytes to reply bytes.
 *
 *   sg_call_start: decode (envelope, method, payload), deadline
 *     → Health: answered here
 *     → provider step: provider, operation, credentials
 *         → cache (Track, GetOrder): hit → finish; same call in flight → park; miss → on
 *         → auth: cached token, or queue behind one fetch (park)
 *         → build, idempotency (CreateOrder): replay → finish; in flight → park; owner → on
 *         → upstream (sg_upstream_call) → parse → finish
 *   call_finish: the one end of every call that produces its own outcome: the outcome is
 *   stored for its key, logged, encoded into the transport's buffer, and sent.
 *
 * A call parked behind the owner of its key gets the owner's encoded outcome (call_reply); a
 * call's deadline while it waits is kept by the deadline thread (gateway/deadlines.h).
 */
#include "gateway/gateway_int.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/redact.h"
#include "core/utf8.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

#ifndef SG_VERSION
#define SG_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------------ provider operations */

/*
 * The provider operations, with jansson allocating from the call's arena meanwhile
 * (sg_json_use_arenas): the JSON a provider parses or builds dies with the call, no malloc.
 */
sg_err
gw_op_build(const sg_op *op, const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
            sg_http_req *out, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = op->build(pc, req, a, out, st);
	sg_json_arena_set(NULL);
	out->tls = &pc->tls; /* the provider's TLS and proxy settings */
	return err;
}

sg_err
gw_op_parse(const sg_op *op, const sg_pconf *pc, const ProtobufCMessage *req,
            const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = op->parse(pc, req, resp, a, reply, st);
	sg_json_arena_set(NULL);
	return err;
}

/* True when calls to p fetch their bearer token (OAuth2 client credentials) rather than
 * using the configured static token. One predicate for every path that needs to know. */
bool
gw_fetches_token(const sg_provider *p, const sg_pconf *pc)
{
	return p->auth.build != NULL && pc->client_id != NULL && pc->client_secret != NULL;
}

/* ------------------------------------------------------------------ replies */

/* Drops everything of c's call: its arena (the decoded request, the provider's parsed body,
 * the reply) and the pointers into it. Runs once the reply is encoded into the transport's
 * buffer, so that a reply waiting to be sent holds only that buffer. Idempotent. */
static void
call_release(sg_call *c)
{
	sg_arena_reset(&c->arena);
	c->env = NULL;
	c->method = NULL;
	c->req = NULL;
	c->reply = NULL;
	c->op = NULL;
	c->prov = NULL;
	c->idem_local = c->idem_owner = c->cache_owner = c->cache_store = false;
	c->cache_key = c->shared_key = NULL;
	c->shared_lock = false;
	c->auth_retried = false;
	memset(&c->hreq, 0, sizeof(c->hreq));
	sg_status_clear(&c->st);
}

/* Logs the call: every call at verbose 2, internal errors at 1. An outcome that is not the
 * call's own (a hit, a replay) is read back from its encoded status only when it is logged. */
static void
call_log(sg_call *c, sg_call_how how, const sg_outcome *o)
{
	static const char *const hows[] = {"", " (cache hit)", " (stale cache hit)", " (shared)",
	                                   " (replayed)"};
	const sg_config *cfg = c->gw->cfg;
	sg_err err = c->st.err;
	const char *reason = sg_err_reason(err), *msg = c->st.message;
	int code = sg_err_code(err);
	Shipgate__V1__Status *st = NULL;

	if (cfg->verbose < 1 || (cfg->verbose < 2 && (how != SG_END_OWN || code != 13) &&
	                         (how == SG_END_OWN || o->status_len == 0)))
		return;
	if (how != SG_END_OWN) {
		st = o->status_len ? shipgate__v1__status__unpack(sg_arena_pb(&c->arena),
		                                                  o->status_len, o->status)
		                   : NULL;
		code = st ? (int)st->code : 0;
		reason = st && st->detail ? st->detail->reason : "";
		msg = st && st->message[0] ? st->message : NULL;
		if (cfg->verbose < 2 && code != 13)
			return;
	}
	fprintf(stderr, "shipgated: %s %s %s %lldms%s%s%s\n",
	        c->method ? c->method->desc->name : "-", reason,
	        c->env && c->env->request_id[0] ? c->env->request_id : "-",
	        (long long)(sg_now_ms() - c->start_ms), hows[how], msg ? ": " : "", msg ? msg : "");
}

/*
 * The one end of every call, whatever produced its outcome (the call itself, the cache, the
 * owner of its key, the store): the call is logged (and, later, counted), its reply is encoded
 * into the transport's buffer with `extra` (encoded fields) appended to the payload, and the
 * call's memory is released. o may be borrowed from another call: it is copied here. Without
 * a buffer the reply is dropped. Any thread; the caller sends the reply (gw_call_send).
 */
void
gw_call_done(sg_call *c, sg_call_how how, const sg_outcome *o, const uint8_t *extra,
             size_t extra_len)
{
	const char *rid = c->env != NULL ? c->env->request_id : NULL;
	size_t len = sg_reply_size(rid, o, extra_len);

	call_log(c, how, o);
	uint8_t *buf = c->gw->tr.reply_buf(c, len);
	if (buf != NULL)
		sg_reply_write(buf, rid, o, extra, extra_len);
	call_release(c);
}

void
gw_call_send(sg_call *c)
{
	c->gw->tr.send(c);
}

/* Records err (message optional) and finishes the call. */
void
gw_call_fail(sg_call *c, sg_err err, const char *msg)
{
	sg_status_set(&c->st, &c->arena, err, msg ? "%s" : NULL, msg);
	gw_call_finish(c);
}

/* ------------------------------------------------------------------ secrets */

/*
 * The secrets an outcome must never carry: the token this call used (a fetched one too), and
 * with all, every provider's configured token and client secret, the tenants' too (at most
 * 2 + 2 * SG_MAX_PROVIDERS * (SG_MAX_TENANTS + 1) of them). A provider that echoes its
 * request's headers into its error text, or into an answer, must not hand them to callers, to
 * the cache, to the idempotency store or to the log.
 */
static size_t
call_secrets(const sg_call *c, bool all, const char **out)
{
	const sg_config *cfg = c->gw->cfg;
	size_t n = 0;

	if (c->prov != NULL) {
		out[n++] = c->pc.token;
		out[n++] = c->pc.client_secret;
	}
	for (size_t t = 0; all && t <= cfg->ntenants; t++) {
		const sg_pconf *ps = t == 0 ? cfg->providers : cfg->tenants[t - 1].providers;
		for (size_t i = 0; i < cfg->nproviders; i++) {
			out[n++] = ps[i].token;
			out[n++] = ps[i].client_secret;
		}
	}
	return n;
}

/* Every provider-given text of a failed call's status, redacted. */
static void
call_redact_status(sg_call *c)
{
	const char *sec[2 * SG_MAX_PROVIDERS * (SG_MAX_TENANTS + 1) + 2];
	size_t n = call_secrets(c, true, sec);
	sg_status *st = &c->st;

	st->message = sg_redact(&c->arena, st->message, sec, n);
	st->provider_code = sg_redact(&c->arena, st->provider_code, sec, n);
	st->provider_message = sg_redact(&c->arena, st->provider_message, sec, n);
	for (size_t i = 0; i < st->nviolations; i++) {
		st->violations[i].field = sg_redact(&c->arena, st->violations[i].field, sec, n);
		st->violations[i].description =
		        sg_redact(&c->arena, st->violations[i].description, sec, n);
	}
}

/* An answer that carries its call's secret (pc's token or client secret; its packed bytes are
 * searched, one memmem per secret) is redacted and packed again. 0, or -1 when it no longer
 * fits the arena. */
int
gw_redact_reply(const sg_pconf *pc, ProtobufCMessage *reply, sg_arena *a, sg_outcome *o)
{
	const char *sec[2] = {pc->token, pc->client_secret};

	if (!sg_redact_found(o->payload, o->payload_len, sec, 2))
		return 0;
	sg_redact_message(reply, a, sec, 2);
	o->payload = NULL;
	o->payload_len = 0;
	return sg_payload_pack(reply, a, o);
}

/* ------------------------------------------------------------------ the one finish */

/* Hands c's encoded outcome (c->out) to the calls waiting for it and to the cache, then
 * replies. */
void
gw_call_deliver(sg_call *c)
{
	gw_idem_local_finish(c, &c->out);
	gw_cache_finish(c);
	gw_call_done(c, SG_END_OWN, &c->out, NULL, 0);
	gw_call_send(c);
}

/*
 * The finish of every call that produced its own outcome (c->st, and c->reply when OK): the
 * outcome is encoded, an idempotency owner's outcome kept in the store or its key released,
 * the waiting calls and the cache given it, then the call ends (gw_call_done) and its reply is
 * sent. Any thread.
 */
void
gw_call_finish(sg_call *c)
{
	sg_outcome *o = &c->out;

	if (c->st.err != SG_OK)
		c->reply = NULL;
	gw_idem_outcome(c);
	if (c->st.err != SG_OK)
		call_redact_status(c);
	memset(o, 0, sizeof(*o));
	if (c->reply != NULL &&
	    (sg_payload_pack(c->reply, &c->arena, o) != 0 ||
	     (c->prov != NULL && gw_redact_reply(&c->pc, c->reply, &c->arena, o) != 0)))
		sg_status_set(&c->st, &c->arena, SG_ENOMEM,
		              "reply does not fit the call's memory cap");
	if (sg_status_pack(&c->st, &c->arena, o) != 0) {
		memset(o, 0, sizeof(*o)); /* no memory for the status: send it empty (UNKNOWN) */
		o->status = (const uint8_t *)"\x08\x02";
		o->status_len = 2;
	}
	if (!gw_idem_store(c)) /* else the store's answer delivers it */
		gw_call_deliver(c);
}

/* ------------------------------------------------------------------ upstream */

/* The completion of c's upstream call. Backend thread. */
static void
call_upstream_done(void *arg, sg_err err, const sg_http_resp *resp)
{
	sg_call *c = arg;

	if (err == SG_OK) {
		c->st.err = gw_op_parse(c->op, &c->pc, c->req, resp, &c->arena, &c->reply, &c->st);
		if (c->st.err == SG_EUP_UNAUTH && gw_fetches_token(c->prov, &c->pc) &&
		    !c->auth_retried) {
			/* the cached token was revoked or expired early: once more, fresh */
			sg_auth_invalidate(c->gw->auth, c->pslot, c->pc.token);
			c->auth_retried = true;
			sg_status_clear(&c->st);
			c->st.provider = c->prov->name;
			c->reply = NULL;
			gw_call_with_token(c);
			return;
		}
	} else {
		/* with libcurl's words when it has them: a certificate's verify error, say */
		const char *why = resp != NULL ? resp->error : NULL;
		sg_status_set(&c->st, &c->arena, err, "%s: %s%s%s", c->prov->name, sg_strerror(err),
		              why ? ": " : "", why ? why : "");
		c->st.provider = c->prov->name;
	}
	gw_call_finish(c);
}

/* Hands c's built request to the upstream path, or finishes the call. */
void
gw_call_submit(sg_call *c)
{
	int64_t deadline = c->deadline_ms;
	if (c->env->deadline_ms == 0 && c->pc.timeout_ms > 0)
		deadline = c->start_ms + c->pc.timeout_ms;
	sg_err err = sg_upstream_call(c->gw->up, &c->up, c->prov->id, &c->hreq, deadline,
	                              call_upstream_done, c);
	if (err != SG_OK) {
		sg_status_set(&c->st, &c->arena, err, "%s: %s", c->prov->name, sg_strerror(err));
		gw_call_finish(c);
	}
}

/* Builds the provider request and sends it (or finishes the call). */
void
gw_call_build_submit(sg_call *c)
{
	sg_err err = gw_op_build(c->op, &c->pc, c->req, &c->arena, &c->hreq, &c->st);
	if (err != SG_OK) {
		c->st.err = err;
		gw_call_finish(c);
		return;
	}
	/* (a call resumed after a token wait or a 401 already owns its key) */
	if (c->method->needs_key && !c->idem_owner) {
		gw_idem_begin(c); /* goes upstream once the key is claimed */
		return;
	}
	gw_call_submit(c);
}

/* ------------------------------------------------------------------ dispatch */

/* Provider-backed methods: pick the provider and operation, then cache, auth, upstream. */
static void
call_provider(sg_call *c)
{
	sg_gateway *gw = c->gw;
	int id = sg_method_provider(c->method, c->req);
	const sg_provider *p = sg_provider_get((Shipgate__V1__Provider)id);
	const sg_pconf *pc = sg_config_tenant_provider(gw->cfg, c->tenant, id);

	if (p == NULL || pc == NULL) {
		sg_status_violation(&c->st, "provider", "unspecified or unknown provider");
		gw_call_fail(c, SG_ENOPROVIDER,
		             id == 0 ? "provider: required" : "provider: unknown");
		return;
	}
	if (!gw_access_provider(c, id))
		return;
	c->st.provider = p->name;
	c->op = c->method->kind == SG_M_TRACK       ? &p->track
	        : c->method->kind == SG_M_GET_ORDER ? &p->get_order
	                                            : &p->create_order;
	if (c->op->build == NULL || c->op->parse == NULL) {
		sg_status_set(&c->st, &c->arena, SG_EUNSUPPORTED, "%s does not support %s", p->name,
		              c->method->desc->name);
		gw_call_finish(c);
		return;
	}
	if (sg_pconf_check(pc, &c->arena, &c->st) != SG_OK) { /* before the cache and tokens */
		gw_call_finish(c);
		return;
	}
	c->prov = p;
	c->pslot = c->tenant * gw->cfg->nproviders + gw_pidx(p);
	c->pc = *pc; /* per-call copy: a fetched token replaces pc->token */
	if (c->method->cacheable && gw->cache != NULL && pc->cache_ttl_ms > 0 && !gw_cache_begin(c))
		return; /* answered from the cache, or waiting for the same call */
	gw_call_after_cache(c);
}

void
gw_call_after_cache(sg_call *c)
{
	if (gw_fetches_token(c->prov, &c->pc)) {
		gw_call_with_token(c);
		return;
	}
	gw_call_build_submit(c);
}

static void
call_health(sg_call *c)
{
	sg_gateway *gw = c->gw;
	Shipgate__V1__HealthResponse *r = sg_arena_alloc(&c->arena, sizeof(*r));
	Shipgate__V1__Provider *prov =
	        sg_arena_calloc(&c->arena, gw->cfg->nproviders + 1, sizeof(*prov));
	if (r == NULL || prov == NULL) {
		gw_call_fail(c, SG_ENOMEM, NULL);
		return;
	}
	shipgate__v1__health_response__init(r);
	r->status =
	        atomic_load(&gw->draining)
	                ? SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING
	                : SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING;
	r->version = SG_VERSION;
	r->uptime_ms = sg_now_ms() - gw->started_ms;
	r->in_flight = sg_waitgroup_count(&gw->busy);
	for (size_t i = 0; i < gw->cfg->nproviders; i++)
		if (gw->cfg->providers[i].name != NULL && gw->cfg->providers[i].base_url != NULL)
			prov[r->n_providers++] = (Shipgate__V1__Provider)(i + 1);
	r->providers = prov;
	r->idempotency_store = (char *)gw->store->ops->name;
	r->idempotency_scope = (char *)gw->store->ops->scope;
	r->fleet_id = (char *)(gw->store->fleet_id ? gw->store->fleet_id : "");
	c->reply = &r->base;
	gw_call_finish(c);
}

void
sg_call_start(sg_call *c, const uint8_t *buf, size_t len)
{
	sg_gateway *gw = c->gw;
	const sg_config *cfg = gw->cfg;

	sg_waitgroup_add(&gw->busy, 1);
	c->start_ms = sg_now_ms();
	if (len > cfg->max_request_bytes) {
		sg_status_set(&c->st, &c->arena, SG_ETOOBIG,
		              "request of %zu bytes exceeds max_request_bytes (%zu)", len,
		              cfg->max_request_bytes);
		gw_call_finish(c);
		return;
	}
	if (sg_envelope_decode(buf, len, &c->arena, &c->env, &c->st) != SG_OK) {
		gw_call_finish(c);
		return;
	}
	if ((c->method = sg_method_resolve(c->env->method)) == NULL) {
		sg_status_set(&c->st, &c->arena, SG_ENOMETHOD,
		              "unknown method \"%.*s\"; methods are named \"/%s/<Method>\"",
		              sg_utf8_prefix(c->env->method, 200), c->env->method,
		              sg_service_name());
		gw_call_finish(c);
		return;
	}
	if (sg_payload_decode(c->method, c->env, &c->arena, &c->req, &c->st) != SG_OK) {
		gw_call_finish(c);
		return;
	}
	if (!gw_access_method(c))
		return;
	if (c->method->kind != SG_M_HEALTH && atomic_load(&gw->draining)) {
		gw_call_fail(c, SG_ESHUTDOWN, NULL);
		return;
	}
	if (c->env->deadline_ms < 0) {
		gw_call_fail(c, SG_EDEADLINE, "deadline expired before the call started");
		return;
	}
	/* capped before the addition: a caller's deadline near INT64_MAX must not overflow */
	int64_t budget = c->env->deadline_ms ? c->env->deadline_ms : cfg->default_deadline_ms;
	c->deadline_ms =
	        c->start_ms + (budget < cfg->max_deadline_ms ? budget : cfg->max_deadline_ms);
	switch (c->method->kind) {
	case SG_M_HEALTH: call_health(c); return;
	case SG_M_TRACK:
	case SG_M_GET_ORDER:
	case SG_M_CREATE_ORDER: call_provider(c); return;
	default: gw_call_fail(c, SG_ENOMETHOD, "method declared but not served"); return;
	}
}

void
sg_call_end(sg_call *c)
{
	sg_gateway *gw = c->gw;

	call_release(c); /* a dropped reply (no buffer) may have skipped nothing: idempotent */
	sg_waitgroup_add(&gw->busy, -1);
}

/* ------------------------------------------------------------------ lifecycle */

void
sg_call_init(sg_gateway *gw, sg_call *c, void *t)
{
	memset(c, 0, sizeof(*c));
	c->gw = gw;
	c->transport = t;
	c->peer_local = -1;
	c->peer_uid = -1;
	c->peer_caller = 0;
	sg_arena_init(&c->arena, 2048, gw->cfg->arena_cap); /* idle calls keep 2 KiB */
	c->waiter.done = gw_flight_done;
	c->twait.done = gw_token_done;
	c->park_timer.expired = gw_park_expired;
	pthread_mutex_init(&c->park_mtx, NULL);
}

void
sg_call_fini(sg_call *c)
{
	sg_arena_fini(&c->arena);
	pthread_mutex_destroy(&c->park_mtx);
}

sg_err
sg_gateway_new(sg_gateway **out, const sg_config *cfg, const sg_upstream_backend *backend,
               const sg_transport *transport, int calls, char *err, size_t errlen)
{
	sg_gateway *gw;

	*out = NULL;
	if (sg_envelope_init(err, errlen) != 0)
		return SG_EINTERNAL;
	if ((gw = calloc(1, sizeof(*gw))) == NULL)
		return SG_ENOMEM;
	gw->cfg = cfg;
	gw->tr = *transport;
	atomic_init(&gw->draining, false);
	sg_waitgroup_init(&gw->busy);
	/* keys are counted per caller (tag i + 1; 0 for callers that are not known) */
	sg_flight_conf idem_conf = {
	        .max_entries = cfg->idem_max_entries, .evict = false, .ntags = cfg->ncallers + 1};
	sg_flight_conf cache_conf = {.max_entries = cfg->cache_max_entries,
	                             .max_bytes = cfg->cache_max_bytes,
	                             .evict = true};
	if ((strcmp(cfg->idem_store, "sqlite") == 0 &&
	     (gw->store = sg_store_sqlite_new(cfg->idem_path, cfg->idem_max_entries, NULL, err,
	                                      errlen)) == NULL) ||
	    (strcmp(cfg->idem_store, "redis") == 0 &&
	     (gw->store = sg_store_redis_new(cfg->redis_url, cfg->idem_ttl_ms, err, errlen)) ==
	             NULL)) {
		sg_gateway_free(gw);
		return SG_ESTORE;
	}
	if (strcmp(cfg->idem_store, "redis") == 0)
		gw->store->fleet_id = cfg->fleet_id;
	if (cfg->cache_backend != NULL && strcmp(cfg->cache_backend, "redis") == 0 &&
	    cfg->cache_max_bytes > 0) {
		sg_shcache_conf sc = {.url = cfg->cache_redis_url,
		                      .timeout_ms = cfg->cache_redis_timeout_ms,
		                      .max_queued = 10000,
		                      .max_value = 1 << 20};
		if ((gw->shared = sg_shcache_new(&sc, err, errlen)) == NULL) {
			sg_gateway_free(gw);
			return SG_EINVAL;
		}
	}
	if ((gw->up = sg_upstream_new(backend)) == NULL ||
	    (gw->idem = sg_flight_new(&idem_conf)) == NULL ||
	    (gw->store == NULL &&
	     (gw->store = sg_store_memory_new(cfg->idem_max_entries, cfg->ncallers + 1, NULL)) ==
	             NULL) ||
	    (cfg->cache_max_bytes > 0 && (gw->cache = sg_flight_new(&cache_conf)) == NULL) ||
	    (gw->auth = sg_auth_new(cfg->nproviders * (cfg->ntenants + 1), NULL)) == NULL ||
	    (gw->deadlines = sg_deadlines_new((size_t)calls)) == NULL) {
		snprintf(err, errlen, "gateway: out of memory");
		sg_gateway_free(gw);
		return SG_ENOMEM;
	}
	gw->started_ms = sg_now_ms();
	*out = gw;
	return SG_OK;
}

void
sg_gateway_drain(sg_gateway *gw)
{
	atomic_store(&gw->draining, true);
	if (gw->shared != NULL)
		sg_shcache_drain(gw->shared); /* calls waiting for another gateway end now */
	sg_store_drain(gw->store);            /* and so do CreateOrders waiting for one */
}

bool
sg_gateway_wait_upstream(sg_gateway *gw, int64_t until_ms)
{
	return sg_upstream_drain(gw->up, until_ms);
}

bool
sg_gateway_wait_idle(sg_gateway *gw, int64_t until_ms)
{
	return sg_waitgroup_wait(&gw->busy, until_ms);
}

void
sg_gateway_stop(sg_gateway *gw)
{
	if (gw != NULL)
		sg_deadlines_stop(gw->deadlines);
}

void
sg_gateway_free(sg_gateway *gw)
{
	if (gw == NULL)
		return;
	sg_store_free(gw->store);         /* first: its queued answers still reach the calls */
	sg_shcache_free(gw->shared);      /* the same */
	sg_deadlines_free(gw->deadlines); /* before the calls its callbacks use */
	sg_flight_free(gw->idem);
	sg_flight_free(gw->cache);
	sg_auth_free(gw->auth);
	sg_upstream_free(gw->up);
	sg_waitgroup_fini(&gw->busy);
	free(gw);
}
