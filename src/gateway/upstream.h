/*
 * upstream.h - the one way out to a provider.
 *
 * Every HTTP call the gateway makes (a call's request, a token fetch, a cache refresh) goes
 * through sg_upstream_call, so what must be true of every upstream call lives here once: the
 * count of calls in flight (which the drain waits on), and later the breaker, the retry budget
 * and the metrics. The HTTP itself is a backend: the curl engines in the gateway process, a
 * fake in the unit tests. This layer includes neither nng nor curl.
 *
 * Threads: sg_upstream_call from any thread; the completion runs on the backend's thread.
 */
#ifndef SG_UPSTREAM_H
#define SG_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/http.h"

/*
 * Completion: exactly once per call that sg_upstream_call accepted. err is SG_OK with resp set
 * (any HTTP status), or an engine error with resp NULL: SG_EUP_TIMEOUT, SG_EUP_CONNECT (nothing
 * sent), SG_EUP_BROKEN (sent, no answer), SG_EUP_TOOBIG, SG_ESHUTDOWN, SG_ENOMEM. resp is
 * borrowed for the duration of the callback, which must not block.
 */
typedef void (*sg_upstream_cb)(void *arg, sg_err err, const sg_http_resp *resp);

/* What sends the HTTP. submit has sg_engine_submit's contract: SG_OK and cb runs once later,
 * or an error and cb never runs. */
typedef struct sg_upstream_backend {
	sg_err (*submit)(void *impl, const sg_http_req *req, int64_t deadline_ms, sg_upstream_cb cb,
	                 void *arg);
	void *impl; /* the backend's own state */
} sg_upstream_backend;

typedef struct sg_upstream sg_upstream;

/* One upstream call's bookkeeping, embedded in the caller's state; valid until cb has run. */
typedef struct sg_upcall {
	sg_upstream *up;   /* owner */
	sg_upstream_cb cb; /* the caller's completion */
	void *arg;         /* its argument */
	int provider;      /* contract Provider id (for per-provider policy) */
} sg_upcall;

/* A new upstream path over backend b (copied). NULL when out of memory. */
sg_upstream *sg_upstream_new(const sg_upstream_backend *b);

/* Frees it; nothing may be in flight. NULL is a no-op. */
void sg_upstream_free(sg_upstream *up);

/*
 * Sends req to provider (contract id) with an absolute sg_now_ms() deadline. uc is the caller's
 * bookkeeping slot. Returns SG_OK (cb runs once, later, on the backend's thread) or an error
 * (cb never runs). req and its strings stay the caller's and must outlive cb.
 */
sg_err sg_upstream_call(sg_upstream *up, sg_upcall *uc, int provider, const sg_http_req *req,
                        int64_t deadline_ms, sg_upstream_cb cb, void *arg);

/* Waits until no call is in flight or until sg_now_ms() reaches until_ms. True when none is
 * in flight. Not from a completion callback. */
bool sg_upstream_drain(sg_upstream *up, int64_t until_ms);

#endif /* SG_UPSTREAM_H */
