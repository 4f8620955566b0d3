/*
 * gateway.h - the call pipeline: one RPC call from its envelope bytes to its reply bytes.
 *
 *   dispatch → provider → cache (Track, GetOrder) or idempotency (CreateOrder) → auth
 *            → upstream → finish
 *
 * Every call ends in one place (call_finish, in gateway.c): its outcome is stored for its key
 * where it has one, logged, encoded, and handed to the transport. The pipeline knows neither
 * nng nor curl: the transport (src/server/) gives it envelope bytes and a way to send a reply
 * (sg_transport), and the upstream path (gateway/upstream.h) a way to send HTTP.
 *
 * A call is touched by one thread at a time: the transport's receive thread, then the upstream
 * backend's thread, or the thread of the call it waited behind, or the deadline thread.
 */
#ifndef SG_GATEWAY_H
#define SG_GATEWAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/status.h"
#include "gateway/auth.h"
#include "gateway/deadlines.h"
#include "gateway/envelope.h"
#include "gateway/flight.h"
#include "gateway/store.h"
#include "gateway/upstream.h"
#include "providers/provider.h"
#include "server/config.h"

typedef struct sg_gateway sg_gateway;
typedef struct sg_call sg_call;

/* What the transport gives the pipeline. Both may be called from any thread. */
typedef struct sg_transport {
	/* A buffer of len bytes for c's reply, owned by the transport; NULL when it has no memory
	 * (the reply is dropped and the caller's own deadline fires). */
	uint8_t *(*reply_buf)(sg_call *c, size_t len);
	/* c's reply has been written into that buffer (or dropped): send it. After this, the
	 * transport owns c until it calls sg_call_start again. */
	void (*send)(sg_call *c);
} sg_transport;

/* One call. Embedded in the transport's per-context state and reused call after call. */
struct sg_call {
	sg_gateway *gw;  /* owner */
	void *transport; /* the transport's own state for this call */
	/* set by the transport before sg_call_start, when the access table needs them
	 * (sg_gateway_wants_peer): where the request came from */
	int peer_local;                 /* 1 loopback, ipc or inproc; 0 another host; -1 unknown */
	long peer_uid;                  /* an ipc peer's uid, or -1 */
	int peer_caller;                /* i + 1 when it came through caller i's own TLS listener
	                                   (a certificate its CA verified), else 0 */
	const struct sg_caller *caller; /* who is calling (the access step), or NULL: anonymous */
	size_t tenant;                  /* whose credentials: 0 the providers', i tenants[i - 1] */
	size_t pslot;                   /* its provider's slot in per-tenant tables (tokens) */
	sg_arena arena;                 /* everything of this call; released once encoded */
	Shipgate__V1__RpcRequest *env;  /* decoded envelope (arena), or NULL */
	const sg_method *method;        /* resolved method, or NULL */
	ProtobufCMessage *req;          /* decoded payload (arena) */
	ProtobufCMessage *reply;        /* response message when OK (arena) */
	const sg_provider *prov;        /* provider of an upstream call */
	const sg_op *op;                /* its operation */
	sg_pconf pc;                    /* its config, with the token to use */
	sg_http_req hreq;               /* the upstream request (arena strings) */
	sg_status st;                   /* outcome */
	int64_t start_ms;               /* when the request arrived */
	int64_t deadline_ms;            /* absolute sg_now_ms() deadline */
	bool auth_retried;              /* already retried once after a 401 */
	bool idem_local;                /* first in this process with its key: must finish the
	                                   local flight (its waiters get the outcome) */
	bool idem_owner;                /* holds the store's claim on its key: must complete or
	                                   release it */
	const char *idem_key;           /* its key in the table and the store: the caller's, after
	                                   "<tenant> " for a tenant's call (arena) */
	sg_outcome out;                 /* the encoded outcome, from call_finish to the reply */
	bool cache_owner;               /* owns cache_key: must finish it */
	bool cache_store;               /* bypassed the cache: store a fresh answer */
	const char *cache_key;          /* lookup cache key (arena), or NULL */
	const char *shared_key;         /* its key in the fleet's cache (arena), or NULL */
	bool shared_lock;               /* holds the fleet's refresh lock on shared_key */
	sg_flight_waiter waiter;        /* parks it behind the owner of its key */
	sg_token_waiter twait;          /* queues it for a provider token */
	sg_upcall up;                   /* its upstream call's bookkeeping */
	/* Parked (behind the owner of its key, or a token fetch): the party that ends the wait
	 * and the deadline thread race; exactly one of them runs park_then. */
	void (*park_then)(sg_call *c); /* how it goes on once its wait is over */
	sg_flight *park_flight;        /* the table it waits in, or NULL: a token queue */
	size_t park_provider;          /* that token queue's provider index */
	sg_deadline park_timer;        /* its deadline, queued while it waits */
	pthread_mutex_t park_mtx;      /* guards the two flags below */
	bool park_ready;               /* the wait is over: c holds what it waited for */
	bool park_timer_gone;          /* the deadline came first, too late to take it back */
};

/*
 * A gateway over cfg (borrowed, outlives it), sending HTTP through backend, with room for
 * `calls` calls at once (each transport context is one). Returns SG_OK, or an error with a
 * message in err[errlen].
 */
sg_err sg_gateway_new(sg_gateway **out, const sg_config *cfg, const sg_upstream_backend *backend,
                      const sg_transport *transport, int calls, char *err, size_t errlen);

/* Whether the transport must fill each call's peer_local, peer_uid and peer_caller (an access table
 * is configured, or anonymous callers are told apart by where they come from). */
bool sg_gateway_wants_peer(const sg_gateway *gw);

/* Frees it, after sg_gateway_stop. No call may be running. NULL is a no-op. */
void sg_gateway_free(sg_gateway *gw);

/* Prepares c (embedded in transport state `t`) for its first call. */
void sg_call_init(sg_gateway *gw, sg_call *c, void *t);

/* Releases c's memory for good. */
void sg_call_fini(sg_call *c);

/*
 * Runs one call for the request bytes buf[0..len) (borrowed until this returns). The reply
 * comes through the transport's reply_buf and send, on this thread or a later one. Any
 * thread; c must be idle.
 */
void sg_call_start(sg_call *c, const uint8_t *buf, size_t len);

/* The transport has sent (or failed to send) c's reply: c is idle again. */
void sg_call_end(sg_call *c);

/* Starts draining: new calls get UNAVAILABLE / SHUTTING_DOWN, Health says NOT_SERVING. */
void sg_gateway_drain(sg_gateway *gw);

/*
 * Waits, at most until until_ms (sg_now_ms() time), for the upstream calls in flight to end;
 * true when none is left. Then stops the deadline thread only once no call waits any more
 * (sg_gateway_stop). Not from a call's thread.
 */
bool sg_gateway_wait_upstream(sg_gateway *gw, int64_t until_ms);

/* Waits, at most until until_ms, until every call has been answered and sent (sg_call_end);
 * true when none is left. */
bool sg_gateway_wait_idle(sg_gateway *gw, int64_t until_ms);

/* Stops the deadline thread (no call may be parked any more). Idempotent. */
void sg_gateway_stop(sg_gateway *gw);

#endif /* SG_GATEWAY_H */
