/*
 * test_idem.c - the idempotency table on its own: owner, waiters, replay, conflict, release,
 * expiry, the size cap, and many threads racing for one key.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/idem.h"
#include "testutil.h"

static const uint8_t PAYLOAD[] = {0x0a, 0x03, 'a', 'w', 'b'};
static const uint8_t STATUS_OK[] = {0};

struct waiter {
	sg_idem_waiter w;    /* must be first */
	int calls;           /* done callbacks seen */
	size_t payload_len;  /* what it was given */
	uint8_t payload[16]; /* copy of the payload it was given */
};

static void
waiter_done(sg_idem_waiter *w, const sg_idem_outcome *o)
{
	struct waiter *x = (struct waiter *)w;
	x->calls++;
	x->payload_len = o->payload_len;
	if (o->payload_len <= sizeof(x->payload))
		memcpy(x->payload, o->payload, o->payload_len);
}

static sg_idem_outcome
outcome(void)
{
	sg_idem_outcome o = {STATUS_OK, 0, PAYLOAD, sizeof(PAYLOAD)};
	return o;
}

static void
test_basic(void)
{
	sg_idem *t = sg_idem_new(10, 60000);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_idem_fp fp = sg_idem_fingerprint("/x/CreateOrder", PAYLOAD, sizeof(PAYLOAD));
	sg_idem_fp other = sg_idem_fingerprint("/x/CreateOrder", PAYLOAD, 3);
	struct waiter w1 = {.w.done = waiter_done}, w2 = {.w.done = waiter_done};
	sg_idem_outcome out;

	CHECK(fp.a != other.a || fp.b != other.b);
	CHECK_INT(sg_idem_begin(t, "k1", fp, &w1.w, &a, &out), SG_IDEM_OWNER);
	CHECK_INT(sg_idem_begin(t, "k1", fp, &w1.w, &a, &out), SG_IDEM_WAITING);
	CHECK_INT(sg_idem_begin(t, "k1", fp, &w2.w, &a, &out), SG_IDEM_WAITING);
	CHECK_INT(sg_idem_begin(t, "k1", other, &w2.w, &a, &out), SG_IDEM_CONFLICT);
	CHECK_INT(w1.calls, 0);
	sg_idem_outcome o = outcome();
	sg_idem_finish(t, "k1", true, &o);
	CHECK_INT(w1.calls, 1);
	CHECK_INT(w2.calls, 1);
	CHECK_INT(w2.payload_len, sizeof(PAYLOAD));
	CHECK(memcmp(w2.payload, PAYLOAD, sizeof(PAYLOAD)) == 0);
	/* later: replayed from the store, into the arena */
	memset(&out, 0, sizeof(out));
	CHECK_INT(sg_idem_begin(t, "k1", fp, &w1.w, &a, &out), SG_IDEM_REPLAY);
	CHECK_INT(out.payload_len, sizeof(PAYLOAD));
	CHECK(out.payload != NULL && memcmp(out.payload, PAYLOAD, sizeof(PAYLOAD)) == 0);
	CHECK_INT(out.status_len, 0);
	CHECK_INT(sg_idem_begin(t, "k1", other, &w1.w, &a, &out), SG_IDEM_CONFLICT);
	CHECK_INT(w1.calls, 1); /* replay does not call back */

	/* released: the next call with the key owns it again */
	CHECK_INT(sg_idem_begin(t, "k2", fp, &w1.w, &a, &out), SG_IDEM_OWNER);
	CHECK_INT(sg_idem_begin(t, "k2", fp, &w2.w, &a, &out), SG_IDEM_WAITING);
	sg_idem_finish(t, "k2", false, &o);
	CHECK_INT(w2.calls, 2); /* the waiter still gets the answer */
	CHECK_INT(sg_idem_begin(t, "k2", fp, &w1.w, &a, &out), SG_IDEM_OWNER);
	sg_idem_finish(t, "k2", false, &o);
	CHECK_INT(sg_idem_count(t), 1);

	/* an outcome with no payload (a failure) replays with none */
	sg_idem_outcome fail = {(const uint8_t *)"\x08\x02", 2, NULL, 0};
	CHECK_INT(sg_idem_begin(t, "k3", fp, &w1.w, &a, &out), SG_IDEM_OWNER);
	sg_idem_finish(t, "k3", true, &fail);
	CHECK_INT(sg_idem_begin(t, "k3", fp, &w1.w, &a, &out), SG_IDEM_REPLAY);
	CHECK(out.payload == NULL);
	CHECK_INT(out.status_len, 2);
	CHECK(memcmp(out.status, "\x08\x02", 2) == 0);

	sg_arena_fini(&a);
	sg_idem_free(t);
}

