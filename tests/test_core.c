/*
 * test_core.c - src/core: the arena, the error table, sg_status, the deadline heap and UTF-8.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/bounded.h"
#include "core/redact.h"
#include "core/dheap.h"
#include "core/dynbuf.h"
#include "core/list.h"
#include "core/err.h"
#include "core/status.h"
#include "core/utf8.h"
#include "shipgate/v1/shipgate.pb-c.h"
#include "testutil.h"

/* ================================================================== arena */

static void
test_arena_basics(void)
{
	sg_arena a;

	sg_arena_init(&a, 64, 1024);
	CHECK(a.head == NULL && a.used == 0); /* nothing allocated up front */
	char *p = sg_arena_alloc(&a, 1);
	char *q = sg_arena_alloc(&a, 17);
	CHECK(p != NULL && q != NULL && p != q);
	CHECK(((uintptr_t)p % 16) == 0 && ((uintptr_t)q % 16) == 0);
	CHECK_INT(a.used, 16 + 32);
	/* zero-size allocations are distinct and non-NULL */
	void *z1 = sg_arena_alloc(&a, 0), *z2 = sg_arena_alloc(&a, 0);
	CHECK(z1 != NULL && z2 != NULL && z1 != z2);
	/* larger than a block: a block of its own */
	char *big = sg_arena_alloc(&a, 200);
	CHECK(big != NULL);
	memset(big, 0xAB, 200);
	CHECK_INT(a.used, 48 + 32 + 208);
	sg_arena_fini(&a);
	CHECK(a.head == NULL && a.spare == NULL && a.used == 0);
	sg_arena_fini(&a); /* twice is harmless */
}

static void
test_arena_cap(void)
{
	sg_arena a;

	sg_arena_init(&a, 0, 100);
	CHECK_INT(a.cap, 100);
	CHECK(sg_arena_alloc(&a, 96) != NULL);
	CHECK(sg_arena_alloc(&a, 1) == NULL); /* 96 + 16 > 100 */
	CHECK(sg_arena_alloc(&a, SIZE_MAX) == NULL);
	CHECK(sg_arena_alloc(&a, SIZE_MAX - 8) == NULL); /* rounding would overflow */
	CHECK(sg_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL);
	CHECK(sg_arena_strdup(&a, "x") == NULL);
	CHECK(sg_arena_printf(&a, "%d", 1) == NULL);
	sg_arena_reset(&a);
	CHECK_INT(a.used, 0);
	CHECK(sg_arena_alloc(&a, 96) != NULL); /* the cap counts since the reset */
	sg_arena_fini(&a);

	sg_arena_init(&a, 0, 0);
	CHECK_INT(a.cap, (size_t)64 << 20); /* 0 means the default */
	CHECK(sg_arena_alloc(&a, ((size_t)64 << 20) + 1) == NULL);
	sg_arena_fini(&a);
}

