/*
 * shipgate/client.h - the C client of the shipgate gateway.
 *
 * A call sends one shipgate.v1.RpcRequest (rpc.proto) on an nng req0 socket and waits for one
 * RpcReply. The client adds what a bare REQ socket lacks:
 *
 * - Several gateways. Each URL (tcp://, ipc://, inproc://) gets its own req0 socket with one
 *   dialer, and attempts go round-robin over the URLs, preferring ones that are connected now.
 *   One socket per URL (rather than one socket dialing all) makes the spread deterministic and
 *   lets the client know which connection a request went out on (see "resends" below).
 * - Deadlines. Each call has a budget (shipgate_call_opts.deadline_ms, else the client default)
 *   covering every attempt and backoff. An attempt waits for its reply no longer than the
 *   budget left when it is encoded (or attempt_timeout_ms), and its envelope's deadline_ms is
 *   that wait less a small margin for the reply's way back (min(50 ms, a fifth)), so that a
 *   gateway keeping its deadline answers first. A call whose budget is already spent fails with
 *   DEADLINE_EXCEEDED without sending anything.
 * - Retries, explicit and bounded, by the rule in proto/shipgate/v1/client_policy.json (the
 *   Python, Go and Node clients generate theirs from the same file). nng's own REQ resend is
 *   switched off (NNG_OPT_REQ_RESENDTIME = NNG_DURATION_INFINITE), because nng 1.5.2 otherwise
 *   resends after 60 s and duplicates calls. The client retries, with exponential backoff and
 *   jitter, within the deadline and up to shipgate_retry_policy.max_attempts:
 *     - any method when the attempt provably never left the client (no connection to send on:
 *       reason TRANSPORT_NOT_CONNECTED);
 *     - idempotent methods (Track, GetOrder, Health) after UNAVAILABLE (from the gateway or the
 *       transport) and after the client's own TRANSPORT_TIMEOUT that left budget (only possible
 *       with attempt_timeout_ms);
 *     - CreateOrder (and methods unknown to this client) with an idempotency key, sent unchanged
 *       in every attempt, after the gateway's UNAVAILABLE only (it answered, so it is done with
 *       the call).
 *   A DEADLINE_EXCEEDED from the gateway is never retried: it kept the budget it was given and
 *   spent it. A CreateOrder (or unknown method) whose request went out and whose connection
 *   then broke, or whose gateway did not answer in time, is not retried at all, on this URL or
 *   another: the gateway may still be working on it, so the call ends with UNKNOWN /
 *   OUTCOME_UNKNOWN. The one exception is a fleet: before a keyed call goes out on a
 *   connection, the client asks Health on it (once per connection), and when the gateway
 *   reports idempotency_scope "fleet", the call may be retried on another connection whose
 *   gateway reports the same fleet_id (it shares the keys, so it replays the first one's
 *   outcome or answers OUTCOME_UNKNOWN, and never POSTs twice). Another fleet, or none, ends
 *   the call OUTCOME_UNKNOWN without sending, and so does any answer of the retry that does not
 *   settle the key (a local failure, UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, ...): see
 *   "fleet" in client_policy.json. The gateway's ErrorDetail.retry_after_ms, when given,
 *   lengthens the backoff.
 * - Lost connections. When the connection a request went out on drops, the attempt fails with
 *   UNAVAILABLE / TRANSPORT_CONNECTION_LOST and the retry rules above decide what happens
 *   next; the request is never silently re-sent by nng. (nng 1.5.2 with resend off reports
 *   NNG_ECONNRESET; for nng builds that instead keep the request for the next connection, the
 *   client cancels the wait itself on the pipe events, before a new connection starts.)
 * - Concurrency. Every call in flight has its own nng_ctx and nng_aio, so any number of calls
 *   may run at once on one client, from any threads.
 * - Capped replies. NNG_OPT_RECVMAXSZ is set on every socket before it dials, and the client
 *   checks the size again itself.
 *
 * Status codes are gRPC numbers (Shipgate__V1__Code in rpc.pb-c.h: SHIPGATE__V1__CODE__OK, ...).
 * Failures made by the client itself carry ErrorDetail-like detail with these reasons:
 *   TRANSPORT_NOT_CONNECTED   UNAVAILABLE (DEADLINE_EXCEEDED when it used up the budget):
 *                             no connection to the gateway within connect_timeout_ms
 *   TRANSPORT_CONNECTION_LOST UNAVAILABLE: the connection dropped while waiting for the reply
 *                             (with tcp/ipc, also what an over-size reply looks like: nng drops
 *                             the connection)
 *   TRANSPORT_TIMEOUT         DEADLINE_EXCEEDED: no reply within the deadline (or the attempt
 *                             timeout)
 *   OUTCOME_UNKNOWN           UNKNOWN: a CreateOrder (or unknown method) went out, then its
 *                             connection broke or no reply came in time; not retried (check
 *                             with the provider before trying again). The gateway uses the
 *                             same code and reason when it cannot know a CreateOrder's outcome.
 *   TRANSPORT_ERROR           UNAVAILABLE: any other nng send/receive failure
 *   TRANSPORT_REPLY_TOO_LARGE RESOURCE_EXHAUSTED: reply over max_reply_size
 *   CLIENT_DEADLINE_EXPIRED   DEADLINE_EXCEEDED: the budget was spent before anything was sent
 *   CLIENT_BAD_REPLY          INTERNAL: the reply (envelope or payload) does not decode
 *   CLIENT_INVALID_ARGUMENT   INVALID_ARGUMENT: bad method, message type or option
 *   CLIENT_CANCELLED          CANCELLED: shipgate_client_cancel_all or shipgate_client_free
 *   CLIENT_OUT_OF_MEMORY      RESOURCE_EXHAUSTED
 * shipgate_status.local tells the two apart: true for these, false for a gateway status.
 *
 * Threads: a client may be used from any number of threads at once. Functions that block
 * (shipgate_call and the typed calls, shipgate_client_wait_all, shipgate_client_free) must not
 * be called from a shipgate_done_cb or any other nng callback.
 */
