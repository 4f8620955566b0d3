/*
 * deadlines.h - deadlines for calls that wait inside the server (parked behind the owner of their
 * key): a min-heap on the deadline and one thread that calls each item's `expired` callback
 * when its time comes.
 *
 * Why not an nng timer (nng_sleep_aio on the call's aio): the owner's answer usually arrives
 * first and must cancel the timer, and in nng 1.5.2 a cancel racing the expiry can complete the
 * aio a second time, into the call's next receive (seen here as a receive "done" with no
 * message). Removing an item from this heap is synchronous: once sg_deadlines_remove() returns
 * true, the callback will not run.
 *
 * Thread-safe: one mutex; callbacks run on the deadline thread without it.
 */
#ifndef SG_DEADLINES_H
#define SG_DEADLINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dheap.h"

typedef struct sg_deadlines sg_deadlines;

/* One deadline. Embedded in the caller's state: set node.deadline and expired; the thread owns
 * the rest. */
typedef struct sg_deadline {
	sg_dheap_node node;                        /* node.deadline: sg_now_ms() time it expires */
	void (*expired)(struct sg_deadline *item); /* runs once, on the deadline thread */
	bool queued;                               /* thread-owned: in the heap */
} sg_deadline;

/* Starts a deadline thread that holds at most cap items. NULL when out of memory or threads. */
sg_deadlines *sg_deadlines_new(size_t cap);

/* Stops the thread (waiting for a running callback). Items still queued are dropped without
 * their callback; adding fails from now on, removing still works. Idempotent; NULL is a no-op. */
void sg_deadlines_stop(sg_deadlines *r);

/* sg_deadlines_stop, then frees it. NULL is a no-op. */
void sg_deadlines_free(sg_deadlines *r);

/* Queues it until it->node.deadline. Returns false when it is full, it is already queued,
 * or r is NULL. */
bool sg_deadlines_add(sg_deadlines *r, sg_deadline *it);

/* Takes it out. True when it was queued: its callback will not run. False when it was not
 * queued: never added, or already taken by the thread (its callback runs or has run). */
bool sg_deadlines_remove(sg_deadlines *r, sg_deadline *it);

#endif /* SG_DEADLINES_H */