static void
test_arena_strings(void)
{
	sg_arena a;

	sg_arena_init(&a, 32, 0);
	CHECK_STR(sg_arena_strdup(&a, "hello"), "hello");
	CHECK(sg_arena_strdup(&a, NULL) == NULL);
	CHECK_STR(sg_arena_strndup(&a, "hello", 3), "hel");
	char *e = sg_arena_strndup(&a, "abc", 0);
	CHECK(e != NULL && e[0] == '\0');
	CHECK(sg_arena_strndup(&a, "abc", SIZE_MAX) == NULL);
	CHECK_STR(sg_arena_printf(&a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");
	/* longer than a block */
	char *long_s = sg_arena_printf(&a, "%0200d", 7);
	CHECK(long_s != NULL && strlen(long_s) == 200 && long_s[199] == '7');
	unsigned char *z = sg_arena_calloc(&a, 10, 10);
	int allzero = 1;
	for (int i = 0; z != NULL && i < 100; i++)
		allzero &= z[i] == 0;
	CHECK(z != NULL && allzero);
	sg_arena_fini(&a);
}

static void
test_arena_reset(void)
{
	sg_arena a;

	sg_arena_init(&a, 64, 0);
	char *first = sg_arena_alloc(&a, 16);
	for (int i = 0; i < 100; i++)
		CHECK(sg_arena_alloc(&a, 48) != NULL); /* many blocks */
	struct sg_arena_block *spare = a.spare;
	sg_arena_reset(&a);
	CHECK(a.head == spare && a.spare == spare && a.used == 0);
	/* the first block is reused: the first allocation lands where it did before */
	CHECK(sg_arena_alloc(&a, 16) == first);
	sg_arena_reset(&a);
	sg_arena_reset(&a);
	sg_arena_fini(&a);

	/* reset of a fresh arena */
	sg_arena_init(&a, 0, 0);
	sg_arena_reset(&a);
	CHECK(a.head == NULL);
	sg_arena_fini(&a);
}

static void
test_arena_protobuf(void)
{
	sg_arena a;

	sg_arena_init(&a, 0, 64);
	ProtobufCAllocator *pb = sg_arena_pb(&a);
	void *p = pb->alloc(pb->allocator_data, 10);
	CHECK(p != NULL);
	pb->free(pb->allocator_data, p); /* a no-op */
	CHECK_INT(a.used, 16);
	CHECK(pb->alloc(pb->allocator_data, 100) == NULL); /* the cap applies */
	sg_arena_fini(&a);
}

/* ================================================================== errors */

static void
test_err_table(void)
{
	for (int e = 0; e < SG_ERR_COUNT; e++) {
		const char *r = sg_err_reason((sg_err)e);
		CHECK(r != NULL && r[0] != '\0');
		CHECK(sg_strerror((sg_err)e) != NULL && sg_strerror((sg_err)e)[0] != '\0');
		CHECK(sg_err_code((sg_err)e) >= 0 && sg_err_code((sg_err)e) <= 16);
		/* reasons are stable upper-case identifiers, one per error */
		for (const char *p = r; *p != '\0'; p++)
			CHECK((*p >= 'A' && *p <= 'Z') || *p == '_');
		for (int f = 0; f < e; f++)
			CHECK(strcmp(r, sg_err_reason((sg_err)f)) != 0);
		/* only SG_OK maps to OK */
		CHECK((sg_err_code((sg_err)e) == 0) == (e == SG_OK));
	}
	/* out of range: reported as internal, never a crash */
	CHECK_STR(sg_err_reason(SG_ERR_COUNT), "INTERNAL");
	CHECK_STR(sg_err_reason((sg_err)-1), "INTERNAL");
	CHECK_INT(sg_err_code((sg_err)1000), 13);
	CHECK(!sg_err_retryable((sg_err)1000));

	/* the codes the contract promises */
	CHECK_INT(sg_err_code(SG_EINVAL), 3);
	CHECK_INT(sg_err_code(SG_ENOCRED), 9);
	CHECK_INT(sg_err_code(SG_EDEADLINE), 4);
	CHECK_INT(sg_err_code(SG_EUP_NOTFOUND), 5);
	CHECK_INT(sg_err_code(SG_EUP_UNAUTH), 16);
	CHECK_INT(sg_err_code(SG_EUP_FORBIDDEN), 7);
	CHECK_INT(sg_err_code(SG_EUP_RATELIMIT), 8);
	CHECK_INT(sg_err_code(SG_EUP_UNAVAIL), 14);
	CHECK_INT(sg_err_code(SG_EUP_MALFORMED), 13);
	CHECK_INT(sg_err_code(SG_ENOMETHOD), 12);
	CHECK_STR(sg_err_reason(SG_EUP_NOTFOUND), "UPSTREAM_NOT_FOUND");
	CHECK_STR(sg_err_reason(SG_ENOCRED), "MISSING_CREDENTIAL");
	CHECK(sg_err_retryable(SG_EUP_RATELIMIT) && sg_err_retryable(SG_EUP_UNAVAIL) &&
	      sg_err_retryable(SG_EUP_TIMEOUT) && sg_err_retryable(SG_EDEADLINE));
	CHECK(!sg_err_retryable(SG_EINVAL) && !sg_err_retryable(SG_EUP_NOTFOUND) &&
	      !sg_err_retryable(SG_EUP_MALFORMED) && !sg_err_retryable(SG_OK));
}

static void
test_err_from_http(void)
{
	static const struct {
		int http;
		sg_err want;
	} m[] = {
	        {200, SG_OK},
	        {204, SG_OK},
	        {301, SG_OK},
	        {400, SG_EUP_BADREQ},
	        {422, SG_EUP_BADREQ},
	        {401, SG_EUP_UNAUTH},
	        {403, SG_EUP_FORBIDDEN},
	        {404, SG_EUP_NOTFOUND},
	        {408, SG_EUP_TIMEOUT},
	        {409, SG_EUP_CONFLICT},
	        {429, SG_EUP_RATELIMIT},
	        {500, SG_EUP_UNAVAIL},
	        {502, SG_EUP_UNAVAIL},
	        {503, SG_EUP_UNAVAIL},
	        {599, SG_EUP_UNAVAIL},
	        {418, SG_EUP_HTTP},
	        {600, SG_EUP_HTTP},
	        {100, SG_EUP_HTTP},
	        {0, SG_EUP_HTTP},
	        {-1, SG_EUP_HTTP},
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (sg_err_from_http(m[i].http) != m[i].want)
			fprintf(stderr, "http %d\n", m[i].http);
		CHECK_INT(sg_err_from_http(m[i].http), m[i].want);
	}
}

/* ================================================================== status */

static void
test_status(void)
{
	sg_arena a;
	sg_status st;

	sg_arena_init(&a, 0, 0);
	memset(&st, 0x5A, sizeof(st));
	sg_status_clear(&st);
	CHECK(st.err == SG_OK && st.message == NULL && st.http_status == 0 && st.provider == NULL &&
	      st.provider_code == NULL && st.provider_message == NULL && st.retry_after_ms == 0 &&
	      st.nviolations == 0);

	CHECK_INT(sg_status_set(&st, &a, SG_EUP_NOTFOUND, "order %s: %d", "X1", 404),
	          SG_EUP_NOTFOUND);
	CHECK_INT(st.err, SG_EUP_NOTFOUND);
	CHECK_STR(st.message, "order X1: 404");
	/* NULL fmt sets the error and keeps the message */
	CHECK_INT(sg_status_set(&st, &a, SG_EUP_UNAVAIL, NULL), SG_EUP_UNAVAIL);
	CHECK_STR(st.message, "order X1: 404");

	sg_status_clear(&st);
	CHECK_INT(sg_status_invalid(&st, &a, "order_id", "must not be empty"), SG_EINVAL);
	CHECK_STR(st.message, "order_id: must not be empty");
	CHECK_INT(st.nviolations, 1);
	CHECK_STR(st.violations[0].field, "order_id");
	CHECK_STR(st.violations[0].description, "must not be empty");

	/* violations past the maximum are dropped */
	sg_status_clear(&st);
	for (int i = 0; i < SG_STATUS_MAX_VIOLATIONS + 5; i++)
		sg_status_violation(&st, "f", "d");
	CHECK_INT(st.nviolations, SG_STATUS_MAX_VIOLATIONS);

	/* a full arena: the error is still recorded, the message falls back to NULL */
	sg_arena full;
	sg_arena_init(&full, 0, 16);
	CHECK(sg_arena_alloc(&full, 16) != NULL);
	sg_status_clear(&st);
	CHECK_INT(sg_status_set(&st, &full, SG_EINVAL, "a long message %d", 1), SG_EINVAL);
	CHECK(st.err == SG_EINVAL && st.message == NULL);
	sg_status_clear(&st);
	CHECK_INT(sg_status_invalid(&st, &full, "f", "d"), SG_EINVAL);
	CHECK(st.nviolations == 1 && st.message == NULL);
	sg_arena_fini(&full);
	sg_arena_fini(&a);
}

/* The deadline heap: pops in deadline order, entries leave from the middle, ties are fine. */
static void
test_dheap(void)
{
	enum { N = 500 };
	static sg_dheap_node nodes[N];
	sg_dheap h = {0};
	unsigned seed = 7;

	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		nodes[i].deadline = (int64_t)(seed >> 16) % 100; /* many ties */
		CHECK_INT(sg_dheap_push(&h, &nodes[i]), 0);
	}
	CHECK_INT(h.len, N);
	for (int i = 0; i < N; i += 3) /* every third one leaves early */
		sg_dheap_del(&h, &nodes[i]);
	int64_t last = -1;
	size_t popped = 0;
	bool ordered = true;
	sg_dheap_node *n;
	while ((n = sg_dheap_top(&h)) != NULL) {
		ordered = ordered && n->deadline >= last;
		last = n->deadline;
		sg_dheap_del(&h, n);
		popped++;
	}
	CHECK(ordered);
	CHECK_INT(popped, N - (N + 2) / 3);
	CHECK(sg_dheap_top(&h) == NULL);
	CHECK_INT(sg_dheap_reserve(&h, 4), 0); /* already larger: no change */
	sg_dheap_fini(&h);
	CHECK(h.v == NULL && h.cap == 0);
}

/* ================================================================== list */

struct item {
	int v;
	sg_list_node link;
};

static int
list_sum(const sg_list *l, int *count)
{
	int sum = 0, n = 0;
	for (sg_list_node *p = sg_list_first(l); p != NULL; p = sg_list_next(l, p), n++)
		sum = sum * 10 + SG_CONTAINER_OF(p, struct item, link)->v;
	*count = n;
	return sum;
}

static void
test_list(void)
{
	sg_list l, m;
	struct item it[4] = {{1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}};
	int n;

	sg_list_init(&l);
	CHECK(sg_list_empty(&l) && sg_list_first(&l) == NULL && sg_list_last(&l) == NULL);
	CHECK(sg_list_pop_front(&l) == NULL);
	for (int i = 0; i < 4; i++) {
		sg_list_node_init(&it[i].link);
		CHECK(!sg_list_linked(&it[i].link));
	}
	sg_list_push_back(&l, &it[1].link);
	sg_list_push_back(&l, &it[2].link);
	sg_list_push_front(&l, &it[0].link);
	sg_list_push_back(&l, &it[3].link);
	CHECK_INT(list_sum(&l, &n), 1234);
	CHECK_INT(n, 4);
	CHECK(sg_list_linked(&it[2].link));
	/* O(1) unlink from the middle, the front and the back */
	sg_list_remove(&it[2].link);
	CHECK(!sg_list_linked(&it[2].link));
	CHECK_INT(list_sum(&l, &n), 124);
	CHECK(SG_CONTAINER_OF(sg_list_last(&l), struct item, link) == &it[3]);
	CHECK(sg_list_prev(&l, sg_list_first(&l)) == NULL);
	CHECK(sg_list_next(&l, sg_list_last(&l)) == NULL);
	CHECK(sg_list_prev(&l, &it[3].link) == &it[1].link);
	/* move: all of it, in order, and the source is left empty */
	sg_list_move(&m, &l);
	CHECK(sg_list_empty(&l));
	CHECK_INT(list_sum(&m, &n), 124);
	sg_list_push_back(&m, &it[2].link);
	CHECK_INT(list_sum(&m, &n), 1243);
	CHECK(sg_list_pop_front(&m) == &it[0].link);
	CHECK(!sg_list_linked(&it[0].link));
	CHECK_INT(list_sum(&m, &n), 243);
	sg_list_move(&l, &m); /* back */
	sg_list none;
	sg_list_move(&none, &m); /* an empty one */
	CHECK(sg_list_empty(&none) && sg_list_empty(&m));
	CHECK_INT(list_sum(&l, &n), 243);
	while (sg_list_pop_front(&l) != NULL) {
	}
	CHECK(sg_list_empty(&l));
}

/* ================================================================== dynbuf */

static void
test_dynbuf(void)
{
	sg_dynbuf b;

	sg_dynbuf_init(&b, 10, 4);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0); /* nothing allocated up front */
	CHECK_INT(sg_dynbuf_add(&b, "abc", 3), 0);
	CHECK_INT(b.cap, 4); /* the first allocation */
	CHECK_STR(b.data, "abc");
	CHECK_INT(sg_dynbuf_add(&b, "defg", 4), 0);
	CHECK_INT(b.cap, 8); /* doubled */
	CHECK_STR(b.data, "abcdefg");
	/* the cap: 10 bytes fit, the 11th fails and changes nothing */
	CHECK_INT(sg_dynbuf_add(&b, "hij", 3), 0);
	CHECK_INT(b.len, 10);
	CHECK_INT(b.cap, 11); /* never more than max + 1 */
	errno = 0;
	CHECK_INT(sg_dynbuf_add(&b, "k", 1), -1);
	CHECK_INT(errno, EFBIG);
	CHECK_INT(b.len, 10);
	CHECK_STR(b.data, "abcdefghij");
	CHECK_INT(sg_dynbuf_add(&b, "", 0), 0);
	/* reset keeps a small allocation, gives back a large one */
	sg_dynbuf_reset(&b, 64);
	CHECK(b.data != NULL && b.len == 0 && b.data[0] == '\0');
	sg_dynbuf_reset(&b, 4);
	CHECK(b.data == NULL && b.cap == 0);
	sg_dynbuf_free(&b);

	/* exact: a known final size is allocated at once */
	sg_dynbuf_init(&b, 1 << 20, 0);
	CHECK_INT(sg_dynbuf_reserve(&b, 5000, true), 0);
	CHECK_INT(b.cap, 5001);
	CHECK_INT(sg_dynbuf_reserve(&b, (1 << 20) + 1, true), -1);
	CHECK_INT(errno, EFBIG);
	for (int i = 0; i < 5000; i++)
		CHECK_INT(sg_dynbuf_add(&b, "x", 1), 0);
	CHECK_INT(b.cap, 5001); /* no regrowth */
	sg_dynbuf_free(&b);
	sg_dynbuf_free(&b); /* twice is harmless */
}

