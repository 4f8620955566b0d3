/*
 * flight.c - chained hash of keys; stored outcomes on one list (LRU order for a cache,
 * insertion order otherwise) from which room is made.
 */
#include "gateway/flight.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/list.h"

struct entry {
	struct entry *hnext; /* hash chain */
	sg_list_node lru;    /* on the stored list while stored (front: most recent) */
	char *key;           /* malloc'd copy */
	uint64_t hash;       /* hash of key */
	sg_flight_fp fp;     /* request fingerprint */
	bool stored;         /* an outcome is stored (and the entry is on the list) */
	bool running;        /* an owner or refresher is out fetching */
	int64_t stored_ms;   /* when the outcome was stored */
	int64_t fresh_until; /* served as a hit before this */
	int64_t stale_until; /* served stale before this, dropped after */
	sg_list waiters;     /* calls waiting for the first outcome (sg_flight_waiter) */
	uint8_t *bytes;      /* stored status then payload, one malloc */
	size_t status_len;   /* bytes of status at bytes[0] */
	size_t payload_len;  /* bytes of payload after it */
	bool has_payload;    /* payload present (may be empty) */
	size_t cost;         /* bytes charged to the table */
	size_t tag;          /* counted for this tag (conf.ntags > 0) */
};

struct sg_flight {
	pthread_mutex_t mtx;    /* guards everything below */
	struct entry **buckets; /* hash buckets */
	size_t nbuckets;        /* power of two */
	size_t count;           /* entries in the table */
	size_t bytes;           /* sum of cost over stored entries */
	sg_flight_conf conf;    /* limits and policy */
	sg_list stored;         /* stored entries: most recently stored or used first, the next
	                           to evict or expire last */
	size_t *tags;           /* keys held per tag (conf.ntags of them), or NULL */
};

/* ------------------------------------------------------------------ hashing */

static uint64_t
fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
mix64(uint64_t h, const uint8_t *p, size_t n)
{
	/* a multiply-xorshift hash over 8-byte words, independent of FNV */
	uint64_t k;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&k, p + i, 8);
		k *= 0xff51afd7ed558ccdULL;
		k ^= k >> 33;
		h = (h ^ k) * 0xc4ceb9fe1a85ec53ULL;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x9e3779b97f4a7c15ULL;
	h ^= n;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

sg_flight_fp
sg_flight_fingerprint(const char *method, const uint8_t *payload, size_t len)
{
	size_t mlen = strlen(method);
	sg_flight_fp fp;
	fp.a = fnv1a(fnv1a(0xcbf29ce484222325ULL, (const uint8_t *)method, mlen + 1), payload, len);
	fp.b = mix64(mix64(0x2545f4914f6cdd1dULL, (const uint8_t *)method, mlen + 1), payload, len);
	return fp;
}

static uint64_t
key_hash(const char *key)
{
	return fnv1a(0xcbf29ce484222325ULL, (const uint8_t *)key, strlen(key));
}

/* ------------------------------------------------------------------ table */

sg_flight *
sg_flight_new(const sg_flight_conf *conf)
{
	sg_flight *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->conf = *conf;
	if (t->conf.max_entries == 0)
		t->conf.max_entries = 1;
	t->nbuckets = 64;
	while (t->nbuckets < t->conf.max_entries && t->nbuckets < ((size_t)1 << 24))
		t->nbuckets <<= 1;
	if ((t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL ||
	    (t->conf.ntags > 0 && (t->tags = calloc(t->conf.ntags, sizeof(*t->tags))) == NULL)) {
		free(t->buckets);
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mtx, NULL);
	sg_list_init(&t->stored);
	return t;
}

static void
entry_free(struct entry *e)
{
	free(e->key);
	free(e->bytes);
	free(e);
}

void
sg_flight_free(sg_flight *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i];
		while (e != NULL) {
			struct entry *next = e->hnext;
			entry_free(e);
			e = next;
		}
	}
	free(t->buckets);
	free(t->tags);
	pthread_mutex_destroy(&t->mtx);
	free(t);
}

