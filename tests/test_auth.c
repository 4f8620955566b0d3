/*
 * test_auth.c - src/gateway/auth.c: the provider token cache and its queue, with a fake clock.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/auth.h"
#include "testutil.h"

static int64_t now_ms = 1000000;

static int64_t
fake_clock(void)
{
	return now_ms;
}

/* A queued call: what its done callback saw. */
struct waiter {
	sg_token_waiter w;
	int calls;
	sg_err err;
	char tok[64];
};

static void
waiter_done(sg_token_waiter *tw, sg_err err, const char *tok, const sg_status *st)
{
	struct waiter *w = (struct waiter *)(void *)tw;
	w->calls++;
	w->err = err;
	snprintf(w->tok, sizeof(w->tok), "%s",
	         err == SG_OK ? tok : (st && st->message ? st->message : ""));
}

static void
test_queue_and_cache(void)
{
	sg_auth *au = sg_auth_new(2, fake_clock);
	sg_arena a;
	const char *tok = NULL;
	struct waiter w[3];

	sg_arena_init(&a, 256, 1 << 16);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 3; i++)
		w[i].w.done = waiter_done;
	/* none yet: the first fetches, the others wait */
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[0].w), SG_TOKEN_FETCH);
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[1].w), SG_TOKEN_WAIT);
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[2].w), SG_TOKEN_WAIT);
	/* another provider is independent */
	struct waiter other = {.w.done = waiter_done};
	CHECK_INT(sg_auth_take(au, 1, &a, &tok, &other.w), SG_TOKEN_FETCH);
	/* one leaves before the fetch ends: its done never runs */
	CHECK(sg_auth_leave(au, 0, &w[2].w));
	CHECK(!sg_auth_leave(au, 0, &w[2].w));
	sg_auth_fetched(au, 0, &w[0].w, SG_OK, "tok-A", 3600, NULL);
	CHECK_INT(w[0].calls, 0); /* the fetcher goes on by itself */
	CHECK_INT(w[1].calls, 1);
	CHECK_STR(w[1].tok, "tok-A");
	CHECK_INT(w[2].calls, 0);
	CHECK(!sg_auth_leave(au, 0, &w[1].w)); /* taken */
	/* cached now, until a tenth of its life before it expires */
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[1].w), SG_TOKEN_HAVE);
	CHECK_STR(tok, "tok-A");
	CHECK(sg_auth_peek(au, 0, &a, &tok) && strcmp(tok, "tok-A") == 0);
	CHECK_INT(sg_auth_margin_ms(3600 * 1000), 60000);
	CHECK_INT(sg_auth_margin_ms(100 * 1000), 10000);
	now_ms += 3600 * 1000 - 60000 - 1;
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[1].w), SG_TOKEN_HAVE);
	now_ms += 1;
	CHECK(!sg_auth_peek(au, 0, &a, &tok));
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[1].w), SG_TOKEN_FETCH);
	/* a failed fetch: the waiters get its status, nothing is cached */
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[2].w), SG_TOKEN_WAIT);
	sg_status st;
	sg_status_clear(&st);
	sg_status_set(&st, &a, SG_EUP_CONNECT, "fuuffy token: unreachable");
	sg_auth_fetched(au, 0, &w[1].w, SG_EUP_CONNECT, NULL, 0, &st);
	CHECK_INT(w[2].calls, 1);
	CHECK_INT(w[2].err, SG_EUP_CONNECT);
	CHECK_STR(w[2].tok, "fuuffy token: unreachable");
	CHECK(!sg_auth_peek(au, 0, &a, &tok));
	/* a token without a lifetime serves the queued calls but is not kept */
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w[1].w), SG_TOKEN_FETCH);
	sg_auth_fetched(au, 0, &w[1].w, SG_OK, "tok-B", 0, NULL);
	CHECK(!sg_auth_peek(au, 0, &a, &tok));
	/* provider 1 still fetching: finish it */
	sg_auth_fetched(au, 1, &other.w, SG_OK, "tok-1", 60, NULL);
	CHECK(sg_auth_peek(au, 1, &a, &tok) && strcmp(tok, "tok-1") == 0);
	/* a full arena: HAVE with no copy */
	sg_arena small;
	sg_arena_init(&small, 16, 16);
	(void)sg_arena_alloc(&small, 16);
	CHECK_INT(sg_auth_take(au, 1, &small, &tok, &w[0].w), SG_TOKEN_HAVE);
	CHECK(tok == NULL);
	sg_arena_fini(&small);
	sg_arena_fini(&a);
	sg_auth_free(au);
}

/* After a 401, only the token that failed is dropped: a newer one stays. */
static void
test_invalidate(void)
{
	sg_auth *au = sg_auth_new(1, fake_clock);
	sg_arena a;
	const char *tok;
	struct waiter w = {.w.done = waiter_done};

	sg_arena_init(&a, 256, 1 << 16);
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w.w), SG_TOKEN_FETCH);
	sg_auth_fetched(au, 0, &w.w, SG_OK, "new", 600, NULL);
	sg_auth_invalidate(au, 0, "old"); /* a call made with an older token */
	CHECK(sg_auth_peek(au, 0, &a, &tok) && strcmp(tok, "new") == 0);
	sg_auth_invalidate(au, 0, NULL);
	CHECK(sg_auth_peek(au, 0, &a, &tok));
	sg_auth_invalidate(au, 0, "new");
	CHECK(!sg_auth_peek(au, 0, &a, &tok));
	CHECK_INT(sg_auth_take(au, 0, &a, &tok, &w.w), SG_TOKEN_FETCH);
	sg_auth_fetched(au, 0, &w.w, SG_OK, "newer", 600, NULL);
	sg_arena_fini(&a);
	sg_auth_free(au);
	sg_auth_free(NULL);
}

int
main(void)
{
	test_queue_and_cache();
	test_invalidate();
	TEST_MAIN_END();
}
