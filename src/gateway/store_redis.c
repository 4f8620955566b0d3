/*
 * store_redis.c - the idempotency store in Redis, shared by a fleet of gateways.
 *
 * Each key is a hash `shipgate:idem:<key>`: st ("p" in progress, "c" completed), the request's
 * fingerprint, the owner's id, the lease's end, and once completed the outcome's bytes. Claim,
 * complete and release are Lua scripts, so each read-then-write is atomic in Redis, and every
 * time is Redis's own (TIME), one clock for the whole fleet:
 *   claim     a missing key becomes the caller's (st p, lease = now + lease_ms); a completed key
 *             answers its outcome; a key in progress answers busy while its lease runs, then
 *             unknown; another fingerprint is a conflict;
 *   complete  only the owner's claim (compare-and-set on owner and st): a lease is not a fence
 *             by itself, so the owner checks it still holds the key before storing;
 *   release   the same check, then the key is deleted.
 * Keys expire after idempotency.ttl_ms whatever their state, so a fleet's Redis stays bounded.
 *
 * A claim that finds the key busy at another gateway waits for that owner's outcome, polling
 * every 25 ms, until the claim's own lease (the caller's deadline) is spent: it never sends a
 * second POST. One thread owns the connection (hiredis 0.14, synchronous, with a timeout):
 * every operation is queued to it and answered from there. When Redis cannot be reached the
 * operations fail (fail closed: CreateOrder is refused; lookups do not use this store), and the
 * next operation connects again.
 */
#include "gateway/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "gateway/redis_conn.h"
#include "gateway/store_worker.h"

#define POLL_MS    25   /* how often a busy key is looked at again */
#define TIMEOUT_MS 1000 /* connect and command timeout */
#define KEY_PREFIX "shipgate:idem:"
/* A caller's live keys, for its quota (see claim_lua): QUOTA_PREFIX + its name, or + "-" */
#define QUOTA_PREFIX "shipgate:idemq:"

/*
 * The callers' quotas: each key is counted for the caller that claimed it, in a sorted set of
 * that caller's (KEYS[2], QUOTA_PREFIX + the caller's name, "-" for callers that are not known)
 * whose members are key names scored by when each stops being live (Redis ms: the hash's own
 * expiry, moved by complete and resolve). The hash keeps the set's name ('q'), so that
 * complete, resolve and release (which do not know the caller) find it. A claim of a new key
 * drops the set's expired members and, when ARGV[7] (the caller's cap) is not 0 and the set
 * holds that many, answers quota; an existing key is answered as before whoever asks. The set
 * itself expires once its last member would (set_ttl: never earlier than it was).
 */
#define SET_TTL_LUA                                                                                \
	"local function set_ttl(q, ms)\n"                                                          \
	"  if redis.call('PTTL', q) < tonumber(ms) then redis.call('PEXPIRE', q, ms) end\n"        \
	"end\n"

static const char claim_lua[] = SET_TTL_LUA
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "local h = redis.call('HMGET', KEYS[1], 'st', 'fa', 'fb', 'lease', 'status', 'payload',"
        " 'hp')\n"
        "if not h[1] then\n"
        "  if tonumber(ARGV[7]) > 0 then\n"
        "    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
        "    if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return {'quota'} end\n"
        "  end\n"
        "  redis.call('HSET', KEYS[1], 'st', 'p', 'fa', ARGV[1], 'fb', ARGV[2], 'owner', ARGV[3],"
        " 'lease', now + tonumber(ARGV[4]), 'first', now, 'prov', ARGV[6], 'q', KEYS[2])\n"
        "  redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
        "  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), KEYS[1])\n"
        "  set_ttl(KEYS[2], ARGV[5])\n"
        "  return {'owner'}\n"
        "end\n"
        "if h[2] ~= ARGV[1] or h[3] ~= ARGV[2] then return {'conflict'} end\n"
        "if h[1] == 'c' then return {'done', h[5] or '', h[6] or '', h[7] or '0'} end\n"
        "if tonumber(h[4]) > now then return {'busy'} end\n"
        "return {'unknown'}\n";

/* (the key's member of its caller's set is live as long as the key: its score moves with the
 * key's expiry) */