#ifndef SHIPGATE_CLIENT_H
#define SHIPGATE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The contract, generated by protoc-c; installed under <includedir>/shipgate/gen. */
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHIPGATE_API __attribute__((visibility("default")))
#else
#define SHIPGATE_API
#endif

#define SHIPGATE_DEFAULT_URL "tcp://127.0.0.1:7400"

/* Full method names in gRPC form, as RpcRequest.method carries them. */
#define SHIPGATE_METHOD_TRACK        "/shipgate.v1.Shipgate/Track"
#define SHIPGATE_METHOD_GET_ORDER    "/shipgate.v1.Shipgate/GetOrder"
#define SHIPGATE_METHOD_CREATE_ORDER "/shipgate.v1.Shipgate/CreateOrder"
#define SHIPGATE_METHOD_HEALTH       "/shipgate.v1.Shipgate/Health"

/* ------------------------------------------------------------------ errors of the API itself */

/* What shipgate_client_new and shipgate_call_async return; call outcomes are statuses. */
typedef enum shipgate_err {
	SHIPGATE_OK = 0,
	SHIPGATE_EINVAL,  /* a NULL or out-of-range argument or option */
	SHIPGATE_ENOMEM,  /* out of memory */
	SHIPGATE_EADDR,   /* a URL is malformed or names a transport nng does not have */
	SHIPGATE_ENNG,    /* nng failed to open a socket or set an option */
	SHIPGATE_ECLOSED, /* the client is being freed */
} shipgate_err;

/* One-line description of err; static storage. Any thread. */
SHIPGATE_API const char *shipgate_strerror(int err);

/* ------------------------------------------------------------------ status */

/* One entry of ErrorDetail.field_violations. */
typedef struct shipgate_violation {
	char *field;       /* dotted path, e.g. "receiver.phone"; owned by the status */
	char *description; /* what is wrong; owned by the status */
} shipgate_violation;

