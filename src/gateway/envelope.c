/*
 * envelope.c - the method table, the envelope's checks and decoding, the reply's encoding.
 */
#include "gateway/envelope.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/utf8.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

static const ProtobufCServiceDescriptor *const service = &shipgate__v1__shipgate__descriptor;

/* The policy of each served method, by name; anything else the service declares is
 * SG_M_UNSERVED. */
static const struct {
	const char *name;    /* method name in the service */
	sg_method_kind kind; /* what it does */
	bool cacheable;      /* lookups: answers cached */
	bool needs_key;      /* creates something: one idempotency key, one provider call */
} policy[] = {
        {"Health", SG_M_HEALTH, false, false},
        {"Track", SG_M_TRACK, true, false},
        {"GetOrder", SG_M_GET_ORDER, true, false},
        {"CreateOrder", SG_M_CREATE_ORDER, false, true},
};

#define MAX_METHODS 16

static struct {
	pthread_once_t once;            /* init runs once */
	int rv;                         /* its result */
	char err[160];                  /* its message */
	sg_method methods[MAX_METHODS]; /* in service order */
	size_t nmethods;                /* entries used */
	uint32_t rid, status, payload;  /* RpcReply field numbers */
	uint32_t hit, age, stale;       /* CacheInfo field numbers */
} E = {.once = PTHREAD_ONCE_INIT};

/* The number of field `name` of d, or 0 (and a message) when it is missing or of another
 * type. */
static uint32_t
field_id(const ProtobufCMessageDescriptor *d, const char *name, ProtobufCType type)
{
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field_by_name(d, name);
	if (f == NULL || f->type != type) {
		snprintf(E.err, sizeof(E.err), "contract: %s has no field %s of the expected type",
		         d->name, name);
		return 0;
	}
	return f->id;
}

static void
envelope_init_once(void)
{
	E.rv = -1;
	if ((E.rid = field_id(&shipgate__v1__rpc_reply__descriptor, "request_id",
	                      PROTOBUF_C_TYPE_STRING)) == 0 ||
	    (E.status = field_id(&shipgate__v1__rpc_reply__descriptor, "status",
	                         PROTOBUF_C_TYPE_MESSAGE)) == 0 ||
	    (E.payload = field_id(&shipgate__v1__rpc_reply__descriptor, "payload",
	                          PROTOBUF_C_TYPE_BYTES)) == 0 ||
	    (E.hit = field_id(&shipgate__v1__cache_info__descriptor, "hit",
	                      PROTOBUF_C_TYPE_BOOL)) == 0 ||
	    (E.age = field_id(&shipgate__v1__cache_info__descriptor, "age_ms",
	                      PROTOBUF_C_TYPE_INT64)) == 0 ||
	    (E.stale = field_id(&shipgate__v1__cache_info__descriptor, "stale",
	                        PROTOBUF_C_TYPE_BOOL)) == 0)
		return;
	if (service->n_methods > MAX_METHODS) {
		snprintf(E.err, sizeof(E.err), "contract: more than %d methods", MAX_METHODS);
		return;
	}
	for (unsigned i = 0; i < service->n_methods; i++) {
		sg_method *m = &E.methods[i];
		m->desc = &service->methods[i];
		for (size_t k = 0; k < sizeof(policy) / sizeof(policy[0]); k++) {
			if (strcmp(policy[k].name, m->desc->name) != 0)
				continue;
			m->kind = policy[k].kind;
			m->cacheable = policy[k].cacheable;
			m->needs_key = policy[k].needs_key;
		}
		m->upstream = m->kind == SG_M_TRACK || m->kind == SG_M_GET_ORDER ||
		              m->kind == SG_M_CREATE_ORDER;
		if (m->upstream) {
			const ProtobufCFieldDescriptor *f =
			        protobuf_c_message_descriptor_get_field_by_name(m->desc->input,
			                                                        "provider");
			if (f == NULL || f->type != PROTOBUF_C_TYPE_ENUM) {
				snprintf(E.err, sizeof(E.err), "contract: %s has no provider field",
				         m->desc->input->name);
				return;
			}
			m->provider_offset = f->offset;
		}
		if (m->cacheable && (m->cache_field = field_id(m->desc->output, "cache",
		                                               PROTOBUF_C_TYPE_MESSAGE)) == 0)
			return;
		if (m->needs_key && (m->replayed_field = field_id(m->desc->output, "replayed",
		                                                  PROTOBUF_C_TYPE_BOOL)) == 0)
			return;
	}
	E.nmethods = service->n_methods;
	E.rv = 0;
}

