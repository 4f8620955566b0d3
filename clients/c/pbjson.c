/*
 * pbjson.c - protobuf-c messages to proto3 JSON and back (see pbjson.h for the mapping).
 *
 * Both directions walk the message descriptor. Building a message goes through the caller's
 * ProtobufCAllocator and keeps the message consistent at every step (counts follow filled
 * elements, pointers are set as soon as allocated), so that on failure one
 * protobuf_c_message_free_unpacked() releases exactly what was built.
 */
#include "pbjson.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PJ_MAX_DEPTH 100 /* protobuf's own default recursion limit */

/* ------------------------------------------------------------------ walk state */

typedef struct pj {
	int flags;              /* SGC_PBJSON_* */
	ProtobufCAllocator *pa; /* where built messages live */
	sgc_pbjson_error *err;  /* caller's error report, or NULL */
	char path[256];         /* JSON path of the value being converted */
	size_t plen;            /* strlen(path) */
	int depth;              /* current message nesting */
} pj;

static void *
pj_sys_alloc(void *ud, size_t n)
{
	(void)ud;
	return malloc(n);
}

static void
pj_sys_free(void *ud, void *ptr)
{
	(void)ud;
	free(ptr);
}

/* The malloc allocator; protobuf_c_message_free_unpacked(m, NULL) frees what it allocates. */
static ProtobufCAllocator pj_sys = {pj_sys_alloc, pj_sys_free, NULL};

static void
pj_init(pj *p, int flags, ProtobufCAllocator *pa, sgc_pbjson_error *err)
{
	p->flags = flags;
	p->pa = pa != NULL ? pa : &pj_sys;
	p->err = err;
	strcpy(p->path, "$");
	p->plen = 1;
	p->depth = 0;
}

/* Records the failure at the current path. Always returns -1. */
static int pj_fail(pj *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
pj_fail(pj *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err == NULL)
		return -1;
	snprintf(p->err->path, sizeof(p->err->path), "%s", p->path);
	va_start(ap, fmt);
	vsnprintf(p->err->text, sizeof(p->err->text), fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends to the path; returns the length to restore with pj_pop. Truncates silently. */
static size_t pj_push(pj *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t
pj_push(pj *p, const char *fmt, ...)
{
	size_t old = p->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p->path + old, sizeof(p->path) - old, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->plen = old + (size_t)n < sizeof(p->path) ? old + (size_t)n : sizeof(p->path) - 1;
	return old;
}

static void
pj_pop(pj *p, size_t old)
{
	p->plen = old;
	p->path[old] = '\0';
}

static void *
pj_alloc(pj *p, size_t n)
{
	void *m = p->pa->alloc(p->pa->allocator_data, n == 0 ? 1 : n);
	if (m == NULL)
		pj_fail(p, "out of memory");
	return m;
}

static void
pj_free(pj *p, void *m)
{
	if (m != NULL && p->pa->free != NULL)
		p->pa->free(p->pa->allocator_data, m);
}

static const char *
jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

/* ------------------------------------------------------------------ descriptors */

size_t
sgc_pbjson_json_name(const char *proto_name, char *buf, size_t size)
{
	size_t n = 0;
	bool upper = false;

	for (const char *s = proto_name; *s != '\0'; s++) {
		char ch = *s;
		if (ch == '_') {
			upper = true;
			continue;
		}
		if (upper && ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		upper = false;
		if (n + 1 < size)
			buf[n] = ch;
		n++;
	}
	if (size > 0)
		buf[n < size ? n : size - 1] = '\0';
	return n;
}

int
sgc_pbjson_is_wrapper(const ProtobufCMessageDescriptor *d)
{
	static const char *const names[] = {
	        "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
	        "google.protobuf.Int64Value",  "google.protobuf.UInt64Value",
	        "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
	        "google.protobuf.BoolValue",   "google.protobuf.StringValue",
	        "google.protobuf.BytesValue",
	};
	if (d == NULL || d->n_fields != 1 || d->fields[0].id != 1)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(d->name, names[i]) == 0)
			return 1;
	return 0;
}

int
sgc_pbjson_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *e;
	size_t pl, sl;

	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return 0;
	e = f->descriptor;
	if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
	    strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0)
		return 0;
	/* protoc names the entry <Parent>.<CamelField>Entry and nests it in the parent */
	pl = strlen(parent->name);
	sl = strlen(e->short_name);
	return strncmp(e->name, parent->name, pl) == 0 && e->name[pl] == '.' && sl > 5 &&
	       strcmp(e->short_name + sl - 5, "Entry") == 0;
}

/* Bytes one element of a repeated field of type t takes. */
static size_t
elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_ENUM: return sizeof(int); /* generated enums are int-sized */
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static const ProtobufCFieldDescriptor *
find_field(const ProtobufCMessageDescriptor *d, const char *key)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
	char jn[256];

	if (f != NULL)
		return f;
	for (unsigned i = 0; i < d->n_fields; i++) {
		sgc_pbjson_json_name(d->fields[i].name, jn, sizeof(jn));
		if (strcmp(jn, key) == 0)
			return &d->fields[i];
	}
	return NULL;
}

