/*
 * upstream.c - the one way out to a provider: in-flight accounting around the backend.
 */
#include "gateway/upstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"

struct sg_upstream {
	sg_upstream_backend b; /* sends the HTTP */
	atomic_int inflight;   /* accepted calls whose callback has not returned */
	pthread_mutex_t mtx;   /* with idle: a drain waiting for inflight to reach 0 */
	pthread_cond_t idle;   /* broadcast (under mtx) when inflight drops to 0 */
};

sg_upstream *
sg_upstream_new(const sg_upstream_backend *b)
{
	sg_upstream *up = calloc(1, sizeof(*up));

	if (up == NULL)
		return NULL;
	up->b = *b;
	atomic_init(&up->inflight, 0);
	pthread_mutex_init(&up->mtx, NULL);
	sg_cond_init(&up->idle);
	return up;
}

void
sg_upstream_free(sg_upstream *up)
{
	if (up == NULL)
		return;
	pthread_cond_destroy(&up->idle);
	pthread_mutex_destroy(&up->mtx);
	free(up);
}

/* The count is an atomic (two per call, on the request path); only the drop to 0 takes the
 * lock, so that a drain that saw it above 0 under the lock is already waiting. */
static void
up_add(sg_upstream *up, int d)
{
	if (atomic_fetch_add(&up->inflight, d) + d == 0) {
		pthread_mutex_lock(&up->mtx);
		pthread_cond_broadcast(&up->idle);
		pthread_mutex_unlock(&up->mtx);
	}
}

/* The backend's completion: the caller's callback, then the call leaves the count. A callback
 * that goes upstream again (a 401 retry, the calls a token fetch released) has counted its new
 * call before this one leaves, so the count never touches 0 in between. */
static void
up_done(void *arg, sg_err err, const sg_http_resp *resp)
{
	sg_upcall *uc = arg;
	sg_upstream *up = uc->up;

	uc->cb(uc->arg, err, resp);
	up_add(up, -1);
}

sg_err
sg_upstream_call(sg_upstream *up, sg_upcall *uc, int provider, const sg_http_req *req,
                 int64_t deadline_ms, sg_upstream_cb cb, void *arg)
{
	uc->up = up;
	uc->cb = cb;
	uc->arg = arg;
	uc->provider = provider;
	up_add(up, 1);
	sg_err err = up->b.submit(up->b.impl, req, deadline_ms, up_done, uc);
	if (err != SG_OK)
		up_add(up, -1);
	return err;
}

int
sg_upstream_inflight(sg_upstream *up)
{
	return atomic_load(&up->inflight);
}

bool
sg_upstream_drain(sg_upstream *up, int64_t until_ms)
{
	pthread_mutex_lock(&up->mtx);
	while (atomic_load(&up->inflight) > 0 &&
	       sg_cond_wait_until(&up->idle, &up->mtx, until_ms)) {
	}
	bool idle = atomic_load(&up->inflight) == 0;
	pthread_mutex_unlock(&up->mtx);
	return idle;
}
