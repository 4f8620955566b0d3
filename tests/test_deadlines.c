/*
 * test_deadlines.c - the deadline heap of parked calls: callbacks in deadline order, removal
 * before expiry (never called) and after (reported), the capacity, stop with items left, and
 * add/remove racing the thread. Waits are bounded; nothing asserts on durations.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "gateway/deadlines.h"
#include "testutil.h"

struct item {
	sg_deadline it;   /* must be first */
	atomic_int calls; /* callbacks seen */
	int order;        /* position in which it expired (1-based), 0 if never */
};

static atomic_int order; /* callbacks begun */
static atomic_int seq;   /* callbacks finished */

static void
expired(sg_deadline *it)
{
	struct item *x = (struct item *)it;
	x->order = atomic_fetch_add(&order, 1) + 1;
	atomic_fetch_add(&x->calls, 1);
	atomic_fetch_add(&seq, 1);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Waits up to 5 s for seq to reach n. */
static bool
wait_seq(int n)
{
	for (int i = 0; i < 500 && atomic_load(&seq) < n; i++)
		sleep_ms(10);
	return atomic_load(&seq) >= n;
}

static void
test_order_and_remove(void)
{
	sg_deadlines *r = sg_deadlines_new(4);
	struct item a = {.it.expired = expired}, b = {.it.expired = expired},
	            c = {.it.expired = expired}, d = {.it.expired = expired},
	            e = {.it.expired = expired};
	int64_t now = sg_now_ms();

	CHECK(r != NULL);
	atomic_store(&seq, 0);
	atomic_store(&order, 0);
	a.it.node.deadline = now + 60;
	b.it.node.deadline = now + 20;
	c.it.node.deadline = now + 40;
	d.it.node.deadline = now + 50;
	e.it.node.deadline = now + 10;
	CHECK(sg_deadlines_add(r, &a.it));
	CHECK(!sg_deadlines_add(r, &a.it)); /* already queued */
	CHECK(sg_deadlines_add(r, &b.it));
	CHECK(sg_deadlines_add(r, &c.it));
	CHECK(sg_deadlines_add(r, &d.it));
	CHECK(!sg_deadlines_add(r, &e.it));   /* full */
	CHECK(sg_deadlines_remove(r, &d.it)); /* before its deadline: never called */
	CHECK(!sg_deadlines_remove(r, &d.it));
	CHECK(wait_seq(3));
	sleep_ms(100); /* d's deadline has passed too */
	CHECK_INT(b.order, 1);
	CHECK_INT(c.order, 2);
	CHECK_INT(a.order, 3);
	CHECK_INT(atomic_load(&d.calls), 0);
	CHECK(!sg_deadlines_remove(r, &a.it)); /* already called */
	CHECK_INT(atomic_load(&a.calls), 1);

	/* a past deadline fires at once; an item can be queued again after it fired */
	a.it.node.deadline = sg_now_ms() - 5;
	CHECK(sg_deadlines_add(r, &a.it));
	CHECK(wait_seq(4));
	CHECK_INT(atomic_load(&a.calls), 2);

	/* freed with an item left: dropped, not called */
	e.it.node.deadline = sg_now_ms() + 60000;
	CHECK(sg_deadlines_add(r, &e.it));
	sg_deadlines_free(r);
	CHECK_INT(atomic_load(&e.calls), 0);
	CHECK(!e.it.queued);
	CHECK(!sg_deadlines_add(NULL, &e.it));
	CHECK(!sg_deadlines_remove(NULL, &e.it));
}

/* Items added with deadlines around now and removed while the thread expires them: each is
 * either removed (true) or called back, exactly one of the two. */
#define RACE_N 3000
static struct item race[RACE_N];

static void
test_race(void)
{
	sg_deadlines *r = sg_deadlines_new(RACE_N);
	int removed = 0, called = 0, both = 0;
	bool rm[RACE_N];

	atomic_store(&seq, 0);
	for (int i = 0; i < RACE_N; i++) {
		race[i].it.expired = expired;
		race[i].it.node.deadline = sg_now_ms() + (i % 3);
		CHECK(sg_deadlines_add(r, &race[i].it));
	}
	for (int i = 0; i < RACE_N; i++)
		rm[i] = sg_deadlines_remove(r, &race[i].it);
	for (int i = 0; i < RACE_N; i++)
		removed += rm[i];
	CHECK(wait_seq(RACE_N - removed));
	sg_deadlines_free(r);
	for (int i = 0; i < RACE_N; i++) {
		int n = atomic_load(&race[i].calls);
		called += n;
		both += rm[i] && n;
	}
	CHECK_INT(both, 0);
	CHECK_INT(removed + called, RACE_N);
}

int
main(void)
{
	test_order_and_remove();
	test_race();
	TEST_MAIN_END();
}