/* ------------------------------------------------------------------ base64 */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *
b64_encode(const uint8_t *in, size_t n)
{
	size_t olen = (n + 2) / 3 * 4;
	char *out = malloc(olen + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		*o++ = b64_std[(v >> 18) & 63];
		*o++ = b64_std[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64_std[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? b64_std[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

/* Decodes standard or URL-safe base64, padded or not, into out (at least n*3/4+3 bytes). */
static int
b64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen)
{
	uint32_t acc = 0;
	size_t bits = 0, o = 0, pad = 0;

	while (n > 0 && in[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0))
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*outlen = o;
	return 0;
}

/* ------------------------------------------------------------------ message -> JSON */

static json_t *msg_to_json(pj *p, const ProtobufCMessage *m);

/* Shortest "%.*g" text that reads back as v, as a double (floats print like floats). */
static double
float_shortest(float v)
{
	char buf[40];
	for (int prec = 1; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, (double)v);
		if (strtof(buf, NULL) == v)
			break;
	}
	return strtod(buf, NULL);
}

static json_t *
double_to_json(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "Infinity" : "-Infinity");
	return json_real(v);
}

/* One value of field f stored at src (a singular member or one repeated element). */
static json_t *
value_to_json(pj *p, const ProtobufCFieldDescriptor *f, const void *src)
{
	char buf[32];
	json_t *v = NULL;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: v = json_integer(*(const int32_t *)src); break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: v = json_integer(*(const uint32_t *)src); break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)src);
		v = json_string(buf);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)src);
		v = json_string(buf);
		break;
	case PROTOBUF_C_TYPE_FLOAT: {
		float fv = *(const float *)src;
		v = isfinite(fv) ? json_real(float_shortest(fv)) : double_to_json(fv);
		break;
	}
	case PROTOBUF_C_TYPE_DOUBLE: v = double_to_json(*(const double *)src); break;
	case PROTOBUF_C_TYPE_BOOL: v = json_boolean(*(const protobuf_c_boolean *)src); break;
	case PROTOBUF_C_TYPE_ENUM: {
		int ev = *(const int *)src;
		const ProtobufCEnumValue *e =
		        (p->flags & SGC_PBJSON_ENUMS_AS_INTS)
		                ? NULL
		                : protobuf_c_enum_descriptor_get_value(f->descriptor, ev);
		v = e != NULL ? json_string(e->name) : json_integer(ev);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)src;
		v = json_string(s != NULL ? s : "");
		if (v == NULL) {
			pj_fail(p, "string field \"%s\" is not valid UTF-8", f->name);
			return NULL;
		}
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = src;
		char *t = b64_encode(bd->data, bd->data != NULL ? bd->len : 0);
		if (t != NULL)
			v = json_string(t);
		free(t);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)src;
		return sub != NULL ? msg_to_json(p, sub) : json_null();
	}
	}
	if (v == NULL)
		pj_fail(p, "out of memory");
	return v;
}

