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
#include "gateway/gateway.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/utf8.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

#ifndef SG_VERSION
#define SG_VERSION "0.1.0"
#endif

struct sg_gateway {
	const sg_config *cfg;     /* borrowed; outlives the gateway */
	sg_transport tr;          /* how replies leave */
	sg_upstream *up;          /* the one way out to providers */
	sg_flight *idem;          /* CreateOrder keys running in this process (coalescing) */
	sg_store *store;          /* CreateOrder outcomes by key (claim before call) */
	sg_flight *cache;         /* Track/GetOrder answers, or NULL */
	sg_auth *auth;            /* fetched provider tokens */
	sg_deadlines *deadlines;  /* deadlines of parked calls */
	int64_t started_ms;       /* for Health uptime */
	atomic_bool draining;     /* stop requested: refuse new calls */
	atomic_int busy;          /* calls between start and end */
	pthread_mutex_t idle_mtx; /* with idle_cv: waiting for busy to reach 0 */
	pthread_cond_t idle_cv;   /* broadcast when busy drops to 0 */
};

static void call_finish(sg_call *c);
static void call_with_token(sg_call *c);
static void call_build_submit(sg_call *c);

/* ------------------------------------------------------------------ provider operations */

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

/* True when calls to p fetch their bearer token (OAuth2 client credentials) rather than
 * using the configured static token. One predicate for every path that needs to know. */
static bool
fetches_token(const sg_provider *p, const sg_pconf *pc)
{
	return p->auth.build != NULL && pc->client_id != NULL && pc->client_secret != NULL;
}

/* Index of a provider in per-provider tables (config, tokens). */
static size_t
pidx(const sg_provider *p)
{
	return (size_t)p->id - 1;
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
	c->cache_key = NULL;
	c->auth_retried = false;
	c->attempts = 0;
	memset(&c->hreq, 0, sizeof(c->hreq));
	sg_status_clear(&c->st);
}

/*
 * Encodes an outcome as c's reply into the transport's buffer, with `extra` (encoded fields)
 * appended to its payload, then releases the call's memory. o may be borrowed from another
 * call (an owner's outcome): it is copied here. Without a buffer the reply is dropped.
 */
static void
call_reply(sg_call *c, const sg_outcome *o, const uint8_t *extra, size_t extra_len)
{
	const char *rid = c->env != NULL ? c->env->request_id : NULL;
	size_t len = sg_reply_size(rid, o, extra_len);
	uint8_t *buf = c->gw->tr.reply_buf(c, len);

	if (buf != NULL)
		sg_reply_write(buf, rid, o, extra, extra_len);
	call_release(c);
}

static void
call_send(sg_call *c)
{
	c->gw->tr.send(c);
}

/* Logs the call (verbose 2, or internal errors at 1). */
static void
call_log(sg_call *c)
{
	const sg_config *cfg = c->gw->cfg;
	if (cfg->verbose >= 2 || (cfg->verbose >= 1 && sg_err_code(c->st.err) == 13)) {
		fprintf(stderr, "shipgated: %s %s %s %lldms%s%s\n",
		        c->method ? c->method->desc->name : "-", sg_err_reason(c->st.err),
		        c->env && c->env->request_id[0] ? c->env->request_id : "-",
		        (long long)(sg_now_ms() - c->start_ms), c->st.message ? ": " : "",
		        c->st.message ? c->st.message : "");
	}
}

/* Records err (message optional) and finishes the call. */
static void
call_fail(sg_call *c, sg_err err, const char *msg)
{
	sg_status_set(&c->st, &c->arena, err, msg ? "%s" : NULL, msg);
	call_finish(c);
}

/* ------------------------------------------------------------------ idempotency */

/*
 * Whether an owner's outcome is kept for its idempotency key. Kept: success, and any failure
 * after which the provider may have created the order. Released: the request was refused
 * before it could take effect (never sent, or a 4xx), so a retry may run it again.
 */
