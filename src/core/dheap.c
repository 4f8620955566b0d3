#include "dheap.h"

#include <stdlib.h>

static void
dheap_set(sg_dheap *h, size_t i, sg_dheap_node *n)
{
	h->v[i] = n;
	n->idx = i;
}

static void
dheap_up(sg_dheap *h, size_t i)
{
	sg_dheap_node *n = h->v[i];

	while (i > 0 && h->v[(i - 1) / 2]->deadline > n->deadline) {
		dheap_set(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	dheap_set(h, i, n);
}

static void
dheap_down(sg_dheap *h, size_t i)
{
	sg_dheap_node *n = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->len)
			break;
		if (c + 1 < h->len && h->v[c + 1]->deadline < h->v[c]->deadline)
			c++;
		if (h->v[c]->deadline >= n->deadline)
			break;
		dheap_set(h, i, h->v[c]);
		i = c;
	}
	dheap_set(h, i, n);
}

int
sg_dheap_reserve(sg_dheap *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	sg_dheap_node **p = realloc(h->v, n * sizeof(*p));
	if (p == NULL)
		return -1;
	h->v = p;
	h->cap = n;
	return 0;
}

int
sg_dheap_push(sg_dheap *h, sg_dheap_node *n)
{
	if (h->len == h->cap && sg_dheap_reserve(h, h->cap ? h->cap * 2 : 64) != 0)
		return -1;
	dheap_set(h, h->len++, n);
	dheap_up(h, n->idx);
	return 0;
}

void
sg_dheap_del(sg_dheap *h, sg_dheap_node *n)
{
	size_t i = n->idx;
	sg_dheap_node *last = h->v[--h->len];

	if (last == n)
		return;
	dheap_set(h, i, last);
	dheap_up(h, i);
	dheap_down(h, last->idx);
}

void
sg_dheap_fini(sg_dheap *h)
{
	free(h->v);
	h->v = NULL;
	h->len = h->cap = 0;
}
