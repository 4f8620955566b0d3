/*
 * bounded.c - see bounded.h.
 *
 * The state is shared by the waiter and the thread, and freed by whichever lets go of it
 * last, so that a waiter that gave up leaves nothing dangling for the thread.
 */
#include "bounded.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"

struct bounded {
	void (*fn)(void *);
	void *arg;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool done;        /* under mtx: fn returned */
	atomic_int holds; /* 2: the waiter and the thread */
};

static void
bounded_let_go(struct bounded *b)
{
	if (atomic_fetch_sub(&b->holds, 1) == 1) {
		pthread_mutex_destroy(&b->mtx);
		pthread_cond_destroy(&b->cv);
		free(b);
	}
}

static void *
bounded_main(void *arg)
{
	struct bounded *b = arg;

	b->fn(b->arg);
	pthread_mutex_lock(&b->mtx);
	b->done = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mtx);
	bounded_let_go(b);
	return NULL;
}

bool
sg_run_bounded(void (*fn)(void *), void *arg, int64_t timeout_ms)
{
	struct bounded *b = calloc(1, sizeof(*b));
	pthread_t t;

	if (b == NULL) {
		fn(arg);
		return true;
	}
	b->fn = fn;
	b->arg = arg;
	pthread_mutex_init(&b->mtx, NULL);
	sg_cond_init(&b->cv);
	atomic_init(&b->holds, 2);
	if (pthread_create(&t, NULL, bounded_main, b) != 0) {
		pthread_mutex_destroy(&b->mtx);
		pthread_cond_destroy(&b->cv);
		free(b);
		fn(arg);
		return true;
	}
	pthread_detach(t);

	int64_t until = sg_now_ms() + timeout_ms;
	pthread_mutex_lock(&b->mtx);
	while (!b->done && sg_cond_wait_until(&b->cv, &b->mtx, until))
		;
	bool done = b->done;
	pthread_mutex_unlock(&b->mtx);
	bounded_let_go(b);
	return done;
}
