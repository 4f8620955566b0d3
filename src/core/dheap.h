/*
 * dheap.h - an intrusive binary min-heap on deadlines. The node lives in the caller's struct
 * and knows its slot, so an entry leaves from the middle in O(log n). Used by the upstream
 * engine (transfers waiting for a connection slot) and the server's reaper (parked calls).
 * Not thread-safe: the owner locks.
 */
#ifndef SG_DHEAP_H
#define SG_DHEAP_H

#include <stddef.h>
#include <stdint.h>

/* One entry; embed it and get back to the container with offsetof. */
typedef struct sg_dheap_node {
	int64_t deadline; /* the key: sg_now_ms() time */
	size_t idx;       /* heap-owned: slot while queued */
} sg_dheap_node;

typedef struct sg_dheap {
	sg_dheap_node **v; /* slots (owned array) */
	size_t len;        /* entries */
	size_t cap;        /* slots allocated */
} sg_dheap;

/* Makes room for n entries in all. Returns 0, or -1 when out of memory. */
int sg_dheap_reserve(sg_dheap *h, size_t n);

/* Adds n (not queued). Returns 0, or -1 when the heap cannot grow. */
int sg_dheap_push(sg_dheap *h, sg_dheap_node *n);

/* Takes out n, which is queued in h. */
void sg_dheap_del(sg_dheap *h, sg_dheap_node *n);

/* Frees the slots (not the nodes). */
void sg_dheap_fini(sg_dheap *h);

/* The earliest entry, or NULL. */
static inline sg_dheap_node *
sg_dheap_top(const sg_dheap *h)
{
	return h->len > 0 ? h->v[0] : NULL;
}

#endif /* SG_DHEAP_H */
