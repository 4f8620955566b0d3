/*
 * cache.c - the lookup cache step of Track and GetOrder: hits, singleflight, stale answers
 * and their background refresh; and, with cache.backend = redis, the fleet's cache behind the
 * local one (gateway/shcache.h).
 */
#include "gateway/gateway_int.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "gateway/shcache.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* ------------------------------------------------------------------ lookup cache */

/*
 * Track and GetOrder answers are cached per provider for cache_ttl_ms, then served stale for
 * cache_stale_ms while one background refresh runs. Identical concurrent misses make one
 * upstream call (singleflight). bypass_cache skips the lookup and stores the fresh answer.
 * A hit is answered on the receiving thread, without a hand-off.
 *
 * With the fleet's cache, the local cache stays in front, and every upstream fetch for it is
 * the fleet's one: a local miss (its owner) or a local refresh first asks Redis, which answers
 * with the fleet's copy, or gives this gateway the key's refresh lock, or (a miss, locked
 * elsewhere) has the owner wait for the gateway that fetches it. The fetched answer is put for
 * the fleet, which releases the lock. An answer read from Redis is checked (a Status of OK and
 * a payload that decodes as the method's response) before it is served: the cache is shared
 * with other processes, so its bytes are input like any other.
 */

/* The fleet's key for a cache key: the provider's account (a hash of its base URL and
 * credentials, so that gateways set up for other accounts or another environment never share
 * answers), then the key. Arena; NULL when out of memory. */
static const char *
shared_key(sg_gateway *gw, size_t tenant, const sg_provider *p, sg_arena *a, const char *key)
{
	const sg_pconf *pc = sg_config_tenant_provider(gw->cfg, tenant, p->id);
	const char *tname = tenant > 0 ? gw->cfg->tenants[tenant - 1].name : NULL;
	const char *parts[] = {pc->base_url, pc->token, pc->client_id, tname};
	size_t n = 0, kl = strlen(key);
	for (size_t i = 0; i < 4; i++)
		n += (parts[i] ? strlen(parts[i]) : 0) + 1;
	char *acct = sg_arena_alloc(a, n + 1), *k = sg_arena_alloc(a, 33 + kl + 1);
	if (acct == NULL || k == NULL)
		return NULL;
	size_t at = 0;
	for (size_t i = 0; i < 4; i++) {
		size_t l = parts[i] ? strlen(parts[i]) : 0;
		memcpy(acct + at, parts[i] ? parts[i] : "", l);
		acct[at + l] = '\n';
		at += l + 1;
	}
	sg_flight_fp h = sg_flight_fingerprint(p->name, (const uint8_t *)acct, at);
	snprintf(k, 33 + kl + 1, "%016llx%016llx:%s", (unsigned long long)h.a,
	         (unsigned long long)h.b, key);
	return k;
}

/* Whether an answer read from the fleet's cache is one this gateway would have stored: an OK
 * Status, and a payload that decodes as desc (the method's response). */
static bool
shared_valid(const ProtobufCMessageDescriptor *desc, sg_arena *a, const sg_outcome *o)
{
	Shipgate__V1__Status *st = NULL;
	if (o->status_len > 0 && ((st = shipgate__v1__status__unpack(sg_arena_pb(a), o->status_len,
	                                                             o->status)) == NULL ||
	                          st->code != 0))
		return false;
	return o->payload != NULL &&
	       protobuf_c_message_unpack(desc, sg_arena_pb(a), o->payload_len, o->payload) != NULL;
}

/* How long a fetch holds the key's lock for the fleet: the provider's timeout, and a second
 * for the answer to be put. A gateway that dies holding it costs the fleet that long. */
static int64_t
shared_lock_ms(const sg_pconf *pc)
{
	return pc->timeout_ms + 1000;
}

/* Puts an OK answer for the fleet (releasing the lock), or lets the lock go. */
static void
shared_end(sg_gateway *gw, const char *skey, bool locked, bool ok, const sg_pconf *pc,
           const sg_outcome *o)
{
	if (gw->shared == NULL || skey == NULL)
		return;
	if (ok)
		sg_shcache_put(gw->shared, skey, o, pc->cache_ttl_ms + pc->cache_stale_ms);
	else if (locked)
		sg_shcache_unlock(gw->shared, skey);
}