static const char complete_lua[] = SET_TTL_LUA
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or"
        " redis.call('HGET', KEYS[1], 'st') ~= 'p' then return 0 end\n"
        "redis.call('HSET', KEYS[1], 'st', 'c', 'status', ARGV[2], 'payload', ARGV[3], 'hp',"
        " ARGV[4])\n"
        "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
        "local q = redis.call('HGET', KEYS[1], 'q')\n"
        "if q then\n"
        "  local t = redis.call('TIME')\n"
        "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "  redis.call('ZADD', q, 'XX', now + tonumber(ARGV[5]), KEYS[1])\n"
        "  set_ttl(q, ARGV[5])\n"
        "end\n"
        "return 1\n";

/* The operator's resolve: ARGV[1] "release" deletes the key, else ARGV[2] becomes its OK
 * outcome (the packed response) for ARGV[3] ms. Only an unknown key: in progress past its
 * lease, or completed with an UNKNOWN status (protobuf-c writes field 1, the code, first:
 * 0x08 0x02). */
static const char resolve_lua[] = SET_TTL_LUA
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "local h = redis.call('HMGET', KEYS[1], 'st', 'lease', 'status')\n"
        "if not h[1] then return 0 end\n"
        "local unk = (h[1] == 'p' and tonumber(h[2]) <= now) or"
        " (h[1] == 'c' and string.sub(h[3] or '', 1, 2) == '\\8\\2')\n"
        "if not unk then return 0 end\n"
        "local q = redis.call('HGET', KEYS[1], 'q')\n"
        "if ARGV[1] == 'release' then\n"
        "  if q then redis.call('ZREM', q, KEYS[1]) end\n"
        "  redis.call('DEL', KEYS[1]) return 1\n"
        "end\n"
        "redis.call('HSET', KEYS[1], 'st', 'c', 'status', '', 'payload', ARGV[2], 'hp', '1',"
        " 'owner', 'operator')\n"
        "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
        "if q then\n"
        "  redis.call('ZADD', q, 'XX', now + tonumber(ARGV[3]), KEYS[1])\n"
        "  set_ttl(q, ARGV[3])\n"
        "end\n"
        "return 1\n";

static const char release_lua[] = "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or"
                                  " redis.call('HGET', KEYS[1], 'st') ~= 'p' then return 0 end\n"
                                  "local q = redis.call('HGET', KEYS[1], 'q')\n"
                                  "if q then redis.call('ZREM', q, KEYS[1]) end\n"
                                  "redis.call('DEL', KEYS[1])\n"
                                  "return 1\n";

struct rd {
	sg_redis_addr addr;   /* Redis */
	int64_t ttl_ms;       /* keys expire after this */
	char owner[96];       /* this process's claims */
	redisContext *c;      /* the connection (the worker's thread only), or NULL */
	sg_store_op *busy;    /* claims waiting for another owner's outcome (thread only) */
	atomic_bool draining; /* a drain began: busy claims answer BUSY at their next look */
	sg_store_worker w;    /* the thread and its queue */
};

/* A live connection, or NULL (connecting again on every call until Redis is back). */
static redisContext *
rd_conn(struct rd *r)
{
	return sg_redis_conn(&r->c, &r->addr, TIMEOUT_MS);
}

/* Appends op's script to c's output buffer (pipelined; nothing is sent yet). */
static void
rd_append(struct rd *r, redisContext *c, sg_store_op *op)
{
	char fa[24], fb[24], lease[24], ttl[24], max[24];

	snprintf(ttl, sizeof(ttl), "%lld", (long long)r->ttl_ms);
	switch (op->kind) {
	case SG_OP_CLAIM:
		snprintf(fa, sizeof(fa), "%llu", (unsigned long long)op->fp.a);
		snprintf(fb, sizeof(fb), "%llu", (unsigned long long)op->fp.b);
		snprintf(lease, sizeof(lease), "%lld", (long long)(op->ms > 0 ? op->ms : 1));
		snprintf(max, sizeof(max), "%zu", op->max_keys);
		/* KEYS[2], its caller's set: the prefix and the name make one argument */
		redisAppendCommand(c, "EVAL %s 2 %s " QUOTA_PREFIX "%s %s %s %s %s %s %s %s",
		                   claim_lua, op->key, op->caller[0] ? op->caller : "-", fa, fb,
		                   r->owner, lease, ttl, op->provider[0] ? op->provider : "-", max);
		break;
	case SG_OP_COMPLETE:
		redisAppendCommand(c, "EVAL %s 1 %s %s %b %b %s %s", complete_lua, op->key,
		                   r->owner, op->status, op->status_len,
		                   op->payload ? op->payload : (const uint8_t *)"", op->payload_len,
		                   op->payload ? "1" : "0", ttl);
		break;
	case SG_OP_RELEASE:
		redisAppendCommand(c, "EVAL %s 1 %s %s", release_lua, op->key, r->owner);
		break;
	}
}

