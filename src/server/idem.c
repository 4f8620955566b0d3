/*
 * idem.c - idempotency table: chained hash of keys, a FIFO of stored outcomes for expiry.
 */
#include "idem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define IDEM_MAX_KEY 255

struct entry {
	struct entry *hnext;     /* hash chain */
	struct entry *fnext;     /* expiry FIFO (stored entries only), oldest first */
	char *key;               /* malloc'd copy */
	uint64_t hash;           /* hash of key */
	sg_idem_fp fp;           /* request fingerprint */
	bool done;               /* outcome stored (else the owner is still running) */
	int64_t expires_ms;      /* sg_now_ms() deadline of a stored outcome */
	sg_idem_waiter *waiters; /* calls waiting for the owner (running entries only) */
	uint8_t *bytes;          /* stored status then payload, one malloc */
	size_t status_len;       /* bytes of status at bytes[0] */
	size_t payload_len;      /* bytes of payload after it */
	bool has_payload;        /* payload present (may be empty) */
};

struct sg_idem {
	pthread_mutex_t mtx;     /* guards everything below */
	struct entry **buckets;  /* hash buckets */
	size_t nbuckets;         /* power of two */
	size_t count;            /* entries in the table */
	size_t max_entries;      /* cap on count */
	int64_t ttl_ms;          /* how long an outcome is kept */
	struct entry *fifo_head; /* oldest stored entry */
	struct entry *fifo_tail; /* newest stored entry */
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

sg_idem_fp
sg_idem_fingerprint(const char *method, const uint8_t *payload, size_t len)
{
	size_t mlen = strlen(method);
	sg_idem_fp fp;
	fp.a = fnv1a(fnv1a(0xcbf29ce484222325ULL, (const uint8_t *)method, mlen + 1), payload, len);
	fp.b = mix64(mix64(0x2545f4914f6cdd1dULL, (const uint8_t *)method, mlen + 1), payload, len);
	return fp;
}

bool
sg_idem_key_ok(const char *key)
{
	size_t n = 0;
	for (; key[n] != '\0'; n++)
		if (key[n] < 0x21 || key[n] > 0x7e || n >= IDEM_MAX_KEY)
			return false;
	return n > 0;
}

/* ------------------------------------------------------------------ table */

sg_idem *
sg_idem_new(size_t max_entries, int64_t ttl_ms)
{
	sg_idem *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->max_entries = max_entries ? max_entries : 1;
	t->ttl_ms = ttl_ms;
	t->nbuckets = 64;
	while (t->nbuckets < t->max_entries && t->nbuckets < ((size_t)1 << 24))
		t->nbuckets <<= 1;
	if ((t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mtx, NULL);
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
sg_idem_free(sg_idem *t)
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
	pthread_mutex_destroy(&t->mtx);
	free(t);
}

static struct entry **
slot_of(sg_idem *t, const char *key, uint64_t h)
{
	struct entry **pp = &t->buckets[h & (t->nbuckets - 1)];
	while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static void
unlink_entry(sg_idem *t, struct entry *e)
{
	struct entry **pp = slot_of(t, e->key, e->hash);
	if (*pp == e) {
		*pp = e->hnext;
		t->count--;
	}
}

/* Drops stored outcomes whose time is up. Amortised O(1) per call. Lock held. */
static void
expire(sg_idem *t, int64_t now)
{
	while (t->fifo_head != NULL && t->fifo_head->expires_ms <= now) {
		struct entry *e = t->fifo_head;
		t->fifo_head = e->fnext;
		if (t->fifo_head == NULL)
			t->fifo_tail = NULL;
		unlink_entry(t, e);
		entry_free(e);
	}
}

sg_idem_res
sg_idem_begin(sg_idem *t, const char *key, sg_idem_fp fp, sg_idem_waiter *w, sg_arena *a,
              sg_idem_outcome *out)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, (const uint8_t *)key, strlen(key));
	sg_idem_res res;

	pthread_mutex_lock(&t->mtx);
	expire(t, sg_now_ms());
	struct entry **pp = slot_of(t, key, h);
	struct entry *e = *pp;
	if (e == NULL) {
		if (t->count >= t->max_entries || (e = calloc(1, sizeof(*e))) == NULL ||
		    (e->key = strdup(key)) == NULL) {
			free(e);
			res = SG_IDEM_FULL;
			goto done;
		}
		e->hash = h;
		e->fp = fp;
		*pp = e;
		t->count++;
		res = SG_IDEM_OWNER;
	} else if (e->fp.a != fp.a || e->fp.b != fp.b) {
		res = SG_IDEM_CONFLICT;
	} else if (!e->done) {
		w->next = e->waiters;
		e->waiters = w;
		res = SG_IDEM_WAITING;
	} else {
		uint8_t *copy = sg_arena_alloc(a, e->status_len + e->payload_len);
		if (copy == NULL) {
			res = SG_IDEM_FULL;
			goto done;
		}
		memcpy(copy, e->bytes, e->status_len + e->payload_len);
		out->status = copy;
		out->status_len = e->status_len;
		out->payload = e->has_payload ? copy + e->status_len : NULL;
		out->payload_len = e->payload_len;
		res = SG_IDEM_REPLAY;
	}
done:
	pthread_mutex_unlock(&t->mtx);
	return res;
}

void
sg_idem_finish(sg_idem *t, const char *key, bool keep, const sg_idem_outcome *out)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, (const uint8_t *)key, strlen(key));
	sg_idem_waiter *waiters = NULL;

	pthread_mutex_lock(&t->mtx);
	struct entry **pp = slot_of(t, key, h);
	struct entry *e = *pp;
	if (e != NULL && !e->done) {
		waiters = e->waiters;
		e->waiters = NULL;
		size_t n = out->status_len + out->payload_len;
		if (keep && (e->bytes = malloc(n ? n : 1)) != NULL) {
			memcpy(e->bytes, out->status, out->status_len);
			if (out->payload_len)
				memcpy(e->bytes + out->status_len, out->payload, out->payload_len);
			e->status_len = out->status_len;
			e->payload_len = out->payload_len;
			e->has_payload = out->payload != NULL;
			e->done = true;
			e->expires_ms = sg_now_ms() + t->ttl_ms;
			if (t->fifo_tail != NULL)
				t->fifo_tail->fnext = e;
			else
				t->fifo_head = e;
			t->fifo_tail = e;
		} else {
			/* released (or no memory to keep it: the waiters still get the answer) */
			*pp = e->hnext;
			t->count--;
			entry_free(e);
		}
	}
	pthread_mutex_unlock(&t->mtx);
	while (waiters != NULL) {
		sg_idem_waiter *next = waiters->next;
		waiters->done(waiters, out);
		waiters = next;
	}
}

size_t
sg_idem_count(sg_idem *t)
{
	pthread_mutex_lock(&t->mtx);
	size_t n = t->count;
	pthread_mutex_unlock(&t->mtx);
	return n;
}