/* One background refresh of a stale key: a call with no caller. */
struct refresh {
	sg_gateway *gw;          /* owner */
	sg_arena arena;          /* everything of the refresh */
	const sg_provider *prov; /* provider */
	size_t pslot;            /* its slot in the token table (the tenant's) */
	const sg_op *op;         /* the operation to repeat */
	sg_pconf pc;             /* its config, with the token to use */
	ProtobufCMessage *req;   /* the request (arena copy) */
	sg_http_req hreq;        /* the upstream request */
	sg_status st;            /* outcome */
	char *key;               /* the cache key (arena) */
	const char *skey;        /* the fleet's key (arena), or NULL without the fleet's cache */
	bool locked;             /* holds the fleet's lock on skey */
	const ProtobufCMessageDescriptor *out_desc; /* the method's response */
	sg_upcall up;                               /* its upstream call's bookkeeping */
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
	bool keep = parsed && reply != NULL && sg_payload_pack(reply, &r->arena, &o) == 0 &&
	            gw_redact_reply(&r->pc, reply, &r->arena, &o) == 0;
	sg_flight_finish(gw->cache, r->key, keep, r->pc.cache_ttl_ms, r->pc.cache_stale_ms, &o);
	shared_end(gw, r->skey, r->locked, keep, &r->pc, &o);
	refresh_free(r);
}

/* Ends a refresh that did not go upstream: the stale answer stays (and the fleet's lock, if
 * held, is let go). */
static void
refresh_drop(struct refresh *r)
{
	static const sg_outcome none = {empty_status, 0, NULL, 0};
	sg_flight_finish(r->gw->cache, r->key, false, 0, 0, &none);
	shared_end(r->gw, r->skey, r->locked, false, &r->pc, &none);
	refresh_free(r);
}

/* Sends the refresh upstream with the cached provider token; without one, the stale answer
 * stays. */
static void
refresh_go(struct refresh *r)
{
	sg_gateway *gw = r->gw;

	if (gw_fetches_token(r->prov, &r->pc) &&
	    (!sg_auth_peek(gw->auth, r->pslot, &r->arena, &r->pc.token) || r->pc.token == NULL))
		goto fail;
	if (gw_op_build(r->op, &r->pc, r->req, &r->arena, &r->hreq, &r->st) != SG_OK)
		goto fail;
	if (sg_upstream_call(gw->up, &r->up, r->prov->id, &r->hreq, sg_now_ms() + r->pc.timeout_ms,
	                     refresh_done, r) == SG_OK)
		return;
fail:
	refresh_drop(r);
}

/* The fleet's answer for a refresh: a fresher copy ends it without a fetch; the lock (or an
 * unreachable Redis) sends it upstream; another gateway's refresh leaves the stale answer. */
static void
refresh_shared(void *arg, sg_shc_res res, bool locked, const sg_outcome *o, int64_t age)
{
	struct refresh *r = arg;

	r->locked = locked || res == SG_SHC_MISS;
	if (res == SG_SHC_FRESH && shared_valid(r->out_desc, &r->arena, o)) {
		sg_flight_finish_aged(r->gw->cache, r->key, age, false, r->pc.cache_ttl_ms,
		                      r->pc.cache_stale_ms, o);
		refresh_free(r);
	} else if (r->locked || res == SG_SHC_ERROR || res == SG_SHC_FRESH) {
		refresh_go(r); /* (a fresh copy that is not valid is fetched again) */
	} else {
		refresh_drop(r); /* STALE or BUSY: another gateway refreshes it */
	}
}

/* Starts refreshing key with c's request; on any failure the stale answer stays. skey: the
 * fleet's key, with locked when this gateway holds its lock already; without it, the fleet is
 * asked first. */
static void
cache_refresh_start(sg_call *c, const char *key, const char *skey, bool locked)
{
	sg_gateway *gw = c->gw;
	struct refresh *r = calloc(1, sizeof(*r));
	sg_outcome none = {empty_status, 0, NULL, 0};

	if (r == NULL)
		goto fail;
	sg_arena_init(&r->arena, 8192, gw->cfg->arena_cap);
	r->gw = gw;
	r->prov = c->prov;
	r->pslot = c->pslot;
	r->op = c->op;
	r->pc = c->pc;
	r->out_desc = c->method->desc->output;
	r->locked = locked;
	r->key = sg_arena_strdup(&r->arena, key);
	r->req = protobuf_c_message_unpack(c->method->desc->input, sg_arena_pb(&r->arena),
	                                   c->env->payload.len, c->env->payload.data);
	if (gw->shared != NULL)
		r->skey = skey != NULL ? sg_arena_strdup(&r->arena, skey)
		                       : shared_key(gw, c->tenant, c->prov, &r->arena, key);
	if (r->key == NULL || r->req == NULL || (gw->shared != NULL && r->skey == NULL))
		goto fail;
	if (gw->shared != NULL && !locked)
		sg_shcache_get(gw->shared, r->skey, r->pc.cache_ttl_ms, shared_lock_ms(&r->pc),
		               false, 0, refresh_shared, r);
	else
		refresh_go(r);
	return;
fail:
	sg_flight_finish(gw->cache, key, false, 0, 0, &none);
	if (gw->shared != NULL && skey != NULL && locked)
		sg_shcache_unlock(gw->shared, skey);
	if (r != NULL)
		refresh_free(r);
}

