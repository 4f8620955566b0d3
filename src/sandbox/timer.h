/*
 * timer.h - one thread that fires callbacks after a delay.
 *
 * The sandbox holds slow answers here instead of sleeping on an MHD thread: the handler
 * suspends the connection and adds a timer whose callback resumes it. Entries sit in a binary
 * min-heap; the thread sleeps on a CLOCK_MONOTONIC condition variable until the earliest one is
 * due. Ten thousand pending entries cost one heap slot each.
 */
#ifndef SBX_TIMER_H
#define SBX_TIMER_H

#include <stdint.h>

typedef struct sbx_timer sbx_timer;

/* Runs on the timer thread, exactly once per accepted entry. Must not block. */
typedef void (*sbx_timer_fn)(void *arg);

/* Creates the timer and starts its thread. Returns 0, or -1 (errno set). */
int sbx_timer_new(sbx_timer **out, sbx_timer_fn fn);

/*
 * Schedules fn(arg) after delay_ms. Returns 0 (fn will run exactly once, possibly early at
 * stop), or -1 when the timer is stopping or memory ran out (fn will not run for arg).
 * Thread-safe; never blocks for long.
 */
int sbx_timer_add(sbx_timer *t, uint64_t delay_ms, void *arg);

/*
 * Stops accepting entries, fires every pending one now, and joins the thread. Later adds fail.
 * Idempotent. Not to be called from fn.
 */
void sbx_timer_stop(sbx_timer *t);

/* Stops (if needed) and frees. NULL is a no-op. */
void sbx_timer_free(sbx_timer *t);

#endif /* SBX_TIMER_H */
