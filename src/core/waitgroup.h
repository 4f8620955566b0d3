/*
 * waitgroup.h - a count of things in flight that another thread can wait to see reach zero
 * (Go's sync.WaitGroup): the upstream calls a drain waits for, the calls a stop waits for.
 *
 * Adding and removing are one atomic each, on the request path; only the drop to zero takes
 * the lock, so that a waiter that saw the count above zero under the lock is already waiting
 * when it is woken. Any thread.
 */
#ifndef SG_WAITGROUP_H
#define SG_WAITGROUP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

typedef struct sg_waitgroup {
	atomic_int n;        /* things in flight */
	pthread_mutex_t mtx; /* with cv: a waiter for n to reach 0 */
	pthread_cond_t cv;   /* broadcast (under mtx) when n drops to 0 */
} sg_waitgroup;

static inline void
sg_waitgroup_init(sg_waitgroup *wg)
{
	atomic_init(&wg->n, 0);
	pthread_mutex_init(&wg->mtx, NULL);
	sg_cond_init(&wg->cv);
}

static inline void
sg_waitgroup_fini(sg_waitgroup *wg)
{
	pthread_cond_destroy(&wg->cv);
	pthread_mutex_destroy(&wg->mtx);
}

/* Adds d (negative: removes); the drop to 0 wakes the waiters. */
static inline void
sg_waitgroup_add(sg_waitgroup *wg, int d)
{
	if (atomic_fetch_add(&wg->n, d) + d == 0) {
		pthread_mutex_lock(&wg->mtx);
		pthread_cond_broadcast(&wg->cv);
		pthread_mutex_unlock(&wg->mtx);
	}
}

/* The count right now. */
static inline int
sg_waitgroup_count(sg_waitgroup *wg)
{
	return atomic_load(&wg->n);
}

/* Waits until the count is 0 or sg_now_ms() reaches until_ms; true when it is 0. */
static inline bool
sg_waitgroup_wait(sg_waitgroup *wg, int64_t until_ms)
{
	pthread_mutex_lock(&wg->mtx);
	while (atomic_load(&wg->n) > 0 && sg_cond_wait_until(&wg->cv, &wg->mtx, until_ms)) {
	}
	bool zero = atomic_load(&wg->n) == 0;
	pthread_mutex_unlock(&wg->mtx);
	return zero;
}

#endif /* SG_WAITGROUP_H */
