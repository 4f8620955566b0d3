/*
 * test_cache.c - the lookup cache step (src/gateway/cache.c) through the pipeline and the
 * fakes of gwfake.h: singleflight, hits, bypass, failed misses.
 */
#include <string.h>

#include "core/clock.h"
#include "gwfake.h"
#include "testutil.h"

/* A miss goes upstream once; identical calls meanwhile wait for it (singleflight); later
 * ones are hits; bypass_cache goes upstream again and refreshes the stored answer. */
static void
test_cache(void)
{
	int n0 = sent_count();
	track(0, BOSCOD, "BOS123", false, 5000);
	track(1, BOSCOD, "BOS123", false, 5000);
	CHECK_INT(sent_count(), n0 + 1);
	CHECK(strstr(up.req[n0].url, "BOS123") != NULL);
	CHECK(!is_sent(0) && !is_sent(1));
	complete(n0, SG_OK, 200, doc_boscod);
	for (int i = 0; i < 2; i++) {
		Shipgate__V1__RpcReply *r = wait_reply(i);
		CHECK_INT(code(r), 0);
		Shipgate__V1__TrackResponse *t =
		        (void *)payload(r, &shipgate__v1__track_response__descriptor);
		CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
		/* the owner's answer is its own; the waiter got the same bytes */
		CHECK(t != NULL && (t->cache == NULL || !t->cache->hit));
		if (t)
			protobuf_c_message_free_unpacked(&t->base, NULL);
		slot_end(i);
	}
	/* a hit: answered at once, nothing sent, cache.hit set */
	track(2, BOSCOD, "BOS123", false, 5000);
	Shipgate__V1__RpcReply *r = wait_reply(2);
	CHECK_INT(code(r), 0);
	Shipgate__V1__TrackResponse *t =
	        (void *)payload(r, &shipgate__v1__track_response__descriptor);
	CHECK(t != NULL && t->cache != NULL && t->cache->hit && !t->cache->stale);
	CHECK(t != NULL && t->tracking != NULL && t->tracking->n_events == 11);
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	CHECK_INT(sent_count(), n0 + 1);
	slot_end(2);
	/* bypass: upstream again */
	track(3, BOSCOD, "BOS123", true, 5000);
	CHECK_INT(sent_count(), n0 + 2);
	complete(n0 + 1, SG_OK, 200, doc_boscod);
	CHECK_INT(code(wait_reply(3)), 0);
	slot_end(3);
	/* a failed miss is not stored: the next call goes upstream */
	track(4, BOSCOD, "BOS-FAIL", false, 5000);
	complete(n0 + 2, SG_OK, 503, "{\"message\":\"down\"}");
	r = wait_reply(4);
	CHECK_INT(code(r), 14);
	CHECK(r && r->status && r->status->detail &&
	      r->status->detail->upstream_http_status == 503);
	slot_end(4);
	track(4, BOSCOD, "BOS-FAIL", false, 5000);
	CHECK_INT(sent_count(), n0 + 4);
	complete(n0 + 3, SG_EUP_CONNECT, 0, NULL);
	r = wait_reply(4);
	CHECK_INT(code(r), 14);
	CHECK_STR(reason(r), "UPSTREAM_UNREACHABLE");
	slot_end(4);
}

int
main(void)
{
	if (!gwfake_start())
		TEST_MAIN_END();
	test_cache();
	gwfake_stop();
	TEST_MAIN_END();
}
