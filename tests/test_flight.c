/*
 * test_flight.c - the keyed-outcome table on its own, in both of its uses:
 * idempotency (owner, waiters, replay, conflict, release, expiry, refusing when full) and the
 * lookup cache (TTL expiry, stale-while-revalidate with one refresher, singleflight, bypass
 * stores, LRU eviction within a byte budget), and waiters leaving before the owner finishes
 * (their deadline passed). Time is a fake clock: no timing assertions.
 * Ends with many threads racing for the same keys.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/flight.h"
#include "testutil.h"

static const uint8_t PAYLOAD[] = {0x0a, 0x03, 'a', 'w', 'b'};
static const uint8_t PAYLOAD2[] = {0x0a, 0x03, 'n', 'e', 'w'};
static const uint8_t STATUS_OK[1] = {0};

static int64_t fake_now = 1000000;

static int64_t
fake_clock(void)
{
	return fake_now;
}

struct waiter {
	sg_flight_waiter w;  /* must be first */
	int calls;           /* done callbacks seen */
	size_t payload_len;  /* what it was given */
	uint8_t payload[16]; /* copy of the payload it was given */
};

static void
waiter_done(sg_flight_waiter *w, const sg_flight_outcome *o)
{
	struct waiter *x = (struct waiter *)w;
	x->calls++;
	x->payload_len = o->payload_len;
	if (o->payload_len <= sizeof(x->payload))
		memcpy(x->payload, o->payload, o->payload_len);
}

static sg_flight_outcome
outcome(const uint8_t *p, size_t n)
{
	sg_flight_outcome o = {STATUS_OK, 0, p, n};
	return o;
}

/* A lookup cache's table on the fake clock: 100 keys, 1 MiB, evicting. */
static sg_flight *
cache_table(void)
{
	sg_flight_conf conf = {
	        .max_entries = 100, .max_bytes = 1 << 20, .evict = true, .clock = fake_clock};
	return sg_flight_new(&conf);
}

/* ------------------------------------------------------------------ idempotency */

