/*
 * test_shcache.c - the fleet's lookup cache (gateway/shcache.c) against a redis-server of the
 * test's own: two caches on one Redis play two gateways.
 *
 * Cases: a miss takes the lock and the other gateway is told busy (or waits, and gets the
 * answer once it is put); fresh and stale by the reader's TTL, one lock per stale period; a
 * failed fetch unlocks; a holder that dies lets the lock run out; a corrupt entry is dropped;
 * an absent payload stays absent; answers over max_value stay local; a draining cache ends its
 * waits; a full queue answers at once; Redis stopped, paused and back.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "gateway/shcache.h"
#include "harness.h"
#include "testutil.h"

/* One get's answer, waited for. */
struct got {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool done;
	sg_shc_res res;
	bool locked;
	int64_t age;
	char status[64], payload[64];
	size_t status_len, payload_len;
	bool has_payload;
	bool inline_answer; /* answered before sg_shcache_get returned */
	bool in_get;
};

static void
got_cb(void *arg, sg_shc_res res, bool locked, const sg_flight_outcome *o, int64_t age)
{
	struct got *g = arg;
	pthread_mutex_lock(&g->mtx);
	g->res = res;
	g->locked = locked;
	g->age = age;
	if (o != NULL) {
		g->status_len = o->status_len < sizeof(g->status) ? o->status_len : 0;
		memcpy(g->status, o->status, g->status_len);
		g->has_payload = o->payload != NULL;
		g->payload_len = o->payload_len < sizeof(g->payload) ? o->payload_len : 0;
		if (o->payload != NULL)
			memcpy(g->payload, o->payload, g->payload_len);
	}
	g->inline_answer = g->in_get;
	g->done = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mtx);
}

static void
got_init(struct got *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mtx, NULL);
	sg_cond_init(&g->cv);
}

/* Starts a get into g (not waited for). */
static void
get_start(sg_shcache *s, struct got *g, const char *key, int64_t ttl, int64_t lock_ms, bool wait,
          int64_t wait_ms)
{
	got_init(g);
	pthread_mutex_lock(&g->mtx);
	g->in_get = true;
	pthread_mutex_unlock(&g->mtx);
	sg_shcache_get(s, key, ttl, lock_ms, wait, sg_now_ms() + wait_ms, got_cb, g);
	pthread_mutex_lock(&g->mtx);
	g->in_get = false;
	pthread_mutex_unlock(&g->mtx);
}

/* Waits for g's answer (10 s at most). */
static bool
get_wait(struct got *g)
{
	int64_t until = sg_now_ms() + 10000;
	pthread_mutex_lock(&g->mtx);
	while (!g->done && sg_cond_wait_until(&g->cv, &g->mtx, until))
		;
	bool done = g->done;
	pthread_mutex_unlock(&g->mtx);
	return done;
}

static sg_shc_res
get(sg_shcache *s, struct got *g, const char *key, int64_t ttl, int64_t lock_ms)
{
	get_start(s, g, key, ttl, lock_ms, false, 0);
	return get_wait(g) ? g->res : (sg_shc_res)-1;
}

static const sg_flight_outcome answer1 = {(const uint8_t *)"", 0, (const uint8_t *)"ans-1", 5};
static const sg_flight_outcome answer2 = {(const uint8_t *)"", 0, (const uint8_t *)"ans-2", 5};

/* Waits until a put has reached Redis: a get by the putter itself sees it fresh. */
static bool
put_seen(sg_shcache *s, const char *key, const char *payload)
{
	struct got g;
	for (int i = 0; i < 200; i++) {
		if (get(s, &g, key, 60000, 1000) == SG_SHC_FRESH &&
		    memcmp(g.payload, payload, strlen(payload)) == 0)
			return true;
		if (g.res == SG_SHC_MISS)
			sg_shcache_unlock(s, key); /* not there yet: let the lock go again */
		hs_sleep_ms(10);
	}
	return false;
}

