/*
 * reaper.h - deadlines for calls that wait inside the server (parked behind the owner of their
 * key): a min-heap on the deadline and one thread that calls each item's `expired` callback
 * when its time comes.
 *
 * Why not an nng timer (nng_sleep_aio on the call's aio): the owner's answer usually arrives
 * first and must cancel the timer, and in nng 1.5.2 a cancel racing the expiry can complete the
 * aio a second time, into the call's next receive (seen here as a receive "done" with no
 * message). Removing an item from this heap is synchronous: once sg_reaper_remove() returns
 * true, the callback will not run.
 *
 * Thread-safe: one mutex; callbacks run on the reaper thread without it.
 */
#ifndef SG_REAPER_H
#define SG_REAPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dheap.h"

typedef struct sg_reaper sg_reaper;

/* One deadline. Embedded in the caller's state: set node.deadline and expired; the reaper owns
 * the rest. */
typedef struct sg_reaper_item {
	sg_dheap_node node; /* node.deadline: sg_now_ms() time it expires */
	void (*expired)(struct sg_reaper_item *item); /* runs once, on the reaper thread */
	bool queued;                                  /* reaper-owned: in the heap */
} sg_reaper_item;

/* Starts a reaper that holds at most cap items. NULL when out of memory or threads. */
sg_reaper *sg_reaper_new(size_t cap);

/* Stops the thread (waiting for a running callback). Items still queued are dropped without
 * their callback; adding fails from now on, removing still works. Idempotent; NULL is a no-op. */
void sg_reaper_stop(sg_reaper *r);

/* sg_reaper_stop, then frees the reaper. NULL is a no-op. */
void sg_reaper_free(sg_reaper *r);

/* Queues it until it->node.deadline. Returns false when the reaper is full, it is already queued,
 * or r is NULL. */
bool sg_reaper_add(sg_reaper *r, sg_reaper_item *it);

/* Takes it out. True when it was queued: its callback will not run. False when it was not
 * queued: never added, or already taken by the thread (its callback runs or has run). */
bool sg_reaper_remove(sg_reaper *r, sg_reaper_item *it);

#endif /* SG_REAPER_H */
