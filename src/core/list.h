/*
 * list.h - one intrusive doubly linked list, circular around a sentinel, in the spirit of
 * nng's nni_list: the node lives inside the element, so linking allocates nothing, and an
 * element can unlink itself in O(1) without knowing its list.
 *
 * A node that is on no list has next == NULL (sg_list_node_init, or after sg_list_remove).
 * No locking: the owner of the list guards it.
 */
#ifndef SG_LIST_H
#define SG_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sg_list_node {
	struct sg_list_node *next; /* NULL: on no list */
	struct sg_list_node *prev;
} sg_list_node;

typedef struct sg_list {
	sg_list_node head; /* sentinel: head.next is the first, head.prev the last */
} sg_list;

/* The element of type `type` whose member `member` is the node p. */
#define SG_CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

static inline void
sg_list_init(sg_list *l)
{
	l->head.next = l->head.prev = &l->head;
}

static inline void
sg_list_node_init(sg_list_node *n)
{
	n->next = n->prev = NULL;
}

static inline bool
sg_list_empty(const sg_list *l)
{
	return l->head.next == &l->head;
}

/* True when n is on a list. */
static inline bool
sg_list_linked(const sg_list_node *n)
{
	return n->next != NULL;
}

static inline void
sg_list_insert_after(sg_list_node *at, sg_list_node *n)
{
	n->prev = at;
	n->next = at->next;
	at->next->prev = n;
	at->next = n;
}

/* Appends n (on no list) at the end of l. */
static inline void
sg_list_push_back(sg_list *l, sg_list_node *n)
{
	sg_list_insert_after(l->head.prev, n);
}

/* Puts n (on no list) at the front of l. */
static inline void
sg_list_push_front(sg_list *l, sg_list_node *n)
{
	sg_list_insert_after(&l->head, n);
}

/* Unlinks n from whatever list it is on. */
static inline void
sg_list_remove(sg_list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = NULL;
}

/* The first and last nodes of l, or NULL when it is empty. */
static inline sg_list_node *
sg_list_first(const sg_list *l)
{
	return sg_list_empty(l) ? NULL : l->head.next;
}

static inline sg_list_node *
sg_list_last(const sg_list *l)
{
	return sg_list_empty(l) ? NULL : l->head.prev;
}

/* The node after n on l, or NULL at the end. */
static inline sg_list_node *
sg_list_next(const sg_list *l, const sg_list_node *n)
{
	return n->next == &l->head ? NULL : n->next;
}

/* The node before n on l, or NULL at the front. */
static inline sg_list_node *
sg_list_prev(const sg_list *l, const sg_list_node *n)
{
	return n->prev == &l->head ? NULL : n->prev;
}

/* Unlinks and returns the first node of l, or NULL. */
static inline sg_list_node *
sg_list_pop_front(sg_list *l)
{
	sg_list_node *n = sg_list_first(l);
	if (n != NULL)
		sg_list_remove(n);
	return n;
}

/* Moves every node of src, in order, onto the empty list dst; src is left empty. */
static inline void
sg_list_move(sg_list *dst, sg_list *src)
{
	sg_list_init(dst);
	if (sg_list_empty(src))
		return;
	dst->head.next = src->head.next;
	dst->head.prev = src->head.prev;
	dst->head.next->prev = &dst->head;
	dst->head.prev->next = &dst->head;
	sg_list_init(src);
}

#endif /* SG_LIST_H */
