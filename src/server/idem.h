/*
 * idem.h - the idempotency table: one CreateOrder per key, whatever the callers resend.
 *
 * The first call with a key owns it and goes upstream. Calls with the same key and the same
 * request that arrive while it runs wait for its outcome; calls that arrive later get the
 * stored outcome back; a call with the same key and a different request is refused. An outcome
 * is stored for `ttl_ms` when the provider may have acted on it (success, or a failure whose
 * effect is unknown); when the request provably did not take effect (never sent, or refused by
 * the provider with a 4xx) the key is released, so that a retry runs again.
 *
 * The table holds at most max_entries keys. It never evicts an unexpired outcome to make room:
 * when full, new keys are refused (SG_IDEM_FULL) rather than risk a duplicate order.
 *
 * Thread-safe: one mutex; no callback runs with it held.
 */
#ifndef SG_IDEM_H
#define SG_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct sg_idem sg_idem;

/* A request's identity beyond its key: a 128-bit hash of method and payload. */
typedef struct sg_idem_fp {
	uint64_t a, b; /* two independent 64-bit hashes */
} sg_idem_fp;

/* A stored or delivered outcome: the encoded shipgate.v1.Status and response payload. */
typedef struct sg_idem_outcome {
	const uint8_t *status;  /* packed Status */
	size_t status_len;      /* bytes in status */
	const uint8_t *payload; /* packed response message, or NULL */
	size_t payload_len;     /* bytes in payload */
} sg_idem_outcome;

/* A call parked behind the owner of its key. Embedded in the caller's state. */
typedef struct sg_idem_waiter {
	struct sg_idem_waiter *next; /* the key's waiters (table-owned link) */
	/*
	 * Runs once, on the thread that calls sg_idem_finish, without the table lock. The outcome
	 * is borrowed for the duration of the call.
	 */
	void (*done)(struct sg_idem_waiter *w, const sg_idem_outcome *out);
} sg_idem_waiter;

typedef enum sg_idem_res {
	SG_IDEM_OWNER,    /* first with this key: call upstream, then sg_idem_finish() */
	SG_IDEM_WAITING,  /* the same call is running: w->done will run when it finishes */
	SG_IDEM_REPLAY,   /* finished before: the stored outcome was copied into the arena */
	SG_IDEM_CONFLICT, /* the key was used with a different request */
	SG_IDEM_FULL,     /* no room for another key */
} sg_idem_res;

/* Creates a table. Returns NULL on allocation failure. */
sg_idem *sg_idem_new(size_t max_entries, int64_t ttl_ms);

/* Frees the table. No call may be in flight. NULL is a no-op. */
void sg_idem_free(sg_idem *t);

/* The fingerprint of a request: method name and payload bytes. Pure. */
sg_idem_fp sg_idem_fingerprint(const char *method, const uint8_t *payload, size_t len);

/* True when key is acceptable: 1..255 bytes of printable ASCII. */
bool sg_idem_key_ok(const char *key);

/*
 * Looks key up. On SG_IDEM_REPLAY, *out points at a copy of the stored outcome in arena a
 * (SG_IDEM_FULL is returned if the arena cannot hold it). On SG_IDEM_WAITING, w is linked in
 * and must stay valid until its done callback has run.
 */
sg_idem_res sg_idem_begin(sg_idem *t, const char *key, sg_idem_fp fp, sg_idem_waiter *w,
                          sg_arena *a, sg_idem_outcome *out);

/*
 * The owner reports its outcome. keep: store it for ttl_ms (else the key is released). Every
 * waiter's done callback runs before this returns, with `out`. Call exactly once per OWNER.
 */
void sg_idem_finish(sg_idem *t, const char *key, bool keep, const sg_idem_outcome *out);

/* Keys held right now (running or stored). */
size_t sg_idem_count(sg_idem *t);

#endif /* SG_IDEM_H */
