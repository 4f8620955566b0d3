/*
 * arena.c - chained-block bump allocator with a hard cap.
 */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN         16
#define ARENA_DEFAULT_CAP   ((size_t)64 << 20)
#define ARENA_DEFAULT_BLOCK ((size_t)16 << 10)
#define ARENA_MAX_BLOCK     ((size_t)64 << 10)

struct sg_arena_block {
	struct sg_arena_block *next; /* older block */
	size_t size;                 /* usable bytes in data[] */
	size_t off;                  /* bytes used in data[] */
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

static void *
arena_pb_alloc(void *ud, size_t n)
{
	return sg_arena_alloc(ud, n);
}

static void
arena_pb_free(void *ud, void *p)
{
	(void)ud;
	(void)p; /* freed with the arena */
}

void
sg_arena_init(sg_arena *a, size_t block_size, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
	a->cap = cap ? cap : ARENA_DEFAULT_CAP;
	a->pb.alloc = arena_pb_alloc;
	a->pb.free = arena_pb_free;
	a->pb.allocator_data = a;
}

static void
arena_free_chain(struct sg_arena_block *b, struct sg_arena_block *keep)
{
	while (b != NULL) {
		struct sg_arena_block *next = b->next;
		if (b != keep)
			free(b);
		b = next;
	}
}

void
sg_arena_fini(sg_arena *a)
{
	arena_free_chain(a->head, NULL); /* the spare block is the oldest in the chain */
	a->head = a->spare = NULL;
	a->used = 0;
}

void
sg_arena_reset(sg_arena *a)
{
	arena_free_chain(a->head, a->spare);
	a->head = a->spare;
	if (a->spare != NULL) {
		a->spare->next = NULL;
		a->spare->off = 0;
	}
	a->used = 0;
}

void *
sg_arena_alloc(sg_arena *a, size_t n)
{
	struct sg_arena_block *b = a->head;
	size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

	if (need == 0)
		need = ARENA_ALIGN; /* distinct non-NULL pointers for empty objects */
	if (need < n || need > a->cap - a->used)
		return NULL;
	if (b == NULL || b->size - b->off < need) {
		/* blocks double from block_size up to 64 KiB: a call that stays small keeps only
		 * its small first block across resets, one that grows does so in few steps */
		size_t size = b == NULL ? a->block_size : b->size * 2;
		if (size > ARENA_MAX_BLOCK)
			size = ARENA_MAX_BLOCK;
		if (size < need)
			size = need;
		if ((b = malloc(sizeof(*b) + size)) == NULL)
			return NULL;
		b->size = size;
		b->off = 0;
		b->next = a->head;
		a->head = b;
		if (a->spare == NULL)
			a->spare = b;
	}
	void *p = b->data + b->off;
	b->off += need;
	a->used += need;
	return p;
}

void *
sg_arena_calloc(sg_arena *a, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = sg_arena_alloc(a, n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

char *
sg_arena_strndup(sg_arena *a, const char *s, size_t n)
{
	if (n == SIZE_MAX)
		return NULL;
	char *p = sg_arena_alloc(a, n + 1);
	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *
sg_arena_strdup(sg_arena *a, const char *s)
{
	return s == NULL ? NULL : sg_arena_strndup(a, s, strlen(s));
}

char *
sg_arena_vprintf(sg_arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	char *p = sg_arena_alloc(a, (size_t)n + 1);
	if (p != NULL)
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
sg_arena_printf(sg_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = sg_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}
