/*
 * server.h - the nng transport: one REP socket, a fixed pool of contexts, and dispatch.
 *
 * Each context is a small state machine (nng's demo/async/server.c): receive a request
 * envelope, decode it into the call's arena, dispatch by method name through the protobuf-c
 * service descriptor, hand any upstream HTTP to the engine, and send exactly one reply. No
 * thread is created per request and no nng callback blocks.
 *
 * Thread rules: sg_server_new/start/stop/free are called by one controlling thread (main).
 */
#ifndef SG_SERVER_H
#define SG_SERVER_H

#include <stdbool.h>

#include "config.h"
#include "core/err.h"

typedef struct sg_server sg_server;

/*
 * Creates the server: opens the socket (limits set before any listener), the engine and the
 * context pool. cfg is borrowed and must outlive the server. Returns SG_OK or an error with a
 * message in err[errlen].
 */
sg_err sg_server_new(sg_server **out, const sg_config *cfg, char *err, size_t errlen);

/* Starts every listener and the contexts. Returns SG_OK or an error with err. */
sg_err sg_server_start(sg_server *s, char *err, size_t errlen);

/* The i-th listen URL as bound (a tcp port 0 resolved), then the callers' own TLS listeners
 * (caller.<name>.tls_listen) in the callers' order, or NULL past the last. Borrowed. */
const char *sg_server_url(const sg_server *s, size_t i);

/*
 * Graceful stop: new calls get UNAVAILABLE (Health reports NOT_SERVING), calls in flight may
 * finish until cfg->drain_timeout_ms, the rest get UNAVAILABLE; then every reply is flushed
 * and the socket closed. Idempotent.
 *
 * Returns false when nng_close did not return within 2 s (nng 1.5.2 can hang there after a
 * stalled peer). Every call is answered by then, but the server can no longer be freed:
 * sg_server_free leaves it alone, and the caller should _exit.
 */
bool sg_server_stop(sg_server *s);

/* Stops (if needed) and frees everything, or nothing after a stuck stop. NULL is a no-op. */
void sg_server_free(sg_server *s);

#endif /* SG_SERVER_H */
