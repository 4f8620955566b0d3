/*
 * clock.h - monotonic milliseconds, the time base of deadlines.
 */
#ifndef SG_CLOCK_H
#define SG_CLOCK_H

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

#endif /* SG_CLOCK_H */