/*
 * The outcome of a call: the gateway's Status/ErrorDetail, or one the client made.
 * A zeroed struct (SHIPGATE_STATUS_INIT) is a valid, empty status. Every string is owned by the
 * status and released by shipgate_status_fini; any of them may be NULL when absent. The calls
 * release the previous contents of the status they fill, so one status may be reused.
 */
typedef struct shipgate_status {
	int code;                       /* gRPC code, SHIPGATE__V1__CODE__*; 0 = OK */
	char *message;                  /* human-readable English, or NULL */
	char *reason;                   /* stable upper-case reason to branch on, or NULL */
	bool retryable;                 /* the same call may succeed later (same idempotency key) */
	int32_t upstream_http_status;   /* the provider's HTTP status, 0 when it did not answer */
	char *provider;                 /* lower-case provider name, or NULL */
	char *provider_code;            /* the provider's own error code, verbatim, or NULL */
	char *provider_message;         /* the provider's own error text, verbatim, or NULL */
	size_t n_violations;            /* entries in violations */
	shipgate_violation *violations; /* per-field problems; owned by the status */
	int64_t retry_after_ms;         /* wait before retrying, 0 if unknown */
	bool local;                     /* made by the client (transport/local), not the gateway */
	int attempts;                   /* attempts sent or tried; 0 when failed before any */
	char *request_id;               /* the RpcRequest.request_id used, or NULL */
} shipgate_status;

#define SHIPGATE_STATUS_INIT                                                                       \
	{                                                                                          \
		0                                                                                  \
	}

/* Releases what st owns and zeroes it. NULL is a no-op. Thread: the one owning st. */
SHIPGATE_API void shipgate_status_fini(shipgate_status *st);

/*
 * Deep-copies src into dst, releasing dst's previous contents first. Returns SHIPGATE_OK or
 * SHIPGATE_ENOMEM (dst is then empty). dst is owned by the caller (shipgate_status_fini).
 */
SHIPGATE_API int shipgate_status_copy(shipgate_status *dst, const shipgate_status *src);

/* The name of a gRPC code: "OK", "UNAVAILABLE", ...; "UNKNOWN_CODE" outside 0..16.
 * Static storage. Any thread. */
SHIPGATE_API const char *shipgate_code_name(int code);

/* ------------------------------------------------------------------ client */

typedef struct shipgate_client shipgate_client;

/* How failed attempts are retried. Zero fields take the defaults shown. */
typedef struct shipgate_retry_policy {
	int max_attempts;       /* attempts in all, the first included; 0: 3; 1: never retry */
	int backoff_base_ms;    /* backoff before the first retry, doubled each time; 0: 50 */
	int backoff_cap_ms;     /* backoff ceiling; 0: 1000. Each wait is jittered to [d/2, d] */
	int attempt_timeout_ms; /* longest wait for one reply; 0: the whole remaining budget */
} shipgate_retry_policy;

/* Options of shipgate_client_new. Zero fields take the defaults shown. Borrowed: the client
 * copies what it keeps. */
/* TLS to gateways (tls+tcp:// URLs). The gateway's certificate is always verified, and its
 * name too. */
typedef struct shipgate_tls_opts {
	const char *ca_file;     /* PEM CA bundle the gateway's certificate must chain to; needed
	                            for tls+tcp:// URLs */
	const char *cert_file;   /* PEM client certificate (chain), for a gateway that asks for
	                            one (mTLS); NULL: none */
	const char *key_file;    /* its PEM private key, with cert_file */
	const char *server_name; /* the name the gateway's certificate must carry; NULL: the
	                            URL's host */
} shipgate_tls_opts;

typedef struct shipgate_client_opts {
	const char *const *urls;     /* gateway URLs; n_urls entries (NULL entries not allowed) */
	size_t n_urls;               /* 0: one URL, SHIPGATE_DEFAULT_URL */
	int default_deadline_ms;     /* budget of a call that gives none; 0: 10000 */
	size_t max_reply_size;       /* largest RpcReply accepted, bytes; 0: 4 MiB */
	int connect_timeout_ms;      /* longest an attempt waits for a connection; 0: 1000 */
	shipgate_retry_policy retry; /* retries of failed attempts */
	shipgate_tls_opts tls;       /* for tls+tcp:// URLs */
} shipgate_client_opts;

