/*
 * err.h - shipgate's one error enum.
 *
 * Every failure inside the gateway is an sg_err. sg_err_code() is the single place that maps it
 * to an RPC status code (gRPC numbering); sg_err_reason() gives the stable string callers branch
 * on (ErrorDetail.reason). All functions are pure and thread-safe.
 */
#ifndef SG_ERR_H
#define SG_ERR_H

#include <stdbool.h>

typedef enum sg_err {
	SG_OK = 0,
	/* -- the gateway itself -- */
	SG_ENOMEM,        /* allocation failed or per-call arena cap reached */
	SG_EINTERNAL,     /* a bug: an invariant did not hold */
	SG_EDECODE,       /* envelope or payload bytes are not a valid message */
	SG_ETOOBIG,       /* request message over the configured maximum */
	SG_ENOMETHOD,     /* method name not in the service descriptor */
	SG_EINVAL,        /* a request field is missing or invalid */
	SG_ENOPROVIDER,   /* provider unspecified, unknown or not configured */
	SG_EUNSUPPORTED,  /* the provider has no such operation */
	SG_ENOCRED,       /* the provider's credential is not configured */
	SG_EDEADLINE,     /* the caller's deadline expired (before or during the call) */
	SG_ESHUTDOWN,     /* the gateway is stopping */
	SG_EBUSY,         /* no capacity for the call right now */
	SG_EIDEMKEY,      /* idempotency key missing or malformed */
	SG_EIDEMCONFLICT, /* idempotency key reused with a different request */
	SG_EOUTCOME,      /* a keyed call failed after the provider may have acted on it */
	SG_EIDEMBUSY,     /* the key is held by another owner whose call is still running */
	SG_ESTORE,        /* the idempotency store cannot be reached or failed */
	/* -- the upstream provider -- */
	SG_EUP_BADREQ,      /* HTTP 400 / 422: the provider rejected the input */
	SG_EUP_UNAUTH,      /* HTTP 401 */
	SG_EUP_FORBIDDEN,   /* HTTP 403 */
	SG_EUP_NOTFOUND,    /* HTTP 404 */
	SG_EUP_CONFLICT,    /* HTTP 409 */
	SG_EUP_RATELIMIT,   /* HTTP 429 */
	SG_EUP_UNAVAIL,     /* HTTP 5xx */
	SG_EUP_HTTP,        /* any other unexpected HTTP status */
	SG_EUP_TIMEOUT,     /* the upstream did not answer within the deadline */
	SG_EUP_CONNECT,     /* could not resolve or connect: the request was not sent */
	SG_EUP_BROKEN,      /* connection broke after sending: the outcome is unknown */
	SG_EUP_MALFORMED,   /* body is not JSON, or JSON of the wrong shape or type */
	SG_EUP_TOOBIG,      /* body over the upstream response cap */
	SG_EUP_TLS,         /* the provider's certificate did not verify, or the TLS handshake
	                       failed: nothing was sent, and retrying will not help */
	SG_ECALLER_UNAUTH,  /* the caller is not known (a token no caller has, or none where the
	                       gateway needs one) */
	SG_ECALLER_DENIED,  /* the access table does not let this caller do this */
	SG_EKEYS_IN_FLIGHT, /* the caller has its most CreateOrder keys running already */
	SG_EKEY_QUOTA,      /* the caller holds its most live idempotency keys already */
	SG_ERR_COUNT
} sg_err;

/* Human-readable one-line description. Never NULL; static storage. */
const char *sg_strerror(sg_err err);

/* Stable upper-case reason identifier (e.g. "UPSTREAM_NOT_FOUND"). Static storage. */
const char *sg_err_reason(sg_err err);

/* The gRPC status code (0..16) for err. The only err -> code mapping in the project. */
int sg_err_code(sg_err err);

/* True when retrying the same call later may succeed. */
bool sg_err_retryable(sg_err err);

/* The sg_err for an upstream HTTP status (>= 400). 2xx/3xx give SG_OK. */
sg_err sg_err_from_http(int http_status);

#endif /* SG_ERR_H */