/* Whether a singular field is set: oneof case, has_ flag, pointer, or a non-default value. */
static bool
field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const void *member)
{
	const char *base = (const char *)m;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	switch (f->type) {
	case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)member != NULL;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)member;
		if (f->label == PROTOBUF_C_LABEL_NONE)
			return s != NULL && s[0] != '\0';
		return s != NULL &&
		       (f->label == PROTOBUF_C_LABEL_REQUIRED || s != f->default_value);
	}
	default: break;
	}
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return true;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
	if (f->type == PROTOBUF_C_TYPE_BYTES)
		return ((const ProtobufCBinaryData *)member)->len > 0;
	/* proto3 implicit presence: set when any bit differs from zero (so -0.0 is set) */
	for (size_t i = 0, n = elem_size(f->type); i < n; i++)
		if (((const unsigned char *)member)[i] != 0)
			return true;
	return false;
}

static json_t *
map_to_json(pj *p, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries, size_t n)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
	json_t *obj = json_object();
	char kbuf[32];

	if (obj == NULL) {
		pj_fail(p, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *e = (const char *)entries[i], *key = kbuf;
		const void *kp, *vp;
		json_t *v;
		size_t old;

		if (e == NULL)
			continue;
		kp = e + kf->offset;
		vp = e + vf->offset;
		switch (kf->type) {
		case PROTOBUF_C_TYPE_STRING:
			key = *(char *const *)kp != NULL ? *(char *const *)kp : "";
			break;
		case PROTOBUF_C_TYPE_BOOL:
			key = *(const protobuf_c_boolean *)kp ? "true" : "false";
			break;
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_SINT64:
		case PROTOBUF_C_TYPE_SFIXED64:
			snprintf(kbuf, sizeof(kbuf), "%" PRId64, *(const int64_t *)kp);
			break;
		case PROTOBUF_C_TYPE_UINT64:
		case PROTOBUF_C_TYPE_FIXED64:
			snprintf(kbuf, sizeof(kbuf), "%" PRIu64, *(const uint64_t *)kp);
			break;
		case PROTOBUF_C_TYPE_UINT32:
		case PROTOBUF_C_TYPE_FIXED32:
			snprintf(kbuf, sizeof(kbuf), "%" PRIu32, *(const uint32_t *)kp);
			break;
		default: snprintf(kbuf, sizeof(kbuf), "%" PRId32, *(const int32_t *)kp); break;
		}
		old = pj_push(p, "[\"%.40s\"]", key);
		v = value_to_json(p, vf, vp);
		if (v == NULL || json_object_set_new(obj, key, v) != 0) {
			if (v != NULL)
				pj_fail(p, "map key is not valid UTF-8");
			json_decref(obj);
			return NULL;
		}
		pj_pop(p, old);
	}
	return obj;
}

