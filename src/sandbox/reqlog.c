/*
 * reqlog.c - a capped ring of request records.
 */
#include "reqlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One recorded request. */
typedef struct reqlog_ent {
	uint64_t seq; /* sequence number, from 1 */
	char *obj;    /* JSON object text "{...}", owned */
	size_t len;   /* bytes in obj */
} reqlog_ent;

struct sbx_reqlog {
	pthread_mutex_t mu; /* guards everything below */
	reqlog_ent *ring;   /* max_entries slots */
	size_t max_entries; /* slots in ring */
	size_t max_bytes;   /* cap on the sum of len */
	size_t head;        /* index of the oldest entry */
	size_t count;       /* entries held */
	size_t bytes;       /* sum of len over held entries */
	uint64_t seq;       /* last sequence number given */
	uint64_t dropped;   /* entries evicted by the caps */
};

sbx_reqlog *
sbx_reqlog_new(size_t max_entries, size_t max_bytes)
{
	sbx_reqlog *l;

	if (max_entries == 0 || (l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	if ((l->ring = calloc(max_entries, sizeof(*l->ring))) == NULL) {
		free(l);
		return NULL;
	}
	l->max_entries = max_entries;
	l->max_bytes = max_bytes;
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

/* Drops the oldest entry. Caller holds mu and knows count > 0. */
static void
evict_oldest(sbx_reqlog *l)
{
	reqlog_ent *e = &l->ring[l->head];

	l->bytes -= e->len;
	free(e->obj);
	e->obj = NULL;
	l->head = (l->head + 1) % l->max_entries;
	l->count--;
}

void
sbx_reqlog_free(sbx_reqlog *l)
{
	if (l == NULL)
		return;
	sbx_reqlog_clear(l);
	pthread_mutex_destroy(&l->mu);
	free(l->ring);
	free(l);
}

void
sbx_reqlog_add(sbx_reqlog *l, char *obj, size_t len)
{
	reqlog_ent *e;

	if (obj == NULL)
		return;
	if (len < 2 || obj[0] != '{' || len > l->max_bytes) {
		free(obj);
		pthread_mutex_lock(&l->mu);
		l->seq++;
		l->dropped++;
		pthread_mutex_unlock(&l->mu);
		return;
	}
	pthread_mutex_lock(&l->mu);
	while (l->count > 0 && (l->count == l->max_entries || l->bytes + len > l->max_bytes)) {
		evict_oldest(l);
		l->dropped++;
	}
	e = &l->ring[(l->head + l->count) % l->max_entries];
	e->seq = ++l->seq;
	e->obj = obj;
	e->len = len;
	l->count++;
	l->bytes += len;
	pthread_mutex_unlock(&l->mu);
}

char *
sbx_reqlog_dump(sbx_reqlog *l, size_t *len)
{
	char *out, *p;
	size_t i, cap;

	pthread_mutex_lock(&l->mu);
	/* per entry: ",\n" + {"seq":<20 digits>, + the object minus its '{' */
	cap = 4 + l->bytes + l->count * 40;
	if ((out = malloc(cap)) == NULL) {
		pthread_mutex_unlock(&l->mu);
		return NULL;
	}
	p = out;
	*p++ = '[';
	for (i = 0; i < l->count; i++) {
		const reqlog_ent *e = &l->ring[(l->head + i) % l->max_entries];
		int k = sprintf(p, "%s{\"seq\":%llu%s", i ? ",\n" : "\n",
		                (unsigned long long)e->seq, e->len > 2 ? "," : "");

		p += k;
		memcpy(p, e->obj + 1, e->len - 1);
		p += e->len - 1;
	}
	if (l->count > 0)
		*p++ = '\n';
	*p++ = ']';
	*p++ = '\n';
	*p = '\0';
	pthread_mutex_unlock(&l->mu);
	*len = (size_t)(p - out);
	return out;
}

size_t
sbx_reqlog_clear(sbx_reqlog *l)
{
	size_t n;

	pthread_mutex_lock(&l->mu);
	n = l->count;
	while (l->count > 0)
		evict_oldest(l);
	l->head = 0;
	pthread_mutex_unlock(&l->mu);
	return n;
}

void
sbx_reqlog_stats(sbx_reqlog *l, size_t *held, uint64_t *dropped, uint64_t *total)
{
	pthread_mutex_lock(&l->mu);
	*held = l->count;
	*dropped = l->dropped;
	*total = l->seq;
	pthread_mutex_unlock(&l->mu);
}
