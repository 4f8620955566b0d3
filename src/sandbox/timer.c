/*
 * timer.c - a min-heap of deadlines served by one thread.
 */
#include "timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define TIMER_BATCH 256 /* callbacks fired per unlock, so adders are not starved */

/* One pending callback. */
typedef struct timer_ent {
	uint64_t due_ns; /* CLOCK_MONOTONIC deadline */
	uint64_t seq;    /* insertion order: equal deadlines fire first-in first-out */
	void *arg;       /* the callback's argument (not owned) */
} timer_ent;

struct sbx_timer {
	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;  /* signalled on a new earliest entry and on stop */
	pthread_t thread;   /* the firing thread */
	bool started;       /* thread was created (so join it) */
	bool stopping;      /* no more adds; fire all and exit */
	bool stopped;       /* stop completed */
	sbx_timer_fn fn;    /* the callback */
	timer_ent *heap;    /* min-heap on (due_ns, seq) */
	size_t n;           /* entries in heap */
	size_t cap;         /* slots allocated in heap */
	uint64_t seq;       /* next insertion number */
};

/* ================================================================== heap */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool
ent_less(const timer_ent *a, const timer_ent *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void
heap_up(timer_ent *h, size_t i)
{
	timer_ent e = h[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!ent_less(&e, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = e;
}

static void
heap_down(timer_ent *h, size_t n, size_t i)
{
	timer_ent e = h[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && ent_less(&h[c + 1], &h[c]))
			c++;
		if (!ent_less(&h[c], &e))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = e;
}

/* Removes and returns the earliest entry. Caller holds mu and knows n > 0. */
static timer_ent
heap_pop(sbx_timer *t)
{
	timer_ent top = t->heap[0];

	if (--t->n > 0) {
		t->heap[0] = t->heap[t->n];
		heap_down(t->heap, t->n, 0);
	}
	return top;
}

/* ================================================================== thread */

static void *
timer_main(void *arg)
{
	sbx_timer *t = arg;
	void *batch[TIMER_BATCH];
	size_t nb, i;

	pthread_mutex_lock(&t->mu);
	for (;;) {
		uint64_t now = now_ns();

		nb = 0;
		while (t->n > 0 && nb < TIMER_BATCH && (t->stopping || t->heap[0].due_ns <= now))
			batch[nb++] = heap_pop(t).arg;
		if (nb > 0) {
			/* fire outside the lock: fn may take locks of its own (MHD's) */
			pthread_mutex_unlock(&t->mu);
			for (i = 0; i < nb; i++)
				t->fn(batch[i]);
			pthread_mutex_lock(&t->mu);
			continue;
		}
		if (t->stopping)
			break;
		if (t->n == 0) {
			pthread_cond_wait(&t->cv, &t->mu);
		} else {
			uint64_t due = t->heap[0].due_ns;
			struct timespec ts;

			ts.tv_sec = (time_t)(due / 1000000000u);
			ts.tv_nsec = (long)(due % 1000000000u);
			pthread_cond_timedwait(&t->cv, &t->mu, &ts);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ================================================================== API */

int
sbx_timer_new(sbx_timer **out, sbx_timer_fn fn)
{
	sbx_timer *t;
	pthread_condattr_t ca;
	int rv;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -1;
	t->fn = fn;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rv = pthread_create(&t->thread, NULL, timer_main, t)) != 0) {
		sbx_timer_free(t);
		errno = rv;
		return -1;
	}
	t->started = true;
	*out = t;
	return 0;
}

int
sbx_timer_add(sbx_timer *t, uint64_t delay_ms, void *arg)
{
	timer_ent e;

	e.due_ns = now_ns() + delay_ms * 1000000u;
	e.arg = arg;
	pthread_mutex_lock(&t->mu);
	if (t->stopping) {
		pthread_mutex_unlock(&t->mu);
		return -1;
	}
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 1024;
		timer_ent *nh = realloc(t->heap, ncap * sizeof(*nh));

		if (nh == NULL) {
			pthread_mutex_unlock(&t->mu);
			return -1;
		}
		t->heap = nh;
		t->cap = ncap;
	}
	e.seq = t->seq++;
	t->heap[t->n] = e;
	heap_up(t->heap, t->n);
	t->n++;
	if (t->heap[0].seq == e.seq) /* new earliest: the thread may be sleeping too long */
		pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

void
sbx_timer_stop(sbx_timer *t)
{
	pthread_mutex_lock(&t->mu);
	if (t->stopped) {
		pthread_mutex_unlock(&t->mu);
		return;
	}
	t->stopping = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (t->started)
		pthread_join(t->thread, NULL);
	pthread_mutex_lock(&t->mu);
	t->stopped = true;
	pthread_mutex_unlock(&t->mu);
}

void
sbx_timer_free(sbx_timer *t)
{
	if (t == NULL)
		return;
	sbx_timer_stop(t);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t->heap);
	free(t);
}
