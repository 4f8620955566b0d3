/*
 * gateway_int.h - what the pipeline's modules share (src/gateway/ only; nothing outside
 * includes it).
 *
 *   access.c   the access step: the caller's identity and the access table
 *   gateway.c  dispatch, the provider step, upstream submit and completion, the one finish,
 *              replies, lifecycle
 *   park.c     parking: waiting behind another call until it ends or the deadline passes
 *   cache.c    the lookup cache step (Track, GetOrder), with the fleet's cache behind it
 *   idem.c     the idempotency step (CreateOrder): coalescing and the store
 *   tokens.c   the token step (providers whose bearer token the gateway fetches)
 *
 * Functions named gw_ are the internal ones. Each runs on whichever thread holds the call at
 * that moment, unless it says otherwise.
 */
#ifndef SG_GATEWAY_INT_H
#define SG_GATEWAY_INT_H

#include <stdatomic.h>

#include "core/waitgroup.h"
#include "gateway/gateway.h"
#include "gateway/shcache.h"

struct sg_gateway {
	const sg_config *cfg;    /* borrowed; outlives the gateway */
	sg_transport tr;         /* how replies leave */
	sg_upstream *up;         /* the one way out to providers */
	sg_flight *idem;         /* CreateOrder keys running in this process (coalescing) */
	sg_store *store;         /* CreateOrder outcomes by key (claim before call) */
	sg_flight *cache;        /* Track/GetOrder answers, or NULL */
	sg_shcache *shared;      /* the fleet's cache behind it (cache.backend redis), or NULL */
	sg_auth *auth;           /* fetched provider tokens */
	sg_deadlines *deadlines; /* deadlines of parked calls */
	int64_t started_ms;      /* for Health uptime */
	atomic_bool draining;    /* stop requested: refuse new calls */
	sg_waitgroup busy;       /* calls between start and end */
};

/* Index of a provider in per-provider tables (config, tokens). */
static inline size_t
gw_pidx(const sg_provider *p)
{
	return (size_t)p->id - 1;
}

/* ---------------------------------------------------------------- gateway.c */

/* The provider operations, with jansson allocating from the call's arena meanwhile. */
sg_err gw_op_build(const sg_op *op, const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                   sg_http_req *out, sg_status *st);
sg_err gw_op_parse(const sg_op *op, const sg_pconf *pc, const ProtobufCMessage *req,
                   const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply, sg_status *st);

/* An answer o (packed from reply) that carries pc's token or client secret is redacted and
 * packed again (gateway.c, "secrets"). 0, or -1 when it no longer fits the arena. */
int gw_redact_reply(const sg_pconf *pc, ProtobufCMessage *reply, sg_arena *a, sg_outcome *o);

/* True when calls to p fetch their bearer token (OAuth2 client credentials). */
bool gw_fetches_token(const sg_provider *p, const sg_pconf *pc);

/* Where a call's outcome came from, for its log line (and, later, its metrics). */
typedef enum sg_call_how {
	SG_END_OWN,    /* its own: it went upstream, or was refused (gw_call_finish) */
	SG_END_HIT,    /* a fresh cached answer */
	SG_END_STALE,  /* a stale cached answer, while one refresh runs */
	SG_END_SHARED, /* the outcome of the call it waited behind (same key) */
	SG_END_REPLAY, /* the stored outcome of its idempotency key */
} sg_call_how;

/* The one end of every call: logs it, encodes o (borrowed) as its reply with extra fields
 * appended to the payload, and releases the call's memory. The caller then sends it. */
void gw_call_done(sg_call *c, sg_call_how how, const sg_outcome *o, const uint8_t *extra,
                  size_t extra_len);

/* Hands the encoded reply to the transport. */
void gw_call_send(sg_call *c);

/* Records err (message optional, copied) and finishes the call. */
void gw_call_fail(sg_call *c, sg_err err, const char *msg);

/* The one finish of a call with its own outcome (c->st, c->reply when OK). */
void gw_call_finish(sg_call *c);

/* The rest of the finish once the outcome is encoded in c->out (and, for an idempotency owner,
 * in the store): waiters, the cache, the reply. */
void gw_call_deliver(sg_call *c);

/* Builds the provider request and sends it (through the idempotency step for CreateOrder). */
void gw_call_build_submit(sg_call *c);

/* The provider step after the cache: the token (when the provider issues them), then build
 * and submit. */
void gw_call_after_cache(sg_call *c);

/* Sends c's built request upstream (sg_upstream_call), or finishes the call. */
void gw_call_submit(sg_call *c);

/* ---------------------------------------------------------------- access.c */

/* Who is calling (c->caller), and whether it may call c's method: false when the call was
 * failed (UNAUTHENTICATED or PERMISSION_DENIED). */
bool gw_access_method(sg_call *c);

/* Whether c's caller may use the provider: false when the call was failed. */
bool gw_access_provider(sg_call *c, int provider_id);

/* ---------------------------------------------------------------- park.c */

/* Before c becomes findable by an ender (a flight lookup in table t, or else provider p's
 * token queue). */
void gw_park_reset(sg_call *c, sg_flight *t, size_t p);

/* Queues c's deadline, or goes on at once (then) if its wait is already over. */
void gw_park(sg_call *c, void (*then)(sg_call *c));

/* The ender of c's wait stored its result in c: true when the caller must go on with c. */
bool gw_park_settle(sg_call *c);

/* sg_deadline.expired of a parked call. Deadline thread. */
void gw_park_expired(sg_deadline *it);

/* sg_flight_waiter.done: the owner's outcome for a call that waited. Owner's thread. */
void gw_flight_done(sg_flight_waiter *wt, const sg_outcome *o);

/* ---------------------------------------------------------------- cache.c */

/* The lookup: true when the call must go upstream; false when it was answered or parked. */
bool gw_cache_begin(sg_call *c);

/* Stores a cache owner's (or a bypassing call's) answer from c->out. */
void gw_cache_finish(sg_call *c);

/* ---------------------------------------------------------------- idem.c */

/* CreateOrder's key: coalesce, then claim in the store; goes on with gw_call_submit once
 * claimed, or answers or parks the call. */
void gw_idem_begin(sg_call *c);

/* An owner's failure that may have created the order becomes OUTCOME_UNKNOWN. */
void gw_idem_outcome(sg_call *c);

/* Stores an owner's encoded outcome (or releases its key). True when it took the call over:
 * the store's answer delivers it. */
bool gw_idem_store(sg_call *c);

/* Hands o to the calls of this process that waited for c's key. */
void gw_idem_local_finish(sg_call *c, const sg_outcome *o);

/* ---------------------------------------------------------------- tokens.c */

/* Runs the call with the provider's cached token, fetching one first when needed. */
void gw_call_with_token(sg_call *c);

/* sg_token_waiter.done: a queued call's fetch ended. Fetcher's thread. */
void gw_token_done(sg_token_waiter *w, sg_err err, const char *tok, const sg_status *st);

#endif /* SG_GATEWAY_INT_H */
