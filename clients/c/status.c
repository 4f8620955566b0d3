/*
 * status.c - shipgate_status, error and code names, and the contract's method table.
 */
#include "client_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ errors and codes */

const char *
shipgate_strerror(int err)
{
	switch (err) {
	case SHIPGATE_OK: return "ok";
	case SHIPGATE_EINVAL: return "invalid argument";
	case SHIPGATE_ENOMEM: return "out of memory";
	case SHIPGATE_EADDR: return "malformed URL or unsupported transport";
	case SHIPGATE_ENNG: return "nng failure";
	case SHIPGATE_ECLOSED: return "client is closing";
	}
	return "unknown error";
}

const char *
shipgate_code_name(int code)
{
	const ProtobufCEnumValue *v =
	        protobuf_c_enum_descriptor_get_value(&shipgate__v1__code__descriptor, code);
	return v != NULL ? v->name : "UNKNOWN_CODE";
}

/* ------------------------------------------------------------------ status */

char *
sgc_strdup(const char *s)
{
	size_t n;
	char *c;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	if ((c = malloc(n)) != NULL)
		memcpy(c, s, n);
	return c;
}

void
shipgate_status_fini(shipgate_status *st)
{
	if (st == NULL)
		return;
	free(st->message);
	free(st->reason);
	free(st->provider);
	free(st->provider_code);
	free(st->provider_message);
	for (size_t i = 0; i < st->n_violations; i++) {
		free(st->violations[i].field);
		free(st->violations[i].description);
	}
	free(st->violations);
	free(st->request_id);
	memset(st, 0, sizeof(*st));
}

void
sgc_status_set(shipgate_status *st, int code, const char *reason, bool retryable, const char *fmt,
               ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	shipgate_status_fini(st);
	st->code = code;
	st->reason = sgc_strdup(reason);
	st->message = sgc_strdup(msg);
	st->retryable = retryable;
	st->local = true;
}

/* Non-empty protobuf-c string copied, or NULL. *oom is set when the copy failed. */
static char *
dup_opt(const char *s, bool *oom)
{
	char *c;

	if (s == NULL || s[0] == '\0')
		return NULL;
	if ((c = sgc_strdup(s)) == NULL)
		*oom = true;
	return c;
}

int
sgc_status_from_wire(shipgate_status *st, const Shipgate__V1__Status *wire)
{
	const Shipgate__V1__ErrorDetail *d = wire->detail;
	bool oom = false;

	shipgate_status_fini(st);
	st->code = (int)wire->code;
	st->message = dup_opt(wire->message, &oom);
	if (d != NULL) {
		st->reason = dup_opt(d->reason, &oom);
		st->retryable = d->retryable != 0;
		st->upstream_http_status = d->upstream_http_status;
		st->provider = dup_opt(d->provider, &oom);
		st->provider_code = dup_opt(d->provider_code, &oom);
		st->provider_message = dup_opt(d->provider_message, &oom);
		st->retry_after_ms = d->retry_after_ms;
		if (d->n_field_violations > 0) {
			st->violations = calloc(d->n_field_violations, sizeof(*st->violations));
			if (st->violations == NULL)
				oom = true;
			for (size_t i = 0; st->violations != NULL && i < d->n_field_violations;
			     i++) {
				const Shipgate__V1__FieldViolation *v = d->field_violations[i];
				shipgate_violation *sv;
				if (v == NULL)
					continue;
				sv = &st->violations[st->n_violations++];
				sv->field = sgc_strdup(v->field != NULL ? v->field : "");
				sv->description =
				        sgc_strdup(v->description != NULL ? v->description : "");
				if (sv->field == NULL || sv->description == NULL)
					oom = true;
			}
		}
	}
	if (oom) {
		sgc_status_set(st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
		               SGC_REASON_CLIENT_OUT_OF_MEMORY, false,
		               "out of memory while reading the gateway's status");
		return -1;
	}
	return 0;
}

int
shipgate_status_copy(shipgate_status *dst, const shipgate_status *src)
{
	bool oom = false;

	if (dst == NULL || src == NULL)
		return SHIPGATE_EINVAL;
	if (dst == src)
		return SHIPGATE_OK;
	shipgate_status_fini(dst);
	*dst = *src;
	dst->message = dst->reason = dst->provider = dst->provider_code = NULL;
	dst->provider_message = dst->request_id = NULL;
	dst->violations = NULL;
	dst->n_violations = 0;
#define COPY(f)                                                                                    \
	do {                                                                                       \
		if (src->f != NULL && (dst->f = sgc_strdup(src->f)) == NULL)                       \
			oom = true;                                                                \
	} while (0)
	COPY(message);
	COPY(reason);
	COPY(provider);
	COPY(provider_code);
	COPY(provider_message);
	COPY(request_id);
#undef COPY
	if (src->n_violations > 0) {
		if ((dst->violations = calloc(src->n_violations, sizeof(*dst->violations))) == NULL)
			oom = true;
		for (size_t i = 0; dst->violations != NULL && i < src->n_violations; i++) {
			shipgate_violation *v = &dst->violations[i];
			v->field = sgc_strdup(src->violations[i].field);
			v->description = sgc_strdup(src->violations[i].description);
			dst->n_violations++;
			if ((v->field == NULL && src->violations[i].field != NULL) ||
			    (v->description == NULL && src->violations[i].description != NULL))
				oom = true;
		}
	}
	if (oom) {
		shipgate_status_fini(dst);
		return SHIPGATE_ENOMEM;
	}
	return SHIPGATE_OK;
}

/* ------------------------------------------------------------------ methods */

const ProtobufCServiceDescriptor *
shipgate_service(void)
{
	return &shipgate__v1__shipgate__descriptor;
}

const ProtobufCMethodDescriptor *
shipgate_method_lookup(const char *name, char *buf, size_t size)
{
	const ProtobufCServiceDescriptor *sd = &shipgate__v1__shipgate__descriptor;
	const ProtobufCMethodDescriptor *m = NULL;
	size_t sl = strlen(sd->name);
	const char *short_name = NULL;

	if (name == NULL)
		return NULL;
	if (name[0] == '/') {
		/* "/shipgate.v1.Shipgate/Track" */
		if (strncmp(name + 1, sd->name, sl) == 0 && name[1 + sl] == '/')
			short_name = name + 2 + sl;
	} else if (strncmp(name, sd->name, sl) == 0 && name[sl] == '.') {
		short_name = name + sl + 1; /* "shipgate.v1.Shipgate.Track" */
	} else if (strchr(name, '.') == NULL && strchr(name, '/') == NULL) {
		short_name = name; /* "Track" */
	}
	if (short_name != NULL)
		m = protobuf_c_service_descriptor_get_method_by_name(sd, short_name);
	if (m != NULL && buf != NULL && size > 0)
		snprintf(buf, size, "/%s/%s", sd->name, m->name);
	return m;
}

bool
sgc_method_idempotent(const ProtobufCMethodDescriptor *m)
{
	for (size_t i = 0; i < sgc_n_idempotent_methods; i++) /* from client_policy.json */
		if (strcmp(m->name, sgc_idempotent_methods[i]) == 0)
			return true;
	return false;
}

bool
shipgate_method_idempotent(const char *name)
{
	const ProtobufCMethodDescriptor *m = shipgate_method_lookup(name, NULL, 0);

	return m != NULL && sgc_method_idempotent(m);
}
