/*
 * test_tokens.c - the token step (src/gateway/tokens.c) through the pipeline and the fakes of
 * gwfake.h: one fetch for the queue, the cached token, the 401 retry (once), a failed fetch,
 * a queued call's own deadline.
 */
#include <string.h>

#include "core/clock.h"
#include "gwfake.h"
#include "testutil.h"

/* Fuuffy fetches its bearer token: one fetch for the calls that need it, the token cached for
 * the next; a 401 drops it and retries the call once with a fresh one. */
static void
test_auth(void)
{
	int n0 = sent_count();
	track(0, FUUFFY, "SF7444700508450", false, 5000);
	track(1, FUUFFY, "SF7444700508451", false, 5000);
	CHECK_INT(sent_count(), n0 + 1); /* one token fetch; the second call waits for it */
	CHECK_STR(up.req[n0].method, "POST");
	CHECK(strstr(up.req[n0].url, "/auth/token") != NULL);
	complete(n0, SG_OK, 200, TOKEN_OK);
	CHECK_INT(sent_count(), n0 + 3); /* both calls went on, with the token */
	CHECK_STR(up.req[n0 + 1].auth, "Bearer tok-1");
	CHECK_STR(up.req[n0 + 2].auth, "Bearer tok-1");
	complete(n0 + 1, SG_OK, 200, doc_fuuffy);
	complete(n0 + 2, SG_OK, 200, doc_fuuffy);
	CHECK_INT(code(wait_reply(0)), 0);
	CHECK_INT(code(wait_reply(1)), 0);
	slot_end(0);
	slot_end(1);

	/* cached: straight to the call */
	track(2, FUUFFY, "SF7444700508452", false, 5000);
	CHECK_INT(sent_count(), n0 + 4);
	CHECK_STR(up.req[n0 + 3].auth, "Bearer tok-1");
	/* the provider revoked it: 401, the token is dropped, fetched again, the call retried */
	complete(n0 + 3, SG_OK, 401, "{\"message\":\"token expired\"}");
	CHECK_INT(sent_count(), n0 + 5);
	CHECK(strstr(up.req[n0 + 4].url, "/auth/token") != NULL);
	complete(n0 + 4, SG_OK, 200, TOKEN_OK2);
	CHECK_INT(sent_count(), n0 + 6);
	CHECK_STR(up.req[n0 + 5].auth, "Bearer tok-2");
	complete(n0 + 5, SG_OK, 200, doc_fuuffy);
	CHECK_INT(code(wait_reply(2)), 0);
	slot_end(2);

	/* a second 401 in a row is the answer: no loop */
	track(3, FUUFFY, "SF7444700508453", false, 5000);
	complete(n0 + 6, SG_OK, 401, "{\"message\":\"no\"}");
	complete(n0 + 7, SG_OK, 200, TOKEN_OK);
	complete(n0 + 8, SG_OK, 401, "{\"message\":\"still no\"}");
	Shipgate__V1__RpcReply *r = wait_reply(3);
	CHECK_INT(code(r), 16);
	slot_end(3);
	CHECK_INT(sent_count(), n0 + 9);

	/* the fetch itself fails: every queued call fails with its status, nothing cached */
	track(4, FUUFFY, "SF7444700508454", false, 5000);
	complete(n0 + 9, SG_OK, 401, "{\"message\":\"token expired\"}"); /* tok-1 dropped */
	CHECK(strstr(up.req[n0 + 10].url, "/auth/token") != NULL);
	track(5, FUUFFY, "SF7444700508455", false, 5000);
	CHECK_INT(sent_count(), n0 + 11);
	complete(n0 + 10, SG_EUP_CONNECT, 0, NULL);
	for (int i = 4; i <= 5; i++) {
		r = wait_reply(i);
		CHECK_STR(reason(r), "UPSTREAM_UNREACHABLE");
		CHECK(r && r->status && strstr(r->status->message, "token") != NULL);
		slot_end(i);
	}
	CHECK_INT(sent_count(), n0 + 11);

	/* a call queued behind a slow fetch gives up at its own deadline */
	track(6, FUUFFY, "SF7444700508456", false, 5000);
	track(7, FUUFFY, "SF7444700508457", false, 150);
	r = wait_reply(7);
	CHECK_INT(code(r), 4);
	CHECK(r && r->status && strstr(r->status->message, "token") != NULL);
	slot_end(7);
	complete(n0 + 11, SG_OK, 200, TOKEN_OK);
	complete(n0 + 12, SG_OK, 200, doc_fuuffy);
	CHECK_INT(code(wait_reply(6)), 0);
	slot_end(6);
	CHECK_INT(sent_count(), n0 + 13);
}

int
main(void)
{
	if (!gwfake_start())
		TEST_MAIN_END();
	test_auth();
	gwfake_stop();
	TEST_MAIN_END();
}