/* The cache key of a Track or GetOrder request (arena), or NULL when it is not cacheable:
 * "<kind>|<provider>|<id>|<id2>", after "<tenant>/" for a tenant's call (a key of the
 * providers' own starts with its kind, never with a tenant's name). Built by hand: it is on
 * every hit's path. */
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
	const char *tname = c->tenant > 0 ? c->gw->cfg->tenants[c->tenant - 1].name : "";
	size_t n0 = strlen(pname), n1 = strlen(id), n2 = strlen(id2), nt = strlen(tname);
	if (n1 > 256 || n2 > 256)
		return NULL; /* ids are validated later anyway */
	char *k = sg_arena_alloc(&c->arena, nt + n0 + n1 + n2 + 6), *p = k;
	if (k == NULL)
		return NULL;
	if (nt > 0) {
		memcpy(p, tname, nt);
		p += nt;
		*p++ = '/';
	}
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

/* The fleet's answer for a local owner: its copy is served (and kept here), the lock or an
 * unreachable Redis sends the call upstream, and a key that another gateway fetches and that
 * did not arrive in time fails the call. Shared cache's thread, or inline. */
static void
shared_got(void *arg, sg_shc_res res, bool locked, const sg_outcome *o, int64_t age)
{
	sg_call *c = arg;
	sg_gateway *gw = c->gw;

	switch (res) {
	case SG_SHC_FRESH:
	case SG_SHC_STALE:
		if (!shared_valid(c->method->desc->output, &c->arena, o)) {
			c->shared_lock = locked; /* fetch it again, and put it right */
			break;
		}
		/* kept here too; a stale copy whose lock is ours stays running as it refreshes */
		sg_flight_finish_aged(gw->cache, c->cache_key, age, locked, c->pc.cache_ttl_ms,
		                      c->pc.cache_stale_ms, o);
		c->cache_owner = false;
		if (locked)
			cache_refresh_start(c, c->cache_key, c->shared_key, true);
		cache_send(c, o, age, res == SG_SHC_STALE);
		return;
	case SG_SHC_MISS: c->shared_lock = true; break;
	case SG_SHC_BUSY:
		if (atomic_load(&gw->draining))
			gw_call_fail(c, SG_ESHUTDOWN, NULL);
		else
			gw_call_fail(
			        c, SG_EDEADLINE,
			        "another gateway of the fleet is fetching this answer, and it did "
			        "not arrive before the deadline");
		return;
	case SG_SHC_ERROR: break; /* as if there were no fleet's cache */
	}
	gw_call_after_cache(c);
}

/* The lookup: true when the call must go upstream; false when it was answered or parked (or
 * is asking the fleet's cache, which then goes on with it). */
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
	case SG_FLIGHT_OWNER:
		c->cache_owner = true;
		if (gw->shared == NULL ||
		    (c->shared_key = shared_key(gw, c->tenant, c->prov, &c->arena, key)) == NULL)
			return true;
		sg_shcache_get(gw->shared, c->shared_key, c->pc.cache_ttl_ms,
		               shared_lock_ms(&c->pc), true, c->deadline_ms, shared_got, c);
		return false;
	case SG_FLIGHT_WAITING: gw_park(c, gw_call_send); return false;
	case SG_FLIGHT_HIT: cache_send(c, &o, age, false); return false;
	case SG_FLIGHT_STALE:
		if (refresh)
			cache_refresh_start(c, key, NULL, false);
		cache_send(c, &o, age, true);
		return false;
	default: c->cache_key = NULL; return true; /* no room: uncached */
	}
}

/* A cache owner's answer is stored (an error releases the key); a bypassing call's fresh
 * answer replaces the stored one. With the fleet's cache, an OK answer is put there too, and a
 * lock this call holds is let go. */
void
gw_cache_finish(sg_call *c)
{
	sg_gateway *gw = c->gw;

	if (c->cache_owner || (c->cache_store && c->st.err == SG_OK)) {
		int64_t ttl = c->pc.cache_ttl_ms, stale = c->pc.cache_stale_ms;
		bool ok = c->st.err == SG_OK;
		if (c->cache_owner)
			sg_flight_finish(gw->cache, c->cache_key, ok, ttl, stale, &c->out);
		else
			sg_flight_put(gw->cache, c->cache_key, ttl, stale, &c->out);
		if (gw->shared != NULL && c->shared_key == NULL && ok)
			c->shared_key = shared_key(gw, c->tenant, c->prov, &c->arena, c->cache_key);
		shared_end(gw, c->shared_key, c->shared_lock, ok, &c->pc, &c->out);
		c->cache_owner = c->cache_store = c->shared_lock = false;
	}
}
