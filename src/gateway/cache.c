/*
 * cache.c - the lookup cache step of Track and GetOrder: hits, singleflight, stale answers
 * and their background refresh.
 */
#include "gateway/gateway_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

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
	              gw_op_parse(r->op, &r->pc, r->req, resp, &r->arena, &reply, &r->st) == SG_OK;
	bool keep = parsed && reply != NULL && sg_payload_pack(reply, &r->arena, &o) == 0;
	sg_flight_finish(gw->cache, r->key, keep, r->pc.cache_ttl_ms, r->pc.cache_stale_ms, &o);
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
	if (gw_fetches_token(c->prov, &c->pc) &&
	    (!sg_auth_peek(gw->auth, gw_pidx(c->prov), &r->arena, &r->pc.token) ||
	     r->pc.token == NULL))
		goto fail;
	if (gw_op_build(r->op, &r->pc, r->req, &r->arena, &r->hreq, &r->st) != SG_OK)
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
	gw_call_done(c, stale ? SG_END_STALE : SG_END_HIT, o, extra, n);
	gw_call_send(c);
}

/* The lookup: true when the call must go upstream; false when it was answered or parked. */
bool
gw_cache_begin(sg_call *c)
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
	gw_park_reset(c, gw->cache, 0);
	switch (sg_flight_begin(gw->cache, key, none, &c->waiter, &c->arena, &o, &age, &refresh)) {
	case SG_FLIGHT_OWNER: c->cache_owner = true; return true;
	case SG_FLIGHT_WAITING: gw_park(c, gw_call_send); return false;
	case SG_FLIGHT_HIT: cache_send(c, &o, age, false); return false;
	case SG_FLIGHT_STALE:
		if (refresh)
			cache_refresh_start(c, key);
		cache_send(c, &o, age, true);
		return false;
	default: c->cache_key = NULL; return true; /* no room: uncached */
	}
}

/* A cache owner's answer is stored (an error releases the key); a bypassing call's fresh
 * answer replaces the stored one. */
void
gw_cache_finish(sg_call *c)
{
	sg_gateway *gw = c->gw;

	if (c->cache_owner || (c->cache_store && c->st.err == SG_OK)) {
		int64_t ttl = c->pc.cache_ttl_ms, stale = c->pc.cache_stale_ms;
		if (c->cache_owner)
			sg_flight_finish(gw->cache, c->cache_key, c->st.err == SG_OK, ttl, stale,
			                 &c->out);
		else
			sg_flight_put(gw->cache, c->cache_key, ttl, stale, &c->out);
		c->cache_owner = c->cache_store = false;
	}
}