static bool
idem_keep(sg_err err)
{
	switch (err) {
	case SG_OK: return true;
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

/* ------------------------------------------------------------------ the one finish */

/* The key's calls in this process get c's outcome o (each waiter gets it replayed). */
static void
idem_local_finish(sg_call *c, const sg_outcome *o)
{
	if (c->idem_local) {
		c->idem_local = false;
		sg_flight_finish(c->gw->idem, c->env->idempotency_key, false, 0, 0, o);
	}
}

/* Hands c's encoded outcome (c->out) to the calls waiting for it and to the cache, then
 * replies. */
static void
call_deliver(sg_call *c)
{
	sg_gateway *gw = c->gw;

	idem_local_finish(c, &c->out);
	if (c->cache_owner || (c->cache_store && c->st.err == SG_OK)) {
		size_t i = pidx(c->prov);
		int64_t ttl = gw->cfg->cache_ttl_ms[i], stale = gw->cfg->cache_stale_ms[i];
		if (c->cache_owner)
			sg_flight_finish(gw->cache, c->cache_key, c->st.err == SG_OK, ttl, stale,
			                 &c->out);
		else
			sg_flight_put(gw->cache, c->cache_key, ttl, stale, &c->out);
		c->cache_owner = c->cache_store = false;
	}
	call_reply(c, &c->out, NULL, 0);
	call_send(c);
}

/* The store kept (or released) an owner's outcome. Store's thread, or inline. */
static void
idem_stored(void *arg, sg_err err)
{
	sg_call *c = arg;

	if (err != SG_OK)
		/* the caller still gets the real outcome; a retry finds the key claimed */
		fprintf(stderr, "shipgated: idempotency store %s: %s: %s\n",
		        c->gw->store->ops->name, c->env->idempotency_key, sg_strerror(err));
	call_deliver(c);
}

/*
 * The end of every call that produced its own outcome (c->st, and c->reply when OK): the
 * outcome is encoded, an idempotency owner's outcome kept in the store or its key released,
 * the waiting calls and the cache given it, the call logged, its reply encoded and sent. Any
 * thread.
 */
static void
call_finish(sg_call *c)
{
	sg_gateway *gw = c->gw;
	sg_outcome *o = &c->out;

	if (c->st.err != SG_OK)
		c->reply = NULL;
	if (c->idem_owner && c->st.err != SG_OK && idem_keep(c->st.err)) {
		/* Every caller of this key will get this answer: say what it means. */
		c->st.message = sg_arena_printf(
		        &c->arena,
		        "outcome unknown (%s): the provider may have created the order; this "
		        "idempotency key will keep returning this answer, so check with the "
		        "provider before retrying under a new key",
		        c->st.message ? c->st.message : sg_strerror(c->st.err));
		c->st.err = SG_EOUTCOME;
	}
	call_log(c);
	memset(o, 0, sizeof(*o));
	if (c->reply != NULL && sg_payload_pack(c->reply, &c->arena, o) != 0)
		sg_status_set(&c->st, &c->arena, SG_ENOMEM,
		              "reply does not fit the call's memory cap");
	if (sg_status_pack(&c->st, &c->arena, o) != 0) {
		memset(o, 0, sizeof(*o)); /* no memory for the status: send it empty (UNKNOWN) */
		o->status = (const uint8_t *)"\x08\x02";
		o->status_len = 2;
	}
	if (c->idem_owner) {
		c->idem_owner = false;
		if (idem_keep(c->st.err))
			sg_store_complete(gw->store, c->env->idempotency_key, o,
			                  gw->cfg->idem_ttl_ms, idem_stored, c);
		else
			sg_store_release(gw->store, c->env->idempotency_key, idem_stored, c);
		return;
	}
	call_deliver(c);
}

/* ------------------------------------------------------------------ parking */

/*
 * Parking: a call waits behind another (the owner of its key, or a token fetch) until that one
 * ends its wait or the call's own deadline passes, whichever comes first. The ender stores
 * what the call waited for in it and calls park_settle(); the deadline thread calls
 * park_expired(). Each of the two may find the other half-way; the per-call lock decides
 * which one goes on with the call.
 */

/* Before c becomes findable by an ender (a flight lookup in table t, or else provider p's
 * token queue): no wait of its own is pending then, so plain stores do. What the deadline
 * thread needs to take c back is kept apart from what the ender's reply releases. */
static void
park_reset(sg_call *c, sg_flight *t, size_t p)
{
	c->park_flight = t;
	c->park_provider = p;
	c->park_ready = c->park_timer_gone = false;
}

/* Queues c's deadline, or goes on at once if its wait is already over. */
static void
park(sg_call *c, void (*then)(sg_call *c))
{
	pthread_mutex_lock(&c->park_mtx);
	if (c->park_ready) {
		pthread_mutex_unlock(&c->park_mtx);
		then(c);
		return;
	}
	c->park_then = then;
	c->park_timer.node.deadline = c->deadline_ms;
	/* cannot fail: the deadline thread has a slot for every call, and c is in none */
	(void)sg_deadlines_add(c->gw->deadlines, &c->park_timer);
	pthread_mutex_unlock(&c->park_mtx);
}

/* The ender of c's wait has stored its result in c. True when the caller must now go on with
 * c; false when c's parker or the deadline thread will. */
static bool
park_settle(sg_call *c)
{
	pthread_mutex_lock(&c->park_mtx);
	c->park_ready = true;
	bool go = sg_deadlines_remove(c->gw->deadlines, &c->park_timer) || c->park_timer_gone;
	pthread_mutex_unlock(&c->park_mtx);
	return go;
}

/* Takes c back from the queue it waits in. True when it was still there (the ender will not
 * see it). */
static bool
park_leave(sg_call *c)
{
	if (c->park_flight == NULL)
		return sg_auth_leave(c->gw->auth, c->park_provider, &c->twait);
	return sg_flight_leave(c->park_flight, &c->waiter);
}

/* The deadline of a parked call passed. Deadline thread. */
static void
park_expired(sg_deadline *it)
{
	sg_call *c = (sg_call *)(void *)((char *)it - offsetof(sg_call, park_timer));

	pthread_mutex_lock(&c->park_mtx);
	bool ready = c->park_ready;
	pthread_mutex_unlock(&c->park_mtx);
	if (!ready) {
		if (park_leave(c)) {
			call_fail(c, SG_EDEADLINE,
			          c->park_flight == NULL
			                  ? "deadline passed while waiting for the provider's token"
			                  : "deadline passed while waiting for the same call (same "
			                    "key) in flight");
			return;
		}
		/* the ender has it: it settles soon, or has just done so */
		pthread_mutex_lock(&c->park_mtx);
		ready = c->park_ready;
		c->park_timer_gone = !ready;
		pthread_mutex_unlock(&c->park_mtx);
	}
	if (ready)
		c->park_then(c);
}

/* A call that waited behind the owner of its key gets the owner's outcome. Runs on the
 * owner's thread: encodes the reply now (o is borrowed), then sends it unless the parker or
 * the deadline thread will. */
static void
flight_done(sg_flight_waiter *wt, const sg_outcome *o)
{
	sg_call *c = (sg_call *)(void *)((char *)wt - offsetof(sg_call, waiter));
	uint8_t extra[SG_REPLY_EXTRA_MAX];

	call_reply(c, o, extra, sg_reply_replayed_field(c->method, extra));
	if (park_settle(c))
		call_send(c);
}

/* ------------------------------------------------------------------ upstream */

/* The completion of c's upstream call. Backend thread. */
static void
call_upstream_done(void *arg, sg_err err, const sg_http_resp *resp)
{
	sg_call *c = arg;

	if (err == SG_OK) {
		c->st.err = op_parse(c->op, &c->pc, c->req, resp, &c->arena, &c->reply, &c->st);
		if (c->st.err == SG_EUP_UNAUTH && fetches_token(c->prov, &c->pc) &&
		    !c->auth_retried) {
			/* the cached token was revoked or expired early: once more, fresh */
			sg_auth_invalidate(c->gw->auth, pidx(c->prov), c->pc.token);
			c->auth_retried = true;
			sg_status_clear(&c->st);
			c->st.provider = c->prov->name;
			c->reply = NULL;
			call_with_token(c);
			return;
		}
	} else {
		sg_status_set(&c->st, &c->arena, err, "%s: %s", c->prov->name, sg_strerror(err));
		c->st.provider = c->prov->name;
	}
	call_finish(c);
}

/* Hands c's built request to the upstream path, or finishes the call. */
static void
call_submit(sg_call *c)
{
	int64_t deadline = c->deadline_ms;
	if (c->env->deadline_ms == 0 && c->pc.timeout_ms > 0)
		deadline = c->start_ms + c->pc.timeout_ms;
	c->attempts++;
	sg_err err = sg_upstream_call(c->gw->up, &c->up, c->prov->id, &c->hreq, deadline,
	                              call_upstream_done, c);
	if (err != SG_OK) {
		sg_status_set(&c->st, &c->arena, err, "%s: %s", c->prov->name, sg_strerror(err));
		call_finish(c);
	}
}

/* The store's answer to c's claim. Store's thread, or inline. */
static void
idem_claimed(void *arg, sg_claim res, const sg_outcome *o)
{
	sg_call *c = arg;
	uint8_t extra[SG_REPLY_EXTRA_MAX];

	switch (res) {
	case SG_CLAIM_OWNER:
		c->idem_owner = true;
		call_submit(c);
		return;
	case SG_CLAIM_DONE:
		/* the stored outcome, replayed to this call and to those that waited for it */
		idem_local_finish(c, o);
		call_reply(c, o, extra, sg_reply_replayed_field(c->method, extra));
		call_send(c);
		return;
	case SG_CLAIM_CONFLICT:
		call_fail(c, SG_EIDEMCONFLICT,
		          "idempotency_key was already used with a different request");
		return;
	case SG_CLAIM_BUSY:
		call_fail(
		        c, SG_EBUSY,
		        "idempotency_key is in progress elsewhere; retry later with the same key");
		return;
	case SG_CLAIM_UNKNOWN:
		call_fail(c, SG_EOUTCOME,
		          "outcome unknown: an earlier attempt with this idempotency_key may have "
		          "reached the provider and left no answer; check with the provider");
		return;
	case SG_CLAIM_FULL: call_fail(c, SG_EBUSY, "idempotency table full; retry later"); return;
	case SG_CLAIM_ERROR:
	default:
		sg_status_set(&c->st, &c->arena, SG_EBUSY, "idempotency store %s unavailable",
		              c->gw->store->ops->name);
		call_finish(c);
		return;
	}
}

/*
 * CreateOrder's idempotency, claim before call: the first call in this process with its key
 * claims it in the store (idem_claimed goes on); the others wait for that one and get its
 * outcome. Answers the call (bad key, conflict) or parks it otherwise.
 */
static void
call_idem_begin(sg_call *c)
{
	sg_gateway *gw = c->gw;
	const char *key = c->env->idempotency_key;
	sg_outcome o;
	int64_t age;
	bool refresh;

	if (!idem_key_ok(key)) {
		sg_status_violation(&c->st, "idempotency_key",
		                    "1 to 255 printable ASCII characters");
		call_fail(
		        c, SG_EIDEMKEY,
		        key[0] ? "idempotency_key: 1 to 255 printable ASCII characters"
		               : "CreateOrder requires an idempotency_key in the request envelope");
		return;
	}
	sg_flight_fp fp =
	        sg_flight_fingerprint(c->env->method, c->env->payload.data, c->env->payload.len);
	park_reset(c, gw->idem, 0);
	switch (sg_flight_begin(gw->idem, key, fp, &c->waiter, &c->arena, &o, &age, &refresh)) {
	case SG_FLIGHT_OWNER:
		c->idem_local = true;
		/* the lease: as long as this call may run */
		sg_store_claim(gw->store, key, fp, c->deadline_ms - sg_now_ms(), idem_claimed, c);
		return;
	case SG_FLIGHT_WAITING: park(c, call_send); return;
	case SG_FLIGHT_CONFLICT:
		call_fail(c, SG_EIDEMCONFLICT,
		          "idempotency_key was already used with a different request");
		return;
	case SG_FLIGHT_FULL:
		call_fail(c, SG_EBUSY, "too many idempotency keys in flight; retry later");
		return;
	default: /* the coalescing table keeps no outcomes: no hit */
		call_fail(c, SG_EINTERNAL, "idempotency: unexpected flight state");
		return;
	}
}

/* Builds the provider request and sends it (or finishes the call). */
static void
call_build_submit(sg_call *c)
{
	sg_err err = op_build(c->op, &c->pc, c->req, &c->arena, &c->hreq, &c->st);
	if (err != SG_OK) {
		c->st.err = err;
		call_finish(c);
		return;
	}
	/* (a call resumed after a token wait or a 401 already owns its key) */
	if (c->method->needs_key && !c->idem_owner) {
		call_idem_begin(c); /* goes upstream once the key is claimed */
		return;
	}
	call_submit(c);
}

/* ------------------------------------------------------------------ provider tokens */

/* Stores the outcome of a token fetch in a call that waited for it (err SG_OK: tok is the
 * token; else fst says why it failed), copied into the call's arena: tok and fst belong to the
 * fetcher. */
static void
token_adopt(sg_call *c, sg_err err, const char *tok, const sg_status *fst)
{
	if (err == SG_OK) {
		c->pc.token = sg_arena_strdup(&c->arena, tok);
		if (c->pc.token == NULL)
			sg_status_set(&c->st, &c->arena, SG_ENOMEM, NULL);
		return;
	}
	if (fst != &c->st) {
		/* the fetcher's status, with its strings copied into this call's arena */
		c->st = *fst;
		c->st.message = sg_arena_strdup(&c->arena, fst->message);
		c->st.provider_code = sg_arena_strdup(&c->arena, fst->provider_code);
		c->st.provider_message = sg_arena_strdup(&c->arena, fst->provider_message);
		c->st.nviolations = 0;
	}
	c->st.err = err;
}

/* Goes on with a call whose token wait is over (token_adopt ran). */
static void
token_continue(sg_call *c)
{
	if (c->st.err == SG_OK)
		call_build_submit(c);
	else
		call_finish(c);
}

/* A queued call's token fetch ended (sg_auth_fetched, on the fetcher's thread). */
static void
token_done(sg_token_waiter *w, sg_err err, const char *tok, const sg_status *st)
{
	sg_call *c = (sg_call *)(void *)((char *)w - offsetof(sg_call, twait));

	token_adopt(c, err, tok, st);
	if (park_settle(c))
		token_continue(c);
}

/* The completion of a token fetch; arg is the fetching call. */
static void
token_fetched(void *arg, sg_err err, const sg_http_resp *resp)
{
	sg_call *f = arg;
	const char *tok = NULL;
	int64_t lifetime_s = 0;

	if (err == SG_OK)
		err = auth_parse(f->prov, &f->pc, resp, &f->arena, &tok, &lifetime_s, &f->st);
	else if (f->st.err == SG_OK) /* an engine error; a build error already said why */
		sg_status_set(&f->st, &f->arena, err, "%s token: %s", f->prov->name,
		              sg_strerror(err));
	if (err == SG_OK && (tok == NULL || tok[0] == '\0'))
		err = sg_status_set(&f->st, &f->arena, SG_EUP_MALFORMED, "%s token: empty",
		                    f->prov->name);
	/* the others go on first: tok and the status strings live in the fetcher's arena */
	sg_auth_fetched(f->gw->auth, pidx(f->prov), &f->twait, err, tok, lifetime_s, &f->st);
	token_adopt(f, err, tok, &f->st);
	token_continue(f);
}

/* Runs the call with the provider's cached token, fetching one first when needed. */
static void
call_with_token(sg_call *c)
{
	sg_gateway *gw = c->gw;

	park_reset(c, NULL, pidx(c->prov));
	switch (sg_auth_take(gw->auth, pidx(c->prov), &c->arena, &c->pc.token, &c->twait)) {
	case SG_TOKEN_HAVE:
		if (c->pc.token == NULL) {
			call_fail(c, SG_ENOMEM, NULL);
			return;
		}
		call_build_submit(c);
		return;
	case SG_TOKEN_WAIT:
		/* another call is fetching: token_done continues this one, unless its deadline
		 * comes first */
		park(c, token_continue);
		return;
	case SG_TOKEN_FETCH: break;
	}
	sg_err err = auth_build(c->prov, &c->pc, &c->arena, &c->hreq, &c->st);
	if (err == SG_OK) {
		c->attempts++;
		err = sg_upstream_call(gw->up, &c->up, c->prov->id, &c->hreq, c->deadline_ms,
		                       token_fetched, c);
		if (err == SG_OK)
			return;
		sg_status_set(&c->st, &c->arena, err, "%s token: %s", c->prov->name,
		              sg_strerror(err));
	}
	/* could not even ask: fail everyone queued, as if the fetch had failed */
	c->st.err = err;
	token_fetched(c, err, NULL);
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
	sg_gateway *gw;          /* owner */
	sg_arena arena;          /* everything of the refresh */
	const sg_provider *prov; /* provider */
	const sg_op *op;         /* the operation to repeat */
	sg_pconf pc;             /* its config, with the token to use */
	ProtobufCMessage *req;   /* the request (arena copy) */
	sg_http_req hreq;        /* the upstream request */
	sg_status st;            /* outcome */
	char *key;               /* the cache key (arena) */
	sg_upcall up;            /* its upstream call's bookkeeping */
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
	sg_gateway *gw = r->gw;
	ProtobufCMessage *reply = NULL;
	sg_outcome o = {empty_status, 0, NULL, 0};

	bool parsed = err == SG_OK &&
	              op_parse(r->op, &r->pc, r->req, resp, &r->arena, &reply, &r->st) == SG_OK;
	bool keep = parsed && reply != NULL && sg_payload_pack(reply, &r->arena, &o) == 0;
	size_t i = pidx(r->prov);
	sg_flight_finish(gw->cache, r->key, keep, gw->cfg->cache_ttl_ms[i],
	                 gw->cfg->cache_stale_ms[i], &o);
	refresh_free(r);
}

/* Starts refreshing key with c's request; on any failure the stale answer stays. */
static void
cache_refresh_start(sg_call *c, const char *key)
{
	sg_gateway *gw = c->gw;
	struct refresh *r = calloc(1, sizeof(*r));
	sg_outcome none = {empty_status, 0, NULL, 0};

	if (r == NULL)
		goto fail;
	sg_arena_init(&r->arena, 8192, gw->cfg->arena_cap);
	r->gw = gw;
	r->prov = c->prov;
	r->op = c->op;
	r->pc = c->pc;
	r->key = sg_arena_strdup(&r->arena, key);
	r->req = protobuf_c_message_unpack(c->method->desc->input, sg_arena_pb(&r->arena),
	                                   c->env->payload.len, c->env->payload.data);
	if (r->key == NULL || r->req == NULL)
		goto fail;
	/* use the cached provider token; without one, leave the stale answer be */
	if (fetches_token(c->prov, &c->pc) &&
	    (!sg_auth_peek(gw->auth, pidx(c->prov), &r->arena, &r->pc.token) ||
	     r->pc.token == NULL))
		goto fail;
	if (op_build(r->op, &r->pc, r->req, &r->arena, &r->hreq, &r->st) != SG_OK)
		goto fail;
	if (sg_upstream_call(gw->up, &r->up, r->prov->id, &r->hreq, sg_now_ms() + r->pc.timeout_ms,
	                     refresh_done, r) == SG_OK)
		return;
fail:
	sg_flight_finish(gw->cache, key, false, 0, 0, &none);
	if (r != NULL)
		refresh_free(r);
}

/* The cache key of a Track or GetOrder request (arena), or NULL when it is not cacheable:
 * "<kind>|<provider>|<id>|<id2>". Built by hand: it is on every hit's path. */
static const char *
cache_key(sg_call *c, bool *bypass)
{
	const char *id, *id2 = "";
	char kind;

	if (c->method->kind == SG_M_TRACK) {
		const Shipgate__V1__TrackRequest *t = (const void *)c->req;
		*bypass = t->bypass_cache;
		kind = 'T';
		id = t->order_id;
		id2 = t->tracking_number;
	} else {
		const Shipgate__V1__GetOrderRequest *g = (const void *)c->req;
		*bypass = g->bypass_cache;
		kind = 'G';
		id = g->order_id;
	}
	/* the provider is a resolved one: its name, not a caller's number, goes in the key */
	const char *pname = c->prov->name;
	size_t n0 = strlen(pname), n1 = strlen(id), n2 = strlen(id2);
	if (n1 > 256 || n2 > 256)
		return NULL; /* ids are validated later anyway */
	char *k = sg_arena_alloc(&c->arena, n0 + n1 + n2 + 5), *p = k;
	if (k == NULL)
		return NULL;
	*p++ = kind;
	*p++ = '|';
	memcpy(p, pname, n0);
	p += n0;
	*p++ = '|';
	memcpy(p, id, n1);
	p += n1;
	*p++ = '|';
	memcpy(p, id2, n2);
	p[n2] = '\0';
	return k;
}

/* Sends a cached outcome with the response's `cache` field. */
static void
cache_send(sg_call *c, const sg_outcome *o, int64_t age_ms, bool stale)
{
	uint8_t extra[SG_REPLY_EXTRA_MAX];
	size_t n = sg_reply_cache_field(c->method, age_ms, stale, extra);

	c->st.err = SG_OK;
	call_log(c);
	call_reply(c, o, extra, n);
	call_send(c);
}

/* The lookup: true when the call must go upstream; false when it was answered or parked. */
static bool
call_cache_begin(sg_call *c)
{
	sg_gateway *gw = c->gw;
	static const sg_flight_fp none = {0, 0};
	sg_outcome o;
	int64_t age = 0;
	bool bypass = false, refresh = false;
	const char *key = cache_key(c, &bypass);

	if (key == NULL)
		return true;
	c->cache_key = key;
	if (bypass) {
		c->cache_store = true;
		return true;
	}
	park_reset(c, gw->cache, 0);
	switch (sg_flight_begin(gw->cache, key, none, &c->waiter, &c->arena, &o, &age, &refresh)) {
	case SG_FLIGHT_OWNER: c->cache_owner = true; return true;
	case SG_FLIGHT_WAITING: park(c, call_send); return false;
	case SG_FLIGHT_HIT: cache_send(c, &o, age, false); return false;
	case SG_FLIGHT_STALE:
		if (refresh)
			cache_refresh_start(c, key);
		cache_send(c, &o, age, true);
		return false;
	default: c->cache_key = NULL; return true; /* no room: uncached */
	}
}

/* ------------------------------------------------------------------ dispatch */

/* Provider-backed methods: pick the provider and operation, then cache, auth, upstream. */
static void
call_provider(sg_call *c)
{
	sg_gateway *gw = c->gw;
	int id = sg_method_provider(c->method, c->req);
	const sg_provider *p = sg_provider_get((Shipgate__V1__Provider)id);
	const sg_pconf *pc = sg_config_provider(gw->cfg, id);

	if (p == NULL || pc == NULL) {
		sg_status_violation(&c->st, "provider", "unspecified or unknown provider");
		call_fail(c, SG_ENOPROVIDER, id == 0 ? "provider: required" : "provider: unknown");
		return;
	}
	c->st.provider = p->name;
	c->op = c->method->kind == SG_M_TRACK       ? &p->track
	        : c->method->kind == SG_M_GET_ORDER ? &p->get_order
	                                            : &p->create_order;
	if (c->op->build == NULL || c->op->parse == NULL) {
		sg_status_set(&c->st, &c->arena, SG_EUNSUPPORTED, "%s does not support %s", p->name,
		              c->method->desc->name);
		call_finish(c);
		return;
	}
	if (sg_pconf_check(pc, &c->arena, &c->st) != SG_OK) { /* before the cache and tokens */
		call_finish(c);
		return;
	}
	c->prov = p;
	c->pc = *pc; /* per-call copy: a fetched token replaces pc->token */
	if (c->method->cacheable && gw->cache != NULL && gw->cfg->cache_ttl_ms[pidx(p)] > 0 &&
	    !call_cache_begin(c))
		return; /* answered from the cache, or waiting for the same call */
	if (fetches_token(p, pc)) {
		call_with_token(c);
		return;
	}
	call_build_submit(c);
}

static void
call_health(sg_call *c)
{
	sg_gateway *gw = c->gw;
	Shipgate__V1__HealthResponse *r = sg_arena_alloc(&c->arena, sizeof(*r));
	Shipgate__V1__Provider *prov = sg_arena_calloc(&c->arena, SG_PROVIDER_COUNT, sizeof(*prov));
	if (r == NULL || prov == NULL) {
		call_fail(c, SG_ENOMEM, NULL);
		return;
	}
	shipgate__v1__health_response__init(r);
	r->status =
	        atomic_load(&gw->draining)
	                ? SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING
	                : SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING;
	r->version = SG_VERSION;
	r->uptime_ms = sg_now_ms() - gw->started_ms;
	r->in_flight = atomic_load(&gw->busy);
	for (int i = 0; i < SG_PROVIDER_COUNT; i++)
		if (gw->cfg->providers[i].base_url != NULL)
			prov[r->n_providers++] = (Shipgate__V1__Provider)(i + 1);
	r->providers = prov;
	c->reply = &r->base;
	call_finish(c);
}

void
sg_call_start(sg_call *c, const uint8_t *buf, size_t len)
{
	sg_gateway *gw = c->gw;
	const sg_config *cfg = gw->cfg;

	atomic_fetch_add(&gw->busy, 1);
	c->start_ms = sg_now_ms();
	if (len > cfg->max_request_bytes) {
		sg_status_set(&c->st, &c->arena, SG_ETOOBIG,
		              "request of %zu bytes exceeds max_request_bytes (%zu)", len,
		              cfg->max_request_bytes);
		call_finish(c);
		return;
	}
	if (sg_envelope_decode(buf, len, &c->arena, &c->env, &c->st) != SG_OK) {
		call_finish(c);
		return;
	}
	if ((c->method = sg_method_resolve(c->env->method)) == NULL) {
		sg_status_set(&c->st, &c->arena, SG_ENOMETHOD,
		              "unknown method \"%.*s\"; methods are named \"/%s/<Method>\"",
		              sg_utf8_prefix(c->env->method, 200), c->env->method,
		              sg_service_name());
		call_finish(c);
		return;
	}
	if (sg_payload_decode(c->method, c->env, &c->arena, &c->req, &c->st) != SG_OK) {
		call_finish(c);
		return;
	}
	if (c->method->kind != SG_M_HEALTH && atomic_load(&gw->draining)) {
		call_fail(c, SG_ESHUTDOWN, NULL);
		return;
	}
	if (c->env->deadline_ms < 0) {
		call_fail(c, SG_EDEADLINE, "deadline expired before the call started");
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
	default: call_fail(c, SG_ENOMETHOD, "method declared but not served"); return;
	}
}

void
sg_call_end(sg_call *c)
{
	sg_gateway *gw = c->gw;

	call_release(c); /* a dropped reply (no buffer) may have skipped nothing: idempotent */
	if (atomic_fetch_sub(&gw->busy, 1) == 1) {
		pthread_mutex_lock(&gw->idle_mtx);
		pthread_cond_broadcast(&gw->idle_cv);
		pthread_mutex_unlock(&gw->idle_mtx);
	}
}

/* ------------------------------------------------------------------ lifecycle */

void
sg_call_init(sg_gateway *gw, sg_call *c, void *t)
{
	memset(c, 0, sizeof(*c));
	c->gw = gw;
	c->transport = t;
	sg_arena_init(&c->arena, 2048, gw->cfg->arena_cap); /* idle calls keep 2 KiB */
	c->waiter.done = flight_done;
	c->twait.done = token_done;
	c->park_timer.expired = park_expired;
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
	atomic_init(&gw->busy, 0);
	pthread_mutex_init(&gw->idle_mtx, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&gw->idle_cv, &ca);
	pthread_condattr_destroy(&ca);
	sg_flight_conf idem_conf = {.max_entries = cfg->idem_max_entries, .evict = false};
	sg_flight_conf cache_conf = {.max_entries = cfg->cache_max_entries,
	                             .max_bytes = cfg->cache_max_bytes,
	                             .evict = true};
	if ((gw->up = sg_upstream_new(backend)) == NULL ||
	    (gw->idem = sg_flight_new(&idem_conf)) == NULL ||
	    (gw->store = sg_store_memory_new(cfg->idem_max_entries, NULL)) == NULL ||
	    (cfg->cache_max_bytes > 0 && (gw->cache = sg_flight_new(&cache_conf)) == NULL) ||
	    (gw->auth = sg_auth_new(SG_PROVIDER_COUNT, NULL)) == NULL ||
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
}

bool
sg_gateway_wait_upstream(sg_gateway *gw, int64_t until_ms)
{
	return sg_upstream_drain(gw->up, until_ms);
}

bool
sg_gateway_wait_idle(sg_gateway *gw, int64_t until_ms)
{
	pthread_mutex_lock(&gw->idle_mtx);
	while (atomic_load(&gw->busy) > 0) {
		int64_t left = until_ms - sg_now_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&gw->idle_cv, &gw->idle_mtx, &ts);
	}
	bool idle = atomic_load(&gw->busy) == 0;
	pthread_mutex_unlock(&gw->idle_mtx);
	return idle;
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
	sg_deadlines_free(gw->deadlines); /* before the calls its callbacks use */
	sg_flight_free(gw->idem);
	sg_store_free(gw->store);
	sg_flight_free(gw->cache);
	sg_auth_free(gw->auth);
	sg_upstream_free(gw->up);
	pthread_cond_destroy(&gw->idle_cv);
	pthread_mutex_destroy(&gw->idle_mtx);
	free(gw);
}
