/*
 * clock.h - monotonic milliseconds, the time base of deadlines, and condition variables that
 * wait on that clock.
 */
#ifndef SG_CLOCK_H
#define SG_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC. Thread-safe. */
static inline int64_t
sg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Initialises cv to time its waits on CLOCK_MONOTONIC (the clock of sg_now_ms), so that a
 * wall-clock step never shortens or stretches a wait. */
static inline void
sg_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

/* Waits on cv (initialised with sg_cond_init; mtx held) until signalled or until the
 * sg_now_ms() time until_ms. Returns false when until_ms has passed. Spurious wake-ups return
 * true: callers re-check their condition in a loop. */
static inline bool
sg_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mtx, int64_t until_ms)
{
	int64_t left = until_ms - sg_now_ms();
	if (left <= 0)
		return false;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(left / 1000);
	ts.tv_nsec += (long)(left % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mtx, &ts);
	return true;
}

#endif /* SG_CLOCK_H */
