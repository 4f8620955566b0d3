/*
 * admit.h - who may hold a connection: a cap on connections in all and per peer, checked as
 * each nng pipe is added (NNG_PIPE_EV_ADD_PRE), so that a pipe over a cap is closed before it
 * can hold a partial message or a context.
 *
 * A peer is the remote address of a tcp pipe (IPv4 or IPv6, without the port), or the peer's
 * uid on ipc: a caller that opens many connections competes with itself first. The table is
 * pure bookkeeping (no nng): the transport passes pipe ids and peer keys, and closes the pipes
 * it is told to refuse.
 *
 * Thread-safe: one mutex; nng runs pipe callbacks on its own threads.
 */
#ifndef SG_ADMIT_H
#define SG_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sg_admit sg_admit;

/* Why a pipe was refused. */
typedef enum sg_admit_res {
	SG_ADMIT_OK,    /* admitted: report its removal with sg_admit_remove */
	SG_ADMIT_FULL,  /* max connections reached */
	SG_ADMIT_PEER,  /* its peer holds max_per_peer already */
	SG_ADMIT_NOMEM, /* no memory to track it */
} sg_admit_res;

/* A table for max connections in all and max_per_peer each (0: no per-peer cap). NULL when
 * out of memory. */
sg_admit *sg_admit_new(size_t max, size_t max_per_peer);

/* Frees it. NULL is a no-op. */
void sg_admit_free(sg_admit *a);

/* Admits pipe id from peer (a short string: an address, or "uid:N"), or says why not. */
sg_admit_res sg_admit_add(sg_admit *a, uint32_t id, const char *peer);

/* A pipe's removal: an admitted one frees its place; any other id is ignored. */
void sg_admit_remove(sg_admit *a, uint32_t id);

/* Connections held now; held by peer now. */
size_t sg_admit_count(sg_admit *a);
size_t sg_admit_peer_count(sg_admit *a, const char *peer);

/* Pipes refused since the start. */
uint64_t sg_admit_refused(sg_admit *a);

#endif /* SG_ADMIT_H */
