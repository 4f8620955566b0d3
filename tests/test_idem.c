/*
 * test_idem.c - the idempotency step (src/gateway/idem.c) through the pipeline and the fakes
 * of gwfake.h: one key one POST, replays, conflicts, unknown outcomes, released keys, a
 * waiter's own deadline.
 */
#include <string.h>

#include "core/clock.h"
#include "gwfake.h"
#include "testutil.h"

/* One key, one POST: a second call with the key waits for the owner and gets its answer
 * (replayed); later calls get the stored answer; another request under the key is refused. */
static void
test_idempotency(void)
{
	int n0 = sent_count();
	create(0, "key-1", "00", 5000);
	create(1, "key-1", "00", 5000);
	CHECK_INT(sent_count(), n0 + 1);
	CHECK_STR(up.req[n0].method, "POST");
	complete(n0, SG_OK, 200, doc_create);
	for (int i = 0; i < 2; i++) {
		Shipgate__V1__RpcReply *r = wait_reply(i);
		CHECK_INT(code(r), 0);
		Shipgate__V1__CreateOrderResponse *co =
		        (void *)payload(r, &shipgate__v1__create_order_response__descriptor);
		CHECK(co != NULL && co->replayed == (i == 1));
		if (co)
			protobuf_c_message_free_unpacked(&co->base, NULL);
		slot_end(i);
	}
	create(2, "key-1", "00", 5000);
	Shipgate__V1__RpcReply *r = wait_reply(2);
	CHECK_INT(code(r), 0);
	Shipgate__V1__CreateOrderResponse *co =
	        (void *)payload(r, &shipgate__v1__create_order_response__descriptor);
	CHECK(co != NULL && co->replayed);
	if (co)
		protobuf_c_message_free_unpacked(&co->base, NULL);
	slot_end(2);
	create(3, "key-1", "01", 5000);
	r = wait_reply(3);
	CHECK_INT(code(r), 9);
	CHECK_STR(reason(r), "IDEMPOTENCY_KEY_REUSED");
	slot_end(3);
	CHECK_INT(sent_count(), n0 + 1);

	/* no key, a bad key: refused before anything is sent */
	create(4, NULL, "00", 5000);
	CHECK_INT(code(wait_reply(4)), 3);
	slot_end(4);
	create(4, "bad key", "00", 5000);
	CHECK_INT(code(wait_reply(4)), 3);
	slot_end(4);
	CHECK_INT(sent_count(), n0 + 1);

	/* sent, no answer: the outcome is unknown, and stays so under the key */
	create(5, "key-2", "00", 5000);
	complete(n0 + 1, SG_EUP_BROKEN, 0, NULL);
	r = wait_reply(5);
	CHECK_INT(code(r), 2);
	CHECK_STR(reason(r), "OUTCOME_UNKNOWN");
	CHECK(r && r->status && r->status->detail && !r->status->detail->retryable);
	slot_end(5);
	create(5, "key-2", "00", 5000);
	r = wait_reply(5);
	CHECK_STR(reason(r), "OUTCOME_UNKNOWN");
	slot_end(5);
	CHECK_INT(sent_count(), n0 + 2);

	/* nothing sent (connect refused), or refused by the provider (4xx): the key is released
	 * and a retry goes upstream again */
	create(6, "key-3", "00", 5000);
	complete(n0 + 2, SG_EUP_CONNECT, 0, NULL);
	CHECK_STR(reason(wait_reply(6)), "UPSTREAM_UNREACHABLE");
	slot_end(6);
	create(6, "key-3", "00", 5000);
	CHECK_INT(sent_count(), n0 + 4);
	complete(n0 + 3, SG_OK, 400, "{\"message\":\"bad form\"}");
	CHECK_INT(code(wait_reply(6)), 3);
	slot_end(6);
	create(6, "key-3", "00", 5000);
	CHECK_INT(sent_count(), n0 + 5);
	complete(n0 + 4, SG_OK, 200, doc_create);
	CHECK_INT(code(wait_reply(6)), 0);
	slot_end(6);

	/* a caller behind the owner gives up at its own deadline; the owner carries on */
	create(7, "key-4", "00", 5000);
	create(8, "key-4", "00", 150);
	r = wait_reply(8);
	CHECK_INT(code(r), 4);
	CHECK(r && r->status && strstr(r->status->message, "same call") != NULL);
	slot_end(8);
	CHECK(!is_sent(7));
	complete(n0 + 5, SG_OK, 200, doc_create);
	CHECK_INT(code(wait_reply(7)), 0);
	slot_end(7);
	create(8, "key-4", "00", 5000);
	r = wait_reply(8);
	co = (void *)payload(r, &shipgate__v1__create_order_response__descriptor);
	CHECK(co != NULL && co->replayed);
	if (co)
		protobuf_c_message_free_unpacked(&co->base, NULL);
	slot_end(8);
	CHECK_INT(sent_count(), n0 + 6);
}

int
main(void)
{
	if (!gwfake_start())
		TEST_MAIN_END();
	test_idempotency();
	gwfake_stop();
	TEST_MAIN_END();
}
