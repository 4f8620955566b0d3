/*
 * dynbuf.c - a growing byte buffer with a hard cap.
 */
#include "dynbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DYNBUF_FIRST 256

void
sg_dynbuf_init(sg_dynbuf *b, size_t max, size_t first)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->first = first ? first : DYNBUF_FIRST;
}

int
sg_dynbuf_reserve(sg_dynbuf *b, size_t add, bool exact)
{
	size_t need, ncap;
	char *p;

	if (add > b->max - b->len) {
		errno = EFBIG;
		return -1;
	}
	need = b->len + add + 1;
	if (need <= b->cap)
		return 0;
	ncap = exact ? need : b->cap ? b->cap : b->first;
	while (ncap < need)
		ncap = ncap > (b->max + 1) / 2 ? b->max + 1 : ncap * 2;
	if ((p = realloc(b->data, ncap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
sg_dynbuf_add(sg_dynbuf *b, const void *p, size_t n)
{
	if (sg_dynbuf_reserve(b, n, false) != 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void
sg_dynbuf_reset(sg_dynbuf *b, size_t keep)
{
	if (b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
sg_dynbuf_free(sg_dynbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
