/*
 * test_store.c - the idempotency store interface over its backends, with a fake clock: claim
 * before call, complete, release, conflicts, a full table and expiry. The memory store answers
 * inline; the SQLite store (a real file in /tmp) answers from its own thread, and is closed and
 * opened again to play a restart: what it claimed and stored survives, and a claim whose owner
 * is gone is BUSY while its lease runs, then UNKNOWN, never claimed again. The callers' quotas
 * on live keys, on every backend (Redis: shared by two gateways).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "gateway/store.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"
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
	sg_store_claim(st, key, f, "bosonline", NULL, 1000, on_claim, &s);
	CHECK_INT(s.calls, 1); /* the memory store answers inline */
	return s.res;
}

/* ------------------------------------------------------------------ sqlite */

/* An operation's answer, waited for: the SQLite store answers from its own thread. */
struct wait {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct seen s;
	bool done;
};

static struct wait W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, false};

static void
w_claim(void *arg, sg_claim res, const sg_flight_outcome *o)
{
	pthread_mutex_lock(&W.mtx);
	on_claim(&W.s, res, o);
	W.done = true;
	pthread_cond_signal(&W.cv);
	pthread_mutex_unlock(&W.mtx);
}

static void
w_done(void *arg, sg_err err)
{
	pthread_mutex_lock(&W.mtx);
	on_done(&W.s, err);
	W.done = true;
	pthread_cond_signal(&W.cv);
	pthread_mutex_unlock(&W.mtx);
}

static void
w_reset(void)
{
	pthread_mutex_lock(&W.mtx);
	memset(&W.s, 0, sizeof(W.s));
	W.done = false;
	pthread_mutex_unlock(&W.mtx);
}

static void
w_wait(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&W.mtx);
	while (!W.done)
		if (pthread_cond_timedwait(&W.cv, &W.mtx, &ts) != 0)
			break;
	CHECK(W.done);
	pthread_mutex_unlock(&W.mtx);
}

static sg_claim
sq_claim_sync(sg_store *st, const char *key, uint64_t fp, int64_t lease_ms)
{
	sg_flight_fp f = {fp, fp};
	w_reset();
	sg_store_claim(st, key, f, "bosonline", NULL, lease_ms, w_claim, NULL);
	w_wait();
	CHECK_INT(W.s.calls, 1);
	return W.s.res;
}

/* A complete's answer, with no one waiting on it. */
static void
on_done_sync(void *arg, sg_err err)
{
	(void)arg;
	(void)err;
}

static sg_err
sq_complete_sync(sg_store *st, const char *key, const sg_flight_outcome *o, int64_t ttl)
{
	w_reset();
	sg_store_complete(st, key, o, ttl, w_done, NULL);
	w_wait();
	return W.s.err;
}

static sg_err
sq_release_sync(sg_store *st, const char *key)
{
	w_reset();
	sg_store_release(st, key, w_done, NULL);
	w_wait();
	return W.s.err;
}

static int64_t wall = 1700000000000; /* a fake wall clock, ms */

/* sg_store_sqlite_unknown's callback: keeps the key. */
static void
list_one(void *arg, const sg_store_unknown *u)
{
	snprintf(arg, 64, "%s", u->key);
}

static int64_t
fake_wall(void)
{
	return wall;
}