/* A claim's reply: its answer, and for DONE the outcome pointing into rep. */
static sg_claim
claim_result(const redisReply *rep, sg_flight_outcome *o)
{
	if (rep->type == REDIS_REPLY_ERROR) /* maxmemory reached: full, not unreachable */
		return strncmp(rep->str, "OOM", 3) == 0 ? SG_CLAIM_FULL : SG_CLAIM_ERROR;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return SG_CLAIM_ERROR;
	const char *what = rep->element[0]->str;
	if (strcmp(what, "owner") == 0)
		return SG_CLAIM_OWNER;
	if (strcmp(what, "conflict") == 0)
		return SG_CLAIM_CONFLICT;
	if (strcmp(what, "busy") == 0)
		return SG_CLAIM_BUSY;
	if (strcmp(what, "unknown") == 0)
		return SG_CLAIM_UNKNOWN;
	if (strcmp(what, "quota") == 0)
		return SG_CLAIM_QUOTA;
	if (strcmp(what, "done") != 0 || rep->elements != 4)
		return SG_CLAIM_ERROR;
	o->status = (const uint8_t *)rep->element[1]->str;
	o->status_len = rep->element[1]->len;
	bool hp = rep->element[3]->len == 1 && rep->element[3]->str[0] == '1';
	o->payload = hp ? (const uint8_t *)rep->element[2]->str : NULL;
	o->payload_len = hp ? rep->element[2]->len : 0;
	return SG_CLAIM_DONE;
}

/* Answers op from rep (NULL: Redis failed); a busy claim with time left goes on the busy list
 * instead. Frees op unless it waits. */
static void
rd_answer(struct rd *r, sg_store_op *op, const redisReply *rep)
{
	if (op->kind != SG_OP_CLAIM) {
		sg_err err = rep == NULL                        ? SG_ESTORE
		             : rep->type != REDIS_REPLY_INTEGER ? SG_ESTORE
		             : rep->integer == 1                ? SG_OK
		                                                : SG_EINTERNAL; /* not its claim */
		sg_store_op_done(op, SG_CLAIM_ERROR, NULL, err);
		return;
	}
	sg_flight_outcome o = {NULL, 0, NULL, 0};
	sg_claim res = rep != NULL ? claim_result(rep, &o) : SG_CLAIM_ERROR;
	int64_t now = sg_now_ms();
	if (res == SG_CLAIM_BUSY && now + POLL_MS < op->until && !atomic_load(&r->draining)) {
		op->next_at = now + POLL_MS; /* another gateway holds it: wait for its outcome */
		op->next = r->busy;
		r->busy = op;
		return;
	}
	sg_store_op_done(op, res, &o, SG_OK);
}

/*
 * Runs a batch (a list by next) pipelined: every script appended, then every reply read, so
 * that the operations queued meanwhile share round trips. A connection that broke since its
 * last use (Redis restarted) is replaced and what was not answered sent once more: a claim
 * that did reach Redis before the break finds its own claim the second time (busy, never a
 * second owner), and a repeated complete or release is a no-op.
 */
static void
rd_batch(struct rd *r, sg_store_op *batch)
{
	for (int attempt = 0; batch != NULL && attempt < 2; attempt++) {
		redisContext *c = rd_conn(r);
		if (c == NULL)
			break;
		for (sg_store_op *op = batch; op != NULL; op = op->next)
			rd_append(r, c, op);
		while (batch != NULL) {
			redisReply *rep = NULL;
			if (redisGetReply(c, (void **)&rep) != REDIS_OK || rep == NULL)
				break; /* the connection broke: the rest once more, on a new one */
			sg_store_op *op = batch;
			batch = op->next;
			rd_answer(r, op, rep);
			freeReplyObject(rep);
		}
	}
	while (batch != NULL) { /* Redis cannot be reached: fail closed */
		sg_store_op *op = batch;
		batch = op->next;
		rd_answer(r, op, NULL);
	}
}

