/*
 * reaper.c - a binary min-heap of items on their deadline, and a thread that sleeps on a
 * condition variable until the earliest one (or an earlier one is added).
 */
#include "reaper.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"

struct sg_reaper {
	pthread_mutex_t mtx;   /* guards everything below */
	pthread_cond_t cv;     /* wakes the thread: new earliest item, or stop */
	sg_reaper_item **heap; /* min-heap on deadline (cap slots) */
	size_t len;            /* items queued */
	size_t cap;            /* slots */
	bool stop;             /* sg_reaper_free has begun */
	pthread_t thr;         /* the reaper thread */
};

/* ------------------------------------------------------------------ the heap (lock held) */

static void
heap_set(sg_reaper *r, size_t i, sg_reaper_item *it)
{
	r->heap[i] = it;
	it->idx = i;
}

static void
heap_up(sg_reaper *r, size_t i)
{
	sg_reaper_item *it = r->heap[i];

	while (i > 0 && r->heap[(i - 1) / 2]->deadline > it->deadline) {
		heap_set(r, i, r->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(r, i, it);
}

static void
heap_down(sg_reaper *r, size_t i)
{
	sg_reaper_item *it = r->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= r->len)
			break;
		if (c + 1 < r->len && r->heap[c + 1]->deadline < r->heap[c]->deadline)
			c++;
		if (r->heap[c]->deadline >= it->deadline)
			break;
		heap_set(r, i, r->heap[c]);
		i = c;
	}
	heap_set(r, i, it);
}

static void
heap_del(sg_reaper *r, sg_reaper_item *it)
{
	size_t i = it->idx;
	sg_reaper_item *last = r->heap[--r->len];

	it->queued = false;
	if (last == it)
		return;
	heap_set(r, i, last);
	heap_up(r, i);
	heap_down(r, last->idx);
}

/* ------------------------------------------------------------------ the thread */

static void *
reaper_main(void *arg)
{
	sg_reaper *r = arg;

	pthread_mutex_lock(&r->mtx);
	while (!r->stop) {
		if (r->len == 0) {
			pthread_cond_wait(&r->cv, &r->mtx);
			continue;
		}
		sg_reaper_item *it = r->heap[0];
		int64_t now = sg_now_ms();
		if (it->deadline > now) {
			/* sg_now_ms is CLOCK_MONOTONIC, as is the condition variable's clock */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ms = it->deadline - now;
			ts.tv_sec += (time_t)(ms / 1000);
			ts.tv_nsec += (long)(ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&r->cv, &r->mtx, &ts);
			continue;
		}
		heap_del(r, it);
		pthread_mutex_unlock(&r->mtx);
		it->expired(it);
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
	return NULL;
}

/* ------------------------------------------------------------------ public API */

sg_reaper *
sg_reaper_new(size_t cap)
{
	sg_reaper *r = calloc(1, sizeof(*r));
	pthread_condattr_t ca;

	if (r == NULL)
		return NULL;
	r->cap = cap ? cap : 1;
	if ((r->heap = calloc(r->cap, sizeof(*r->heap))) == NULL) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&r->thr, NULL, reaper_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mtx);
		free(r->heap);
		free(r);
		return NULL;
	}
	return r;
}

void
sg_reaper_free(sg_reaper *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mtx);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	pthread_join(r->thr, NULL);
	for (size_t i = 0; i < r->len; i++)
		r->heap[i]->queued = false;
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
	free(r->heap);
	free(r);
}

bool
sg_reaper_add(sg_reaper *r, sg_reaper_item *it)
{
	bool ok = false;

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->mtx);
	if (!it->queued && r->len < r->cap && !r->stop) {
		it->queued = true;
		heap_set(r, r->len++, it);
		heap_up(r, it->idx);
		if (it->idx == 0)
			pthread_cond_signal(&r->cv); /* a new earliest deadline */
		ok = true;
	}
	pthread_mutex_unlock(&r->mtx);
	return ok;
}

bool
sg_reaper_remove(sg_reaper *r, sg_reaper_item *it)
{
	bool queued;

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->mtx);
	queued = it->queued;
	if (queued)
		heap_del(r, it);
	pthread_mutex_unlock(&r->mtx);
	return queued;
}
