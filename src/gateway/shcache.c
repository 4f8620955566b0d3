/*
 * shcache.c - the fleet's lookup cache in Redis (see shcache.h).
 *
 * An answer is a hash `<prefix><key>`: at (when it was put, Redis ms), status, payload and hp
 * (payload present). Its lock is a string `<prefix>lock:<key>` holding the owner's id, with a
 * PX of the fetch's time. get and put are Lua scripts, so that "read, then lock when it is not
 * fresh" and "write, then unlock if ours" are each one atomic step on Redis's clock.
 *
 * Queue, batch, answer: the thread takes everything queued, pipelines it (one write, one read
 * per reply), answers each, and puts the gets that wait for another gateway back on its own
 * list to look again 25 ms later. A failure to reach Redis answers the batch ERROR and keeps
 * Redis out for a second (every get answered ERROR at once meanwhile), so that an unreachable
 * Redis costs lookups nothing but the first timeout.
 */
#include "gateway/shcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "gateway/redis_conn.h"

#define POLL_MS 25   /* how often a get waiting for another gateway looks again */
#define DOWN_MS 1000 /* how long Redis is left alone after a failure */

/* KEYS: answer, lock. ARGV: ttl_ms, owner, lock_ms. An entry whose `at` is not a number is
 * dropped (as if missing) rather than failing every lookup of the key. A lock already this
 * process's (a get sent again after a broken connection) is taken: a process fetches a key
 * once at a time (its own cache coalesces). */
static const char get_lua[] =
        "local function lock()\n"
        "  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return true end\n"
        "  return redis.call('GET', KEYS[2]) == ARGV[2]\n"
        "end\n"
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "local h = redis.call('HMGET', KEYS[1], 'at', 'status', 'payload', 'hp')\n"
        "local at = tonumber(h[1])\n"
        "if h[1] and not at then redis.call('DEL', KEYS[1]) end\n"
        "if at then\n"
        "  local age = now - at\n"
        "  if age < 0 then age = 0 end\n"
        "  local s, p, hp = h[2] or '', h[3] or '', h[4] or '0'\n"
        "  if age < tonumber(ARGV[1]) then return {'fresh', age, s, p, hp} end\n"
        "  if lock() then return {'stale+', age, s, p, hp} end\n"
        "  return {'stale', age, s, p, hp}\n"
        "end\n"
        "if lock() then return {'miss'} end\n"
        "return {'busy'}\n";

/* KEYS: answer, lock. ARGV: status, payload, hp, expire_ms, owner. */
static const char put_lua[] =
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "redis.call('HSET', KEYS[1], 'at', now, 'status', ARGV[1], 'payload', ARGV[2], 'hp',"
        " ARGV[3])\n"
        "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
        "if redis.call('GET', KEYS[2]) == ARGV[5] then redis.call('DEL', KEYS[2]) end\n"
        "return 1\n";

