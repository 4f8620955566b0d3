/*
 * admit.c - see admit.h.
 *
 * Two chained hash tables sized once from the cap: admitted pipes by id, and peers by key with
 * their count (a peer's entry goes when its last pipe does). Every operation is O(1) under the
 * one mutex.
 */
#include "admit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_KEY 64 /* bytes of a peer's key kept (an IPv6 address is at most 39) */

struct peer {
	struct peer *next;
	size_t n; /* its admitted pipes */
	char key[PEER_KEY];
};

struct conn {
	struct conn *next;
	uint32_t id;
	struct peer *peer;
};

struct sg_admit {
	pthread_mutex_t mtx;
	size_t max, max_per_peer;
	size_t n;         /* admitted pipes */
	uint64_t refused; /* pipes refused */
	size_t nb;        /* buckets in each table: a power of two */
	struct conn **conns;
	struct peer **peers;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

static size_t
conn_slot(const sg_admit *a, uint32_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 17) & (a->nb - 1);
}

sg_admit *
sg_admit_new(size_t max, size_t max_per_peer)
{
	sg_admit *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->max = max;
	a->max_per_peer = max_per_peer;
	a->nb = 64;
	while (a->nb < max && a->nb < ((size_t)1 << 22))
		a->nb <<= 1;
	a->conns = calloc(a->nb, sizeof(*a->conns));
	a->peers = calloc(a->nb, sizeof(*a->peers));
	if (a->conns == NULL || a->peers == NULL) {
		sg_admit_free(a);
		return NULL;
	}
	pthread_mutex_init(&a->mtx, NULL);
	return a;
}

void
sg_admit_free(sg_admit *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; a->conns != NULL && i < a->nb; i++)
		for (struct conn *c = a->conns[i], *next; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	for (size_t i = 0; a->peers != NULL && i < a->nb; i++)
		for (struct peer *p = a->peers[i], *next; p != NULL; p = next) {
			next = p->next;
			free(p);
		}
	if (a->conns != NULL && a->peers != NULL)
		pthread_mutex_destroy(&a->mtx);
	free(a->conns);
	free(a->peers);
	free(a);
}

/* The peer's entry for key (cut to PEER_KEY - 1 bytes), or NULL; with make, one is made
 * (n = 0) when missing, NULL only when out of memory. Lock held. */
static struct peer *
peer_get(sg_admit *a, const char *key, bool make)
{
	char k[PEER_KEY];
	snprintf(k, sizeof(k), "%s", key != NULL ? key : "");
	struct peer **pp = &a->peers[hash_str(k) & (a->nb - 1)];
	for (struct peer *p = *pp; p != NULL; p = p->next)
		if (strcmp(p->key, k) == 0)
			return p;
	struct peer *p = make ? calloc(1, sizeof(*p)) : NULL;
	if (p == NULL)
		return NULL;
	memcpy(p->key, k, sizeof(k));
	p->next = *pp;
	*pp = p;
	return p;
}

static void
peer_drop(sg_admit *a, struct peer *p)
{
	struct peer **pp = &a->peers[hash_str(p->key) & (a->nb - 1)];
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	free(p);
}

sg_admit_res
sg_admit_add(sg_admit *a, uint32_t id, const char *peer)
{
	sg_admit_res res = SG_ADMIT_OK;
	struct conn *c = NULL;
	struct peer *p = NULL;

	pthread_mutex_lock(&a->mtx);
	if (a->max > 0 && a->n >= a->max) {
		res = SG_ADMIT_FULL;
	} else if ((p = peer_get(a, peer, true)) == NULL || (c = malloc(sizeof(*c))) == NULL) {
		res = SG_ADMIT_NOMEM;
	} else if (a->max_per_peer > 0 && p->n >= a->max_per_peer) {
		res = SG_ADMIT_PEER;
	} else {
		size_t slot = conn_slot(a, id);
		c->id = id;
		c->peer = p;
		c->next = a->conns[slot];
		a->conns[slot] = c;
		p->n++;
		a->n++;
		c = NULL;
	}
	if (res != SG_ADMIT_OK) {
		free(c);
		if (p != NULL && p->n == 0)
			peer_drop(a, p);
		a->refused++;
	}
	pthread_mutex_unlock(&a->mtx);
	return res;
}

void
sg_admit_remove(sg_admit *a, uint32_t id)
{
	pthread_mutex_lock(&a->mtx);
	struct conn **cp = &a->conns[conn_slot(a, id)];
	while (*cp != NULL && (*cp)->id != id)
		cp = &(*cp)->next;
	struct conn *c = *cp;
	if (c != NULL) {
		*cp = c->next;
		if (--c->peer->n == 0)
			peer_drop(a, c->peer);
		a->n--;
		free(c);
	}
	pthread_mutex_unlock(&a->mtx);
}

size_t
sg_admit_count(sg_admit *a)
{
	pthread_mutex_lock(&a->mtx);
	size_t n = a->n;
	pthread_mutex_unlock(&a->mtx);
	return n;
}

size_t
sg_admit_peer_count(sg_admit *a, const char *peer)
{
	pthread_mutex_lock(&a->mtx);
	struct peer *p = peer_get(a, peer, false);
	size_t n = p != NULL ? p->n : 0;
	pthread_mutex_unlock(&a->mtx);
	return n;
}

uint64_t
sg_admit_refused(sg_admit *a)
{
	pthread_mutex_lock(&a->mtx);
	uint64_t n = a->refused;
	pthread_mutex_unlock(&a->mtx);
	return n;
}
