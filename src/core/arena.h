/*
 * arena.h - per-call bump allocator (h2o's mem pool, shrunk to what shipgate needs).
 *
 * Everything built for one RPC call (the unpacked request, JSON-derived strings, the reply
 * message) is allocated here and released at once by sg_arena_reset(). The arena has a hard cap:
 * past it every allocation fails, so a hostile input cannot grow a call without bound.
 * An arena is used by one thread at a time; it has no locks.
 */
#ifndef SG_ARENA_H
#define SG_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct sg_arena_block;

typedef struct sg_arena {
	struct sg_arena_block *head;  /* current block; older ones chained behind it */
	struct sg_arena_block *spare; /* the first block, kept across resets for reuse */
	size_t used;                  /* bytes handed out since the last reset */
	size_t cap;                   /* hard limit on `used` */
	size_t block_size;            /* default size of a new block */
	ProtobufCAllocator pb;        /* protobuf-c allocator backed by this arena */
} sg_arena;

/* Initialises a (zeroed or fresh) arena. cap = 0 means 64 MiB. Allocates nothing yet. */
void sg_arena_init(sg_arena *a, size_t block_size, size_t cap);

/* Releases all memory. The arena may be initialised again afterwards. */
void sg_arena_fini(sg_arena *a);

/* Forgets every allocation; keeps the first block for the next call. */
void sg_arena_reset(sg_arena *a);

/* 16-byte-aligned memory owned by the arena, or NULL past the cap. Not zeroed. */
void *sg_arena_alloc(sg_arena *a, size_t n);

/* Zeroed memory owned by the arena, or NULL (also on n * size overflow). */
void *sg_arena_calloc(sg_arena *a, size_t n, size_t size);

/* NUL-terminated copy of s[0..n), or NULL. */
char *sg_arena_strndup(sg_arena *a, const char *s, size_t n);

/* NUL-terminated copy of s, or NULL (also when s is NULL). */
char *sg_arena_strdup(sg_arena *a, const char *s);

/* printf into the arena, or NULL. */
char *sg_arena_printf(sg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *sg_arena_vprintf(sg_arena *a, const char *fmt, va_list ap);

/* The protobuf-c allocator for unpack and for building messages; free is a no-op. Borrowed. */
static inline ProtobufCAllocator *
sg_arena_pb(sg_arena *a)
{
	return &a->pb;
}

#endif /* SG_ARENA_H */
