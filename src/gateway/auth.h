/*
 * auth.h - provider tokens fetched by the gateway (OAuth2 client credentials).
 *
 * One token per provider is cached until shortly before it expires. Calls that find none queue
 * behind one fetch: the first of them makes it (sg_auth_take says FETCH), the others wait
 * (WAIT), and when the fetch ends (sg_auth_fetched) every waiter goes on with the new token or
 * fails with the fetch's status. A 401 on a call made with a cached token drops that token
 * (sg_auth_invalidate) so that the retry fetches a fresh one.
 *
 * This module keeps the tokens and the queues; it sends nothing. Thread-safe: one mutex per
 * provider; no callback runs with it held.
 */
#ifndef SG_AUTH_H
#define SG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/list.h"
#include "core/status.h"

typedef struct sg_auth sg_auth;

/* A call queued for a provider's token. Embedded in the caller's state. */
typedef struct sg_token_waiter {
	sg_list_node link; /* auth-owned: its provider's queue, then the fetcher's list */
	bool queued;       /* auth-owned: in the queue (false once a fetch has taken it) */
	/* Runs once, on the fetcher's thread, without any lock, when the fetch ends: err SG_OK
	 * and tok the token, or the failure and st saying why. tok and st are borrowed for the
	 * duration of the call (they live in the fetcher's memory). */
	void (*done)(struct sg_token_waiter *w, sg_err err, const char *tok, const sg_status *st);
} sg_token_waiter;

typedef enum sg_token_res {
	SG_TOKEN_HAVE,  /* a valid token was copied into the arena */
	SG_TOKEN_FETCH, /* none: w is queued and the caller must fetch, then sg_auth_fetched */
	SG_TOKEN_WAIT,  /* none: w is queued behind another call's fetch */
} sg_token_res;

/* Tokens for providers 0..n-1. clock: milliseconds, NULL for sg_now_ms (tests inject one).
 * NULL when out of memory. */
sg_auth *sg_auth_new(size_t n, int64_t (*clock)(void));

/* Frees the tokens. No call may be queued. NULL is a no-op. */
void sg_auth_free(sg_auth *au);

/*
 * Provider i's token for a call. HAVE: *tok is a copy in arena a (NULL when a is full). FETCH or
 * WAIT: w is queued, and its done runs when the fetch ends, unless sg_auth_leave takes it back.
 */
sg_token_res sg_auth_take(sg_auth *au, size_t i, sg_arena *a, const char **tok, sg_token_waiter *w);

/* The cached token only, never queueing: true with *tok a copy in a (NULL when a is full) when
 * provider i has a valid one. For callers that would rather go without (a cache refresh). */
bool sg_auth_peek(sg_auth *au, size_t i, sg_arena *a, const char **tok);

/* Takes w out of provider i's queue. True when it was still queued (its done will not run);
 * false when the fetch has taken the queue (its done runs, or has run). */
bool sg_auth_leave(sg_auth *au, size_t i, sg_token_waiter *w);

/*
 * The fetch for provider i ended: err SG_OK with tok (borrowed) valid for lifetime_s seconds
 * (<= 0: used by the queued calls but not kept), or a failure that st describes. Takes the
 * queue, then runs the done callback of every queued call but `fetcher` (the call that fetched,
 * which goes on by itself once this returns: tok and st may live in its memory).
 */
void sg_auth_fetched(sg_auth *au, size_t i, sg_token_waiter *fetcher, sg_err err, const char *tok,
                     int64_t lifetime_s, const sg_status *st);

/* Drops provider i's cached token if it is still tok (a call made with it got a 401). */
void sg_auth_invalidate(sg_auth *au, size_t i, const char *tok);

/* When a token with this lifetime stops being used: a tenth of it early, at most a minute. */
int64_t sg_auth_margin_ms(int64_t lifetime_ms);

#endif /* SG_AUTH_H */