static json_t *
repeated_to_json(pj *p, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	size_t n = *(const size_t *)(base + f->quantifier_offset);
	const char *arr = *(char *const *)(base + f->offset);
	size_t es = elem_size(f->type);
	json_t *a;

	if (n > 0 && arr == NULL)
		n = 0;
	if (sgc_pbjson_is_map(m->descriptor, f))
		return map_to_json(p, f, (ProtobufCMessage *const *)arr, n);
	if ((a = json_array()) == NULL) {
		pj_fail(p, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t old = pj_push(p, "[%zu]", i);
		json_t *v = value_to_json(p, f, arr + i * es);
		if (v == NULL || json_array_append_new(a, v) != 0) {
			if (v != NULL)
				pj_fail(p, "out of memory");
			json_decref(a);
			return NULL;
		}
		pj_pop(p, old);
	}
	return a;
}

static json_t *
msg_to_json(pj *p, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char name[256];
	json_t *obj;

	if (sgc_pbjson_is_wrapper(d))
		return value_to_json(p, &d->fields[0], (const char *)m + d->fields[0].offset);
	if (p->depth >= PJ_MAX_DEPTH) {
		pj_fail(p, "messages nested deeper than %d", PJ_MAX_DEPTH);
		return NULL;
	}
	if ((obj = json_object()) == NULL) {
		pj_fail(p, "out of memory");
		return NULL;
	}
	p->depth++;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *member = (const char *)m + f->offset;
		const char *key = f->name;
		json_t *v;
		size_t old;

		if (!(p->flags & SGC_PBJSON_ORIG_NAMES)) {
			sgc_pbjson_json_name(f->name, name, sizeof(name));
			key = name;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			if (n == 0 && !(p->flags & SGC_PBJSON_EMIT_DEFAULTS))
				continue;
		} else if (!field_present(m, f, member)) {
			bool implicit = f->label == PROTOBUF_C_LABEL_NONE &&
			                f->type != PROTOBUF_C_TYPE_MESSAGE &&
			                !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
			if (!implicit || !(p->flags & SGC_PBJSON_EMIT_DEFAULTS))
				continue;
		}
		old = pj_push(p, ".%s", key);
		v = f->label == PROTOBUF_C_LABEL_REPEATED ? repeated_to_json(p, m, f)
		                                          : value_to_json(p, f, member);
		if (v == NULL || json_object_set_new(obj, key, v) != 0) {
			if (v != NULL)
				pj_fail(p, "out of memory");
			json_decref(obj);
			return NULL;
		}
		pj_pop(p, old);
	}
	p->depth--;
	return obj;
}

json_t *
sgc_pbjson_from_message(const ProtobufCMessage *msg, int flags, sgc_pbjson_error *err)
{
	pj p;

	pj_init(&p, flags, NULL, err);
	if (msg == NULL || msg->descriptor == NULL) {
		pj_fail(&p, "no message");
		return NULL;
	}
	return msg_to_json(&p, msg);
}

/* ------------------------------------------------------------------ JSON -> message */

static int parse_message(pj *p, const json_t *j, ProtobufCMessage *m);

/* True when s is a plain JSON-style number: no spaces, no hex, no inf/nan words. */
static bool
numeric_text(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.' ||
		      *s == 'e' || *s == 'E'))
			return false;
	return true;
}

/* An integral double from a JSON number or numeric string ("1e3"), for the slow paths. */
static int
integral_double(pj *p, const json_t *v, double *out)
{
	double d;
	char *end;

	if (json_is_real(v)) {
		d = json_real_value(v);
	} else {
		const char *s = json_string_value(v);
		if (!numeric_text(s))
			return pj_fail(p, "\"%.40s\" is not an integer", s);
		errno = 0;
		d = strtod(s, &end);
		if (*end != '\0' || errno != 0)
			return pj_fail(p, "\"%.40s\" is not an integer", s);
	}
	if (!isfinite(d) || d != floor(d))
		return pj_fail(p, "%.17g is not an integer", d);
	*out = d;
	return 0;
}

static int
get_int(pj *p, const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t x;

	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_string(v) || json_is_real(v)) {
		const char *s = json_string_value(v);
		char *end;
		double d;

		if (s != NULL && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) {
			errno = 0;
			long long ll = strtoll(s, &end, 10);
			if (*end == '\0') {
				if (errno == ERANGE)
					return pj_fail(p, "%.40s is out of range", s);
				x = ll;
				goto check;
			}
		}
		if (integral_double(p, v, &d) != 0)
			return -1;
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
			return pj_fail(p, "%.17g is out of range", d);
		x = (int64_t)d;
	} else {
		return pj_fail(p, "expected an integer, got %s", jtype(v));
	}
check:
	if (x < lo || x > hi)
		return pj_fail(p, "%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", x, lo,
		               hi);
	*out = x;
	return 0;
}