static void
test_sqlite(void)
{
	char path[] = "/tmp/shipgate-store-XXXXXX";
	char db[64], err[256];
	int fd = mkstemp(path);
	close(fd);
	unlink(path);
	snprintf(db, sizeof(db), "%s.db", path);
	static const uint8_t status[] = {0};
	const sg_flight_outcome done = {status, 0, (const uint8_t *)"order-77", 8};
	const sg_flight_outcome empty = {status, 0, (const uint8_t *)"", 0};

	sg_store *st = sg_store_sqlite_new(db, 4, fake_wall, err, sizeof(err));
	CHECK(st != NULL);
	if (st == NULL) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK_STR(st->ops->name, "sqlite");
	CHECK_INT(sq_claim_sync(st, "a", 1, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_claim_sync(st, "a", 1, 1000), SG_CLAIM_BUSY); /* its own lease runs */
	CHECK_INT(sq_claim_sync(st, "a", 2, 1000), SG_CLAIM_CONFLICT);
	CHECK_INT(sq_complete_sync(st, "a", &done, 60000), SG_OK);
	CHECK_INT(sq_claim_sync(st, "a", 1, 1000), SG_CLAIM_DONE);
	CHECK_STR(W.s.payload, "order-77");
	CHECK_INT(sq_claim_sync(st, "a", 2, 1000), SG_CLAIM_CONFLICT);
	/* released: free again; a complete that is not the owner's claim changes nothing */
	CHECK_INT(sq_claim_sync(st, "b", 3, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_release_sync(st, "b"), SG_OK);
	CHECK_INT(sq_complete_sync(st, "b", &done, 60000), SG_EINTERNAL);
	CHECK_INT(sq_claim_sync(st, "b", 4, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_complete_sync(st, "b", &empty, 60000), SG_OK); /* an empty payload */
	CHECK_INT(sq_claim_sync(st, "b", 4, 1000), SG_CLAIM_DONE);
	CHECK_STR(W.s.payload, "");
	/* "c" is claimed and never completed: its owner "crashes" below */
	CHECK_INT(sq_claim_sync(st, "c", 5, 2000), SG_CLAIM_OWNER);
	sg_store_free(st);

	/* the restart: another owner, the same file */
	st = sg_store_sqlite_new(db, 4, fake_wall, err, sizeof(err));
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK_INT(sq_claim_sync(st, "a", 1, 1000), SG_CLAIM_DONE); /* survived */
	CHECK_STR(W.s.payload, "order-77");
	CHECK_INT(sq_claim_sync(st, "c", 5, 1000), SG_CLAIM_BUSY); /* the lease still runs */
	wall += 2001;
	CHECK_INT(sq_claim_sync(st, "c", 5, 1000), SG_CLAIM_UNKNOWN); /* never sent again */
	CHECK_INT(sq_claim_sync(st, "c", 5, 1000), SG_CLAIM_UNKNOWN);
	CHECK_INT(sq_release_sync(st, "c"), SG_EINTERNAL); /* not its claim: changes nothing */
	CHECK_INT(sq_claim_sync(st, "c", 5, 1000), SG_CLAIM_UNKNOWN);
	/* the operator's view, beside the running store: c is listed; a, b and a running or
	 * completed key are not; releasing c frees it, and only c */
	char listed[64] = "";
	CHECK_INT(sg_store_sqlite_unknown(db, wall, list_one, listed, err, sizeof(err)), 1);
	CHECK_STR(listed, "c");
	CHECK_INT(sg_store_sqlite_release_unknown(db, "a", wall, err, sizeof(err)), 0);
	CHECK_INT(sg_store_sqlite_release_unknown(db, "nope", wall, err, sizeof(err)), 0);
	CHECK_INT(sg_store_sqlite_release_unknown(db, "c", wall, err, sizeof(err)), 1);
	CHECK_INT(sg_store_sqlite_unknown(db, wall, list_one, listed, err, sizeof(err)), 0);
	CHECK_INT(sq_claim_sync(st, "c", 5, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_release_sync(st, "c"), SG_OK);
	CHECK_INT(sq_claim_sync(st, "c", 5, 1000), SG_CLAIM_OWNER); /* held again, for below */
	wall += 1001;
	CHECK_INT(sg_store_sqlite_unknown("/nonexistent.db", wall, list_one, listed, err,
	                                  sizeof(err)),
	          -1);
	/* full: a, b, c, d held; e is refused until an outcome expires */
	CHECK_INT(sq_claim_sync(st, "d", 6, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_claim_sync(st, "e", 7, 1000), SG_CLAIM_FULL);
	wall += 60000; /* a and b expire; c (unknown) and d (running) stay */
	CHECK_INT(sq_claim_sync(st, "e", 7, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_claim_sync(st, "a", 2, 1000), SG_CLAIM_OWNER); /* expired: a new key */
	CHECK_INT(sq_claim_sync(st, "f", 8, 1000), SG_CLAIM_FULL);
	sg_store_free(st);

	/* a file that is not a database (garbage, as a bad disk or a wrong path could leave):
	 * refused at open, with the path in the message; the gateway does not start on it */
	char junk[96];
	snprintf(junk, sizeof(junk), "%s.junk", db);
	FILE *jf = fopen(junk, "w");
	CHECK(jf != NULL);
	if (jf != NULL) {
		for (int i = 0; i < 4096; i++)
			fputc("not a database "[i % 15], jf);
		fclose(jf);
		err[0] = '\0';
		CHECK(sg_store_sqlite_new(junk, 4, NULL, err, sizeof(err)) == NULL);
		CHECK(strstr(err, junk) != NULL);
		unlink(junk);
	}
	/* a path that cannot be a database (its directory is a file): a clear error, no store */
	char bad[96];
	snprintf(bad, sizeof(bad), "%s/x.db", db); /* db is a regular file */
	err[0] = '\0';
	CHECK(sg_store_sqlite_new(bad, 4, NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, db) != NULL);
	char wal[80];
	unlink(db);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", db);
	unlink(wal);
}

/* Many claims at once from many threads: each answered once, in batches that share a
 * commit; then each completed, then each found. */
#define BURST_THREADS 8
#define BURST_KEYS    200

struct burst {
	sg_store *st;
	int id;
	atomic_int answered, owners, found;
};

static void
burst_claim(void *arg, sg_claim res, const sg_flight_outcome *o)
{
	struct burst *b = arg;
	atomic_fetch_add(&b->answered, 1);
	if (res == SG_CLAIM_OWNER)
		atomic_fetch_add(&b->owners, 1);
	if (res == SG_CLAIM_DONE && o != NULL && o->payload_len == 2)
		atomic_fetch_add(&b->found, 1);
}

static void
burst_done(void *arg, sg_err err)
{
	struct burst *b = arg;
	if (err == SG_OK)
		atomic_fetch_add(&b->answered, 1);
}

static void *
burst_main(void *arg)
{
	struct burst *b = arg;
	static const uint8_t status[] = {0};
	const sg_flight_outcome o = {status, 0, (const uint8_t *)"ok", 2};
	char key[32];
	for (int phase = 0; phase < 3; phase++) {
		for (int i = 0; i < BURST_KEYS; i++) {
			sg_flight_fp fp = {(uint64_t)b->id, (uint64_t)i};
			snprintf(key, sizeof(key), "burst-%d-%d", b->id, i);
			if (phase == 1)
				sg_store_complete(b->st, key, &o, 60000, burst_done, b);
			else
				sg_store_claim(b->st, key, fp, "bosonline", NULL, 60000,
				               burst_claim, b);
		}
		/* the next phase only once this one is answered */
		for (int i = 0; i < 2000 && atomic_load(&b->answered) < (phase + 1) * BURST_KEYS;
		     i++) {
			struct timespec ts = {0, 5000000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void
test_sqlite_burst(void)
{
	char db[64], err[256], f[80];
	snprintf(db, sizeof(db), "/tmp/shipgate-burst-%d.db", (int)getpid());
	sg_store *st = sg_store_sqlite_new(db, 100000, NULL, err, sizeof(err));
	CHECK(st != NULL);
	if (st == NULL)
		return;
	static struct burst b[BURST_THREADS];
	pthread_t thr[BURST_THREADS];
	for (int i = 0; i < BURST_THREADS; i++) {
		b[i].st = st;
		b[i].id = i;
		atomic_init(&b[i].answered, 0);
		atomic_init(&b[i].owners, 0);
		atomic_init(&b[i].found, 0);
		CHECK_INT(pthread_create(&thr[i], NULL, burst_main, &b[i]), 0);
	}
	for (int i = 0; i < BURST_THREADS; i++)
		pthread_join(thr[i], NULL);
	sg_store_free(st);
	int answered = 0, owners = 0, found = 0;
	for (int i = 0; i < BURST_THREADS; i++) {
		answered += atomic_load(&b[i].answered);
		owners += atomic_load(&b[i].owners);
		found += atomic_load(&b[i].found);
	}
	CHECK_INT(answered, 3 * BURST_THREADS * BURST_KEYS);
	CHECK_INT(owners, BURST_THREADS * BURST_KEYS);
	CHECK_INT(found, BURST_THREADS * BURST_KEYS);
	unlink(db);
	snprintf(f, sizeof(f), "%s-wal", db);
	unlink(f);
	snprintf(f, sizeof(f), "%s-shm", db);
	unlink(f);
}

/* ------------------------------------------------------------------ redis */

/* A redis-server of this test's own on a free loopback port; its pid, or -1. */
static pid_t
redis_start(int port)
{
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
	/* ready once it accepts a connection */
	for (int i = 0; pid > 0 && i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bool up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (up)
			return pid;
		struct timespec ts = {0, 20000000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void
redis_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

/* A port nothing listens on now. */
static int
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Two gateways' stores on one Redis: the second waits for the first's outcome; conflicts,
 * releases and the fence; Redis stopped: claims fail closed; Redis back: they work again. */
static void
test_redis(void)
{
	int port = free_port();
	pid_t rp = redis_start(port);
	CHECK(rp > 0);
	if (rp <= 0) {
		fprintf(stderr, "  redis-server did not start (is it installed? .ci/deps does)\n");
		return;
	}
	char url[64], err[256];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", port);
	sg_store *a = sg_store_redis_new(url, 60000, err, sizeof(err));
	sg_store *b = sg_store_redis_new(url, 60000, err, sizeof(err));
	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out;
	CHECK_STR(a->ops->name, "redis");
	CHECK_STR(a->ops->scope, "fleet");
	static const uint8_t status[] = {0x08, 0x00};
	const sg_flight_outcome done = {status, 2, (const uint8_t *)"order-9\0x", 9};

	CHECK_INT(sq_claim_sync(a, "k", 1, 2000), SG_CLAIM_OWNER);
	CHECK_INT(sq_claim_sync(b, "k", 2, 2000), SG_CLAIM_CONFLICT);
	/* b waits (polling) for a's outcome: it completes meanwhile */
	w_reset();
	sg_flight_fp f1 = {1, 1};
	sg_store_claim(b, "k", f1, "bosonline", NULL, 3000, w_claim, NULL);
	struct timespec ts = {0, 100000000};
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&W.mtx);
	CHECK(!W.done); /* still waiting for a */
	pthread_mutex_unlock(&W.mtx);
	struct seen ds = {0};
	sg_store_complete(a, "k", &done, 60000, on_done_sync, &ds);
	w_wait();
	CHECK_INT(W.s.res, SG_CLAIM_DONE);
	CHECK_INT(memcmp(W.s.payload, "order-9", 8), 0); /* binary-safe: the NUL kept */
	/* the fence: b never held k, its complete and release change nothing */
	CHECK_INT(sq_complete_sync(b, "k", &done, 60000), SG_EINTERNAL);
	CHECK_INT(sq_release_sync(b, "k"), SG_EINTERNAL);
	CHECK_INT(sq_claim_sync(a, "k", 1, 2000), SG_CLAIM_DONE);
	/* a claim whose owner is gone: busy for as long as the waiter may wait, then unknown */
	CHECK_INT(sq_claim_sync(a, "gone", 5, 300), SG_CLAIM_OWNER);
	CHECK_INT(sq_claim_sync(b, "gone", 5, 100), SG_CLAIM_BUSY);
	ts.tv_nsec = 350000000;
	nanosleep(&ts, NULL);
	CHECK_INT(sq_claim_sync(b, "gone", 5, 100), SG_CLAIM_UNKNOWN);
	/* released: free for a retry, from any gateway */
	CHECK_INT(sq_claim_sync(a, "rel", 6, 2000), SG_CLAIM_OWNER);
	CHECK_INT(sq_release_sync(a, "rel"), SG_OK);
	CHECK_INT(sq_claim_sync(b, "rel", 6, 2000), SG_CLAIM_OWNER);
	/* Redis stopped: fail closed, with no hang; Redis back: the same store works again */
	redis_stop(rp);
	CHECK_INT(sq_claim_sync(a, "down", 7, 2000), SG_CLAIM_ERROR);
	CHECK_INT(sq_complete_sync(b, "rel", &done, 60000), SG_ESTORE);
	rp = redis_start(port);
	CHECK(rp > 0);
	CHECK_INT(sq_claim_sync(a, "down", 7, 2000), SG_CLAIM_OWNER);
	/* a malformed URL is refused at once */
	CHECK(sg_store_redis_new("http://x", 1000, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "redis://") != NULL);
	CHECK(sg_store_redis_new("redis://h:99999", 1000, err, sizeof(err)) == NULL);
out:
	sg_store_free(a);
	sg_store_free(b);
	redis_stop(rp);
}

/* ------------------------------------------------------------------ quotas */

/* A claim by caller (tag for the memory store) holding at most max live keys. */
static sg_claim
q_claim_lease(sg_store *st, const char *key, const char *caller, size_t tag, size_t max,
              int64_t lease_ms)
{
	sg_flight_fp f = {7, 7};
	sg_store_quota q = {caller, tag, max};
	w_reset();
	sg_store_claim(st, key, f, "bosonline", &q, lease_ms, w_claim, NULL);
	w_wait();
	return W.s.res;
}

static sg_claim
q_claim(sg_store *st, const char *key, const char *caller, size_t tag, size_t max)
{
	return q_claim_lease(st, key, caller, tag, max, 2000);
}

/*
 * The callers' quotas on one backend (x and y: two gateways' stores on it, or the same one):
 * caller a holds at most 3 live keys, wherever it claims them; its existing keys are answered
 * as ever; b and callers not known are counted apart; a release and an expiry give room back;
 * max 0 is no cap. pass(ms) lets time pass (ttl: the kept outcomes' lifetime; on Redis, claims'
 * too: claims_expire). anon: keys that callers not known hold already.
 */
static void
quota_case(const char *name, sg_store *x, sg_store *y, void (*pass)(int64_t ms), int64_t ttl,
           bool claims_expire, size_t anon)
{
	static const uint8_t status[] = {0};
	const sg_flight_outcome done = {status, 0, (const uint8_t *)"order-q", 7};
	char k[32];
	fprintf(stderr, "  quotas: %s\n", name);
	CHECK_INT(q_claim(x, "qa1", "a", 1, 3), SG_CLAIM_OWNER);
	CHECK_INT(sq_complete_sync(x, "qa1", &done, ttl), SG_OK);
	CHECK_INT(q_claim(y, "qa2", "a", 1, 3), SG_CLAIM_OWNER);
	CHECK_INT(q_claim(x, "qa3", "a", 1, 3), SG_CLAIM_OWNER);
	CHECK_INT(q_claim(y, "qa4", "a", 1, 3), SG_CLAIM_QUOTA);
	CHECK_INT(q_claim(x, "qa4", "a", 1, 3), SG_CLAIM_QUOTA);
	/* its keys are still its keys: a replay, and a running one is busy, not refused */
	CHECK_INT(q_claim(y, "qa1", "a", 1, 3), SG_CLAIM_DONE);
	CHECK_INT(q_claim(x, "qa1", "b", 2, 3), SG_CLAIM_DONE);
	CHECK_INT(q_claim_lease(y, "qa3", "a", 1, 3, 100), SG_CLAIM_BUSY); /* (y waits 100 ms) */
	/* b, and callers not known, have their own counts; 0 is no cap */
	for (int i = 0; i < 3; i++) {
		snprintf(k, sizeof(k), "qb%d", i);
		CHECK_INT(q_claim(y, k, "b", 2, 3), SG_CLAIM_OWNER);
		snprintf(k, sizeof(k), "qn%d", i);
		CHECK_INT(q_claim(x, k, "", 0, 3 + anon), SG_CLAIM_OWNER);
	}
	CHECK_INT(q_claim(x, "qb3", "b", 2, 3), SG_CLAIM_QUOTA);
	CHECK_INT(q_claim(x, "qn3", "", 0, 3 + anon), SG_CLAIM_QUOTA);
	CHECK_INT(q_claim(x, "qn3", "", 0, 0), SG_CLAIM_OWNER);
	/* a release gives its room back */
	CHECK_INT(sq_release_sync(y, "qa2"), SG_OK);
	CHECK_INT(q_claim(x, "qa4", "a", 1, 3), SG_CLAIM_OWNER);
	CHECK_INT(q_claim(y, "qa5", "a", 1, 3), SG_CLAIM_QUOTA);
	/* e reaches its cap with claims only; one is completed then: its expiry gives room back
	 * (a count made when no outcome was kept must not hold until a restart) */
	CHECK_INT(q_claim(x, "qe1", "e", 3, 2), SG_CLAIM_OWNER);
	CHECK_INT(q_claim(x, "qe2", "e", 3, 2), SG_CLAIM_OWNER);
	CHECK_INT(q_claim(x, "qe3", "e", 3, 2), SG_CLAIM_QUOTA);
	CHECK_INT(sq_complete_sync(x, "qe1", &done, ttl), SG_OK);
	CHECK_INT(q_claim(x, "qe3", "e", 3, 2), SG_CLAIM_QUOTA);
	/* and so does expiry: qa1's and qe1's outcomes are gone after their ttl */
	pass(ttl + 50);
	CHECK_INT(q_claim(x, "qe1", "e", 3, 2), SG_CLAIM_OWNER); /* expired: a new key */
	CHECK_INT(q_claim(x, "qe3", "e", 3, 2), claims_expire ? SG_CLAIM_OWNER : SG_CLAIM_QUOTA);
	CHECK_INT(q_claim(y, "qa5", "a", 1, 3), SG_CLAIM_OWNER);
	/* qa3 and qa4 still run (on Redis every key, claimed or kept, expires after its ttl) */
	CHECK_INT(q_claim(x, "qa6", "a", 1, 3), claims_expire ? SG_CLAIM_OWNER : SG_CLAIM_QUOTA);
	const char *mine[] = {"qa3", "qa4", "qa5", "qb0", "qb1", "qb2", "qn0",
	                      "qn1", "qn2", "qn3", "qe1", "qe2", "qe3"};
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		sq_release_sync(strncmp(mine[i], "qa5", 3) == 0 || mine[i][1] == 'b' ? y : x,
		                mine[i]);
}

static void
pass_fake(int64_t ms)
{
	now_ms += ms;
	wall += ms;
}

static void
pass_real(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* The quotas on each backend; on SQLite also across a restart, over a file of the old schema,
 * and against a flood of distinct keys. */
static void
test_quotas(void)
{
	sg_store *m = sg_store_memory_new(1000, 4, fake_clock);
	CHECK(m != NULL);
	if (m != NULL)
		quota_case("memory", m, m, pass_fake, 60000, false, 0);
	sg_store_free(m);

	static const uint8_t status[] = {0};
	const sg_flight_outcome kept = {status, 0, (const uint8_t *)"order-k", 7};
	char path[] = "/tmp/shipgate-quota-XXXXXX", db[64], err[256];
	int fd = mkstemp(path);
	close(fd);
	unlink(path);
	snprintf(db, sizeof(db), "%s.db", path);
	/* a file made before the caller column: it gains it, and old rows count for no caller */
	sqlite3 *old = NULL;
	CHECK_INT(sqlite3_open(db, &old), SQLITE_OK);
	CHECK_INT(
	        sqlite3_exec(old,
	                     "CREATE TABLE idem (key TEXT PRIMARY KEY, fp_a INTEGER NOT NULL,"
	                     " fp_b INTEGER NOT NULL, state INTEGER NOT NULL, owner TEXT NOT NULL,"
	                     " lease_until INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
	                     " status BLOB, payload BLOB, has_payload INTEGER NOT NULL DEFAULT 0,"
	                     " first_seen INTEGER NOT NULL, provider TEXT NOT NULL DEFAULT '');"
	                     "INSERT INTO idem VALUES ('old1', 1, 1, 0, 'gone', 0, 0, NULL, NULL,"
	                     " 0, 0, 'bosonline');",
	                     NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(old);
	sg_store *a = sg_store_sqlite_new(db, 100000, fake_wall, err, sizeof(err));
	sg_store *b = sg_store_sqlite_new(db, 100000, fake_wall, err, sizeof(err));
	CHECK(a != NULL && b != NULL);
	if (a != NULL && b != NULL) {
		/* the old row is an unknown key of callers not known: it counts for them */
		CHECK_INT(q_claim(a, "old-n1", "", 0, 1), SG_CLAIM_QUOTA);
		sg_store_free(b); /* (two gateways on one file count apart: one is enough here) */
		b = NULL;
		quota_case("sqlite", a, a, pass_fake, 60000, false, 1);
		/* what a holds survives a restart: two kept outcomes and a claim */
		CHECK_INT(q_claim(a, "keep1", "a", 1, 3), SG_CLAIM_OWNER);
		CHECK_INT(q_claim(a, "keep2", "a", 1, 3), SG_CLAIM_OWNER);
		CHECK_INT(q_claim(a, "keep3", "a", 1, 3), SG_CLAIM_OWNER);
		CHECK_INT(sq_complete_sync(a, "keep1", &kept, 60000), SG_OK);
		CHECK_INT(sq_complete_sync(a, "keep2", &kept, 60000), SG_OK);
		sg_store_free(a);
		a = sg_store_sqlite_new(db, 100000, fake_wall, err, sizeof(err));
		CHECK(a != NULL);
	}
	if (a != NULL) {
		CHECK_INT(q_claim(a, "keep4", "a", 1, 3), SG_CLAIM_QUOTA);
		CHECK_INT(q_claim(a, "keep1", "b", 2, 3), SG_CLAIM_DONE);
		CHECK_INT(q_claim(a, "keep4", "b", 2, 3), SG_CLAIM_OWNER);
		CHECK_INT(q_claim(a, "keep4", "a", 1, 3), SG_CLAIM_BUSY); /* b's, running */
		/* the outcomes expire; keep3's owner is gone (unknown): an operator releases it,
		 * and the store sees that within its recount period */
		pass_fake(60050);
		CHECK_INT(sg_store_sqlite_release_unknown(db, "keep3", wall, err, sizeof(err)), 1);
		/* a flood of distinct keys fills only its sender's share, and stays cheap */
		int owner = 0, quota = 0;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < 10000; i++) {
			char k[32];
			snprintf(k, sizeof(k), "flood-%d", i);
			sg_claim r = q_claim(a, k, "a", 1, 100);
			owner += r == SG_CLAIM_OWNER;
			quota += r == SG_CLAIM_QUOTA;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		CHECK_INT(owner, 100);
		CHECK_INT(quota, 9900);
		CHECK_INT(q_claim(a, "after-flood", "b", 2, 100), SG_CLAIM_OWNER);
		double s =
		        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		fprintf(stderr,
		        "  quotas: 10,000 claims of one caller, 9,900 at its cap, on sqlite: "
		        "%.2f s\n",
		        s);
	}
	sg_store_free(a);
	sg_store_free(b);
	char f[96];
	const char *ext[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s%s", db, ext[i]);
		unlink(f);
	}

	/* Redis: two gateways share each caller's count */
	int port = free_port();
	pid_t rp = redis_start(port);
	CHECK(rp > 0);
	if (rp <= 0)
		return;
	char url[64];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/4", port);
	sg_store *x = sg_store_redis_new(url, 1500, err, sizeof(err)),
	         *y = sg_store_redis_new(url, 1500, err, sizeof(err));
	CHECK(x != NULL && y != NULL);
	if (x != NULL && y != NULL)
		quota_case("redis (two gateways)", x, y, pass_real, 1500, true, 0);
	sg_store_free(x);
	sg_store_free(y);
	redis_stop(rp);
}

/* The operator's view of a SQLite file: an old file gains the provider column; a claim left
 * without an outcome and a kept UNKNOWN outcome are listed; resolve keeps the operator's order
 * as the key's answer, release frees it; known keys are never touched. */
static int n_listed;
static char listed[512];

static void
on_listed(void *arg, const sg_store_unknown *u)
{
	(void)arg;
	n_listed++;
	snprintf(listed + strlen(listed), sizeof(listed) - strlen(listed), "%s/%s/%d;", u->provider,
	         u->key, u->stored);
}

static void
test_sqlite_operator(void)
{
	char db[] = "/tmp/shipgate-op-XXXXXX", err[256];
	int fd = mkstemp(db);
	close(fd);
	/* a file from before the provider column, with a claim whose owner is gone */
	sqlite3 *raw = NULL;
	CHECK_INT(sqlite3_open(db, &raw), SQLITE_OK);
	CHECK_INT(
	        sqlite3_exec(raw,
	                     "CREATE TABLE idem (key TEXT PRIMARY KEY, fp_a INTEGER NOT NULL,"
	                     " fp_b INTEGER NOT NULL, state INTEGER NOT NULL, owner TEXT NOT NULL,"
	                     " lease_until INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
	                     " status BLOB, payload BLOB, has_payload INTEGER NOT NULL DEFAULT 0,"
	                     " first_seen INTEGER NOT NULL);"
	                     "INSERT INTO idem VALUES ('old', 1, 1, 0, 'gone:1:1', 1, 0, NULL,"
	                     " NULL, 0, 1);",
	                     NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(raw);
	sg_store *st = sg_store_sqlite_new(db, 16, fake_wall, err, sizeof(err));
	CHECK(st != NULL);
	if (st == NULL)
		return;
	/* a kept UNKNOWN outcome (Status{code: UNKNOWN, message}), a kept OK one */
	Shipgate__V1__Status unk = SHIPGATE__V1__STATUS__INIT;
	uint8_t ubuf[64];
	unk.code = SHIPGATE__V1__CODE__UNKNOWN;
	unk.message = "provider did not answer";
	size_t ulen = shipgate__v1__status__pack(&unk, ubuf);
	const sg_flight_outcome unknown = {ubuf, ulen, NULL, 0};
	static const uint8_t ok[] = {0};
	const sg_flight_outcome done = {ok, 0, (const uint8_t *)"x", 1};
	CHECK_INT(sq_claim_sync(st, "u", 1, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_complete_sync(st, "u", &unknown, 60000), SG_OK);
	CHECK_INT(sq_claim_sync(st, "k", 2, 1000), SG_CLAIM_OWNER);
	CHECK_INT(sq_complete_sync(st, "k", &done, 60000), SG_OK);
	CHECK_INT(sq_claim_sync(st, "live", 3, 60000), SG_CLAIM_OWNER); /* its lease runs */
	int64_t now = fake_wall();
	CHECK_INT(sg_store_sqlite_unknown(db, now, on_listed, NULL, err, sizeof(err)), 2);
	CHECK_STR(listed, "/old/0;bosonline/u/1;");
	char why[300];
	CHECK(sg_store_status_unknown(ubuf, ulen, why, sizeof(why)));
	CHECK_STR(why, "provider did not answer");
	CHECK(!sg_store_status_unknown(ok, 0, why, sizeof(why)));
	CHECK(!sg_store_status_unknown((const uint8_t *)"\xff\xff", 2, why, sizeof(why)));
	/* resolve: only unknown keys */
	Shipgate__V1__CreateOrderResponse cr = SHIPGATE__V1__CREATE_ORDER_RESPONSE__INIT;
	cr.message = "found";
	uint8_t cbuf[64];
	size_t clen = shipgate__v1__create_order_response__pack(&cr, cbuf);
	CHECK_INT(sg_store_sqlite_resolve(db, "k", cbuf, clen, 60000, now, err, sizeof(err)), 0);
	CHECK_INT(sg_store_sqlite_resolve(db, "live", cbuf, clen, 60000, now, err, sizeof(err)), 0);
	CHECK_INT(sg_store_sqlite_resolve(db, "nope", cbuf, clen, 60000, now, err, sizeof(err)), 0);
	CHECK_INT(sg_store_sqlite_resolve(db, "u", cbuf, clen, 60000, now, err, sizeof(err)), 1);
	CHECK_INT(sq_claim_sync(st, "u", 1, 1000), SG_CLAIM_DONE);
	CHECK_STR(W.s.payload, "\x3a\x05"
	                       "found"); /* the packed response: field 7, 5 bytes */
	CHECK_INT(sg_store_sqlite_release_unknown(db, "old", now, err, sizeof(err)), 1);
	CHECK_INT(sq_claim_sync(st, "old", 1, 1000), SG_CLAIM_OWNER);
	n_listed = 0;
	listed[0] = '\0';
	CHECK_INT(sg_store_sqlite_unknown(db, now, on_listed, NULL, err, sizeof(err)), 0);
	sg_store_free(st);
	/* a file that is not a store: a clear error */
	CHECK_INT(sg_store_sqlite_unknown("/nonexistent/x.db", now, on_listed, NULL, err,
	                                  sizeof(err)),
	          -1);
	CHECK(strstr(err, "/nonexistent/x.db") != NULL);
	char f[64];
	unlink(db);
	snprintf(f, sizeof(f), "%s-wal", db);
	unlink(f);
	snprintf(f, sizeof(f), "%s-shm", db);
	unlink(f);
}

int
main(void)
{
	test_sqlite();
	test_sqlite_operator();
	test_redis();
	test_sqlite_burst();
	test_quotas();
	sg_store *st = sg_store_memory_new(3, 1, fake_clock);
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
	sg_store_claim(st, "k1", f1, "bosonline", NULL, 1000, on_claim, &c);
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
