/*
 * test_park.c - parking (src/gateway/park.c) through the pipeline and the fakes of gwfake.h:
 * calls waiting behind the owner of their key whose own deadlines land around the owner's
 * finish. Whichever comes first, the owner's outcome or the deadline, each waiter is answered
 * exactly once (gwfake checks that no call is sent twice), with one or the other.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "gwfake.h"
#include "testutil.h"

#define WAITERS (NCALLS - 1)

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Round r: the owner (slot 0) holds key k at the provider; WAITERS calls with deadlines of
 * 20..(20 + 2 * WAITERS) ms queue behind it; the owner is answered after `after` ms. */
static void
round_trip(int r, long after, int *expired, int *replayed)
{
	char key[32];
	snprintf(key, sizeof(key), "park-%d", r);
	int n0 = sent_count();
	create(0, key, "00", 5000);
	CHECK_INT(sent_count(), n0 + 1);
	for (int i = 1; i <= WAITERS; i++)
		create(i, key, "00", 20 + 2 * i);
	CHECK_INT(sent_count(), n0 + 1); /* one POST, whatever happens next */
	sleep_ms(after);
	complete(n0, SG_OK, 200, doc_create);
	CHECK_INT(code(wait_reply(0)), 0);
	slot_end(0);
	for (int i = 1; i <= WAITERS; i++) {
		Shipgate__V1__RpcReply *r2 = wait_reply(i);
		int c = code(r2);
		CHECK(c == 0 || c == 4);
		if (c == 4) {
			(*expired)++;
			CHECK_STR(reason(r2), "DEADLINE_EXPIRED");
		} else if (c == 0) {
			Shipgate__V1__CreateOrderResponse *co = (void *)payload(
			        r2, &shipgate__v1__create_order_response__descriptor);
			CHECK(co != NULL && co->replayed);
			if (co)
				protobuf_c_message_free_unpacked(&co->base, NULL);
			(*replayed)++;
		}
		slot_end(i);
	}
	CHECK_INT(sent_count(), n0 + 1);
}

int
main(void)
{
	if (!gwfake_start())
		TEST_MAIN_END();
	int expired = 0, replayed = 0;
	/* the owner's answer before every deadline, after every one, and in the middle of them */
	static const long after[] = {0, 80, 35, 40, 45, 50, 30, 25};
	for (int r = 0; r < (int)(sizeof(after) / sizeof(after[0])); r++)
		round_trip(r, after[r], &expired, &replayed);
	fprintf(stderr, "  %d waiters: %d expired, %d got the owner's answer\n",
	        (int)(sizeof(after) / sizeof(after[0])) * WAITERS, expired, replayed);
	CHECK_INT(expired + replayed, (int)(sizeof(after) / sizeof(after[0])) * WAITERS);
	CHECK(sg_gateway_wait_idle(gw, sg_now_ms() + 1000));
	gwfake_stop();
	TEST_MAIN_END();
}