static int
get_uint(pj *p, const json_t *v, uint64_t hi, uint64_t *out)
{
	uint64_t x;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return pj_fail(p, "%" JSON_INTEGER_FORMAT " is negative",
			               json_integer_value(v));
		x = (uint64_t)json_integer_value(v);
	} else if (json_is_string(v) || json_is_real(v)) {
		const char *s = json_string_value(v);
		char *end;
		double d;

		if (s != NULL && s[0] >= '0' && s[0] <= '9') {
			errno = 0;
			unsigned long long ull = strtoull(s, &end, 10);
			if (*end == '\0') {
				if (errno == ERANGE)
					return pj_fail(p, "%.40s is out of range", s);
				x = ull;
				goto check;
			}
		}
		if (integral_double(p, v, &d) != 0)
			return -1;
		if (!(d >= 0 && d < 18446744073709551616.0))
			return pj_fail(p, "%.17g is out of range", d);
		x = (uint64_t)d;
	} else {
		return pj_fail(p, "expected an integer, got %s", jtype(v));
	}
check:
	if (x > hi)
		return pj_fail(p, "%" PRIu64 " is out of range [0, %" PRIu64 "]", x, hi);
	*out = x;
	return 0;
}

static int
get_double(pj *p, const json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		if (strcmp(s, "NaN") == 0) {
			*out = NAN;
			return 0;
		}
		if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0) {
			*out = s[0] == '-' ? -INFINITY : INFINITY;
			return 0;
		}
		if (numeric_text(s)) {
			errno = 0;
			*out = strtod(s, &end);
			if (*end == '\0' && isfinite(*out))
				return 0;
		}
		return pj_fail(p, "\"%.40s\" is not a number", s);
	}
	return pj_fail(p, "expected a number, got %s", jtype(v));
}

static char *
copy_string(pj *p, const json_t *v)
{
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	char *c;

	if (strlen(s) != n) {
		pj_fail(p, "string contains a NUL character");
		return NULL;
	}
	if ((c = pj_alloc(p, n + 1)) != NULL)
		memcpy(c, s, n + 1);
	return c;
}

/* Parses v as one value of field f into dst (a singular member or one array element). On
 * failure nothing is left allocated and dst is unchanged. */
static int
parse_value(pj *p, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
	int64_t i64;
	uint64_t u64;
	double d;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (get_int(p, v, INT32_MIN, INT32_MAX, &i64) != 0)
			return -1;
		*(int32_t *)dst = (int32_t)i64;
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (get_uint(p, v, UINT32_MAX, &u64) != 0)
			return -1;
		*(uint32_t *)dst = (uint32_t)u64;
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (get_int(p, v, INT64_MIN, INT64_MAX, &i64) != 0)
			return -1;
		*(int64_t *)dst = i64;
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (get_uint(p, v, UINT64_MAX, &u64) != 0)
			return -1;
		*(uint64_t *)dst = u64;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		if (get_double(p, v, &d) != 0)
			return -1;
		if (isfinite(d) && fabs(d) > FLT_MAX)
			return pj_fail(p, "%.17g is out of range for a float", d);
		*(float *)dst = (float)d;
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (get_double(p, v, &d) != 0)
			return -1;
		*(double *)dst = d;
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return pj_fail(p, "expected true or false, got %s", jtype(v));
		*(protobuf_c_boolean *)dst = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		if (json_is_string(v)) {
			const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value_by_name(
			        ed, json_string_value(v));
			if (e == NULL)
				return pj_fail(p, "unknown value \"%.60s\" for enum %s",
				               json_string_value(v), ed->name);
			*(int *)dst = e->value;
			return 0;
		}
		if (!json_is_number(v))
			return pj_fail(p, "expected a %s name or number, got %s", ed->name,
			               jtype(v));
		if (get_int(p, v, INT32_MIN, INT32_MAX, &i64) != 0)
			return -1;
		*(int *)dst = (int)i64; /* proto3 enums are open: unknown numbers are kept */
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char *s;
		if (!json_is_string(v))
			return pj_fail(p, "expected a string, got %s", jtype(v));
		if ((s = copy_string(p, v)) == NULL)
			return -1;
		*(char **)dst = s;
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData bd = {0, NULL};
		size_t n;
		if (!json_is_string(v))
			return pj_fail(p, "expected a base64 string, got %s", jtype(v));
		n = json_string_length(v);
		if (n > 0) {
			if ((bd.data = pj_alloc(p, n / 4 * 3 + 3)) == NULL)
				return -1;
			if (b64_decode(json_string_value(v), n, bd.data, &bd.len) != 0) {
				pj_free(p, bd.data);
				return pj_fail(p, "invalid base64");
			}
		}
		*(ProtobufCBinaryData *)dst = bd;
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *md = f->descriptor;
		ProtobufCMessage *sub = pj_alloc(p, md->sizeof_message);
		if (sub == NULL)
			return -1;
		md->message_init(sub);
		if (parse_message(p, v, sub) != 0) {
			protobuf_c_message_free_unpacked(sub, p->pa);
			return -1;
		}
		*(ProtobufCMessage **)dst = sub;
		return 0;
	}
	}
	return pj_fail(p, "unsupported field type %d", (int)f->type);
}

