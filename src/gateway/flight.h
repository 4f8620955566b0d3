/*
 * flight.h - keyed outcomes shared between calls: singleflight, a store with expiry, and
 * stale-while-revalidate. Two tables use it:
 *
 * - idempotency (CreateOrder): one upstream call per key; later calls with the key get the
 *   stored outcome; the same key with another request is a conflict; stored outcomes are never
 *   evicted early (when full, new keys are refused);
 * - the lookup cache (Track, GetOrder): identical concurrent misses make one upstream call;
 *   answers are kept for a TTL, then served stale for a while as one refresh runs; the least
 *   recently used answers are evicted to stay within a byte budget.
 *
 * The first call with a key owns it and must call sg_flight_finish(). Calls that arrive while
 * it runs wait (their done callback runs from sg_flight_finish, on the owner's thread).
 *
 * Thread-safe: one mutex; no callback runs with it held.
 */
#ifndef SG_FLIGHT_H
#define SG_FLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/list.h"

typedef struct sg_flight sg_flight;

/* A request's identity beyond its key: a 128-bit hash (zero when unused). */
typedef struct sg_flight_fp {
	uint64_t a, b; /* two independent 64-bit hashes */
} sg_flight_fp;

/* An outcome: the encoded shipgate.v1.Status and response payload. Borrowed. */
typedef struct sg_flight_outcome {
	const uint8_t *status;  /* packed Status */
	size_t status_len;      /* bytes in status */
	const uint8_t *payload; /* packed response message, or NULL */
	size_t payload_len;     /* bytes in payload */
} sg_flight_outcome;

/* A call parked behind the owner of its key. Embedded in the caller's state. */
typedef struct sg_flight_waiter {
	sg_list_node link; /* table-owned: on its key's waiters */
	void *where;       /* table-owned: the key it waits on, NULL once taken */
	/* Runs once, on the thread that calls sg_flight_finish, without the table lock; the
	 * outcome is borrowed for the duration of the call. */
	void (*done)(struct sg_flight_waiter *w, const sg_flight_outcome *out);
} sg_flight_waiter;

typedef struct sg_flight_conf {
	size_t max_entries;     /* keys held at most (running or stored) */
	size_t max_bytes;       /* bytes of stored keys and outcomes at most; 0: no byte limit */
	bool evict;             /* make room by evicting the least recently used stored outcome
	                           (cache); false: refuse new keys until outcomes expire */
	int64_t (*clock)(void); /* milliseconds; NULL: sg_now_ms (tests inject a fake one) */
	size_t ntags;           /* owners that keys are counted for (0..ntags-1); 0: none */
} sg_flight_conf;

typedef enum sg_flight_res {
	SG_FLIGHT_OWNER,    /* first with this key: do the call, then sg_flight_finish() */
	SG_FLIGHT_WAITING,  /* the same call is running: w->done will run when it finishes */
	SG_FLIGHT_HIT,      /* a fresh stored outcome was copied into the arena */
	SG_FLIGHT_STALE,    /* a stored outcome past its TTL was copied into the arena */
	SG_FLIGHT_CONFLICT, /* the key is held with a different fingerprint */
	SG_FLIGHT_FULL,     /* no room for another key (or the arena could not take the copy) */
	SG_FLIGHT_QUOTA, /* a new key, and its tag already holds its most (sg_flight_begin_tag) */
} sg_flight_res;

/* Creates a table. Returns NULL on allocation failure. */
sg_flight *sg_flight_new(const sg_flight_conf *conf);

/* Frees the table. No call may be waiting. NULL is a no-op. */
void sg_flight_free(sg_flight *t);

/* The fingerprint of a request: method name and payload bytes. Pure. */
sg_flight_fp sg_flight_fingerprint(const char *method, const uint8_t *payload, size_t len);

/*
 * Looks key up at time now (sg_now_ms()).
 * HIT/STALE: *out points at a copy in arena a and *age_ms is the outcome's age. On STALE,
 * *refresh is true for exactly one caller per stale period: it must refresh the key and report
 * with sg_flight_finish() (the others keep getting the stale outcome meanwhile).
 * WAITING: w is linked in and must stay valid until its done callback has run; with w NULL,
 * nothing is linked (the key is running: the caller only learns that it is busy).
 */
sg_flight_res sg_flight_begin(sg_flight *t, const char *key, sg_flight_fp fp, sg_flight_waiter *w,
                              sg_arena *a, sg_flight_outcome *out, int64_t *age_ms, bool *refresh);

/*
 * sg_flight_begin for an owner's key: a new key is counted for tag (< conf.ntags) while it is
 * held, running or stored, and is refused with SG_FLIGHT_QUOTA when the tag holds tag_max keys
 * already (after dropping expired outcomes); tag_max 0 means no cap. Existing keys are found as
 * by sg_flight_begin, whoever holds them.
 */
sg_flight_res sg_flight_begin_tag(sg_flight *t, const char *key, sg_flight_fp fp,
                                  sg_flight_waiter *w, sg_arena *a, sg_flight_outcome *out,
                                  int64_t *age_ms, bool *refresh, size_t tag, size_t tag_max);

/* Keys held right now for tag (0 beyond conf.ntags). */
size_t sg_flight_tag_count(sg_flight *t, size_t tag);

/*
 * Takes a waiting call back (its deadline passed, or the server is stopping). Returns true when
 * it was still waiting: it is unlinked and its done callback will never run. Returns false when
 * the owner has already taken it: its done callback runs (or has run) on the owner's thread.
 */
bool sg_flight_leave(sg_flight *t, sg_flight_waiter *w);

/*
 * The owner (or refresher) of key reports its outcome. keep: store it, fresh for ttl_ms and
 * then served stale for stale_ms more; else the key is released (a refresh that fails leaves
 * the stale outcome in place). Every waiter's done callback runs before this returns.
 */
void sg_flight_finish(sg_flight *t, const char *key, bool keep, int64_t ttl_ms, int64_t stale_ms,
                      const sg_flight_outcome *out);

/*
 * sg_flight_finish with an outcome fetched elsewhere (a fleet's shared cache) that is already
 * age_ms old: it is kept, fresh until ttl_ms after it was made. With refreshing, the key stays
 * running: its owner goes on to refresh it (calls meanwhile get it, stale or not, and none of
 * them is asked to refresh) and reports again with sg_flight_finish.
 */
void sg_flight_finish_aged(sg_flight *t, const char *key, int64_t age_ms, bool refreshing,
                           int64_t ttl_ms, int64_t stale_ms, const sg_flight_outcome *out);

/*
 * Stores an outcome for key outside of a flight (a fresh answer fetched past the cache).
 * A running owner of the key is left alone. Returns false when there was no room.
 */
bool sg_flight_put(sg_flight *t, const char *key, int64_t ttl_ms, int64_t stale_ms,
                   const sg_flight_outcome *out);

/* Keys held right now (running or stored), and bytes stored. */
size_t sg_flight_count(sg_flight *t);
size_t sg_flight_bytes(sg_flight *t);

#endif /* SG_FLIGHT_H */