/* ================================================================== utf8 */

static void
test_utf8(void)
{
	/* valid: ASCII, 2, 3 and 4 byte forms, the edges */
	static const char *const good[] = {
	        "",    "abc", "caf\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x93\xA6", "\xF4\x8F\xBF\xBF",
	        "\x7F"};
	/* invalid: stray continuation, overlong, surrogate, past U+10FFFF, cut short, 0xFF */
	static const char *const bad[] = {
	        "\x80",     "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
	        "\xE2\x82", "ok\xFF",   "\xC3"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(sg_utf8_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!sg_utf8_valid(bad[i], strlen(bad[i])));

	/* a cut lands on a character boundary, never inside one */
	const char *euro3 = "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"; /* 9 bytes */
	CHECK_INT(sg_utf8_prefix(euro3, 9), 9);
	CHECK_INT(sg_utf8_prefix(euro3, 8), 6);
	CHECK_INT(sg_utf8_prefix(euro3, 4), 3);
	CHECK_INT(sg_utf8_prefix(euro3, 2), 0);
	CHECK_INT(sg_utf8_prefix("abc", 200), 3);
	CHECK_INT(sg_utf8_prefix("ab\xFF"
	                         "cd",
	                         3),
	          3); /* an invalid byte counts as one */
	char big[400];
	for (int i = 0; i < 133; i++)
		memcpy(big + 3 * i, "\xE2\x82\xAC", 3);
	big[399] = '\0';
	int n = sg_utf8_prefix(big, 200);
	CHECK_INT(n, 198);
	CHECK(sg_utf8_valid(big, (size_t)n));

	/* clean: valid text is returned as is; bad bytes become U+FFFD */
	sg_arena a;
	sg_arena_init(&a, 256, 4096);
	const char *ok = "caf\xC3\xA9";
	CHECK(sg_utf8_clean(&a, ok) == ok);
	CHECK(sg_utf8_clean(&a, NULL) == NULL);
	CHECK_STR(sg_utf8_clean(&a, "a\xFF"
	                            "b"),
	          "a\xEF\xBF\xBD"
	          "b");
	CHECK_STR(sg_utf8_clean(&a, "\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
	CHECK_STR(sg_utf8_clean(&a, "x\xC3"), "x\xEF\xBF\xBD");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *c = sg_utf8_clean(&a, bad[i]);
		CHECK(c != NULL && sg_utf8_valid(c, strlen(c)));
	}
	sg_arena_fini(&a);
	/* a full arena still gives valid text */
	sg_arena_init(&a, 64, 64);
	char junk[200];
	memset(junk, 0xFF, sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = '\0';
	const char *c = sg_utf8_clean(&a, junk);
	CHECK(c != NULL && sg_utf8_valid(c, strlen(c)));
	sg_arena_fini(&a);
}

/* sg_run_bounded: a call that returns is waited for; one that blocks is given up on, keeps
 * running, and finishes later without the waiter. */
struct blocker {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool release; /* under mtx */
	atomic_int runs;
};

static void
blocker_fn(void *arg)
{
	struct blocker *b = arg;
	pthread_mutex_lock(&b->mtx);
	while (!b->release)
		pthread_cond_wait(&b->cv, &b->mtx);
	pthread_mutex_unlock(&b->mtx);
	atomic_fetch_add(&b->runs, 1);
}

static void
quick_fn(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

static void
test_bounded(void)
{
	atomic_int n = 0;
	CHECK(sg_run_bounded(quick_fn, &n, 5000));
	CHECK_INT(atomic_load(&n), 1);

	static struct blocker b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
	CHECK(!sg_run_bounded(blocker_fn, &b, 50));
	CHECK_INT(atomic_load(&b.runs), 0);
	pthread_mutex_lock(&b.mtx);
	b.release = true;
	pthread_cond_broadcast(&b.cv);
	pthread_mutex_unlock(&b.mtx);
	/* the abandoned thread still runs to its end (and frees what it shares) */
	for (int i = 0; i < 500 && atomic_load(&b.runs) == 0; i++)
		nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
	CHECK_INT(atomic_load(&b.runs), 1);
}

/* sg_redact: every occurrence of each secret, short secrets left alone, the arena running out
 * (the text is withheld, never leaked), and whole messages (nested, repeated, oneof-safe). */
static void
test_redact(void)
{
	sg_arena a;
	sg_arena_init(&a, 0, 0);
	const char *const sec[] = {"s3cr3t-token", NULL, "abc", "other-secret"};
	const char *t = "no secret here";
	CHECK(sg_redact(&a, t, sec, 4) == t); /* untouched: the same pointer */
	CHECK(sg_redact(&a, NULL, sec, 4) == NULL);
	CHECK_STR(sg_redact(&a, "Bearer s3cr3t-token!", sec, 4), "Bearer [redacted]!");
	CHECK_STR(sg_redact(&a, "s3cr3t-tokens3cr3t-token", sec, 4), "[redacted][redacted]");
	CHECK_STR(sg_redact(&a, "a=other-secret b=s3cr3t-token c=abc", sec, 4),
	          "a=[redacted] b=[redacted] c=abc"); /* "abc" is too short to look for */
	CHECK(sg_redact_found("xx s3cr3t-token", 15, sec, 4));
	CHECK(!sg_redact_found("xx s3cr3t-toke", 14, sec, 4));
	CHECK(!sg_redact_found("", 0, sec, 4));
	sg_arena_fini(&a);

	/* an arena with no room: the text is withheld */
	sg_arena small;
	sg_arena_init(&small, 64, 64);
	char big[200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + 50, "s3cr3t-token", 12);
	const char *r = sg_redact(&small, big, sec, 4);
	CHECK(r != NULL && strstr(r, "s3cr3t") == NULL && strstr(r, "withheld") != NULL);
	sg_arena_fini(&small);

	/* a whole TrackResponse: nested messages and repeated fields */
	sg_arena_init(&a, 0, 0);
	Shipgate__V1__TrackingEvent e1 = SHIPGATE__V1__TRACKING_EVENT__INIT,
	                            e2 = SHIPGATE__V1__TRACKING_EVENT__INIT;
	e1.description = "picked up; auth=s3cr3t-token";
	e2.description = "delivered";
	e2.location = "hub other-secret";
	Shipgate__V1__TrackingEvent *evs[] = {&e1, &e2};
	Shipgate__V1__Tracking tr = SHIPGATE__V1__TRACKING__INIT;
	tr.order_id = "ORD-1";
	tr.events = evs;
	tr.n_events = 2;
	Shipgate__V1__TrackResponse resp = SHIPGATE__V1__TRACK_RESPONSE__INIT;
	resp.tracking = &tr;
	CHECK_INT(sg_redact_message(&resp.base, &a, sec, 4), 2);
	CHECK_STR(e1.description, "picked up; auth=[redacted]");
	CHECK_STR(e2.location, "hub [redacted]");
	CHECK_STR(e2.description, "delivered");
	CHECK_STR(tr.order_id, "ORD-1");
	CHECK_INT(sg_redact_message(&resp.base, &a, sec, 4), 0); /* nothing left */
	CHECK_INT(sg_redact_message(NULL, &a, sec, 4), 0);
	sg_arena_fini(&a);
}

int
main(void)
{
	test_arena_basics();
	test_arena_cap();
	test_arena_strings();
	test_arena_reset();
	test_arena_protobuf();
	test_err_table();
	test_err_from_http();
	test_status();
	test_dheap();
	test_utf8();
	test_dynbuf();
	test_list();
	test_bounded();
	test_redact();
	TEST_MAIN_END();
}