/* A map key (always a JSON string) into the entry's key field. */
static int
parse_map_key(pj *p, const ProtobufCFieldDescriptor *kf, const char *key, void *dst)
{
	json_t *tmp;
	int rv;

	if (kf->type == PROTOBUF_C_TYPE_BOOL) {
		if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
			return pj_fail(p, "map key \"%.40s\" is not true or false", key);
		*(protobuf_c_boolean *)dst = key[0] == 't';
		return 0;
	}
	if ((tmp = json_string(key)) == NULL)
		return pj_fail(p, "out of memory");
	rv = parse_value(p, kf, tmp, dst);
	json_decref(tmp);
	return rv;
}

static int
parse_map(pj *p, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
	size_t *count = (size_t *)((char *)m + f->quantifier_offset);
	ProtobufCMessage **arr;
	const char *key;
	json_t *val;
	size_t n;

	if (!json_is_object(v))
		return pj_fail(p, "expected an object (map), got %s", jtype(v));
	if ((n = json_object_size(v)) == 0)
		return 0;
	if ((arr = pj_alloc(p, n * sizeof(*arr))) == NULL)
		return -1;
	*(ProtobufCMessage ***)((char *)m + f->offset) = arr;
	*count = 0;
	json_object_foreach((json_t *)v, key, val)
	{
		size_t old = pj_push(p, "[\"%.40s\"]", key);
		ProtobufCMessage *e;

		if (json_is_null(val))
			return pj_fail(p, "map values cannot be null");
		if ((e = pj_alloc(p, ed->sizeof_message)) == NULL)
			return -1;
		ed->message_init(e);
		if (parse_map_key(p, kf, key, (char *)e + kf->offset) != 0 ||
		    parse_value(p, vf, val, (char *)e + vf->offset) != 0) {
			protobuf_c_message_free_unpacked(e, p->pa);
			return -1;
		}
		arr[(*count)++] = e;
		pj_pop(p, old);
	}
	return 0;
}

static int
parse_field(pj *p, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
	char *base = (char *)m;
	void *member = base + f->offset;

	if (json_is_null(v))
		return 0; /* null: the default (absent message, empty repeated, zero scalar) */

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t *count = (size_t *)(base + f->quantifier_offset);
		size_t n, es = elem_size(f->type);
		char *arr;

		if (sgc_pbjson_is_map(m->descriptor, f))
			return parse_map(p, m, f, v);
		if (!json_is_array(v))
			return pj_fail(p, "expected an array, got %s", jtype(v));
		if ((n = json_array_size(v)) == 0)
			return 0;
		if ((arr = pj_alloc(p, n * es)) == NULL)
			return -1;
		memset(arr, 0, n * es);
		*(void **)member = arr;
		*count = 0;
		for (size_t i = 0; i < n; i++) {
			size_t old = pj_push(p, "[%zu]", i);
			const json_t *e = json_array_get(v, i);
			if (json_is_null(e))
				return pj_fail(p, "null is not allowed in a repeated field");
			if (parse_value(p, f, e, arr + i * es) != 0)
				return -1;
			*count = i + 1;
			pj_pop(p, old);
		}
		return 0;
	}

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
		if (*which != 0 && *which != f->id)
			return pj_fail(p, "\"%s\" is in a oneof that already has a field set",
			               f->name);
		if (parse_value(p, f, v, member) != 0)
			return -1;
		*which = f->id;
		return 0;
	}
	if (parse_value(p, f, v, member) != 0)
		return -1;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE && f->quantifier_offset != 0)
		*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
	return 0;
}