static void
test_idempotency(void)
{
	sg_flight_conf conf = {.max_entries = 10, .evict = false, .clock = fake_clock};
	sg_flight *t = sg_flight_new(&conf);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp fp = sg_flight_fingerprint("/x/CreateOrder", PAYLOAD, sizeof(PAYLOAD));
	sg_flight_fp other = sg_flight_fingerprint("/x/CreateOrder", PAYLOAD, 3);
	struct waiter w1 = {.w.done = waiter_done}, w2 = {.w.done = waiter_done};
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD));
	int64_t age;
	bool refresh;

	CHECK(fp.a != other.a || fp.b != other.b);
	CHECK_INT(sg_flight_begin(t, "k1", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_begin(t, "k1", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK_INT(sg_flight_begin(t, "k1", fp, &w2.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK_INT(sg_flight_begin(t, "k1", other, &w2.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_CONFLICT);
	/* no waiter: told the key is running, nothing linked (the store's "busy") */
	CHECK_INT(sg_flight_begin(t, "k1", fp, NULL, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK_INT(w1.calls, 0);
	sg_flight_finish(t, "k1", true, 86400000, 0, &o);
	CHECK_INT(w1.calls, 1);
	CHECK_INT(w2.calls, 1);
	CHECK_INT(w2.payload_len, sizeof(PAYLOAD));
	CHECK(memcmp(w2.payload, PAYLOAD, sizeof(PAYLOAD)) == 0);

	/* later: the stored outcome, copied into the arena */
	fake_now += 3600000;
	memset(&out, 0, sizeof(out));
	CHECK_INT(sg_flight_begin(t, "k1", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	CHECK_INT(age, 3600000);
	CHECK(!refresh);
	CHECK_INT(out.payload_len, sizeof(PAYLOAD));
	CHECK(out.payload != NULL && memcmp(out.payload, PAYLOAD, sizeof(PAYLOAD)) == 0);
	CHECK_INT(sg_flight_begin(t, "k1", other, &w1.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_CONFLICT);
	CHECK_INT(w1.calls, 1); /* a replay does not call back */

	/* released: the waiter still gets the answer, and the next call owns the key again */
	CHECK_INT(sg_flight_begin(t, "k2", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_begin(t, "k2", fp, &w2.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	sg_flight_finish(t, "k2", false, 86400000, 0, &o);
	CHECK_INT(w2.calls, 2);
	CHECK_INT(sg_flight_begin(t, "k2", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "k2", false, 86400000, 0, &o);
	CHECK_INT(sg_flight_count(t), 1);

	/* a stored failure has no payload */
	sg_flight_outcome fail = {(const uint8_t *)"\x08\x02", 2, NULL, 0};
	CHECK_INT(sg_flight_begin(t, "k3", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "k3", true, 86400000, 0, &fail);
	CHECK_INT(sg_flight_begin(t, "k3", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	CHECK(out.payload == NULL);
	CHECK_INT(out.status_len, 2);

	/* after the TTL the key is forgotten */
	fake_now += 86400000;
	CHECK_INT(sg_flight_begin(t, "k1", other, &w1.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_OWNER);
	sg_flight_finish(t, "k1", false, 0, 0, &o);
	sg_arena_fini(&a);
	sg_flight_free(t);
}

/* A waiter whose deadline passes leaves the queue: it is never called back, the others are,
 * and leaving after the owner finished says so. */
static void
test_leave(void)
{
	sg_flight_conf conf = {.max_entries = 10, .evict = false, .clock = fake_clock};
	sg_flight *t = sg_flight_new(&conf);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp fp = sg_flight_fingerprint("/x/CreateOrder", PAYLOAD, sizeof(PAYLOAD));
	struct waiter w1 = {.w.done = waiter_done}, w2 = {.w.done = waiter_done},
	              w3 = {.w.done = waiter_done};
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD));
	int64_t age;
	bool refresh;

	CHECK_INT(sg_flight_begin(t, "k", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_begin(t, "k", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK_INT(sg_flight_begin(t, "k", fp, &w2.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK_INT(sg_flight_begin(t, "k", fp, &w3.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK(sg_flight_leave(t, &w2.w));  /* from the middle of the queue */
	CHECK(!sg_flight_leave(t, &w2.w)); /* once */
	CHECK(sg_flight_leave(t, &w3.w));  /* the head */
	sg_flight_finish(t, "k", true, 86400000, 0, &o);
	CHECK_INT(w1.calls, 1);
	CHECK_INT(w2.calls, 0);
	CHECK_INT(w3.calls, 0);
	CHECK(!sg_flight_leave(t, &w1.w)); /* already answered */

	/* every waiter gone: the owner's outcome is still stored for later callers */
	CHECK_INT(sg_flight_begin(t, "k", fp, &w2.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	CHECK_INT(sg_flight_begin(t, "j", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_begin(t, "j", fp, &w2.w, &a, &out, &age, &refresh), SG_FLIGHT_WAITING);
	CHECK(sg_flight_leave(t, &w2.w));
	sg_flight_finish(t, "j", false, 0, 0, &o);
	CHECK_INT(w2.calls, 0);
	CHECK_INT(sg_flight_begin(t, "j", fp, &w1.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "j", false, 0, 0, &o);
	sg_arena_fini(&a);
	sg_flight_free(t);
}

/* leave racing finish from another thread: each waiter is either taken back or called back,
 * never both, never neither. */
#define LEAVE_N 2000
static sg_flight *leave_table;
static struct waiter leave_w[LEAVE_N];

static void *
leave_finisher(void *arg)
{
	(void)arg;
	sg_flight_outcome o = outcome(PAYLOAD, sizeof(PAYLOAD));
	sg_flight_finish(leave_table, "r", false, 0, 0, &o);
	return NULL;
}

static void
test_leave_race(void)
{
	sg_flight_conf conf = {.max_entries = 10, .evict = false};
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp fp = {1, 2};
	sg_flight_outcome out;
	int64_t age;
	bool refresh, left[LEAVE_N];
	pthread_t th;
	int nleft = 0, ncalled = 0, both = 0;

	leave_table = sg_flight_new(&conf);
	CHECK_INT(sg_flight_begin(leave_table, "r", fp, &leave_w[0].w, &a, &out, &age, &refresh),
	          SG_FLIGHT_OWNER);
	for (int i = 0; i < LEAVE_N; i++) {
		leave_w[i].w.done = waiter_done;
		CHECK_INT(sg_flight_begin(leave_table, "r", fp, &leave_w[i].w, &a, &out, &age,
		                          &refresh),
		          SG_FLIGHT_WAITING);
	}
	pthread_create(&th, NULL, leave_finisher, NULL);
	for (int i = 0; i < LEAVE_N; i++)
		left[i] = sg_flight_leave(leave_table, &leave_w[i].w);
	pthread_join(th, NULL);
	for (int i = 0; i < LEAVE_N; i++) {
		nleft += left[i];
		ncalled += leave_w[i].calls;
		both += left[i] && leave_w[i].calls;
	}
	CHECK_INT(both, 0);
	CHECK_INT(nleft + ncalled, LEAVE_N);
	sg_arena_fini(&a);
	sg_flight_free(leave_table);
}

static void
test_idempotency_full(void)
{
	sg_flight_conf conf = {.max_entries = 3, .evict = false, .clock = fake_clock};
	sg_flight *t = sg_flight_new(&conf);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp fp = sg_flight_fingerprint("m", PAYLOAD, sizeof(PAYLOAD));
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD));
	struct waiter w = {.w.done = waiter_done};
	const char *keys[] = {"a", "b", "c"};
	int64_t age;
	bool refresh;

	for (int i = 0; i < 3; i++) {
		CHECK_INT(sg_flight_begin(t, keys[i], fp, &w.w, &a, &out, &age, &refresh),
		          SG_FLIGHT_OWNER);
		sg_flight_finish(t, keys[i], true, 1000, 0, &o);
	}
	/* full of unexpired outcomes: new keys are refused, never an early eviction */
	CHECK_INT(sg_flight_begin(t, "d", fp, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_FULL);
	CHECK_INT(sg_flight_begin(t, "a", fp, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	/* once they expire, there is room */
	fake_now += 1000;
	CHECK_INT(sg_flight_begin(t, "d", fp, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "d", true, 1000, 0, &o);
	CHECK_INT(sg_flight_count(t), 3);
	sg_arena_fini(&a);
	sg_flight_free(t);
}

/* ------------------------------------------------------------------ cache */

static void
test_cache_ttl_and_stale(void)
{
	sg_flight *t = cache_table();
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp none = {0, 0};
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD)),
	                       o2 = outcome(PAYLOAD2, sizeof(PAYLOAD2));
	struct waiter w = {.w.done = waiter_done};
	int64_t age;
	bool refresh;

	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_OWNER);
	sg_flight_finish(t, "T|1|x", true, 30000, 60000, &o);
	/* fresh */
	fake_now += 29999;
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	CHECK_INT(age, 29999);
	/* TTL expired: served stale, and exactly one caller is told to refresh */
	fake_now += 1;
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_STALE);
	CHECK(refresh);
	CHECK(memcmp(out.payload, PAYLOAD, sizeof(PAYLOAD)) == 0);
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_STALE);
	CHECK(!refresh);
	/* the refresh lands: fresh again, with the new answer */
	sg_flight_finish(t, "T|1|x", true, 30000, 60000, &o2);
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	CHECK_INT(age, 0);
	CHECK(memcmp(out.payload, PAYLOAD2, sizeof(PAYLOAD2)) == 0);
	/* a failed refresh keeps the stale answer until its window ends */
	fake_now += 30000;
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_STALE);
	CHECK(refresh);
	sg_flight_finish(t, "T|1|x", false, 30000, 60000, &o);
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_STALE);
	CHECK(refresh); /* the next stale hit tries again */
	sg_flight_finish(t, "T|1|x", false, 30000, 60000, &o);
	/* past the stale window: a miss */
	fake_now += 60000;
	CHECK_INT(sg_flight_begin(t, "T|1|x", none, &w.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_OWNER);
	sg_flight_finish(t, "T|1|x", false, 30000, 60000, &o);
	CHECK_INT(sg_flight_count(t), 0);
	sg_arena_fini(&a);
	sg_flight_free(t);
}

/* An answer from a fleet's shared cache, already aged: its age counts toward the TTL, waiters
 * get it, and a stale one whose refresh is the owner's keeps the key running. */
static void
test_cache_aged(void)
{
	sg_flight *t = cache_table();
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp none = {0, 0};
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD)),
	                       o2 = outcome(PAYLOAD2, sizeof(PAYLOAD2));
	struct waiter w = {.w.done = waiter_done}, w2 = {.w.done = waiter_done};
	int64_t age;
	bool refresh;
#define BEGIN(key) sg_flight_begin(t, key, none, &w.w, &a, &out, &age, &refresh)

	/* a fresh answer 20 s old, with a 30 s TTL: a hit for 10 s more, aged from 20 s */
	CHECK_INT(BEGIN("T|1|a"), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_begin(t, "T|1|a", none, &w2.w, &a, &out, &age, &refresh),
	          SG_FLIGHT_WAITING);
	sg_flight_finish_aged(t, "T|1|a", 20000, false, 30000, 60000, &o);
	CHECK_INT(w2.calls, 1); /* the waiter got it */
	CHECK(w2.payload_len == sizeof(PAYLOAD) &&
	      memcmp(w2.payload, PAYLOAD, sizeof(PAYLOAD)) == 0);
	CHECK_INT(BEGIN("T|1|a"), SG_FLIGHT_HIT);
	CHECK_INT(age, 20000);
	fake_now += 9999;
	CHECK_INT(BEGIN("T|1|a"), SG_FLIGHT_HIT);
	fake_now += 1;
	CHECK_INT(BEGIN("T|1|a"), SG_FLIGHT_STALE);
	CHECK(refresh);
	sg_flight_finish(t, "T|1|a", false, 30000, 60000, &o);

	/* a stale answer whose refresh the owner goes on to run: stale for everyone, and nobody
	 * else is asked to refresh until the owner reports */
	CHECK_INT(BEGIN("T|1|b"), SG_FLIGHT_OWNER);
	sg_flight_finish_aged(t, "T|1|b", 40000, true, 30000, 60000, &o);
	CHECK_INT(BEGIN("T|1|b"), SG_FLIGHT_STALE);
	CHECK(!refresh);
	CHECK_INT(age, 40000);
	sg_flight_finish(t, "T|1|b", true, 30000, 60000, &o2); /* the refresh lands */
	CHECK_INT(BEGIN("T|1|b"), SG_FLIGHT_HIT);
	CHECK_INT(age, 0);
	CHECK(memcmp(out.payload, PAYLOAD2, sizeof(PAYLOAD2)) == 0);
	/* an age past TTL and stale window: stored, but gone at the next look */
	CHECK_INT(BEGIN("T|1|c"), SG_FLIGHT_OWNER);
	sg_flight_finish_aged(t, "T|1|c", 100000, false, 30000, 60000, &o);
	CHECK_INT(BEGIN("T|1|c"), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "T|1|c", false, 30000, 60000, &o);
#undef BEGIN
	sg_arena_fini(&a);
	sg_flight_free(t);
}

static void
test_cache_singleflight_and_bypass(void)
{
	sg_flight *t = cache_table();
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp none = {0, 0};
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD)),
	                       o2 = outcome(PAYLOAD2, sizeof(PAYLOAD2));
	struct waiter ws[10];
	int64_t age;
	bool refresh;

	/* ten identical misses: one owner, nine waiters, all get the one answer */
	for (int i = 0; i < 10; i++) {
		ws[i] = (struct waiter){.w.done = waiter_done};
		CHECK_INT(sg_flight_begin(t, "G|3|o", none, &ws[i].w, &a, &out, &age, &refresh),
		          i == 0 ? SG_FLIGHT_OWNER : SG_FLIGHT_WAITING);
	}
	/* a bypass while the owner runs does not disturb it */
	CHECK(!sg_flight_put(t, "G|3|o", 30000, 0, &o2));
	sg_flight_finish(t, "G|3|o", true, 30000, 0, &o);
	for (int i = 1; i < 10; i++) {
		CHECK_INT(ws[i].calls, 1);
		CHECK(memcmp(ws[i].payload, PAYLOAD, sizeof(PAYLOAD)) == 0);
	}
	CHECK_INT(ws[0].calls, 0); /* the owner is not its own waiter */
	/* a bypass stores its fresh answer over the cached one */
	CHECK(sg_flight_put(t, "G|3|o", 30000, 0, &o2));
	CHECK_INT(sg_flight_begin(t, "G|3|o", none, &ws[0].w, &a, &out, &age, &refresh),
	          SG_FLIGHT_HIT);
	CHECK(memcmp(out.payload, PAYLOAD2, sizeof(PAYLOAD2)) == 0);
	/* and a bypass of a key never seen stores it too */
	CHECK(sg_flight_put(t, "G|3|new", 30000, 0, &o));
	CHECK_INT(sg_flight_begin(t, "G|3|new", none, &ws[0].w, &a, &out, &age, &refresh),
	          SG_FLIGHT_HIT);
	/* an error is not stored: the next call is a miss again */
	CHECK_INT(sg_flight_begin(t, "G|3|err", none, &ws[0].w, &a, &out, &age, &refresh),
	          SG_FLIGHT_OWNER);
	sg_flight_finish(t, "G|3|err", false, 30000, 0, &o);
	CHECK_INT(sg_flight_begin(t, "G|3|err", none, &ws[0].w, &a, &out, &age, &refresh),
	          SG_FLIGHT_OWNER);
	sg_flight_finish(t, "G|3|err", false, 30000, 0, &o);
	sg_arena_fini(&a);
	sg_flight_free(t);
}

static void
test_cache_lru_budget(void)
{
	/* room for about three entries: each costs its struct, key and bytes */
	sg_flight_conf conf = {
	        .max_entries = 1000, .max_bytes = 3 * 200, .evict = true, .clock = fake_clock};
	sg_flight *t = sg_flight_new(&conf);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp none = {0, 0};
	uint8_t big[60];
	memset(big, 'x', sizeof(big));
	sg_flight_outcome out, o = outcome(big, sizeof(big));
	struct waiter w = {.w.done = waiter_done};
	int64_t age;
	bool refresh;
	char key[8];

	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		CHECK_INT(sg_flight_begin(t, key, none, &w.w, &a, &out, &age, &refresh),
		          SG_FLIGHT_OWNER);
		sg_flight_finish(t, key, true, 30000, 0, &o);
		/* keep k0 in use: it must survive as the most recently used */
		CHECK_INT(sg_flight_begin(t, "k0", none, &w.w, &a, &out, &age, &refresh),
		          SG_FLIGHT_HIT);
		CHECK(sg_flight_bytes(t) <= conf.max_bytes);
	}
	CHECK(sg_flight_count(t) >= 2 && sg_flight_count(t) <= 3);
	CHECK_INT(sg_flight_begin(t, "k19", none, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_HIT);
	CHECK_INT(sg_flight_begin(t, "k1", none, &w.w, &a, &out, &age, &refresh), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "k1", false, 0, 0, &o);
	sg_arena_fini(&a);
	sg_flight_free(t);
}

/* ------------------------------------------------------------------ race */

#define NTHREADS 8
#define ROUNDS   200

static sg_flight *race_table;
static atomic_int owners, waiters_done, replays;

static void
race_done(sg_flight_waiter *w, const sg_flight_outcome *o)
{
	(void)o;
	atomic_fetch_add(&waiters_done, 1);
	free(w);
}

static void *
race_thread(void *arg)
{
	(void)arg;
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp fp = sg_flight_fingerprint("m", PAYLOAD, sizeof(PAYLOAD));
	for (int r = 0; r < ROUNDS; r++) {
		char key[32];
		snprintf(key, sizeof(key), "race-%d", r);
		sg_flight_waiter *w = calloc(1, sizeof(*w));
		w->done = race_done;
		sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD));
		int64_t age;
		bool refresh;
		switch (sg_flight_begin(race_table, key, fp, w, &a, &out, &age, &refresh)) {
		case SG_FLIGHT_OWNER:
			atomic_fetch_add(&owners, 1);
			free(w);
			sg_flight_finish(race_table, key, true, 3600000, 0, &o);
			break;
		case SG_FLIGHT_WAITING: break; /* freed by race_done */
		case SG_FLIGHT_HIT:
			atomic_fetch_add(&replays, 1);
			free(w);
			break;
		default: free(w); break;
		}
		sg_arena_reset(&a);
	}
	sg_arena_fini(&a);
	return NULL;
}

static void
test_race(void)
{
	pthread_t th[NTHREADS];
	sg_flight_conf conf = {.max_entries = 10000, .evict = false};
	race_table = sg_flight_new(&conf);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, race_thread, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	/* exactly one owner per key; everyone else waited or replayed */
	CHECK_INT(atomic_load(&owners), ROUNDS);
	CHECK_INT(atomic_load(&owners) + atomic_load(&waiters_done) + atomic_load(&replays),
	          NTHREADS * ROUNDS);
	sg_flight_free(race_table);
}

/* Keys counted per tag: a tag at its most is refused new keys, and only new ones; releases and
 * expiry give room back; other tags and tag_max 0 are not held back. */
static void
test_tags(void)
{
	sg_flight_conf conf = {.max_entries = 100, .evict = false, .clock = fake_clock, .ntags = 3};
	sg_flight *t = sg_flight_new(&conf);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_flight_fp fp = sg_flight_fingerprint("m", PAYLOAD, sizeof(PAYLOAD));
	sg_flight_outcome out, o = outcome(PAYLOAD, sizeof(PAYLOAD));
	struct waiter w = {.w.done = waiter_done};
	int64_t age;
	bool refresh;
#define BEGIN_TAG(key, tag, max)                                                                   \
	sg_flight_begin_tag(t, key, fp, NULL, &a, &out, &age, &refresh, tag, max)

	/* tag 1 may hold 2: one stored, one running; the third is refused */
	CHECK_INT(BEGIN_TAG("a1", 1, 2), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "a1", true, 1000, 0, &o);
	CHECK_INT(BEGIN_TAG("a2", 1, 2), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_tag_count(t, 1), 2);
	CHECK_INT(BEGIN_TAG("a3", 1, 2), SG_FLIGHT_QUOTA);
	CHECK_INT(sg_flight_count(t), 2); /* a refusal holds nothing */
	/* its existing keys are found as ever, by anyone: a hit and a running key */
	CHECK_INT(BEGIN_TAG("a1", 1, 2), SG_FLIGHT_HIT);
	CHECK_INT(BEGIN_TAG("a1", 2, 2), SG_FLIGHT_HIT);
	CHECK_INT(sg_flight_begin_tag(t, "a2", fp, &w.w, &a, &out, &age, &refresh, 1, 2),
	          SG_FLIGHT_WAITING);
	/* other tags, and no cap */
	CHECK_INT(BEGIN_TAG("b1", 2, 2), SG_FLIGHT_OWNER);
	CHECK_INT(BEGIN_TAG("z1", 0, 0), SG_FLIGHT_OWNER);
	CHECK_INT(BEGIN_TAG("z2", 0, 0), SG_FLIGHT_OWNER);
	CHECK_INT(BEGIN_TAG("z3", 0, 0), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_tag_count(t, 0), 3);
	/* a released key gives its room back (the waiter gets the release) */
	sg_flight_finish(t, "a2", false, 0, 0, &o);
	CHECK_INT(w.calls, 1);
	CHECK_INT(sg_flight_tag_count(t, 1), 1);
	CHECK_INT(BEGIN_TAG("a3", 1, 2), SG_FLIGHT_OWNER);
	sg_flight_finish(t, "a3", true, 1000, 0, &o);
	CHECK_INT(BEGIN_TAG("a4", 1, 2), SG_FLIGHT_QUOTA);
	/* so does expiry: a1 and a3 are past their ttl */
	fake_now += 1000;
	CHECK_INT(BEGIN_TAG("a4", 1, 2), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_tag_count(t, 1), 1);
	/* a tag past the table's is counted as its last one */
	CHECK_INT(BEGIN_TAG("c1", 99, 2), SG_FLIGHT_OWNER);
	CHECK_INT(sg_flight_tag_count(t, 2), 2);
	CHECK_INT(sg_flight_tag_count(t, 99), 0);
#undef BEGIN_TAG
	sg_arena_fini(&a);
	sg_flight_free(t);
}

int
main(void)
{
	test_tags();
	test_idempotency();
	test_leave();
	test_leave_race();
	test_idempotency_full();
	test_cache_ttl_and_stale();
	test_cache_aged();
	test_cache_singleflight_and_bypass();
	test_cache_lru_budget();
	test_race();
	TEST_MAIN_END();
}