/* KEYS: lock. ARGV: owner. */
static const char unlock_lua[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
        "return 1\n";

typedef enum op_kind { OP_GET, OP_PUT, OP_UNLOCK } op_kind;

/* One queued operation: the keys and the outcome's bytes are copied after it (one malloc). */
struct op {
	struct op *next;
	op_kind kind;
	const char *key;  /* the answer's Redis key */
	const char *lock; /* the lock's Redis key */
	int64_t ttl_ms;   /* get: freshness */
	int64_t lock_ms;  /* get: the lock's PX */
	int64_t until;    /* get with wait: when to stop looking; 0: no wait */
	int64_t next_at;  /* a waiting get: when to look again */
	int64_t expire_ms;
	const uint8_t *status, *payload; /* put */
	size_t status_len, payload_len;
	bool has_payload;
	sg_shc_cb cb; /* get */
	void *arg;
	uint8_t *extra; /* the bytes asked for after the keys */
};

struct sg_shcache {
	sg_shcache_conf conf;
	sg_redis_addr addr;
	char owner[96];
	size_t plen;          /* strlen(conf.prefix) */
	redisContext *c;      /* the thread's connection, or NULL */
	int64_t down_until;   /* the thread's: Redis is left alone until then */
	struct op *waiting;   /* the thread's: gets waiting for another gateway */
	atomic_bool up;       /* the last attempt worked */
	atomic_bool draining; /* waiting gets are answered BUSY */
	pthread_t thr;
	pthread_mutex_t mtx; /* guards the queue, n, stop */
	pthread_cond_t cv;
	struct op *head, **tail;
	size_t n; /* queued */
	bool stop;
};

static void
answer(struct op *op, sg_shc_res res, bool locked, const sg_flight_outcome *o, int64_t age)
{
	if (op->kind == OP_GET)
		op->cb(op->arg, res, locked, o, age);
	free(op);
}

/* Queues op, or answers it ERROR (frees it) when the queue is full or stopping. */
static void
enqueue(sg_shcache *s, struct op *op)
{
	pthread_mutex_lock(&s->mtx);
	if (s->stop || s->n >= s->conf.max_queued) {
		pthread_mutex_unlock(&s->mtx);
		answer(op, SG_SHC_ERROR, false, NULL, 0);
		return;
	}
	op->next = NULL;
	*s->tail = op;
	s->tail = &op->next;
	s->n++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
}

/* A new op for key with extra bytes after it; NULL when out of memory. */
static struct op *
op_new(sg_shcache *s, op_kind kind, const char *key, size_t extra)
{
	size_t kl = strlen(key), need = s->plen + kl + 1 + s->plen + 5 + kl + 1;
	struct op *op = calloc(1, sizeof(*op) + need + extra);
	if (op == NULL)
		return NULL;
	char *k = (char *)(op + 1), *l = k + s->plen + kl + 1;
	snprintf(k, s->plen + kl + 1, "%s%s", s->conf.prefix, key);
	snprintf(l, s->plen + 5 + kl + 1, "%slock:%s", s->conf.prefix, key);
	op->kind = kind;
	op->key = k;
	op->lock = l;
	op->extra = (uint8_t *)k + need;
	return op;
}

void
sg_shcache_get(sg_shcache *s, const char *key, int64_t ttl_ms, int64_t lock_ms, bool wait,
               int64_t until_ms, sg_shc_cb cb, void *arg)
{
	struct op *op = op_new(s, OP_GET, key, 0);
	if (op == NULL) {
		cb(arg, SG_SHC_ERROR, false, NULL, 0);
		return;
	}
	op->ttl_ms = ttl_ms > 0 ? ttl_ms : 1;
	op->lock_ms = lock_ms > 0 ? lock_ms : 1;
	op->until = wait ? until_ms : 0;
	op->cb = cb;
	op->arg = arg;
	enqueue(s, op);
}

void
sg_shcache_put(sg_shcache *s, const char *key, const sg_flight_outcome *o, int64_t expire_ms)
{
	size_t n = o->status_len + o->payload_len;
	if (n > s->conf.max_value) {
		sg_shcache_unlock(s, key);
		return;
	}
	struct op *op = op_new(s, OP_PUT, key, n);
	if (op == NULL)
		return; /* the lock runs out by itself */
	uint8_t *b = op->extra;
	memcpy(b, o->status, o->status_len);
	if (o->payload_len)
		memcpy(b + o->status_len, o->payload, o->payload_len);
	op->status = b;
	op->status_len = o->status_len;
	op->payload = b + o->status_len;
	op->payload_len = o->payload_len;
	op->has_payload = o->payload != NULL;
	op->expire_ms = expire_ms > 0 ? expire_ms : 1;
	enqueue(s, op);
}

void
sg_shcache_unlock(sg_shcache *s, const char *key)
{
	struct op *op = op_new(s, OP_UNLOCK, key, 0);
	if (op != NULL)
		enqueue(s, op);
}

void
sg_shcache_drain(sg_shcache *s)
{
	atomic_store(&s->draining, true);
	pthread_mutex_lock(&s->mtx);
	pthread_cond_signal(&s->cv); /* the waiting gets are answered on the next round */
	pthread_mutex_unlock(&s->mtx);
}

bool
sg_shcache_up(sg_shcache *s)
{
	return atomic_load(&s->up);
}

/* ------------------------------------------------------------------ the thread */

static void
append(sg_shcache *s, redisContext *c, const struct op *op)
{
	char a[24], b[24];

	switch (op->kind) {
	case OP_GET:
		snprintf(a, sizeof(a), "%lld", (long long)op->ttl_ms);
		snprintf(b, sizeof(b), "%lld", (long long)op->lock_ms);
		redisAppendCommand(c, "EVAL %s 2 %s %s %s %s %s", get_lua, op->key, op->lock, a,
		                   s->owner, b);
		break;
	case OP_PUT:
		snprintf(a, sizeof(a), "%lld", (long long)op->expire_ms);
		redisAppendCommand(c, "EVAL %s 2 %s %s %b %b %s %s %s", put_lua, op->key, op->lock,
		                   op->status, op->status_len,
		                   op->payload_len ? op->payload : (const uint8_t *)"",
		                   op->payload_len, op->has_payload ? "1" : "0", a, s->owner);
		break;
	case OP_UNLOCK:
		redisAppendCommand(c, "EVAL %s 1 %s %s", unlock_lua, op->lock, s->owner);
		break;
	}
}

static bool
is_str(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

/* Answers a get from its reply (NULL: Redis failed), or puts it on the waiting list. */
static void
got(sg_shcache *s, struct op *op, const redisReply *rep)
{
	if (op->kind != OP_GET) {
		free(op);
		return;
	}
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    !is_str(rep->element[0])) {
		answer(op, SG_SHC_ERROR, false, NULL, 0);
		return;
	}
	const char *what = rep->element[0]->str;
	if (strcmp(what, "miss") == 0) {
		answer(op, SG_SHC_MISS, true, NULL, 0);
		return;
	}
	if (strcmp(what, "busy") == 0) {
		int64_t now = sg_now_ms();
		if (op->until > now + POLL_MS && !atomic_load(&s->draining)) {
			op->next_at = now + POLL_MS;
			op->next = s->waiting;
			s->waiting = op;
		} else {
			answer(op, SG_SHC_BUSY, false, NULL, 0);
		}
		return;
	}
	if (rep->elements != 5 || rep->element[1]->type != REDIS_REPLY_INTEGER ||
	    !is_str(rep->element[2]) || !is_str(rep->element[3]) || !is_str(rep->element[4])) {
		answer(op, SG_SHC_ERROR, false, NULL, 0);
		return;
	}
	bool hp = rep->element[4]->len == 1 && rep->element[4]->str[0] == '1';
	sg_flight_outcome o = {
	        .status = (const uint8_t *)rep->element[2]->str,
	        .status_len = rep->element[2]->len,
	        .payload = hp ? (const uint8_t *)rep->element[3]->str : NULL,
	        .payload_len = hp ? rep->element[3]->len : 0,
	};
	int64_t age = rep->element[1]->integer;
	if (strcmp(what, "fresh") == 0)
		answer(op, SG_SHC_FRESH, false, &o, age);
	else if (strncmp(what, "stale", 5) == 0)
		answer(op, SG_SHC_STALE, what[5] == '+', &o, age);
	else
		answer(op, SG_SHC_ERROR, false, NULL, 0);
}

/* Records whether Redis answered, logging each change. */
static void
set_up(sg_shcache *s, bool up)
{
	if (atomic_exchange(&s->up, up) != up)
		fprintf(stderr, "shipgated: cache redis %s:%d: %s\n", s->addr.host, s->addr.port,
		        up ? "reachable again; the fleet shares lookups"
		           : "unreachable; lookups go to the providers without the fleet's cache");
}

/*
 * Runs a batch pipelined; on a failure the rest are answered ERROR. A connection that broke
 * since its last use (Redis restarted) is replaced and what was not answered sent once more on
 * the new one: a get whose lock was taken before the break finds the lock its own, and a put or
 * an unlock repeated is the same put or unlock.
 */
static void
run_batch(sg_shcache *s, struct op *batch)
{
	bool tried = false;

	if (batch == NULL)
		return;
	for (int attempt = 0; batch != NULL && attempt < 2 && sg_now_ms() >= s->down_until;
	     attempt++) {
		bool reused = s->c != NULL && s->c->err == 0;
		redisContext *c = sg_redis_conn(&s->c, &s->addr, s->conf.timeout_ms);
		tried = true;
		if (c == NULL)
			break;
		for (struct op *op = batch; op != NULL; op = op->next)
			append(s, c, op);
		while (batch != NULL) {
			redisReply *rep = NULL;
			if (redisGetReply(c, (void **)&rep) != REDIS_OK || rep == NULL)
				break;
			set_up(s, true);
			struct op *op = batch;
			batch = op->next;
			got(s, op, rep->type == REDIS_REPLY_ERROR ? NULL : rep);
			freeReplyObject(rep);
		}
		if (batch != NULL) { /* broken or timed out: never used again */
			redisFree(s->c);
			s->c = NULL;
		}
		if (!reused)
			break; /* a new connection that failed: Redis is down or slow */
	}
	if (batch == NULL)
		return;
	if (tried) /* (answers while it is left alone do not push the next attempt back) */
		s->down_until = sg_now_ms() + DOWN_MS;
	set_up(s, false);
	while (batch != NULL) {
		struct op *op = batch;
		batch = op->next;
		got(s, op, NULL);
	}
}

static void *
shc_main(void *arg)
{
	sg_shcache *s = arg;

	pthread_mutex_lock(&s->mtx);
	for (;;) {
		int64_t due = -1;
		for (struct op *w = s->waiting; w != NULL; w = w->next)
			if (due < 0 || w->next_at < due)
				due = w->next_at;
		bool drain = atomic_load(&s->draining) && s->waiting != NULL;
		if (s->head == NULL && !s->stop && !drain) {
			if (due < 0)
				pthread_cond_wait(&s->cv, &s->mtx);
			else
				sg_cond_wait_until(&s->cv, &s->mtx, due);
			if (s->head == NULL && !s->stop && !atomic_load(&s->draining) &&
			    (due < 0 || sg_now_ms() < due))
				continue;
		}
		struct op *batch = s->head, **tail = &batch;
		bool stop = s->stop;
		s->head = NULL;
		s->tail = &s->head;
		s->n = 0;
		pthread_mutex_unlock(&s->mtx);

		/* the waiting gets that are due join the batch; draining or stopping, all are
		 * answered BUSY */
		while (*tail != NULL)
			tail = &(*tail)->next;
		struct op *w = s->waiting;
		int64_t now = sg_now_ms();
		s->waiting = NULL;
		while (w != NULL) {
			struct op *op = w;
			w = op->next;
			op->next = NULL;
			if (stop || atomic_load(&s->draining)) {
				answer(op, SG_SHC_BUSY, false, NULL, 0);
			} else if (op->next_at > now) {
				op->next = s->waiting;
				s->waiting = op;
			} else {
				*tail = op;
				tail = &op->next;
			}
		}
		run_batch(s, batch);

		pthread_mutex_lock(&s->mtx);
		if (stop && s->head == NULL) {
			/* gets answered from a callback may have waited again: answer them too */
			while ((w = s->waiting) != NULL) {
				s->waiting = w->next;
				pthread_mutex_unlock(&s->mtx);
				answer(w, SG_SHC_BUSY, false, NULL, 0);
				pthread_mutex_lock(&s->mtx);
			}
			if (s->head == NULL)
				break;
		}
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

sg_shcache *
sg_shcache_new(const sg_shcache_conf *conf, char *err, size_t errlen)
{
	sg_shcache *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "cache redis: out of memory");
		return NULL;
	}
	s->conf = *conf;
	if (s->conf.prefix == NULL)
		s->conf.prefix = "shipgate:cache:";
	if (s->conf.timeout_ms <= 0)
		s->conf.timeout_ms = 200;
	if (s->conf.max_queued == 0)
		s->conf.max_queued = 10000;
	s->plen = strlen(s->conf.prefix);
	if (sg_redis_parse_url(&s->addr, "cache.redis_url", conf->url, err, errlen) != 0) {
		free(s);
		return NULL;
	}
	sg_redis_owner_id(s->owner, sizeof(s->owner), s);
	atomic_init(&s->up, true);
	atomic_init(&s->draining, false);
	pthread_mutex_init(&s->mtx, NULL);
	sg_cond_init(&s->cv);
	s->tail = &s->head;
	if (pthread_create(&s->thr, NULL, shc_main, s) != 0) {
		snprintf(err, errlen, "cache redis: cannot start its thread");
		pthread_mutex_destroy(&s->mtx);
		pthread_cond_destroy(&s->cv);
		free(s);
		return NULL;
	}
	return s;
}

void
sg_shcache_free(sg_shcache *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mtx);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	pthread_join(s->thr, NULL);
	redisFree(s->c);
	pthread_mutex_destroy(&s->mtx);
	pthread_cond_destroy(&s->cv);
	free(s);
}