/* Fills the initialised message m from j. On failure m may hold part of j; the caller frees it
 * with protobuf_c_message_free_unpacked. */
static int
parse_message(pj *p, const json_t *j, ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	unsigned char *seen;
	const char *key;
	json_t *v;
	int rv = 0;

	if (sgc_pbjson_is_wrapper(d))
		return parse_value(p, &d->fields[0], j, (char *)m + d->fields[0].offset);
	if (!json_is_object(j))
		return pj_fail(p, "expected an object (%s), got %s", d->name, jtype(j));
	if (p->depth >= PJ_MAX_DEPTH)
		return pj_fail(p, "messages nested deeper than %d", PJ_MAX_DEPTH);
	if ((seen = calloc(d->n_fields + 1, 1)) == NULL)
		return pj_fail(p, "out of memory");
	p->depth++;
	json_object_foreach((json_t *)j, key, v)
	{
		const ProtobufCFieldDescriptor *f = find_field(d, key);
		size_t old;

		if (f == NULL) {
			if (p->flags & SGC_PBJSON_IGNORE_UNKNOWN)
				continue;
			rv = pj_fail(p, "unknown field \"%.60s\" in %s", key, d->name);
			break;
		}
		if (seen[f - d->fields]) {
			rv = pj_fail(p, "field \"%s\" given twice (as its JSON and its proto name)",
			             f->name);
			break;
		}
		seen[f - d->fields] = 1;
		old = pj_push(p, ".%s", key);
		if ((rv = parse_field(p, m, f, v)) != 0)
			break;
		pj_pop(p, old);
	}
	p->depth--;
	free(seen);
	return rv;
}

int
sgc_pbjson_to_message(const json_t *json, const ProtobufCMessageDescriptor *desc,
                      ProtobufCAllocator *alloc, int flags, ProtobufCMessage **out,
                      sgc_pbjson_error *err)
{
	ProtobufCMessage *m;
	pj p;

	pj_init(&p, flags, alloc, err);
	*out = NULL;
	if (json == NULL || desc == NULL)
		return pj_fail(&p, "no JSON value or no message type");
	if ((m = pj_alloc(&p, desc->sizeof_message)) == NULL)
		return -1;
	desc->message_init(m);
	if (json_is_null(json) && sgc_pbjson_is_wrapper(desc)) {
		*out = m; /* a top-level null wrapper: the default value */
		return 0;
	}
	if (parse_message(&p, json, m) != 0) {
		protobuf_c_message_free_unpacked(m, p.pa);
		return -1;
	}
	*out = m;
	return 0;
}

int
sgc_pbjson_decode(const char *text, size_t len, const ProtobufCMessageDescriptor *desc,
                  ProtobufCAllocator *alloc, int flags, ProtobufCMessage **out,
                  sgc_pbjson_error *err)
{
	json_error_t je;
	json_t *j;
	int rv;

	*out = NULL;
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (j == NULL) {
		if (err != NULL) {
			snprintf(err->path, sizeof(err->path), "line %d, column %d", je.line,
			         je.column);
			snprintf(err->text, sizeof(err->text), "invalid JSON: %s", je.text);
		}
		return -1;
	}
	rv = sgc_pbjson_to_message(j, desc, alloc, flags, out, err);
	json_decref(j);
	return rv;
}

/* ------------------------------------------------------------------ text output */

typedef struct pj_buf {
	char *b;    /* text so far, NUL-terminated when not failed */
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
	bool oom;   /* an allocation failed: the result is NULL */
} pj_buf;

static void
buf_put(pj_buf *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		char *nb;
		while (cap < o->len + n + 1)
			cap *= 2;
		if ((nb = realloc(o->b, cap)) == NULL) {
			o->oom = true;
			return;
		}
		o->b = nb;
		o->cap = cap;
	}
	memcpy(o->b + o->len, s, n);
	o->len += n;
	o->b[o->len] = '\0';
}