/*
 * Creates a client: one req0 socket per URL (resend off, RECVMAXSZ set) dialing in the
 * background (a gateway that is down now is retried every 100 ms..1 s). opts may be NULL for
 * all defaults. On success stores the client in *cp and returns SHIPGATE_OK; otherwise returns
 * a shipgate_err and *cp is NULL. The client is owned by the caller: shipgate_client_free.
 * Any thread.
 */
SHIPGATE_API int shipgate_client_new(shipgate_client **cp, const shipgate_client_opts *opts);

/*
 * Cancels every call in flight (their callbacks run with CANCELLED / CLIENT_CANCELLED, and
 * blocked synchronous callers return), waits for them to finish, closes the sockets and frees
 * the client. New calls made meanwhile fail with CANCELLED. NULL is a no-op.
 * Any thread except a shipgate callback (it waits for callbacks to return).
 */
SHIPGATE_API void shipgate_client_free(shipgate_client *c);

/* Cancels every call in flight now (as above) without waiting; the client stays usable.
 * Any thread, callbacks included. */
SHIPGATE_API void shipgate_client_cancel_all(shipgate_client *c);

/* Blocks until no call is in flight on c (calls started meanwhile are waited for too).
 * Any thread except a shipgate callback. */
SHIPGATE_API void shipgate_client_wait_all(shipgate_client *c);

/* How many of the client's URLs have a live connection right now. Any thread. */
SHIPGATE_API size_t shipgate_client_connected(shipgate_client *c);

/* ------------------------------------------------------------------ calls */

/* One metadata entry (RpcRequest.metadata). */
typedef struct shipgate_metadata {
	const char *key;   /* lower-case ASCII [a-z0-9._-], starting with a letter or digit */
	const char *value; /* any text */
} shipgate_metadata;

/* Per-call options. NULL or zeroed means all defaults. Borrowed for the duration of the call
 * function only: the client copies what it sends. */
typedef struct shipgate_call_opts {
	int64_t deadline_ms;               /* budget of the whole call, retries included.
	                                      0: the client's default; < 0: already expired */
	const char *idempotency_key;       /* sent in every attempt; NULL or "": none */
	const shipgate_metadata *metadata; /* n_metadata entries */
	size_t n_metadata;                 /* entries in metadata */
	const char *request_id;            /* NULL or "": the client makes 16 hex digits */
	ProtobufCAllocator *allocator;     /* unpacks the reply message; NULL: malloc */
} shipgate_call_opts;

/*
 * Calls method with req and waits for the outcome.
 *
 * method: "/shipgate.v1.Shipgate/Track", "shipgate.v1.Shipgate.Track" or "Track" for the
 * methods of this contract (req and reply_desc must then be its input and output types), or any
 * other "/package.Service/Method" name, passed through as is (and retried like CreateOrder).
 *
 * Returns the status code (0 = OK). On OK, *reply is a new message of type reply_desc owned by
 * the caller: free it with protobuf_c_message_free_unpacked(*reply, opts->allocator) (or reset
 * the arena behind that allocator). Otherwise *reply is NULL. st (may be NULL) receives the
 * full status, owned by the caller (shipgate_status_fini). req is borrowed.
 * Any thread except a shipgate callback.
 */
SHIPGATE_API int shipgate_call(shipgate_client *c, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *reply_desc,
                               const shipgate_call_opts *opts, ProtobufCMessage **reply,
                               shipgate_status *st);

/*
 * shipgate_call with the payloads as bytes: payload[0..len) is the encoded request message,
 * and on OK *reply / *reply_len receive the encoded response message, malloc'd and owned by the
 * caller (shipgate_buf_free; may be non-NULL with length 0). Otherwise *reply is NULL.
 * Same threads as shipgate_call.
 */
SHIPGATE_API int shipgate_call_raw(shipgate_client *c, const char *method, const void *payload,
                                   size_t len, const shipgate_call_opts *opts, void **reply,
                                   size_t *reply_len, shipgate_status *st);

