/*
 * err.c - the error table: message, reason, RPC code and retryability of every sg_err.
 */
#include "err.h"

#include <stddef.h>

/* gRPC code numbers (google.rpc.Code); kept here so this module needs no generated code. */
enum {
	C_OK = 0,
	C_CANCELLED = 1,
	C_UNKNOWN = 2,
	C_INVALID_ARGUMENT = 3,
	C_DEADLINE_EXCEEDED = 4,
	C_NOT_FOUND = 5,
	C_ALREADY_EXISTS = 6,
	C_PERMISSION_DENIED = 7,
	C_RESOURCE_EXHAUSTED = 8,
	C_FAILED_PRECONDITION = 9,
	C_ABORTED = 10,
	C_UNIMPLEMENTED = 12,
	C_INTERNAL = 13,
	C_UNAVAILABLE = 14,
	C_UNAUTHENTICATED = 16,
};

struct err_row {
	const char *reason;  /* stable identifier */
	const char *message; /* human text */
	int code;            /* gRPC code */
	bool retryable;      /* may succeed later */
};

static const struct err_row err_table[SG_ERR_COUNT] = {
        [SG_OK] = {"OK", "ok", C_OK, false},
        [SG_ENOMEM] = {"OUT_OF_MEMORY", "out of memory", C_RESOURCE_EXHAUSTED, true},
        [SG_EINTERNAL] = {"INTERNAL", "internal error", C_INTERNAL, false},
        [SG_EDECODE] = {"DECODE_FAILED", "message could not be decoded", C_INVALID_ARGUMENT, false},
        [SG_ETOOBIG] = {"MESSAGE_TOO_LARGE", "message too large", C_RESOURCE_EXHAUSTED, false},
        [SG_ENOMETHOD] = {"UNKNOWN_METHOD", "unknown method", C_UNIMPLEMENTED, false},
        [SG_EINVAL] = {"INVALID_FIELD", "invalid or missing field", C_INVALID_ARGUMENT, false},
        [SG_ENOPROVIDER] = {"UNKNOWN_PROVIDER", "provider unknown or not configured",
                            C_INVALID_ARGUMENT, false},
        [SG_EUNSUPPORTED] = {"UNSUPPORTED_BY_PROVIDER", "operation not supported by this provider",
                             C_UNIMPLEMENTED, false},
        [SG_ENOCRED] = {"MISSING_CREDENTIAL", "provider credential not configured",
                        C_FAILED_PRECONDITION, false},
        [SG_EDEADLINE] = {"DEADLINE_EXPIRED", "deadline exceeded", C_DEADLINE_EXCEEDED, true},
        [SG_ESHUTDOWN] = {"SHUTTING_DOWN", "gateway is shutting down", C_UNAVAILABLE, true},
        [SG_EBUSY] = {"OVERLOADED", "gateway overloaded", C_UNAVAILABLE, true},
        [SG_EIDEMKEY] = {"IDEMPOTENCY_KEY_INVALID", "idempotency key missing or invalid",
                         C_INVALID_ARGUMENT, false},
        [SG_EIDEMCONFLICT] = {"IDEMPOTENCY_KEY_REUSED",
                              "idempotency key already used with a different request",
                              C_FAILED_PRECONDITION, false},
        [SG_EOUTCOME] = {"OUTCOME_UNKNOWN", "outcome unknown: the provider may have acted",
                         C_UNKNOWN, false},
        [SG_EIDEMBUSY] = {"IDEMPOTENCY_KEY_IN_PROGRESS",
                          "a call with this idempotency key is still in progress", C_ABORTED, true},
        [SG_ESTORE] = {"IDEMPOTENCY_STORE_UNAVAILABLE", "idempotency store unavailable",
                       C_UNAVAILABLE, true},
        [SG_EUP_BADREQ] = {"UPSTREAM_BAD_REQUEST", "provider rejected the request",
                           C_INVALID_ARGUMENT, false},
        [SG_EUP_UNAUTH] = {"UPSTREAM_UNAUTHENTICATED", "provider rejected the credential",
                           C_UNAUTHENTICATED, false},
        [SG_EUP_FORBIDDEN] = {"UPSTREAM_PERMISSION_DENIED", "provider denied access",
                              C_PERMISSION_DENIED, false},
        [SG_EUP_NOTFOUND] = {"UPSTREAM_NOT_FOUND", "provider has no such record", C_NOT_FOUND,
                             false},
        [SG_EUP_CONFLICT] = {"UPSTREAM_CONFLICT", "provider reported a conflict", C_ABORTED, false},
        [SG_EUP_RATELIMIT] = {"UPSTREAM_RATE_LIMITED", "provider rate limit reached",
                              C_RESOURCE_EXHAUSTED, true},
        [SG_EUP_UNAVAIL] = {"UPSTREAM_UNAVAILABLE", "provider unavailable", C_UNAVAILABLE, true},
        [SG_EUP_HTTP] = {"UPSTREAM_HTTP_ERROR", "provider answered with an unexpected HTTP status",
                         C_UNKNOWN, false},
        [SG_EUP_TIMEOUT] = {"UPSTREAM_TIMEOUT", "provider did not answer before the deadline",
                            C_DEADLINE_EXCEEDED, true},
        [SG_EUP_CONNECT] = {"UPSTREAM_UNREACHABLE", "provider unreachable", C_UNAVAILABLE, true},
        [SG_EUP_BROKEN] = {"UPSTREAM_CONNECTION_BROKEN",
                           "provider connection broke before it answered", C_UNAVAILABLE, true},
        [SG_EUP_MALFORMED] = {"UPSTREAM_MALFORMED", "provider answered with malformed data",
                              C_INTERNAL, false},
        [SG_EUP_TOOBIG] = {"UPSTREAM_TOO_LARGE", "provider answer exceeds the size limit",
                           C_INTERNAL, false},
        /* FAILED_PRECONDITION: the trust set up for the provider does not hold; the clients'
         * policy retries UNAVAILABLE, which a certificate will not become by itself */
        [SG_EUP_TLS] = {"UPSTREAM_TLS", "provider's TLS certificate or handshake failed",
                        C_FAILED_PRECONDITION, false},
        [SG_ECALLER_UNAUTH] = {"CALLER_UNAUTHENTICATED", "caller not known", C_UNAUTHENTICATED,
                               false},
        [SG_ECALLER_DENIED] = {"CALLER_PERMISSION_DENIED", "caller may not do this",
                               C_PERMISSION_DENIED, false},
        [SG_EKEYS_IN_FLIGHT] = {"IDEMPOTENCY_KEYS_IN_FLIGHT",
                                "caller has its most CreateOrder calls running",
                                C_RESOURCE_EXHAUSTED, true},
        /* not retryable: its keys free up as they expire (idempotency.ttl_ms), not soon */
        [SG_EKEY_QUOTA] = {"IDEMPOTENCY_KEY_QUOTA", "caller holds its most idempotency keys",
                           C_RESOURCE_EXHAUSTED, false},
};

static const struct err_row *
err_row(sg_err err)
{
	if ((int)err < 0 || err >= SG_ERR_COUNT || err_table[err].reason == NULL)
		return &err_table[SG_EINTERNAL];
	return &err_table[err];
}

const char *
sg_strerror(sg_err err)
{
	return err_row(err)->message;
}

const char *
sg_err_reason(sg_err err)
{
	return err_row(err)->reason;
}

int
sg_err_code(sg_err err)
{
	return err_row(err)->code;
}

bool
sg_err_retryable(sg_err err)
{
	return err_row(err)->retryable;
}

sg_err
sg_err_from_http(int st)
{
	if (st >= 200 && st < 400)
		return SG_OK;
	switch (st) {
	case 400:
	case 422: return SG_EUP_BADREQ;
	case 401: return SG_EUP_UNAUTH;
	case 403: return SG_EUP_FORBIDDEN;
	case 404: return SG_EUP_NOTFOUND;
	case 408: return SG_EUP_TIMEOUT;
	case 409: return SG_EUP_CONFLICT;
	case 429: return SG_EUP_RATELIMIT;
	default: return st >= 500 && st <= 599 ? SG_EUP_UNAVAIL : SG_EUP_HTTP;
	}
}
