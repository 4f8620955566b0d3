/*
 * store.c - the idempotency store interface and its first backend, in memory.
 */
#include "gateway/store.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/arena.h"
#include "shipgate/v1/rpc.pb-c.h"

/* ------------------------------------------------------------------ the interface */

void
sg_store_free(sg_store *s)
{
	if (s == NULL)
		return;
	s->ops->free(s->impl);
	free(s);
}

void
sg_store_drain(sg_store *s)
{
	if (s != NULL && s->ops->drain != NULL)
		s->ops->drain(s->impl);
}

void
sg_store_claim(sg_store *s, const char *key, sg_flight_fp fp, const char *provider,
               const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb, void *arg)
{
	static const sg_store_quota none = {"", 0, 0};
	s->ops->claim(s->impl, key, fp, provider != NULL ? provider : "",
	              quota != NULL ? quota : &none, lease_ms, cb, arg);
}

void
sg_store_complete(sg_store *s, const char *key, const sg_flight_outcome *o, int64_t ttl_ms,
                  sg_store_done_cb cb, void *arg)
{
	s->ops->complete(s->impl, key, o, ttl_ms, cb, arg);
}

void
sg_store_release(sg_store *s, const char *key, sg_store_done_cb cb, void *arg)
{
	s->ops->release(s->impl, key, cb, arg);
}

/* ------------------------------------------------------------------ memory */

/*
 * The memory store keeps outcomes in an sg_flight table without waiters: a claim is a
 * flight_begin that never links a waiter, so a running key answers BUSY. Its scope is the
 * process: a restart forgets every key, and another gateway does not see them.
 */

static void
mem_claim(void *impl, const char *key, sg_flight_fp fp, const char *provider,
          const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb, void *arg)
{
	sg_flight_outcome o;
	int64_t age;
	bool refresh;
	sg_arena a;

	(void)provider; /* this process only: no operator view */

	/* a stored outcome is copied out for the callback, then dropped */
	sg_arena_init(&a, 1024, (size_t)1 << 30);
	switch (sg_flight_begin_tag(impl, key, fp, NULL, &a, &o, &age, &refresh, quota->tag,
	                            quota->max_keys)) {
	case SG_FLIGHT_OWNER: cb(arg, SG_CLAIM_OWNER, NULL); break;
	case SG_FLIGHT_WAITING: cb(arg, SG_CLAIM_BUSY, NULL); break;
	case SG_FLIGHT_HIT:
	case SG_FLIGHT_STALE: cb(arg, SG_CLAIM_DONE, &o); break;
	case SG_FLIGHT_CONFLICT: cb(arg, SG_CLAIM_CONFLICT, NULL); break;
	case SG_FLIGHT_QUOTA: cb(arg, SG_CLAIM_QUOTA, NULL); break;
	case SG_FLIGHT_FULL:
	default: cb(arg, SG_CLAIM_FULL, NULL); break;
	}
	sg_arena_fini(&a);
}

static void
mem_complete(void *impl, const char *key, const sg_flight_outcome *o, int64_t ttl_ms,
             sg_store_done_cb cb, void *arg)
{
	sg_flight_finish(impl, key, true, ttl_ms, 0, o);
	if (cb != NULL)
		cb(arg, SG_OK);
}

static void
mem_release(void *impl, const char *key, sg_store_done_cb cb, void *arg)
{
	static const uint8_t empty[1] = {0};
	const sg_flight_outcome none = {empty, 0, NULL, 0};

	sg_flight_finish(impl, key, false, 0, 0, &none);
	if (cb != NULL)
		cb(arg, SG_OK);
}

static void
mem_free(void *impl)
{
	sg_flight_free(impl);
}

static const sg_store_ops memory_ops = {
        .name = "memory",
        .scope = "node",
        .claim = mem_claim,
        .complete = mem_complete,
        .release = mem_release,
        .free = mem_free,
};

sg_store *
sg_store_memory_new(size_t max_entries, size_t ntags, int64_t (*clock)(void))
{
	sg_store *s = malloc(sizeof(*s));
	sg_flight_conf conf = {
	        .max_entries = max_entries, .evict = false, .clock = clock, .ntags = ntags};

	if (s == NULL)
		return NULL;
	s->ops = &memory_ops;
	s->fleet_id = NULL;
	if ((s->impl = sg_flight_new(&conf)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

bool
sg_store_status_unknown(const uint8_t *status, size_t len, char *why, size_t n)
{
	Shipgate__V1__Status *st = shipgate__v1__status__unpack(NULL, len, status);
	bool unknown = st != NULL && st->code == SHIPGATE__V1__CODE__UNKNOWN;

	if (unknown && n > 0)
		snprintf(why, n, "%s%s%s", st->message,
		         st->detail != NULL && st->detail->reason[0] ? " / " : "",
		         st->detail != NULL ? st->detail->reason : "");
	if (st != NULL)
		shipgate__v1__status__free_unpacked(st, NULL);
	return unknown;
}