/* The worker's run: the new operations and the busy claims that are due, as one batch; when
 * stopping, the busy claims are answered busy. */
static void
rd_run(void *impl, sg_store_op *batch, bool stopping)
{
	struct rd *r = impl;
	int64_t now = sg_now_ms();
	sg_store_op *b = r->busy, **tail = &batch;

	r->busy = NULL;
	while (*tail != NULL)
		tail = &(*tail)->next;
	while (b != NULL) {
		sg_store_op *op = b;
		b = op->next;
		op->next = NULL;
		if (stopping || atomic_load(&r->draining)) { /* within POLL_MS of the drain */
			sg_store_op_done(op, SG_CLAIM_BUSY, NULL, SG_OK);
		} else if (op->next_at > now) {
			op->next = r->busy; /* not yet */
			r->busy = op;
		} else {
			*tail = op;
			tail = &op->next;
		}
	}
	rd_batch(r, batch);
}

/* The worker's due: when the first busy claim is to be looked at again, or -1. */
static int64_t
rd_due(void *impl)
{
	struct rd *r = impl;
	int64_t due = -1;
	for (sg_store_op *b = r->busy; b != NULL; b = b->next)
		if (due < 0 || b->next_at < due)
			due = b->next_at;
	return due;
}

static void
rd_claim_op(void *impl, const char *key, sg_flight_fp fp, const char *provider,
            const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb, void *arg)
{
	sg_store_worker_claim(&((struct rd *)impl)->w, key, fp, provider, quota, lease_ms, cb, arg);
}

static void
rd_complete_op(void *impl, const char *key, const sg_flight_outcome *o, int64_t ttl_ms,
               sg_store_done_cb cb, void *arg)
{
	sg_store_worker_complete(&((struct rd *)impl)->w, key, o, ttl_ms, cb, arg);
}

static void
rd_release_op(void *impl, const char *key, sg_store_done_cb cb, void *arg)
{
	sg_store_worker_release(&((struct rd *)impl)->w, key, cb, arg);
}

static void
rd_free(void *impl)
{
	struct rd *r = impl;

	sg_store_worker_stop(&r->w); /* answers what is queued, and the busy claims */
	redisFree(r->c);
	free(r);
}

static void
rd_drain(void *impl)
{
	atomic_store(&((struct rd *)impl)->draining, true);
}

static const sg_store_ops redis_ops = {
        .name = "redis",
        .scope = "fleet",
        .claim = rd_claim_op,
        .complete = rd_complete_op,
        .release = rd_release_op,
        .free = rd_free,
        .drain = rd_drain,
};

sg_store *
sg_store_redis_new(const char *url, int64_t ttl_ms, char *err, size_t errlen)
{
	struct rd *r = calloc(1, sizeof(*r));
	sg_store *s = malloc(sizeof(*s));

	if (r == NULL || s == NULL) {
		snprintf(err, errlen, "idempotency store redis: out of memory");
		goto fail;
	}
	if (sg_redis_parse_url(&r->addr, "idempotency.redis_url", url, err, errlen) != 0)
		goto fail;
	r->ttl_ms = ttl_ms > 0 ? ttl_ms : 86400000;
	atomic_init(&r->draining, false);
	sg_redis_owner_id(r->owner, sizeof(r->owner), r);
	r->w.prefix = KEY_PREFIX;
	r->w.run = rd_run;
	r->w.due = rd_due;
	r->w.impl = r;
	if (sg_store_worker_start(&r->w) != 0) {
		snprintf(err, errlen, "idempotency store redis: cannot start its thread");
		goto fail;
	}
	s->ops = &redis_ops;
	s->impl = r;
	s->fleet_id = NULL;
	return s;
fail:
	free(r);
	free(s);
	return NULL;
}

/* ------------------------------------------------------------------ the operator's view */

/* A connection for an operator's command, or NULL with err. */
static redisContext *
op_connect(struct rd *r, const char *url, char *err, size_t errlen)
{
	if (sg_redis_parse_url(&r->addr, "idempotency.redis_url", url, err, errlen) != 0)
		return NULL;
	redisContext *c = rd_conn(r);
	if (c == NULL)
		snprintf(err, errlen, "redis %s:%d: cannot connect", r->addr.host, r->addr.port);
	return c;
}

