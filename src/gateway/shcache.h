/*
 * shcache.h - the lookup cache a fleet of gateways shares (cache.backend = redis).
 *
 * Each gateway keeps its own cache in memory (gateway/flight.h): hits are answered from there,
 * at memory speed. Behind it sits this one, in Redis, so that the fleet makes one upstream call
 * per key and TTL instead of one per gateway:
 *   get     on a local miss (or a local refresh): the fleet's answer with its age; when it is
 *           missing or past its TTL, the key's refresh lock is taken in the same step (SET NX
 *           PX), so that one gateway of the fleet fetches it while the others serve what they
 *           have, or wait for it;
 *   put     the fetched answer, for the fleet; it releases the lock;
 *   unlock  a fetch that failed lets the lock go for the next gateway.
 * Entries expire from Redis after their TTL and stale time. Every time is Redis's (TIME).
 *
 * Lookups never depend on it: when Redis cannot be reached, is slow, or the queue to it is full,
 * get answers ERROR at once and the call goes to the provider as if there were no fleet cache.
 *
 * One thread owns the connection; operations are queued to it, pipelined, and answered from
 * there. Thread-safe; callbacks run on that thread and must not block.
 */
#ifndef SG_SHCACHE_H
#define SG_SHCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/flight.h"

typedef struct sg_shcache sg_shcache;

typedef enum sg_shc_res {
	SG_SHC_FRESH, /* o: the fleet's answer, age_ms old, within the TTL asked for */
	SG_SHC_STALE, /* o: an answer past that TTL; locked: this caller now refreshes it */
	SG_SHC_MISS,  /* no answer: the lock is this caller's; fetch, then put or unlock */
	SG_SHC_BUSY,  /* no answer, and another gateway is fetching it: it did not arrive by the
	                 get's until (or the cache is draining) */
	SG_SHC_ERROR, /* Redis could not be asked (unreachable, slow, full queue): no lock */
} sg_shc_res;

/* A get's answer; o (FRESH, STALE) is borrowed for the duration of the call. */
typedef void (*sg_shc_cb)(void *arg, sg_shc_res res, bool locked, const sg_flight_outcome *o,
                          int64_t age_ms);

typedef struct sg_shcache_conf {
	const char *url;    /* redis://HOST:PORT[/DB] */
	int timeout_ms;     /* connect and command timeout; a failure keeps Redis out for 1 s */
	size_t max_queued;  /* operations queued at most; past it get answers ERROR, put drops */
	size_t max_value;   /* bytes of an answer put at most (larger ones stay local) */
	const char *prefix; /* prepended to every key (with the lock's own suffix) */
} sg_shcache_conf;

/* Starts the thread (Redis is connected on first use). NULL with a message in err[errlen] when
 * the URL is malformed or the thread cannot start. */
sg_shcache *sg_shcache_new(const sg_shcache_conf *conf, char *err, size_t errlen);

/*
 * Looks key up: FRESH when its age is under ttl_ms. Otherwise the key's refresh lock is tried,
 * held for lock_ms: STALE (locked or not) when there is an answer, MISS when there is none and
 * the lock was taken. With none and the lock held elsewhere: wait false answers BUSY at once;
 * wait true looks again every 25 ms until an answer appears, the lock frees (MISS, locked), or
 * until_ms (sg_now_ms() time) passes (BUSY).
 */
void sg_shcache_get(sg_shcache *s, const char *key, int64_t ttl_ms, int64_t lock_ms, bool wait,
                    int64_t until_ms, sg_shc_cb cb, void *arg);

/* Keeps o for key (read as fresh for each reader's TTL, gone after expire_ms) and releases the
 * key's lock if this process holds it. No answer: a failure only costs the fleet a fetch. */
void sg_shcache_put(sg_shcache *s, const char *key, const sg_flight_outcome *o, int64_t expire_ms);

/* Releases the key's lock if this process holds it. */
void sg_shcache_unlock(sg_shcache *s, const char *key);

/* Answers the gets that wait for another gateway (BUSY), and every later one that would. */
void sg_shcache_drain(sg_shcache *s);

/* Whether the last attempt to reach Redis worked (for Health and logs). */
bool sg_shcache_up(sg_shcache *s);

/* Stops the thread once what is queued is answered. NULL is a no-op. */
void sg_shcache_free(sg_shcache *s);

#endif /* SG_SHCACHE_H */
