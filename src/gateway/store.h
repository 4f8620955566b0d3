/*
 * store.h - where CreateOrder outcomes are kept, by idempotency key: claim before call.
 *
 * Stripe's idempotency keys, as an interface a backend implements:
 *   claim(key, fingerprint, lease)  before any byte of the request leaves: the caller becomes
 *                                   the key's owner, or learns its stored outcome, or that
 *                                   another owner holds it, or that it holds another request;
 *   complete(key, outcome, ttl)     the owner's outcome, kept for ttl;
 *   release(key)                    nothing was sent (refused before sending, connect
 *                                   refused): the key is free for a retry.
 * Each operation answers through its callback: inline for the memory store, later and from
 * the store's own thread for a durable one. The store only keeps outcomes; calls in the same
 * process that share a key are coalesced before it (gateway/flight.c), so a store sees at
 * most one claim per key per process at a time.
 *
 * Thread-safe: any thread may call; callbacks must not block.
 */
#ifndef SG_STORE_H
#define SG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "gateway/flight.h"

typedef enum sg_claim {
	SG_CLAIM_OWNER,    /* claimed: go upstream, then complete or release */
	SG_CLAIM_DONE,     /* the key has an outcome (the callback's o) */
	SG_CLAIM_BUSY,     /* another owner holds the key and its lease runs */
	SG_CLAIM_UNKNOWN,  /* an owner claimed the key and is gone without an outcome: what the
	                      provider did is unknown, and the request is never sent again */
	SG_CLAIM_CONFLICT, /* the key holds another request (its fingerprint differs) */
	SG_CLAIM_FULL,     /* no room for another key */
	SG_CLAIM_QUOTA,    /* a new key, and its caller holds its most keys already */
	SG_CLAIM_ERROR,    /* the store cannot be reached or failed */
} sg_claim;

/*
 * Whose key a claim makes, and how many live keys (claimed, or kept and unexpired) that caller
 * may hold at once, so that one caller cannot fill the table for every other. A key is counted
 * for the caller that claimed it until it is released or expires.
 */
typedef struct sg_store_quota {
	const char *caller; /* the caller's name; "" for callers that are not known */
	size_t tag;         /* its index among the gateway's callers (the memory store's count) */
	size_t max_keys;    /* live keys it may hold; 0: no cap */
} sg_store_quota;

/* A claim's answer; o (DONE only) is borrowed for the duration of the call. */
typedef void (*sg_store_claim_cb)(void *arg, sg_claim res, const sg_flight_outcome *o);
/* A complete's or release's answer: SG_OK, or the store's failure. */
typedef void (*sg_store_done_cb)(void *arg, sg_err err);

/* A backend. */
typedef struct sg_store_ops {
	const char *name;  /* "memory", "sqlite", "redis": named in messages */
	const char *scope; /* "node" (this process or host) or "fleet" (shared by gateways) */
	void (*claim)(void *impl, const char *key, sg_flight_fp fp, const char *provider,
	              const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb,
	              void *arg);
	void (*complete)(void *impl, const char *key, const sg_flight_outcome *o, int64_t ttl_ms,
	                 sg_store_done_cb cb, void *arg);
	void (*release)(void *impl, const char *key, sg_store_done_cb cb, void *arg);
	void (*free)(void *impl);
	/* optional: a drain began; claims waiting for another gateway's outcome answer BUSY now
	 * rather than at the end of their lease */
	void (*drain)(void *impl);
} sg_store_ops;

typedef struct sg_store {
	const sg_store_ops *ops; /* the backend */
	void *impl;              /* its state */
	const char *fleet_id;    /* scope "fleet": the fleet's id (borrowed), else NULL */
} sg_store;

/* The memory store: a table of at most max_entries keys (outcomes expire after their ttl, and
 * are never evicted early: when it is full, claims answer FULL), counted per quota tag
 * (0..ntags-1). clock: milliseconds, NULL for sg_now_ms. NULL when out of memory. Its callbacks
 * run inline. */
sg_store *sg_store_memory_new(size_t max_entries, size_t ntags, int64_t (*clock)(void));

/*
 * The SQLite store: one file at path (created when missing), WAL with synchronous=FULL, one
 * thread of its own that answers every operation. A claim's lease and a completed outcome's ttl
 * are kept in wall-clock time (clock: milliseconds since the epoch, NULL for the real one), so
 * they outlive a restart. Returns NULL with a message in err[errlen] when the file cannot be
 * opened or set up.
 */