static const char *
field(const redisReply *h, size_t i)
{
	return h->element[i]->type == REDIS_REPLY_STRING ? h->element[i]->str : "";
}

int
sg_store_redis_unknown(const char *url, void (*fn)(void *arg, const sg_store_unknown *u), void *arg,
                       char *err, size_t errlen)
{
	struct rd r = {0};
	redisContext *c = op_connect(&r, url, err, errlen);
	redisReply *t, *sc = NULL;
	char cursor[32] = "0";
	int n = 0;

	if (c == NULL)
		return -1;
	if ((t = redisCommand(c, "TIME")) == NULL || t->type != REDIS_REPLY_ARRAY ||
	    t->elements != 2) {
		snprintf(err, errlen, "redis %s:%d: TIME failed", r.addr.host, r.addr.port);
		freeReplyObject(t);
		redisFree(c);
		return -1;
	}
	int64_t now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
	freeReplyObject(t);
	do {
		sc = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, KEY_PREFIX);
		if (sc == NULL || sc->type != REDIS_REPLY_ARRAY || sc->elements != 2) {
			snprintf(err, errlen, "redis %s:%d: SCAN failed", r.addr.host, r.addr.port);
			n = -1;
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", sc->element[0]->str);
		const redisReply *keys = sc->element[1];
		for (size_t i = 0; i < keys->elements; i++)
			redisAppendCommand(c, "HMGET %s st fa fb owner first lease prov status",
			                   keys->element[i]->str);
		for (size_t i = 0; i < keys->elements && n >= 0; i++) {
			redisReply *h = NULL;
			if (redisGetReply(c, (void **)&h) != REDIS_OK || h == NULL ||
			    h->type != REDIS_REPLY_ARRAY || h->elements != 8) {
				snprintf(err, errlen, "redis %s:%d: HMGET failed", r.addr.host,
				         r.addr.port);
				freeReplyObject(h);
				n = -1;
				break;
			}
			char why[300] = "the gateway stopped before the call ended";
			bool p = strcmp(field(h, 0), "p") == 0,
			     stored = strcmp(field(h, 0), "c") == 0;
			bool unknown = (p && atoll(field(h, 5)) <= now) ||
			               (stored && sg_store_status_unknown(
			                                  (const uint8_t *)field(h, 7),
			                                  h->element[7]->type == REDIS_REPLY_STRING
			                                          ? h->element[7]->len
			                                          : 0,
			                                  why, sizeof(why)));
			if (unknown) {
				const char *prov = field(h, 6);
				sg_store_unknown u = {
				        .key = keys->element[i]->str + strlen(KEY_PREFIX),
				        .provider = strcmp(prov, "-") == 0 ? "" : prov,
				        .stored = stored,
				        .why = why,
				        .fp_a = strtoull(field(h, 1), NULL, 10),
				        .fp_b = strtoull(field(h, 2), NULL, 10),
				        .owner = field(h, 3),
				        .first_seen_ms = atoll(field(h, 4)),
				        .lease_until_ms = atoll(field(h, 5)),
				};
				fn(arg, &u);
				n++;
			}
			freeReplyObject(h);
		}
		freeReplyObject(sc);
		sc = NULL;
	} while (n >= 0 && strcmp(cursor, "0") != 0);
	freeReplyObject(sc);
	redisFree(c);
	return n;
}

int
sg_store_redis_resolve(const char *url, const char *key, const uint8_t *payload, size_t payload_len,
                       int64_t ttl_ms, char *err, size_t errlen)
{
	struct rd r = {0};
	redisContext *c = op_connect(&r, url, err, errlen);
	char ttl[24];
	int n = -1;

	if (c == NULL)
		return -1;
	snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 86400000));
	redisReply *rep =
	        redisCommand(c, "EVAL %s 1 %s%s %s %b %s", resolve_lua, KEY_PREFIX, key,
	                     payload != NULL ? "resolve" : "release",
	                     payload != NULL ? payload : (const uint8_t *)"", payload_len, ttl);
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
		n = (int)rep->integer;
	else
		snprintf(err, errlen, "redis %s:%d: %s", r.addr.host, r.addr.port,
		         rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str : "EVAL failed");
	freeReplyObject(rep);
	redisFree(c);
	return n;
}
