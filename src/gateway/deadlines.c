/*
 * deadlines.c - items on a deadline heap (core/dheap.h), and a thread that sleeps on a condition
 * variable until the earliest one (or an earlier one is added).
 */
#include "gateway/deadlines.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"

struct sg_deadlines {
	pthread_mutex_t mtx; /* guards everything below */
	pthread_cond_t cv;   /* wakes the thread: new earliest item, or stop */
	sg_dheap heap;       /* queued items on their deadline (room for cap reserved) */
	size_t cap;          /* items held at most */
	bool stop;           /* sg_deadlines_stop has begun */
	pthread_t thr;       /* the deadline thread */
};

static sg_deadline *
item_of(sg_dheap_node *n)
{
	return (sg_deadline *)(void *)((char *)n - offsetof(sg_deadline, node));
}

/* Takes it out of the heap (lock held). */
static void
item_del(sg_deadlines *r, sg_deadline *it)
{
	sg_dheap_del(&r->heap, &it->node);
	it->queued = false;
}

/* ------------------------------------------------------------------ the thread */

static void *
deadlines_main(void *arg)
{
	sg_deadlines *r = arg;

	pthread_mutex_lock(&r->mtx);
	while (!r->stop) {
		sg_dheap_node *top = sg_dheap_top(&r->heap);
		if (top == NULL) {
			pthread_cond_wait(&r->cv, &r->mtx);
			continue;
		}
		sg_deadline *it = item_of(top);
		int64_t now = sg_now_ms();
		if (top->deadline > now) {
			(void)sg_cond_wait_until(&r->cv, &r->mtx, top->deadline);
			continue;
		}
		item_del(r, it);
		pthread_mutex_unlock(&r->mtx);
		it->expired(it);
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
	return NULL;
}

/* ------------------------------------------------------------------ public API */

sg_deadlines *
sg_deadlines_new(size_t cap)
{
	sg_deadlines *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->cap = cap ? cap : 1;
	if (sg_dheap_reserve(&r->heap, r->cap) != 0) { /* so that adding never allocates */
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mtx, NULL);
	sg_cond_init(&r->cv);
	if (pthread_create(&r->thr, NULL, deadlines_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mtx);
		sg_dheap_fini(&r->heap);
		free(r);
		return NULL;
	}
	return r;
}

void
sg_deadlines_stop(sg_deadlines *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mtx);
	bool join = !r->stop;
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	if (join)
		pthread_join(r->thr, NULL);
	pthread_mutex_lock(&r->mtx);
	while (r->heap.len > 0) /* dropped: their callbacks will not run */
		item_del(r, item_of(r->heap.v[0]));
	pthread_mutex_unlock(&r->mtx);
}

void
sg_deadlines_free(sg_deadlines *r)
{
	if (r == NULL)
		return;
	sg_deadlines_stop(r);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
	sg_dheap_fini(&r->heap);
	free(r);
}

bool
sg_deadlines_add(sg_deadlines *r, sg_deadline *it)
{
	bool ok = false;

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->mtx);
	if (!it->queued && r->heap.len < r->cap && !r->stop &&
	    sg_dheap_push(&r->heap, &it->node) == 0) { /* room reserved: cannot fail */
		it->queued = true;
		if (it->node.idx == 0)
			pthread_cond_signal(&r->cv); /* a new earliest deadline */
		ok = true;
	}
	pthread_mutex_unlock(&r->mtx);
	return ok;
}

bool
sg_deadlines_remove(sg_deadlines *r, sg_deadline *it)
{
	bool queued;

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->mtx);
	queued = it->queued;
	if (queued)
		item_del(r, it);
	pthread_mutex_unlock(&r->mtx);
	return queued;
}
