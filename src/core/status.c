/*
 * status.c - building an sg_status.
 */
#include "status.h"

#include <string.h>

void
sg_status_clear(sg_status *st)
{
	memset(st, 0, sizeof(*st));
}

sg_err
sg_status_set(sg_status *st, sg_arena *a, sg_err err, const char *fmt, ...)
{
	st->err = err;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		st->message = sg_arena_vprintf(a, fmt, ap);
		va_end(ap);
	}
	return err;
}

void
sg_status_violation(sg_status *st, const char *field, const char *description)
{
	if (st->nviolations < SG_STATUS_MAX_VIOLATIONS) {
		st->violations[st->nviolations].field = field;
		st->violations[st->nviolations].description = description;
		st->nviolations++;
	}
}

sg_err
sg_status_invalid(sg_status *st, sg_arena *a, const char *field, const char *description)
{
	sg_status_violation(st, field, description);
	return sg_status_set(st, a, SG_EINVAL, "%s: %s", field, description);
}
