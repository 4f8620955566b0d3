/*
 * park.c - parking: a call waits behind another (the owner of its key, or a token fetch)
 * until that one ends its wait or the call's own deadline passes, whichever comes first.
 */
#include "gateway/gateway_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* ------------------------------------------------------------------ parking */

/*
 * Parking: a call waits behind another (the owner of its key, or a token fetch) until that one
 * ends its wait or the call's own deadline passes, whichever comes first. The ender stores
 * what the call waited for in it and calls gw_park_settle(); the deadline thread calls
 * gw_park_expired(). Each of the two may find the other half-way; the per-call lock decides
 * which one goes on with the call.
 */

/* Before c becomes findable by an ender (a flight lookup in table t, or else provider p's
 * token queue): no wait of its own is pending then, so plain stores do. What the deadline
 * thread needs to take c back is kept apart from what the ender's reply releases. */
void
gw_park_reset(sg_call *c, sg_flight *t, size_t p)
{
	c->park_flight = t;
	c->park_provider = p;
	c->park_ready = c->park_timer_gone = false;
}

/* Queues c's deadline, or goes on at once if its wait is already over. */
void
gw_park(sg_call *c, void (*then)(sg_call *c))
{
	pthread_mutex_lock(&c->park_mtx);
	if (c->park_ready) {
		pthread_mutex_unlock(&c->park_mtx);
		then(c);
		return;
	}
	c->park_then = then;
	c->park_timer.node.deadline = c->deadline_ms;
	/* cannot fail: the deadline thread has a slot for every call, and c is in none */
	(void)sg_deadlines_add(c->gw->deadlines, &c->park_timer);
	pthread_mutex_unlock(&c->park_mtx);
}

/* The ender of c's wait has stored its result in c. True when the caller must now go on with
 * c; false when c's parker or the deadline thread will. */
bool
gw_park_settle(sg_call *c)
{
	pthread_mutex_lock(&c->park_mtx);
	c->park_ready = true;
	bool go = sg_deadlines_remove(c->gw->deadlines, &c->park_timer) || c->park_timer_gone;
	pthread_mutex_unlock(&c->park_mtx);
	return go;
}

/* Takes c back from the queue it waits in. True when it was still there (the ender will not
 * see it). */
static bool
park_leave(sg_call *c)
{
	if (c->park_flight == NULL)
		return sg_auth_leave(c->gw->auth, c->park_provider, &c->twait);
	return sg_flight_leave(c->park_flight, &c->waiter);
}

/* The deadline of a parked call passed. Deadline thread. */
void
gw_park_expired(sg_deadline *it)
{
	sg_call *c = (sg_call *)(void *)((char *)it - offsetof(sg_call, park_timer));

	pthread_mutex_lock(&c->park_mtx);
	bool ready = c->park_ready;
	pthread_mutex_unlock(&c->park_mtx);
	if (!ready) {
		if (park_leave(c)) {
			gw_call_fail(
			        c, SG_EDEADLINE,
			        c->park_flight == NULL
			                ? "deadline passed while waiting for the provider's token"
			                : "deadline passed while waiting for the same call (same "
			                  "key) in flight");
			return;
		}
		/* the ender has it: it settles soon, or has just done so */
		pthread_mutex_lock(&c->park_mtx);
		ready = c->park_ready;
		c->park_timer_gone = !ready;
		pthread_mutex_unlock(&c->park_mtx);
	}
	if (ready)
		c->park_then(c);
}

/* A call that waited behind the owner of its key gets the owner's outcome. Runs on the
 * owner's thread: encodes the reply now (o is borrowed), then sends it unless the parker or
 * the deadline thread will. */
void
gw_flight_done(sg_flight_waiter *wt, const sg_outcome *o)
{
	sg_call *c = (sg_call *)(void *)((char *)wt - offsetof(sg_call, waiter));
	uint8_t extra[SG_REPLY_EXTRA_MAX];

	gw_call_done(c, SG_END_SHARED, o, extra, sg_reply_replayed_field(c->method, extra));
	if (gw_park_settle(c))
		gw_call_send(c);
}