int
sg_envelope_init(char *err, size_t errlen)
{
	pthread_once(&E.once, envelope_init_once);
	if (E.rv != 0 && err != NULL)
		snprintf(err, errlen, "%s", E.err);
	return E.rv;
}

const sg_method *
sg_methods(size_t *n)
{
	*n = E.nmethods;
	return E.methods;
}

const char *
sg_service_name(void)
{
	return service->name;
}

const sg_method *
sg_method_resolve(const char *name)
{
	size_t n = strlen(service->name);
	if (name[0] != '/' || strncmp(name + 1, service->name, n) != 0 || name[n + 1] != '/')
		return NULL;
	const ProtobufCMethodDescriptor *d =
	        protobuf_c_service_descriptor_get_method_by_name(service, name + n + 2);
	return d != NULL && E.nmethods > 0 ? &E.methods[d - service->methods] : NULL;
}

int
sg_method_provider(const sg_method *m, const ProtobufCMessage *req)
{
	return m->upstream ? *(const int *)(const void *)((const char *)req + m->provider_offset)
	                   : 0;
}

/* ------------------------------------------------------------------ decoding */

sg_err
sg_envelope_decode(const uint8_t *buf, size_t len, sg_arena *a, Shipgate__V1__RpcRequest **env,
                   sg_status *st)
{
	sg_err err;

	*env = NULL;
	if ((err = sg_pb_check_strings(&shipgate__v1__rpc_request__descriptor, buf, len, a, st)) !=
	    SG_OK)
		return err;
	if ((*env = shipgate__v1__rpc_request__unpack(sg_arena_pb(a), len, buf)) == NULL)
		return sg_status_set(st, a, SG_EDECODE,
		                     "request envelope is not a valid shipgate.v1.RpcRequest");
	return SG_OK;
}

sg_err
sg_payload_decode(const sg_method *m, const Shipgate__V1__RpcRequest *env, sg_arena *a,
                  ProtobufCMessage **req, sg_status *st)
{
	const ProtobufCMessageDescriptor *in = m->desc->input;
	sg_err err;

	*req = NULL;
	if ((err = sg_pb_check_strings(in, env->payload.data, env->payload.len, a, st)) != SG_OK)
		return err;
	if ((*req = protobuf_c_message_unpack(in, sg_arena_pb(a), env->payload.len,
	                                      env->payload.data)) == NULL)
		return sg_status_set(st, a, SG_EDECODE, "payload is not a valid %s", in->name);
	return SG_OK;
}

/* ------------------------------------------------------------------ encoding */

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* A field's key: number and wire type (0 varint, 2 length-delimited). */
static uint8_t *
put_key(uint8_t *p, uint32_t field, unsigned wire)
{
	return put_varint(p, (uint64_t)field << 3 | wire);
}

int
sg_payload_pack(const ProtobufCMessage *msg, sg_arena *a, sg_outcome *o)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = sg_arena_alloc(a, n ? n : 1);
	if (buf == NULL)
		return -1;
	o->payload = buf;
	o->payload_len = protobuf_c_message_pack(msg, buf);
	return 0;
}