static void
buf_puts(pj_buf *o, const char *s)
{
	buf_put(o, s, strlen(s));
}

static void
buf_string(pj_buf *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	buf_put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[7];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		buf_put(o, s + run, i - run);
		run = i + 1;
		switch (ch) {
		case '"': buf_put(o, "\\\"", 2); break;
		case '\\': buf_put(o, "\\\\", 2); break;
		case '\n': buf_put(o, "\\n", 2); break;
		case '\r': buf_put(o, "\\r", 2); break;
		case '\t': buf_put(o, "\\t", 2); break;
		case '\b': buf_put(o, "\\b", 2); break;
		case '\f': buf_put(o, "\\f", 2); break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			buf_put(o, esc, 6);
		}
	}
	buf_put(o, s + run, n - run);
	buf_put(o, "\"", 1);
}

static void
buf_newline(pj_buf *o, int flags, int depth)
{
	if (!(flags & SGC_PBJSON_INDENT))
		return;
	buf_put(o, "\n", 1);
	for (int i = 0; i < depth; i++)
		buf_put(o, "  ", 2);
}

static void
dump_value(pj_buf *o, const json_t *j, int flags, int depth)
{
	char num[40];

	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *v;
		bool first = true;
		if (json_object_size(j) == 0) {
			buf_puts(o, "{}");
			break;
		}
		buf_puts(o, "{");
		json_object_foreach((json_t *)j, key, v)
		{
			if (!first)
				buf_puts(o, ",");
			first = false;
			buf_newline(o, flags, depth + 1);
			buf_string(o, key, strlen(key));
			buf_puts(o, (flags & SGC_PBJSON_INDENT) ? ": " : ":");
			dump_value(o, v, flags, depth + 1);
		}
		buf_newline(o, flags, depth);
		buf_puts(o, "}");
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		if (json_array_size(j) == 0) {
			buf_puts(o, "[]");
			break;
		}
		buf_puts(o, "[");
		json_array_foreach((json_t *)j, i, v)
		{
			if (i > 0)
				buf_puts(o, ",");
			buf_newline(o, flags, depth + 1);
			dump_value(o, v, flags, depth + 1);
		}
		buf_newline(o, flags, depth);
		buf_puts(o, "]");
		break;
	}
	case JSON_STRING: buf_string(o, json_string_value(j), json_string_length(j)); break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		buf_puts(o, num);
		break;
	case JSON_REAL: {
		double d = json_real_value(j);
		if (d == trunc(d) && fabs(d) < 9007199254740992.0) {
			/* integral values print as integers: 102200, not 1.022e+05 */
			snprintf(num, sizeof(num), "%.0f", d);
		} else {
			for (int prec = 1; prec <= 17; prec++) {
				snprintf(num, sizeof(num), "%.*g", prec, d);
				if (strtod(num, NULL) == d)
					break;
			}
		}
		buf_puts(o, num);
		break;
	}
	case JSON_TRUE: buf_puts(o, "true"); break;
	case JSON_FALSE: buf_puts(o, "false"); break;
	case JSON_NULL: buf_puts(o, "null"); break;
	}
}

char *
sgc_pbjson_dumps(const json_t *json, int flags)
{
	pj_buf o = {NULL, 0, 0, false};

	if (json == NULL)
		return NULL;
	dump_value(&o, json, flags, 0);
	if (o.oom) {
		free(o.b);
		return NULL;
	}
	return o.b;
}

char *
sgc_pbjson_encode(const ProtobufCMessage *msg, int flags, sgc_pbjson_error *err)
{
	json_t *j = sgc_pbjson_from_message(msg, flags, err);
	char *s;

	if (j == NULL)
		return NULL;
	s = sgc_pbjson_dumps(j, flags);
	json_decref(j);
	if (s == NULL && err != NULL) {
		snprintf(err->path, sizeof(err->path), "$");
		snprintf(err->text, sizeof(err->text), "out of memory");
	}
	return s;
}