/* Frees a buffer returned by shipgate_call_raw. NULL is a no-op. Any thread. */
SHIPGATE_API void shipgate_buf_free(void *buf);

/*
 * Completion of an asynchronous call. Runs exactly once, on an nng thread, and must not block
 * (no shipgate_call, no waits, no slow I/O): it holds one of nng's worker threads. It may
 * start new asynchronous calls. st is borrowed for the duration of the callback (copy it with
 * shipgate_status_copy). reply is NULL unless st->code is OK; then it is owned by the callback,
 * freed with protobuf_c_message_free_unpacked(reply, opts->allocator).
 */
typedef void (*shipgate_done_cb)(void *arg, const shipgate_status *st, ProtobufCMessage *reply);

/*
 * Starts a call and returns at once; cb(arg, ...) reports its outcome. Arguments are as for
 * shipgate_call; req and opts are borrowed until this function returns.
 * Returns SHIPGATE_OK when the call was started: cb will run exactly once, on an nng thread,
 * whatever happens (even a local failure such as an expired deadline). Returns SHIPGATE_EINVAL
 * (c or cb NULL) or SHIPGATE_ENOMEM when it could not start: cb will not run.
 * Any thread, shipgate callbacks included.
 */
SHIPGATE_API int shipgate_call_async(shipgate_client *c, const char *method,
                                     const ProtobufCMessage *req,
                                     const ProtobufCMessageDescriptor *reply_desc,
                                     const shipgate_call_opts *opts, shipgate_done_cb cb,
                                     void *arg);

/* ------------------------------------------------------------------ typed calls */

/*
 * The contract's methods. Each is shipgate_call with the method's types: returns the status
 * code; on OK *reply is owned by the caller, freed with the generated free function, e.g.
 * shipgate__v1__track_response__free_unpacked(*reply, opts->allocator). Same threads as
 * shipgate_call. Track, GetOrder and Health are idempotent; CreateOrder needs an idempotency
 * key (the gateway requires one; with it, a CreateOrder the gateway answered UNAVAILABLE is
 * retried, and one whose outcome is unknown is not: see the retry rules above).
 */
SHIPGATE_API int shipgate_track(shipgate_client *c, const Shipgate__V1__TrackRequest *req,
                                const shipgate_call_opts *opts, Shipgate__V1__TrackResponse **reply,
                                shipgate_status *st);
SHIPGATE_API int shipgate_get_order(shipgate_client *c, const Shipgate__V1__GetOrderRequest *req,
                                    const shipgate_call_opts *opts,
                                    Shipgate__V1__GetOrderResponse **reply, shipgate_status *st);
SHIPGATE_API int shipgate_create_order(shipgate_client *c,
                                       const Shipgate__V1__CreateOrderRequest *req,
                                       const shipgate_call_opts *opts,
                                       Shipgate__V1__CreateOrderResponse **reply,
                                       shipgate_status *st);
SHIPGATE_API int shipgate_health(shipgate_client *c, const Shipgate__V1__HealthRequest *req,
                                 const shipgate_call_opts *opts,
                                 Shipgate__V1__HealthResponse **reply, shipgate_status *st);

/* ------------------------------------------------------------------ methods */

/* The service descriptor of the contract (shipgate__v1__shipgate__descriptor). Static. */
SHIPGATE_API const ProtobufCServiceDescriptor *shipgate_service(void);

/*
 * Looks a method of the contract up by "Track", "shipgate.v1.Shipgate.Track" or
 * "/shipgate.v1.Shipgate/Track". Returns its descriptor (static storage) or NULL when unknown;
 * when buf is not NULL, writes the full gRPC-form name there (NUL-terminated, truncated to
 * size). Any thread.
 */
SHIPGATE_API const ProtobufCMethodDescriptor *shipgate_method_lookup(const char *name, char *buf,
                                                                     size_t size);

/* True when the method (any accepted spelling) is idempotent (client_policy.json) and so
 * retried after its request went out. */
SHIPGATE_API bool shipgate_method_idempotent(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* SHIPGATE_CLIENT_H */