sg_store *sg_store_sqlite_new(const char *path, size_t max_entries, int64_t (*clock)(void),
                              char *err, size_t errlen);

/*
 * The operator's view of a SQLite store's file (safe beside a running gateway). A key whose
 * outcome is unknown was claimed by an owner whose lease ran out without an outcome: the
 * request may have reached the provider, so the gateway never sends it again by itself.
 */
typedef struct sg_store_unknown {
	const char *key;        /* the idempotency key (valid during the callback, as the rest) */
	const char *provider;   /* the call's provider ("" for claims made before it was kept) */
	bool stored;            /* false: claimed, no outcome (the gateway stopped); true: the kept
	                           outcome is UNKNOWN (the call failed after it may have been sent) */
	const char *why;        /* what happened, in words */
	uint64_t fp_a, fp_b;    /* the request's fingerprint */
	const char *owner;      /* the gateway that claimed it (host:pid:random) */
	int64_t first_seen_ms;  /* when it was claimed, wall-clock ms */
	int64_t lease_until_ms; /* when its claim ran out */
} sg_store_unknown;

/* Calls fn for each unknown key at wall-clock now_ms, oldest first. Returns how many, or -1
 * with a message in err[errlen]. */
int sg_store_sqlite_unknown(const char *path, int64_t now_ms,
                            void (*fn)(void *arg, const sg_store_unknown *u), void *arg, char *err,
                            size_t errlen);

/* Releases an unknown key once an operator has made sure with the provider that the call
 * created nothing: the next call with the key goes upstream. Returns 1 when released, 0 when
 * key is not unknown (no such key, completed with a known outcome, or its lease still runs), -1
 * with err. */
int sg_store_sqlite_release_unknown(const char *path, const char *key, int64_t now_ms, char *err,
                                    size_t errlen);

/* Resolves an unknown key with the order an operator found at the provider: payload is the
 * packed CreateOrderResponse (NULL: release instead), kept as the key's OK outcome for ttl_ms,
 * so that every later call with the key replays it. Returns 1, 0 or -1 as above. */
int sg_store_sqlite_resolve(const char *path, const char *key, const uint8_t *payload,
                            size_t payload_len, int64_t ttl_ms, int64_t now_ms, char *err,
                            size_t errlen);

/* Whether a kept packed Status (len bytes) says UNKNOWN; its message (and reason) into
 * why[n]. */
bool sg_store_status_unknown(const uint8_t *status, size_t len, char *why, size_t n);

/*
 * The Redis store, shared by a fleet: url is redis://HOST:PORT[/DB]; keys expire after ttl_ms
 * in any state. A claim that finds its key busy at another gateway waits for that one's
 * outcome until its own lease is spent. Connects on first use (and again after a failure);
 * NULL with a message in err[errlen] only when url is malformed or a thread cannot start.
 */
sg_store *sg_store_redis_new(const char *url, int64_t ttl_ms, char *err, size_t errlen);

/* The operator's view of a Redis store (any gateway of the fleet may run): the same as the
 * SQLite functions above, on Redis's own clock. */
int sg_store_redis_unknown(const char *url, void (*fn)(void *arg, const sg_store_unknown *u),
                           void *arg, char *err, size_t errlen);
int sg_store_redis_resolve(const char *url, const char *key, const uint8_t *payload,
                           size_t payload_len, int64_t ttl_ms, char *err, size_t errlen);

/* A drain began: claims that wait for another owner are answered BUSY soon (ABORTED /
 * IDEMPOTENCY_KEY_IN_PROGRESS: retry with the same key), not at the end of their lease. */
void sg_store_drain(sg_store *s);

/* Frees a store (any backend); queued operations are answered first. NULL is a no-op. */
void sg_store_free(sg_store *s);

/* The operations, through the backend. key, provider, quota and o are borrowed for the call
 * only. provider names the call's provider, kept with a claim for the operator's view. quota
 * NULL: no caller's cap. */
void sg_store_claim(sg_store *s, const char *key, sg_flight_fp fp, const char *provider,
                    const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb, void *arg);
void sg_store_complete(sg_store *s, const char *key, const sg_flight_outcome *o, int64_t ttl_ms,
                       sg_store_done_cb cb, void *arg);
void sg_store_release(sg_store *s, const char *key, sg_store_done_cb cb, void *arg);

#endif /* SG_STORE_H */
