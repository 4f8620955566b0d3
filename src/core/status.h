/*
 * status.h - the outcome of one call: an sg_err plus the detail a caller needs.
 *
 * Translations and the server fill an sg_status; the server turns it into the wire Status
 * (shipgate.v1.Status) in one place. All strings are borrowed: static or owned by the call's
 * arena. Used by one thread at a time.
 */
#ifndef SG_STATUS_H
#define SG_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "err.h"

#define SG_STATUS_MAX_VIOLATIONS 16

typedef struct sg_violation {
	const char *field;       /* dotted field path */
	const char *description; /* what is wrong */
} sg_violation;

typedef struct sg_status {
	sg_err err;                   /* SG_OK on success */
	const char *message;          /* NULL: sg_strerror(err) is used */
	int http_status;              /* upstream HTTP status, 0 if none */
	const char *provider;         /* lower-case provider name, or NULL */
	const char *provider_code;    /* provider's own error code, verbatim, or NULL */
	const char *provider_message; /* provider's own error text, or NULL */
	int64_t retry_after_ms;       /* from Retry-After, 0 if unknown */
	size_t nviolations;           /* entries used in violations[] */
	sg_violation violations[SG_STATUS_MAX_VIOLATIONS]; /* per-field problems */
} sg_status;

/* Resets st to SG_OK with no detail. */
void sg_status_clear(sg_status *st);

/*
 * Sets st->err and, when fmt is not NULL, a message formatted into arena a (falls back to the
 * static sg_strerror text if the arena is full). Returns err, so that callers can write
 * `return sg_status_set(st, a, SG_EINVAL, "order_id: %s", why);`.
 */
sg_err sg_status_set(sg_status *st, sg_arena *a, sg_err err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Adds a field violation (strings borrowed; copy them into the arena first if they are not
 * static). Extra violations past SG_STATUS_MAX_VIOLATIONS are dropped. */
void sg_status_violation(sg_status *st, const char *field, const char *description);

/* sg_status_set(SG_EINVAL) plus one violation; message is "<field>: <description>". */
sg_err sg_status_invalid(sg_status *st, sg_arena *a, const char *field, const char *description);

#endif /* SG_STATUS_H */