static void
test_keys_and_cap(void)
{
	CHECK(sg_idem_key_ok("order-2024-0001"));
	CHECK(!sg_idem_key_ok(""));
	CHECK(!sg_idem_key_ok("has space"));
	CHECK(!sg_idem_key_ok("tab\tkey"));
	CHECK(!sg_idem_key_ok("caf\xc3\xa9"));
	char long_key[300];
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	CHECK(!sg_idem_key_ok(long_key));
	long_key[255] = '\0';
	CHECK(sg_idem_key_ok(long_key));

	/* full of unexpired outcomes: new keys are refused, stored ones still replay */
	sg_idem *t = sg_idem_new(3, 60000);
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	sg_idem_fp fp = sg_idem_fingerprint("m", PAYLOAD, sizeof(PAYLOAD));
	sg_idem_outcome out, o = outcome();
	struct waiter w = {.w.done = waiter_done};
	const char *keys[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		CHECK_INT(sg_idem_begin(t, keys[i], fp, &w.w, &a, &out), SG_IDEM_OWNER);
		sg_idem_finish(t, keys[i], true, &o);
	}
	CHECK_INT(sg_idem_begin(t, "d", fp, &w.w, &a, &out), SG_IDEM_FULL);
	CHECK_INT(sg_idem_begin(t, "a", fp, &w.w, &a, &out), SG_IDEM_REPLAY);
	sg_arena_fini(&a);
	sg_idem_free(t);

	/* expiry frees the room */
	t = sg_idem_new(1, 1000);
	sg_arena_init(&a, 0, 0);
	CHECK_INT(sg_idem_begin(t, "a", fp, &w.w, &a, &out), SG_IDEM_OWNER);
	sg_idem_finish(t, "a", true, &o);
	CHECK_INT(sg_idem_begin(t, "b", fp, &w.w, &a, &out), SG_IDEM_FULL);
	struct timespec ts = {1, 100000000L};
	nanosleep(&ts, NULL);
	CHECK_INT(sg_idem_begin(t, "b", fp, &w.w, &a, &out), SG_IDEM_OWNER);
	sg_idem_finish(t, "b", true, &o);
	CHECK_INT(sg_idem_count(t), 1);
	sg_arena_fini(&a);
	sg_idem_free(t);
}

/* ------------------------------------------------------------------ race */

#define NTHREADS 8
#define ROUNDS   200

static sg_idem *race_table;
static atomic_int owners, waiters_done, replays;

static void
race_done(sg_idem_waiter *w, const sg_idem_outcome *o)
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
	sg_idem_fp fp = sg_idem_fingerprint("m", PAYLOAD, sizeof(PAYLOAD));
	for (int r = 0; r < ROUNDS; r++) {
		char key[32];
		snprintf(key, sizeof(key), "race-%d", r);
		sg_idem_waiter *w = calloc(1, sizeof(*w));
		w->done = race_done;
		sg_idem_outcome out, o = outcome();
		switch (sg_idem_begin(race_table, key, fp, w, &a, &out)) {
		case SG_IDEM_OWNER:
			atomic_fetch_add(&owners, 1);
			free(w);
			sg_idem_finish(race_table, key, true, &o);
			break;
		case SG_IDEM_WAITING: break; /* freed by race_done */
		case SG_IDEM_REPLAY:
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
	race_table = sg_idem_new(10000, 60000);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, race_thread, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	/* exactly one owner per key; everyone else waited or replayed */
	CHECK_INT(atomic_load(&owners), ROUNDS);
	CHECK_INT(atomic_load(&owners) + atomic_load(&waiters_done) + atomic_load(&replays),
	          NTHREADS * ROUNDS);
	sg_idem_free(race_table);
}

int
main(void)
{
	test_basic();
	test_keys_and_cap();
	test_race();
	TEST_MAIN_END();
}