int
sg_status_pack(const sg_status *st, sg_arena *a, sg_outcome *o)
{
	Shipgate__V1__Status status = SHIPGATE__V1__STATUS__INIT;
	Shipgate__V1__ErrorDetail det = SHIPGATE__V1__ERROR_DETAIL__INIT;

	/* Every string of a reply is valid UTF-8 (proto3's rule; strict decoders refuse the
	 * message otherwise): provider texts may be anything, so each one is made valid. */
#define TEXT(s) ((char *)sg_utf8_clean(a, (s) ? (s) : ""))
	status.code = (Shipgate__V1__Code)sg_err_code(st->err);
	if (st->err != SG_OK) {
		status.message = TEXT(st->message ? st->message : sg_strerror(st->err));
		status.detail = &det;
		det.reason = (char *)sg_err_reason(st->err);
		det.retryable = sg_err_retryable(st->err);
		det.upstream_http_status = st->http_status;
		det.provider = TEXT(st->provider);
		det.provider_code = TEXT(st->provider_code);
		det.provider_message = TEXT(st->provider_message);
		det.retry_after_ms = st->retry_after_ms;
		Shipgate__V1__FieldViolation *fv =
		        st->nviolations ? sg_arena_calloc(a, st->nviolations, sizeof(*fv)) : NULL;
		Shipgate__V1__FieldViolation **fvp =
		        st->nviolations ? sg_arena_calloc(a, st->nviolations, sizeof(*fvp)) : NULL;
		if (fv != NULL && fvp != NULL) {
			for (size_t i = 0; i < st->nviolations; i++) {
				shipgate__v1__field_violation__init(&fv[i]);
				fv[i].field = TEXT(st->violations[i].field);
				fv[i].description = TEXT(st->violations[i].description);
				fvp[i] = &fv[i];
			}
			det.field_violations = fvp;
			det.n_field_violations = st->nviolations;
		}
	}
#undef TEXT
	size_t n = shipgate__v1__status__get_packed_size(&status);
	uint8_t *buf = sg_arena_alloc(a, n ? n : 1);
	if (buf == NULL)
		return -1;
	o->status = buf;
	o->status_len = shipgate__v1__status__pack(&status, buf);
	return 0;
}

size_t
sg_reply_size(const char *rid, const sg_outcome *o, size_t extra_len)
{
	size_t rlen = rid != NULL ? strlen(rid) : 0;
	size_t plen = o->payload_len + extra_len;
	return (rlen ? varint_len((uint64_t)E.rid << 3) + varint_len(rlen) + rlen : 0) +
	       varint_len((uint64_t)E.status << 3) + varint_len(o->status_len) + o->status_len +
	       (o->payload != NULL ? varint_len((uint64_t)E.payload << 3) + varint_len(plen) + plen
	                           : 0);
}

size_t
sg_reply_write(uint8_t *dst, const char *rid, const sg_outcome *o, const uint8_t *extra,
               size_t extra_len)
{
	size_t rlen = rid != NULL ? strlen(rid) : 0;
	uint8_t *p = dst;

	if (rlen) {
		p = put_key(p, E.rid, 2);
		p = put_varint(p, rlen);
		memcpy(p, rid, rlen);
		p += rlen;
	}
	p = put_key(p, E.status, 2); /* status is always present, even when OK (empty) */
	p = put_varint(p, o->status_len);
	if (o->status_len)
		memcpy(p, o->status, o->status_len);
	p += o->status_len;
	if (o->payload != NULL) {
		p = put_key(p, E.payload, 2);
		p = put_varint(p, o->payload_len + extra_len);
		memcpy(p, o->payload, o->payload_len);
		p += o->payload_len;
		if (extra_len) {
			memcpy(p, extra, extra_len);
			p += extra_len;
		}
	}
	return (size_t)(p - dst);
}

size_t
sg_reply_replayed_field(const sg_method *m, uint8_t buf[SG_REPLY_EXTRA_MAX])
{
	if (m == NULL || m->replayed_field == 0)
		return 0;
	uint8_t *p = put_key(buf, m->replayed_field, 0);
	*p++ = 1;
	return (size_t)(p - buf);
}

size_t
sg_reply_cache_field(const sg_method *m, int64_t age_ms, bool stale,
                     uint8_t buf[SG_REPLY_EXTRA_MAX])
{
	uint8_t info[SG_REPLY_EXTRA_MAX], *p = info;

	if (m == NULL || m->cache_field == 0)
		return 0;
	p = put_key(p, E.hit, 0);
	*p++ = 1;
	if (age_ms > 0) {
		p = put_key(p, E.age, 0);
		p = put_varint(p, (uint64_t)age_ms);
	}
	if (stale) {
		p = put_key(p, E.stale, 0);
		*p++ = 1;
	}
	size_t n = (size_t)(p - info);
	uint8_t *q = put_key(buf, m->cache_field, 2);
	q = put_varint(q, n);
	memcpy(q, info, n);
	return (size_t)(q + n - buf);
}
