/*
 * engine.h - the upstream HTTP engine: one libcurl multi handle on its own event thread.
 *
 * Any thread may submit a transfer; submission never blocks on I/O. Connections are kept alive
 * and reused per host. Each transfer completes exactly once, on the engine thread, through its
 * callback: with SG_OK and the HTTP answer (any status), or with an error (timeout, connect
 * failure, body over the cap, shutdown).
 */
#ifndef SG_ENGINE_H
#define SG_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/http.h"

typedef struct sg_engine sg_engine;

typedef struct sg_engine_conf {
	long max_host_conns;     /* per-host connection cap; 0 = unlimited */
	long max_total_conns;    /* overall connection cap; 0 = unlimited */
	long max_conns_cache;    /* idle connections kept for reuse; 0 = libcurl default */
	size_t max_body;         /* response body cap in bytes; 0 = 8 MiB */
	size_t max_headers;      /* response header block cap in bytes; 0 = 64 KiB */
	long recv_buffer;        /* libcurl's receive buffer per transfer; 0 = 1024 */
	long connect_timeout_ms; /* connect phase cap; 0 = 5000 */
	long default_timeout_ms; /* when the caller gives deadline 0; 0 = 30000 */
} sg_engine_conf;

/*
 * Completion callback. Runs on the engine thread, exactly once per successful submit.
 * err is SG_OK with resp set (resp->status is the HTTP status, possibly 4xx/5xx), or one of
 * SG_EUP_TIMEOUT, SG_EUP_CONNECT (nothing sent), SG_EUP_BROKEN (sent, no answer), SG_EUP_TOOBIG,
 * SG_EUP_TLS, SG_ESHUTDOWN, SG_ENOMEM, SG_EINTERNAL, with resp NULL or (a failure inside
 * libcurl) carrying only resp->error, libcurl's text for it. resp and its buffers are valid
 * only during the callback. Must not block.
 */
typedef void (*sg_engine_cb)(void *arg, sg_err err, const sg_http_resp *resp);

/* Creates the engine and starts its thread. conf may be NULL (defaults). Returns 0 or sg_err. */
sg_err sg_engine_new(sg_engine **out, const sg_engine_conf *conf);

/*
 * Stops the thread: transfers still queued or running complete with SG_ESHUTDOWN before this
 * returns, and later submits get SG_ESHUTDOWN (the engine stays valid to call until
 * sg_engine_free). Idempotent. Not to be called from an engine callback. NULL is a no-op.
 */
void sg_engine_stop(sg_engine *e);

/* sg_engine_stop, then frees everything; no other thread may use e any more. NULL is a no-op. */
void sg_engine_free(sg_engine *e);

/*
 * Queues one transfer. req (and every string it points to) must stay valid until cb has run.
 * deadline_ms is an absolute sg_now_ms() time; 0 means the engine's default timeout.
 * Returns SG_OK (cb will run), or an error and cb will not run: SG_EDEADLINE if the deadline has
 * already passed, SG_ESHUTDOWN if the engine is stopping, SG_ENOMEM.
 * Thread-safe; never blocks on I/O.
 */
sg_err sg_engine_submit(sg_engine *e, const sg_http_req *req, int64_t deadline_ms, sg_engine_cb cb,
                        void *arg);

/* Transfers queued or running right now. Thread-safe. */
size_t sg_engine_inflight(sg_engine *e);

#endif /* SG_ENGINE_H */
