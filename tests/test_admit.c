/*
 * test_admit.c - the connection admission table (server/admit.c): the cap in all, the cap per
 * peer, removals (of admitted and of refused pipes), peer keys too long to keep whole, and
 * many pipes coming and going from several threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "server/admit.h"
#include "testutil.h"

static void
test_caps(void)
{
	sg_admit *a = sg_admit_new(5, 2);
	CHECK(a != NULL);
	CHECK_INT(sg_admit_add(a, 1, "10.0.0.1"), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 2, "10.0.0.1"), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 3, "10.0.0.1"), SG_ADMIT_PEER); /* its third */
	CHECK_INT(sg_admit_add(a, 4, "10.0.0.2"), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 5, "uid:1000"), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 6, "::1"), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 7, "::2"), SG_ADMIT_FULL); /* 5 held */
	CHECK_INT(sg_admit_count(a), 5);
	CHECK_INT(sg_admit_peer_count(a, "10.0.0.1"), 2);
	CHECK_INT(sg_admit_peer_count(a, "::2"), 0);
	CHECK_INT(sg_admit_refused(a), 2);
	/* a refused pipe's removal changes nothing; an admitted one's frees its place */
	sg_admit_remove(a, 3);
	sg_admit_remove(a, 7);
	sg_admit_remove(a, 999);
	CHECK_INT(sg_admit_count(a), 5);
	sg_admit_remove(a, 1);
	CHECK_INT(sg_admit_count(a), 4);
	CHECK_INT(sg_admit_peer_count(a, "10.0.0.1"), 1);
	CHECK_INT(sg_admit_add(a, 8, "10.0.0.1"), SG_ADMIT_OK);
	sg_admit_remove(a, 8);
	sg_admit_remove(a, 8); /* twice: the second is ignored */
	sg_admit_remove(a, 2);
	CHECK_INT(sg_admit_peer_count(a, "10.0.0.1"), 0);
	CHECK_INT(sg_admit_count(a), 3);
	sg_admit_free(a);

	/* no per-peer cap */
	a = sg_admit_new(3, 0);
	for (uint32_t i = 0; i < 3; i++)
		CHECK_INT(sg_admit_add(a, i, "127.0.0.1"), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 3, "127.0.0.1"), SG_ADMIT_FULL);
	sg_admit_free(a);
	sg_admit_free(NULL);
}

/* A peer key longer than what is kept: cut the same way each time, so it counts as one. */
static void
test_long_keys(void)
{
	char longkey[300];
	memset(longkey, 'a', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	sg_admit *a = sg_admit_new(10, 2);
	CHECK_INT(sg_admit_add(a, 1, longkey), SG_ADMIT_OK);
	longkey[200] = 'b'; /* past the kept part: the same peer */
	CHECK_INT(sg_admit_add(a, 2, longkey), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 3, longkey), SG_ADMIT_PEER);
	sg_admit_remove(a, 1);
	sg_admit_remove(a, 2);
	CHECK_INT(sg_admit_count(a), 0);
	CHECK_INT(sg_admit_peer_count(a, longkey), 0);
	CHECK_INT(sg_admit_add(a, 4, NULL), SG_ADMIT_OK); /* no key: one peer "" */
	CHECK_INT(sg_admit_add(a, 5, ""), SG_ADMIT_OK);
	CHECK_INT(sg_admit_add(a, 6, NULL), SG_ADMIT_PEER);
	sg_admit_free(a); /* with pipes still held: freed too */
}

/* Threads adding and removing their own pipes: every count returns to zero. */
struct churn {
	sg_admit *a;
	uint32_t base;
	int admitted;
};

static void *
churn_main(void *arg)
{
	struct churn *c = arg;
	char peer[32];
	for (uint32_t round = 0; round < 200; round++) {
		for (uint32_t i = 0; i < 50; i++) {
			snprintf(peer, sizeof(peer), "10.0.%u.%u", c->base / 1000, i % 7);
			if (sg_admit_add(c->a, c->base + round * 50 + i, peer) == SG_ADMIT_OK)
				c->admitted++;
		}
		for (uint32_t i = 0; i < 50; i++)
			sg_admit_remove(c->a, c->base + round * 50 + i);
	}
	return NULL;
}

static void
test_threads(void)
{
	sg_admit *a = sg_admit_new(120, 40);
	struct churn cs[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		cs[i] = (struct churn){a, (uint32_t)(i + 1) * 1000000, 0};
		CHECK_INT(pthread_create(&t[i], NULL, churn_main, &cs[i]), 0);
	}
	int admitted = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		admitted += cs[i].admitted;
	}
	CHECK(admitted > 0);
	CHECK_INT(sg_admit_count(a), 0);
	CHECK_INT(sg_admit_refused(a) + (uint64_t)admitted, 4 * 200 * 50);
	sg_admit_free(a);
}

int
main(void)
{
	test_caps();
	test_long_keys();
	test_threads();
	TEST_MAIN_END();
}