static sg_shcache *
cache_new(const char *url, size_t max_queued, size_t max_value)
{
	char err[256];
	sg_shcache_conf c = {.url = url,
	                     .timeout_ms = 300,
	                     .max_queued = max_queued,
	                     .max_value = max_value,
	                     .prefix = "test:cache:"};
	sg_shcache *s = sg_shcache_new(&c, err, sizeof(err));
	if (s == NULL)
		fprintf(stderr, "  sg_shcache_new: %s\n", err);
	return s;
}

static void
test_urls(void)
{
	char err[256];
	sg_shcache_conf c = {.url = "http://127.0.0.1:1"};
	CHECK(sg_shcache_new(&c, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cache.redis_url") != NULL);
	c.url = "redis://127.0.0.1:0";
	CHECK(sg_shcache_new(&c, err, sizeof(err)) == NULL);
	c.url = "redis://127.0.0.1:6379/x";
	CHECK(sg_shcache_new(&c, err, sizeof(err)) == NULL);
	c.url = NULL;
	CHECK(sg_shcache_new(&c, err, sizeof(err)) == NULL);
}

int
main(void)
{
	hs_proc rd;
	int port = 0;
	char url[64];
	struct got g, h;

	test_urls();
	if (hs_redis_start(&rd, &port) != 0) {
		fprintf(stderr, "  redis-server did not start (.ci/deps installs it)\n");
		CHECK(0);
		TEST_MAIN_END();
	}
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/4", port);
	sg_shcache *a = cache_new(url, 1000, 1 << 20), *b = cache_new(url, 1000, 1 << 20);
	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		TEST_MAIN_END();

	/* ---- a miss: the lock is a's; b is told busy, then waits and gets a's answer */
	CHECK_INT(get(a, &g, "k1", 60000, 5000), SG_SHC_MISS);
	CHECK(g.locked);
	CHECK_INT(get(b, &h, "k1", 60000, 5000), SG_SHC_BUSY);
	CHECK(!h.locked);
	get_start(b, &h, "k1", 60000, 5000, true, 5000); /* b waits for a */
	hs_sleep_ms(100);
	CHECK(!h.done);
	sg_shcache_put(a, "k1", &answer1, 60000);
	CHECK(get_wait(&h));
	CHECK_INT(h.res, SG_SHC_FRESH);
	CHECK(h.has_payload && h.payload_len == 5 && memcmp(h.payload, "ans-1", 5) == 0);
	CHECK(h.age >= 0 && h.age < 5000);
	/* a wait that runs out: BUSY at its until */
	CHECK_INT(get(a, &g, "k2", 60000, 5000), SG_SHC_MISS);
	int64_t t0 = sg_now_ms();
	get_start(b, &h, "k2", 60000, 5000, true, 200);
	CHECK(get_wait(&h));
	CHECK_INT(h.res, SG_SHC_BUSY);
	CHECK(sg_now_ms() - t0 >= 150);
	/* a failed fetch unlocks: the next gateway takes the lock */
	sg_shcache_unlock(a, "k2");
	for (int i = 0; i < 100 && get(b, &h, "k2", 60000, 5000) == SG_SHC_BUSY; i++)
		hs_sleep_ms(10);
	CHECK_INT(h.res, SG_SHC_MISS);
	CHECK(h.locked);
	/* a holder that dies (never puts nor unlocks): its lock runs out, and a waiter takes it */
	CHECK_INT(get(a, &g, "k3", 60000, 150), SG_SHC_MISS);
	get_start(b, &h, "k3", 60000, 150, true, 3000);
	CHECK(get_wait(&h));
	CHECK_INT(h.res, SG_SHC_MISS);
	CHECK(h.locked);
	/* a's unlock of a lock that is now b's does nothing */
	sg_shcache_unlock(a, "k3");
	hs_sleep_ms(50);
	CHECK_INT(get(a, &g, "k3", 60000, 150), SG_SHC_BUSY);

	/* ---- fresh and stale by the reader's TTL; one lock per stale period */
	CHECK_INT(get(a, &g, "k4", 60000, 5000), SG_SHC_MISS);
	sg_shcache_put(a, "k4", &answer1, 60000);
	CHECK(put_seen(a, "k4", "ans-1"));
	hs_sleep_ms(30);
	CHECK_INT(get(b, &h, "k4", 10, 5000), SG_SHC_STALE); /* older than 10 ms for b */
	CHECK(h.locked && h.age >= 10);
	CHECK(memcmp(h.payload, "ans-1", 5) == 0);
	CHECK_INT(get(a, &g, "k4", 10, 5000), SG_SHC_STALE); /* b refreshes: a only reads */
	CHECK(!g.locked);
	CHECK_INT(get(a, &g, "k4", 60000, 5000), SG_SHC_FRESH);
	sg_shcache_put(b, "k4", &answer2, 60000); /* b's refresh, which unlocks */
	CHECK(put_seen(a, "k4", "ans-2"));
	/* the lock is free again: once stale, the next reader takes it */
	hs_sleep_ms(30);
	CHECK_INT(get(a, &g, "k4", 10, 5000), SG_SHC_STALE);
	CHECK(g.locked);
	sg_shcache_unlock(a, "k4");

	/* ---- an entry gone from Redis after expire_ms */
	CHECK_INT(get(a, &g, "k5", 60000, 5000), SG_SHC_MISS);
	sg_shcache_put(a, "k5", &answer1, 100);
	CHECK(put_seen(a, "k5", "ans-1"));
	hs_sleep_ms(250);
	CHECK_INT(get(b, &h, "k5", 60000, 5000), SG_SHC_MISS);
	sg_shcache_unlock(b, "k5");

	/* ---- an absent payload stays absent; an empty status stays empty */
	static const sg_flight_outcome none = {(const uint8_t *)"\x08\x05", 2, NULL, 0};
	CHECK_INT(get(a, &g, "k6", 60000, 5000), SG_SHC_MISS);
	sg_shcache_put(a, "k6", &none, 60000);
	for (int i = 0; i < 100 && get(b, &h, "k6", 60000, 5000) != SG_SHC_FRESH; i++)
		hs_sleep_ms(10);
	CHECK_INT(h.res, SG_SHC_FRESH);
	CHECK(!h.has_payload && h.status_len == 2 && memcmp(h.status, "\x08\x05", 2) == 0);

	/* ---- a corrupt entry (written by something else) is dropped, as if missing */
	redisContext *rc = redisConnect("127.0.0.1", port);
	CHECK(rc != NULL && rc->err == 0);
	if (rc != NULL && rc->err == 0) {
		freeReplyObject(redisCommand(rc, "SELECT 4"));
		freeReplyObject(redisCommand(rc, "HSET test:cache:k7 at garbage payload x"));
		CHECK_INT(get(a, &g, "k7", 60000, 5000), SG_SHC_MISS);
		CHECK(g.locked);
		redisReply *r = redisCommand(rc, "EXISTS test:cache:k7");
		CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
		freeReplyObject(r);
		/* a value of the wrong type: an error for this get, never a crash */
		freeReplyObject(redisCommand(rc, "SET test:cache:k8 plain-string"));
		CHECK_INT(get(a, &g, "k8", 60000, 5000), SG_SHC_ERROR);
		/* the prefix keeps keys apart: the lock lives beside the answer */
		r = redisCommand(rc, "EXISTS test:cache:lock:k7");
		CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
		freeReplyObject(r);
		redisFree(rc);
	}

	/* ---- an answer over max_value stays local: the lock is let go, nothing is put */
	sg_shcache *small = cache_new(url, 1000, 4);
	CHECK_INT(get(small, &g, "k9", 60000, 5000), SG_SHC_MISS);
	sg_shcache_put(small, "k9", &answer1, 60000); /* 5 bytes > 4 */
	for (int i = 0; i < 100 && get(b, &h, "k9", 60000, 5000) == SG_SHC_BUSY; i++)
		hs_sleep_ms(10);
	CHECK_INT(h.res, SG_SHC_MISS);
	sg_shcache_unlock(b, "k9");
	sg_shcache_free(small);

	/* ---- draining: a wait for another gateway ends at once, BUSY */
	sg_shcache *d = cache_new(url, 1000, 1 << 20);
	CHECK_INT(get(a, &g, "k10", 60000, 10000), SG_SHC_MISS);
	get_start(d, &h, "k10", 60000, 10000, true, 10000);
	hs_sleep_ms(100);
	CHECK(!h.done);
	t0 = sg_now_ms();
	sg_shcache_drain(d);
	CHECK(get_wait(&h));
	CHECK_INT(h.res, SG_SHC_BUSY);
	CHECK(sg_now_ms() - t0 < 2000);
	/* and a wait left at free is answered too */
	sg_shcache_drain(d); /* idempotent */
	sg_shcache_free(d);
	d = cache_new(url, 1000, 1 << 20);
	get_start(d, &h, "k10", 60000, 10000, true, 10000);
	hs_sleep_ms(100);
	sg_shcache_free(d);
	CHECK(h.done && h.res == SG_SHC_BUSY);

	/* ---- Redis paused: the first get times out (ERROR), the queue past max_queued answers
	 * at once, and Redis is left alone for a second */
	sg_shcache *q = cache_new(url, 2, 1 << 20);
	struct got many[6];
	CHECK_INT(kill(rd.pid, SIGSTOP), 0);
	get_start(q, &many[0], "p0", 60000, 5000, false, 0);
	hs_sleep_ms(100); /* the thread is in its command, waiting for the timeout */
	int at_once = 0;
	for (int i = 1; i < 6; i++) {
		get_start(q, &many[i], "p1", 60000, 5000, false, 0);
		at_once += many[i].inline_answer && many[i].res == SG_SHC_ERROR;
	}
	CHECK_INT(at_once, 3); /* 2 queued, 3 refused */
	for (int i = 0; i < 6; i++) {
		CHECK(get_wait(&many[i]));
		CHECK_INT(many[i].res, SG_SHC_ERROR);
	}
	CHECK(!sg_shcache_up(q));
	CHECK_INT(kill(rd.pid, SIGCONT), 0);
	t0 = sg_now_ms();
	CHECK_INT(get(q, &g, "p2", 60000, 5000), SG_SHC_ERROR); /* still left alone */
	CHECK(sg_now_ms() - t0 < 100);
	hs_sleep_ms(1100);
	CHECK_INT(get(q, &g, "p2", 60000, 5000), SG_SHC_MISS); /* back */
	CHECK(sg_shcache_up(q));
	sg_shcache_free(q);

	/* ---- Redis stopped, then back on the same port: errors, then it works again */
	CHECK_INT(hs_proc_stop(&rd, SIGTERM) >= 0, 1);
	t0 = sg_now_ms();
	CHECK_INT(get(a, &g, "k11", 60000, 5000), SG_SHC_ERROR);
	CHECK(sg_now_ms() - t0 < 1000);
	CHECK(!sg_shcache_up(a));
	sg_shcache_put(a, "k11", &answer1, 60000); /* dropped, no answer to wait for */
	CHECK_INT(hs_redis_start(&rd, &port), 0);
	sg_shc_res r = SG_SHC_ERROR;
	for (int i = 0; i < 40 && (r = get(a, &g, "k11", 60000, 5000)) == SG_SHC_ERROR; i++)
		hs_sleep_ms(100);
	CHECK_INT(r, SG_SHC_MISS);
	CHECK(sg_shcache_up(a));

	sg_shcache_free(a);
	sg_shcache_free(b);
	sg_shcache_free(NULL);
	hs_proc_stop(&rd, SIGTERM);
	TEST_MAIN_END();
}
