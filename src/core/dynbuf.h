/*
 * dynbuf.h - a growing byte buffer with a hard cap, in the spirit of curl's dynbuf: whatever
 * is read from the network goes into one, and past its cap it fails loudly instead of growing.
 *
 * The data is kept NUL-terminated (the NUL is not counted), so text can be used as a string.
 * One owner at a time; no locking.
 */
#ifndef SG_DYNBUF_H
#define SG_DYNBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sg_dynbuf {
	char *data;   /* owned; NULL until the first byte */
	size_t len;   /* bytes used (the NUL not counted) */
	size_t cap;   /* bytes allocated */
	size_t max;   /* len never goes past this */
	size_t first; /* first allocation when growing (then doubling) */
} sg_dynbuf;

/* An empty buffer of at most max bytes whose first allocation is `first` bytes (0: 256).
 * Allocates nothing. */
void sg_dynbuf_init(sg_dynbuf *b, size_t max, size_t first);

/* Makes room for add more bytes (and the NUL): exactly that much when `exact` (the final size
 * is known, e.g. from a Content-Length), else doubling. Returns 0, or -1 with errno EFBIG (past
 * max; nothing changed) or ENOMEM. */
int sg_dynbuf_reserve(sg_dynbuf *b, size_t add, bool exact);

/* Appends n bytes. Returns 0, or -1 (errno EFBIG or ENOMEM; nothing appended). */
int sg_dynbuf_add(sg_dynbuf *b, const void *p, size_t n);

/* Empties b for reuse; an allocation larger than keep is given back. */
void sg_dynbuf_reset(sg_dynbuf *b, size_t keep);

/* Frees the data; b is empty and reusable. */
void sg_dynbuf_free(sg_dynbuf *b);

#endif /* SG_DYNBUF_H */