static struct entry **
slot_of(sg_flight *t, const char *key, uint64_t h)
{
	struct entry **pp = &t->buckets[h & (t->nbuckets - 1)];
	while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static struct entry *
entry_of(sg_list_node *n)
{
	return n != NULL ? SG_CONTAINER_OF(n, struct entry, lru) : NULL;
}

/* Removes e from the table and frees it. Lock held; e has no waiters. */
static void
entry_drop(sg_flight *t, struct entry *e)
{
	struct entry **pp = slot_of(t, e->key, e->hash);
	if (*pp == e)
		*pp = e->hnext;
	if (e->stored) {
		sg_list_remove(&e->lru);
		t->bytes -= e->cost;
	}
	t->count--;
	if (t->tags != NULL)
		t->tags[e->tag]--;
	entry_free(e);
}

/*
 * Makes room for `slots` more keys and `need` more bytes by dropping outcomes from the tail:
 * expired ones always, unexpired ones only when the table evicts. Never drops `keep` or a running
 * entry. Lock held. Returns false when there is still no room.
 */
static bool
make_room(sg_flight *t, size_t slots, size_t need, int64_t now, const struct entry *keep)
{
	for (;;) {
		bool full = t->count + slots > t->conf.max_entries ||
		            (t->conf.max_bytes != 0 && t->bytes + need > t->conf.max_bytes);
		if (!full)
			return true;
		struct entry *e = entry_of(sg_list_last(&t->stored));
		while (e != NULL && (e == keep || e->running))
			e = entry_of(sg_list_prev(&t->stored, &e->lru));
		if (e == NULL || !(t->conf.evict || now >= e->stale_until))
			return false;
		entry_drop(t, e);
	}
}

/* Stores out in e (replacing what it held), as if stored age_ms before now. Lock held. False
 * when memory ran out. */
static bool
entry_store(sg_flight *t, struct entry *e, int64_t now, int64_t age_ms, int64_t ttl_ms,
            int64_t stale_ms, const sg_flight_outcome *out)
{
	size_t n = out->status_len + out->payload_len;
	size_t cost = sizeof(*e) + strlen(e->key) + n;
	uint8_t *b = malloc(n ? n : 1);
	if (b == NULL)
		return false;
	memcpy(b, out->status, out->status_len);
	if (out->payload_len)
		memcpy(b + out->status_len, out->payload, out->payload_len);
	if (e->stored) {
		sg_list_remove(&e->lru);
		t->bytes -= e->cost;
	}
	free(e->bytes);
	e->bytes = b;
	e->status_len = out->status_len;
	e->payload_len = out->payload_len;
	e->has_payload = out->payload != NULL;
	e->stored = true;
	e->stored_ms = now - (age_ms > 0 ? age_ms : 0);
	e->fresh_until = e->stored_ms + ttl_ms;
	e->stale_until = e->fresh_until + stale_ms;
	e->cost = cost;
	t->bytes += cost;
	sg_list_push_front(&t->stored, &e->lru);
	if (t->conf.evict)
		make_room(t, 0, 0, now, e); /* back under the byte budget */
	return true;
}

/* Whether tag holds fewer than tag_max keys, once the expired outcomes at the tail are dropped
 * (without eviction, the tail is the oldest: every key of a table has the same lifetime).
 * Lock held. */
static bool
tag_room(sg_flight *t, size_t tag, size_t tag_max, int64_t now)
{
	if (t->tags == NULL || tag_max == 0 || t->tags[tag] < tag_max)
		return true;
	struct entry *e;
	while ((e = entry_of(sg_list_last(&t->stored))) != NULL && !e->running &&
	       now >= e->stale_until && !t->conf.evict)
		entry_drop(t, e);
	return t->tags[tag] < tag_max;
}

/* A new running entry for key, counted for tag, or NULL (no room or no memory). Lock held. */
static struct entry *
entry_new(sg_flight *t, const char *key, uint64_t h, sg_flight_fp fp, int64_t now, size_t tag)
{
	struct entry *e;
	if (!make_room(t, 1, 0, now, NULL) || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	if ((e->key = strdup(key)) == NULL) {
		free(e);
		return NULL;
	}
	e->hash = h;
	e->fp = fp;
	sg_list_init(&e->waiters);
	*slot_of(t, key, h) = e; /* the chain's end, found after make_room changed it */
	t->count++;
	if (t->tags != NULL) {
		e->tag = tag;
		t->tags[tag]++;
	}
	return e;
}

sg_flight_res
sg_flight_begin(sg_flight *t, const char *key, sg_flight_fp fp, sg_flight_waiter *w, sg_arena *a,
                sg_flight_outcome *out, int64_t *age_ms, bool *refresh)
{
	return sg_flight_begin_tag(t, key, fp, w, a, out, age_ms, refresh, 0, 0);
}

size_t
sg_flight_tag_count(sg_flight *t, size_t tag)
{
	pthread_mutex_lock(&t->mtx);
	size_t n = t->tags != NULL && tag < t->conf.ntags ? t->tags[tag] : 0;
	pthread_mutex_unlock(&t->mtx);
	return n;
}

sg_flight_res
sg_flight_begin_tag(sg_flight *t, const char *key, sg_flight_fp fp, sg_flight_waiter *w,
                    sg_arena *a, sg_flight_outcome *out, int64_t *age_ms, bool *refresh, size_t tag,
                    size_t tag_max)
{
	uint64_t h = key_hash(key);
	int64_t now = t->conf.clock ? t->conf.clock() : sg_now_ms();
	sg_flight_res res;

	*refresh = false;
	pthread_mutex_lock(&t->mtx);
	struct entry **pp = slot_of(t, key, h);
	struct entry *e = *pp;
	if (e != NULL && e->stored && !e->running && now >= e->stale_until) {
		entry_drop(t, e); /* past its stale window: as if never stored */
		e = NULL;
	}
	if (t->tags != NULL && tag >= t->conf.ntags)
		tag = t->conf.ntags - 1;
	if (e == NULL && !tag_room(t, tag, tag_max, now)) {
		res = SG_FLIGHT_QUOTA;
	} else if (e == NULL) {
		e = entry_new(t, key, h, fp, now, tag);
		if (e == NULL) {
			res = SG_FLIGHT_FULL;
		} else {
			e->running = true;
			res = SG_FLIGHT_OWNER;
		}
	} else if (e->fp.a != fp.a || e->fp.b != fp.b) {
		res = SG_FLIGHT_CONFLICT;
	} else if (!e->stored && w == NULL) {
		res = SG_FLIGHT_WAITING; /* the caller does not wait: it is told the key is busy */
	} else if (!e->stored) {
		w->where = e;
		sg_list_push_back(&e->waiters, &w->link);
		res = SG_FLIGHT_WAITING;
	} else {
		uint8_t *copy = sg_arena_alloc(a, e->status_len + e->payload_len + 1);
		if (copy == NULL) {
			res = SG_FLIGHT_FULL;
			goto done;
		}
		memcpy(copy, e->bytes, e->status_len + e->payload_len);
		out->status = copy;
		out->status_len = e->status_len;
		out->payload = e->has_payload ? copy + e->status_len : NULL;
		out->payload_len = e->payload_len;
		*age_ms = now - e->stored_ms;
		if (now < e->fresh_until) {
			res = SG_FLIGHT_HIT;
		} else {
			res = SG_FLIGHT_STALE;
			if (!e->running)
				*refresh = e->running = true;
		}
		if (t->conf.evict) { /* least recently used goes first */
			sg_list_remove(&e->lru);
			sg_list_push_front(&t->stored, &e->lru);
		}
	}
done:
	pthread_mutex_unlock(&t->mtx);
	return res;
}

/* sg_flight_finish, and sg_flight_finish_aged: kept as if stored age_ms ago; with refreshing
 * (and kept), the key stays running. */
static void
flight_end(sg_flight *t, const char *key, bool keep, int64_t age_ms, bool refreshing,
           int64_t ttl_ms, int64_t stale_ms, const sg_flight_outcome *out)
{
	uint64_t h = key_hash(key);
	sg_list waiters;
	sg_list_node *n;

	sg_list_init(&waiters);
	pthread_mutex_lock(&t->mtx);
	struct entry *e = *slot_of(t, key, h);
	if (e != NULL && e->running) {
		sg_list_move(&waiters, &e->waiters);
		for (n = sg_list_first(&waiters); n != NULL; n = sg_list_next(&waiters, n))
			SG_CONTAINER_OF(n, sg_flight_waiter, link)->where =
			        NULL; /* taken: sg_flight_leave says so from now on */
		e->running = false;
		bool kept = keep && entry_store(t, e, t->conf.clock ? t->conf.clock() : sg_now_ms(),
		                                age_ms, ttl_ms, stale_ms, out);
		if (kept && refreshing)
			e->running = true; /* its owner goes on to refresh it */
		else if (!kept && !e->stored)
			entry_drop(t, e); /* released; a failed refresh keeps the stale outcome */
	}
	pthread_mutex_unlock(&t->mtx);
	/* in arrival order; a waiter is ours until its done has run, never after */
	while ((n = sg_list_pop_front(&waiters)) != NULL) {
		sg_flight_waiter *w = SG_CONTAINER_OF(n, sg_flight_waiter, link);
		w->done(w, out);
	}
}

void
sg_flight_finish(sg_flight *t, const char *key, bool keep, int64_t ttl_ms, int64_t stale_ms,
                 const sg_flight_outcome *out)
{
	flight_end(t, key, keep, 0, false, ttl_ms, stale_ms, out);
}

void
sg_flight_finish_aged(sg_flight *t, const char *key, int64_t age_ms, bool refreshing,
                      int64_t ttl_ms, int64_t stale_ms, const sg_flight_outcome *out)
{
	flight_end(t, key, true, age_ms, refreshing, ttl_ms, stale_ms, out);
}

bool
sg_flight_leave(sg_flight *t, sg_flight_waiter *w)
{
	bool waiting = false;

	pthread_mutex_lock(&t->mtx);
	struct entry *e = w->where;
	if (e != NULL) { /* still queued: unlink in O(1) */
		sg_list_remove(&w->link);
		w->where = NULL;
		waiting = true;
	}
	pthread_mutex_unlock(&t->mtx);
	return waiting;
}

bool
sg_flight_put(sg_flight *t, const char *key, int64_t ttl_ms, int64_t stale_ms,
              const sg_flight_outcome *out)
{
	uint64_t h = key_hash(key);
	int64_t now = t->conf.clock ? t->conf.clock() : sg_now_ms();
	bool ok = false;

	pthread_mutex_lock(&t->mtx);
	struct entry **pp = slot_of(t, key, h);
	struct entry *e = *pp;
	if (e == NULL) {
		sg_flight_fp none = {0, 0};
		e = entry_new(t, key, h, none, now, 0);
	} else if (e->running && !e->stored) {
		e = NULL; /* the owner's answer is on its way */
	}
	if (e != NULL) {
		ok = entry_store(t, e, now, 0, ttl_ms, stale_ms, out);
		if (!ok && !e->stored && !e->running)
			entry_drop(t, e);
	}
	pthread_mutex_unlock(&t->mtx);
	return ok;
}

size_t
sg_flight_count(sg_flight *t)
{
	pthread_mutex_lock(&t->mtx);
	size_t n = t->count;
	pthread_mutex_unlock(&t->mtx);
	return n;
}

size_t
sg_flight_bytes(sg_flight *t)
{
	pthread_mutex_lock(&t->mtx);
	size_t n = t->bytes;
	pthread_mutex_unlock(&t->mtx);
	return n;
}
