/*
 * test_store.c - src/gateway/store.c: the idempotency store interface over its memory
 * backend, with a fake clock: claim before call, complete, release, conflicts, a full table
 * and expiry.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/store.h"
#include "testutil.h"

static int64_t now_ms = 5000000;

static int64_t
fake_clock(void)
{
	return now_ms;
}

/* What a callback saw. */
struct seen {
	int calls;
	sg_claim res;
	sg_err err;
	char payload[64];
};

static void
on_claim(void *arg, sg_claim res, const sg_flight_outcome *o)
{
	struct seen *s = arg;
	s->calls++;
	s->res = res;
	s->payload[0] = '\0';
	if (res == SG_CLAIM_DONE && o != NULL && o->payload != NULL)
		snprintf(s->payload, sizeof(s->payload), "%.*s", (int)o->payload_len,
		         (const char *)o->payload);
}

static void
on_done(void *arg, sg_err err)
{
	struct seen *s = arg;
	s->calls++;
	s->err = err;
}

static sg_claim
claim(sg_store *st, const char *key, uint64_t fp)
{
	struct seen s = {0};
	sg_flight_fp f = {fp, fp};
	sg_store_claim(st, key, f, 1000, on_claim, &s);
	CHECK_INT(s.calls, 1); /* the memory store answers inline */
	return s.res;
}

int
main(void)
{
	sg_store *st = sg_store_memory_new(3, fake_clock);
	struct seen s = {0};
	static const uint8_t status[] = {0};
	const sg_flight_outcome done = {status, 0, (const uint8_t *)"order-42", 8};

	CHECK(st != NULL);
	if (st == NULL)
		TEST_MAIN_END();
	CHECK_STR(st->ops->name, "memory");
	CHECK_STR(st->ops->scope, "node");

	/* the first claim owns the key; while it runs, the key is busy */
	CHECK_INT(claim(st, "k1", 1), SG_CLAIM_OWNER);
	CHECK_INT(claim(st, "k1", 1), SG_CLAIM_BUSY);
	CHECK_INT(claim(st, "k1", 2), SG_CLAIM_CONFLICT); /* another request under the key */
	/* completed: every later claim gets the outcome */
	sg_store_complete(st, "k1", &done, 60000, on_done, &s);
	CHECK_INT(s.calls, 1);
	CHECK_INT(s.err, SG_OK);
	struct seen c = {0};
	sg_flight_fp f1 = {1, 1};
	sg_store_claim(st, "k1", f1, 1000, on_claim, &c);
	CHECK_INT(c.res, SG_CLAIM_DONE);
	CHECK_STR(c.payload, "order-42");
	CHECK_INT(claim(st, "k1", 2), SG_CLAIM_CONFLICT);

	/* released: nothing was sent, so a retry owns the key again */
	CHECK_INT(claim(st, "k2", 7), SG_CLAIM_OWNER);
	memset(&s, 0, sizeof(s));
	sg_store_release(st, "k2", on_done, &s);
	CHECK_INT(s.calls, 1);
	CHECK_INT(claim(st, "k2", 8), SG_CLAIM_OWNER); /* even with another request */

	/* full: three keys held (k1 stored, k2 and k3 running), a fourth is refused; an
	 * outcome is never evicted early */
	CHECK_INT(claim(st, "k3", 9), SG_CLAIM_OWNER);
	CHECK_INT(claim(st, "k4", 9), SG_CLAIM_FULL);
	sg_store_release(st, "k3", NULL, NULL); /* a NULL callback is allowed */
	CHECK_INT(claim(st, "k4", 9), SG_CLAIM_OWNER);

	/* past its ttl the outcome is gone and the key can be claimed anew */
	now_ms += 60001;
	CHECK_INT(claim(st, "k1", 2), SG_CLAIM_OWNER);
	sg_store_release(st, "k1", NULL, NULL);
	sg_store_release(st, "k2", NULL, NULL);
	sg_store_release(st, "k4", NULL, NULL);
	sg_store_free(st);
	sg_store_free(NULL);
	TEST_MAIN_END();
}
