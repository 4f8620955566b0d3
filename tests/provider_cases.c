/*
 * provider_cases.c - the data-driven provider case runner (see provider_cases.h and
 * tests/fixtures/README.md).
 *
 * One case goes: JSON request -> typed request (pb_from_json) -> the provider's build -> the
 * upstream request compared with the case -> the canned upstream answer -> parse -> the typed
 * reply (pb_to_json) or the status compared with the case. Checks are counted in a pc_ctx
 * rather than with testutil.h, whose counters are static to each test file: the totals go back
 * to the caller in an sg_cases_result, and the OOM sweep can run a case quietly just to ask
 * whether it passes.
 */
#include "provider_cases.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define PC_PATH_MAX   1024       /* file paths and JSON paths in messages */
#define PC_SWEEP_MAX  (1u << 20) /* the OOM sweep gives up above this arena cap */
#define PC_JSWEEP_MAX 100000     /* the jansson sweep gives up above this many allocations */

/* ================================================================== counting checks */

/* Where checks are counted, and whether failures are printed. */
typedef struct pc_ctx {
	int passed;       /* checks that held */
	int failed;       /* checks that failed */
	bool quiet;       /* count only, print nothing: "does the case pass?" */
	const char *name; /* case named before its first failure (borrowed), or NULL */
	bool named;       /* the name has been printed */
} pc_ctx;

/* Prints one line under the case's name (named once), indented by indent. */
static void
pc_vprint(pc_ctx *x, const char *indent, const char *fmt, va_list ap)
{
	if (x->quiet)
		return;
	if (x->name != NULL && !x->named) {
		fprintf(stderr, "case %s:\n", x->name);
		x->named = true;
	}
	fputs(indent, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void pc_fail(pc_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pc_note(pc_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counts a failed check and says what failed. */
static void
pc_fail(pc_ctx *x, const char *fmt, ...)
{
	va_list ap;

	x->failed++;
	va_start(ap, fmt);
	pc_vprint(x, "  ", fmt, ap);
	va_end(ap);
}

/* Adds detail to the failure just reported (not counted). */
static void
pc_note(pc_ctx *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pc_vprint(x, "    ", fmt, ap);
	va_end(ap);
}

static bool
ck(pc_ctx *x, bool ok, const char *what)
{
	if (ok)
		x->passed++;
	else
		pc_fail(x, "%s", what);
	return ok;
}

static bool
ck_int(pc_ctx *x, long long got, long long want, const char *what)
{
	if (got == want) {
		x->passed++;
		return true;
	}
	pc_fail(x, "%s: got %lld, want %lld", what, got, want);
	return false;
}

/* Two sg_err values, printed by reason. */
static bool
ck_err(pc_ctx *x, sg_err got, sg_err want, const char *what)
{
	if (got == want) {
		x->passed++;
		return true;
	}
	pc_fail(x, "%s: got %s (%d), want %s (%d)", what, sg_err_reason(got), (int)got,
	        sg_err_reason(want), (int)want);
	return false;
}

/* Strings compare equal when both are NULL or both hold the same text. */
static bool
ck_str(pc_ctx *x, const char *got, const char *want, const char *what)
{
	if ((got == NULL && want == NULL) ||
	    (got != NULL && want != NULL && strcmp(got, want) == 0)) {
		x->passed++;
		return true;
	}
	pc_fail(x, "%s: got %s%s%s, want %s%s%s", what, got ? "\"" : "", got ? got : "(null)",
	        got ? "\"" : "", want ? "\"" : "", want ? want : "(null)", want ? "\"" : "");
	return false;
}

/* ================================================================== files */

char *
sg_cases_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

json_t *
sg_cases_load_json(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);

	if (j == NULL)
		fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
	return j;
}

static int
cmp_names(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The *.json names in dir, sorted, as a NEW malloc()ed array of NEW strings (*n of them);
 * NULL when dir cannot be read. Free with free_names(). */
static char **
list_cases(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL, **grown;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			if ((grown = realloc(names, cap * sizeof(*names))) == NULL)
				break;
			names = grown;
		}
		if ((names[*n] = strdup(de->d_name)) != NULL)
			(*n)++;
	}
	closedir(d);
	if (names == NULL) /* no entries: an empty (but valid) list */
		names = calloc(1, sizeof(*names));
	else
		qsort(names, *n, sizeof(names[0]), cmp_names);
	return names;
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ================================================================== JSON comparison */

/* Appends to the JSON path path[0..off) (capacity PC_PATH_MAX); returns the new length. */
static size_t path_add(char *path, size_t off, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static size_t
path_add(char *path, size_t off, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (off >= PC_PATH_MAX - 1)
		return off;
	va_start(ap, fmt);
	k = vsnprintf(path + off, PC_PATH_MAX - off, fmt, ap);
	va_end(ap);
	if (k < 0)
		return off;
	return off + (size_t)k < PC_PATH_MAX ? off + (size_t)k : PC_PATH_MAX - 1;
}

/* Where two documents first differ. Values are borrowed from the documents compared. */
typedef struct pc_jdiff {
	char path[PC_PATH_MAX]; /* "$.tracking.events[3].status"; "$" is the root */
	json_t *got;            /* the value found there, or NULL when missing */
	json_t *want;           /* the value wanted there, or NULL when not wanted */
} pc_jdiff;

/* Records where got and want differ; returns false for the caller to pass on. */
static bool
jdiff_at(pc_jdiff *d, json_t *got, json_t *want)
{
	d->got = got;
	d->want = want;
	return false;
}

/*
 * Compares got with want. strict: types, key sets and nulls exactly (json_equal(), but telling
 * where). Reply mode (!strict): a null member of want means "absent from got", and a real in
 * got equals an integer in want of the same value (a double written as an integer). On a
 * difference, d says where (d->path holds the path up to here in d->path[0..off)).
 */
static bool
jmatch(json_t *got, json_t *want, bool strict, pc_jdiff *d, size_t off)
{
	if (got == NULL || want == NULL)
		return got == want || jdiff_at(d, got, want);
	if (!strict && json_is_real(got) && json_is_integer(want))
		return json_real_value(got) == (double)json_integer_value(want) ||
		       jdiff_at(d, got, want);
	if (json_typeof(got) != json_typeof(want))
		return jdiff_at(d, got, want);
	if (json_is_object(want)) {
		void *it;
		for (it = json_object_iter(want); it != NULL;
		     it = json_object_iter_next(want, it)) {
			const char *k = json_object_iter_key(it);
			json_t *w = json_object_iter_value(it), *g = json_object_get(got, k);
			size_t o = path_add(d->path, off, ".%s", k);
			if (!strict && json_is_null(w)) {
				if (g != NULL) /* must be absent */
					return jdiff_at(d, g, NULL);
				continue;
			}
			if (!jmatch(g, w, strict, d, o))
				return false;
		}
		for (it = json_object_iter(got); it != NULL; it = json_object_iter_next(got, it)) {
			const char *k = json_object_iter_key(it);
			if (json_object_get(want, k) == NULL) {
				path_add(d->path, off, ".%s", k);
				return jdiff_at(d, json_object_iter_value(it), NULL);
			}
		}
		d->path[off] = '\0';
		return true;
	}
	if (json_is_array(want)) {
		size_t ng = json_array_size(got), nw = json_array_size(want);
		for (size_t i = 0; i < ng && i < nw; i++)
			if (!jmatch(json_array_get(got, i), json_array_get(want, i), strict, d,
			            path_add(d->path, off, "[%zu]", i)))
				return false;
		if (ng != nw) {
			path_add(d->path, off, "[%zu]", ng < nw ? ng : nw);
			return jdiff_at(d, json_array_get(got, nw), json_array_get(want, ng));
		}
		d->path[off] = '\0';
		return true;
	}
	return json_equal(got, want) || jdiff_at(d, got, want);
}

/* One value, compact, for a failure message: a NEW malloc()ed string (free it). */
static char *
jshow(json_t *v)
{
	return v == NULL ? strdup("(absent)")
	                 : json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/*
 * Checks got against want (see jmatch) in x. A failure names the place, the two values there,
 * and prints the whole of got (to paste into a fixture once it is known to be right).
 */
static bool
ck_json(pc_ctx *x, json_t *got, json_t *want, bool strict, const char *what)
{
	pc_jdiff d = {"$", NULL, NULL};
	char *g, *w;

	if (jmatch(got, want, strict, &d, 1)) {
		x->passed++;
		return true;
	}
	g = jshow(d.got);
	w = jshow(d.want);
	pc_fail(x, "%s differs at %s: got %s, want %s", what, d.path, g ? g : "?", w ? w : "?");
	free(g);
	free(w);
	if (!x->quiet &&
	    (g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_ENCODE_ANY)) != NULL) {
		fprintf(stderr, "  --- the whole %s:\n%s\n", what, g);
		free(g);
	}
	return false;
}

/* ================================================================== protobuf -> JSON */

static bool
is_wrapper(const ProtobufCMessageDescriptor *d)
{
	return strncmp(d->name, "google.protobuf.", 16) == 0 && d->n_fields == 1 &&
	       strcmp(d->fields[0].name, "value") == 0;
}

/* Bytes taken by one element of a repeated field of type t. */
static size_t
pb_elt_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: return 4;
	case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
	case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: return 8;
	case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	default: return sizeof(void *); /* string, message */
	}
}

/* A double as JSON: a real, or proto3 JSON's strings for what JSON cannot hold. */
static json_t *
json_double(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "Infinity" : "-Infinity");
	return json_real(v);
}

/* One value of field f stored at p; *is_default says whether proto3 JSON would omit it. */
static json_t *
pb_value(const ProtobufCFieldDescriptor *f, const void *p, bool *is_default)
{
	*is_default = false;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		*is_default = *(const int32_t *)p == 0;
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*is_default = *(const uint32_t *)p == 0;
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		*is_default = *(const int64_t *)p == 0;
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*is_default = *(const uint64_t *)p == 0;
		return json_integer((json_int_t) * (const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		*is_default = *(const float *)p == 0;
		return json_double(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		*is_default = *(const double *)p == 0;
		return json_double(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		*is_default = !*(const protobuf_c_boolean *)p;
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev =
		        protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		*is_default = v == 0;
		return ev != NULL ? json_string(ev->name) : json_integer(v);
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		if (s == NULL)
			return json_string("<NULL string>"); /* packs as "": fails the round trip */
		*is_default = s[0] == '\0';
		return json_string(s);
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		bool dummy;
		if (sub == NULL) { /* absent: omitted, unlike a present empty message */
			*is_default = true;
			return json_null();
		}
		if (is_wrapper(sub->descriptor)) {
			const ProtobufCFieldDescriptor *wf = &sub->descriptor->fields[0];
			return pb_value(wf, (const char *)sub + wf->offset, &dummy);
		}
		return sg_cases_pb_to_json(sub);
	}
	default: {
		const ProtobufCBinaryData *b = p;
		*is_default = b->len == 0;
		return json_sprintf("<%zu bytes>", b->len);
	}
	}
}

json_t *
sg_cases_pb_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	json_t *o = json_object();

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		json_t *v;
		bool def;

		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue; /* another member of the oneof is set */
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char *const *)(base + f->offset);
			json_t *ja;
			if (n == 0)
				continue;
			ja = json_array();
			for (size_t k = 0; k < n; k++)
				json_array_append_new(
				        ja, pb_value(f, arr + k * pb_elt_size(f->type), &def));
			json_object_set_new(o, f->name, ja);
			continue;
		}
		v = pb_value(f, base + f->offset, &def);
		if (def && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0)
			json_decref(v);
		else
			json_object_set_new(o, f->name, v);
	}
	return o;
}

/* ================================================================== JSON -> protobuf */

/* Where pb_from_json() is, and why it stopped. */
typedef struct pc_pbin {
	sg_arena *a;               /* receives every message, array and string */
	char path[PC_PATH_MAX];    /* the JSON path being read: "request.sender.latitude" */
	char err[2 * PC_PATH_MAX]; /* why it stopped: "<path>: <reason>" */
} pc_pbin;

static bool pb_err(pc_pbin *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records "<path>: <reason>" in in->err; returns false. */
static bool
pb_err(pc_pbin *in, const char *fmt, ...)
{
	size_t n = (size_t)snprintf(in->err, sizeof(in->err), "%s: ", in->path);
	va_list ap;

	if (n < sizeof(in->err)) {
		va_start(ap, fmt);
		vsnprintf(in->err + n, sizeof(in->err) - n, fmt, ap);
		va_end(ap);
	}
	return false;
}

static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static const char *
pb_type_name(const ProtobufCFieldDescriptor *f)
{
	static const char *const names[] = {
	        [PROTOBUF_C_TYPE_INT32] = "int32",       [PROTOBUF_C_TYPE_SINT32] = "sint32",
	        [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
	        [PROTOBUF_C_TYPE_SINT64] = "sint64",     [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
	        [PROTOBUF_C_TYPE_UINT32] = "uint32",     [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
	        [PROTOBUF_C_TYPE_UINT64] = "uint64",     [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
	        [PROTOBUF_C_TYPE_FLOAT] = "float",       [PROTOBUF_C_TYPE_DOUBLE] = "double",
	        [PROTOBUF_C_TYPE_BOOL] = "bool",         [PROTOBUF_C_TYPE_ENUM] = "enum",
	        [PROTOBUF_C_TYPE_STRING] = "string",     [PROTOBUF_C_TYPE_BYTES] = "bytes",
	        [PROTOBUF_C_TYPE_MESSAGE] = "message",
	};
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
	if (f->type == PROTOBUF_C_TYPE_ENUM)
		return ((const ProtobufCEnumDescriptor *)f->descriptor)->name;
	return (size_t)f->type < sizeof(names) / sizeof(names[0]) ? names[f->type] : "?";
}

static bool pb_fill(pc_pbin *in, ProtobufCMessage *m, json_t *j, size_t off);

/* An integer JSON value in [lo, hi] into *out; false for anything else. */
static bool
json_int_in(json_t *v, json_int_t lo, json_int_t hi, json_int_t *out)
{
	if (!json_is_integer(v))
		return false;
	*out = json_integer_value(v);
	return *out >= lo && *out <= hi;
}

/* Stores one JSON value v (not null) of field f at p; in->path[0..off) names it. */
static bool
pb_put(pc_pbin *in, const ProtobufCFieldDescriptor *f, json_t *v, void *p, size_t off)
{
	json_int_t i;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (!json_int_in(v, INT32_MIN, INT32_MAX, &i))
			break;
		*(int32_t *)p = (int32_t)i;
		return true;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (!json_int_in(v, 0, UINT32_MAX, &i))
			break;
		*(uint32_t *)p = (uint32_t)i;
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!json_int_in(v, INT64_MIN, INT64_MAX, &i))
			break;
		*(int64_t *)p = (int64_t)i;
		return true;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: /* jansson's integers stop at INT64_MAX */
		if (!json_int_in(v, 0, INT64_MAX, &i))
			break;
		*(uint64_t *)p = (uint64_t)i;
		return true;
	case PROTOBUF_C_TYPE_FLOAT:
		if (!json_is_number(v))
			break;
		*(float *)p = (float)json_number_value(v);
		return true;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v))
			break;
		*(double *)p = json_number_value(v);
		return true;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			break;
		*(protobuf_c_boolean *)p = json_is_true(v);
		return true;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev = NULL;
		if (json_is_string(v))
			ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
			                                                  json_string_value(v));
		else if (json_int_in(v, INT32_MIN, INT32_MAX, &i))
			ev = protobuf_c_enum_descriptor_get_value(f->descriptor, (int)i);
		if (ev == NULL)
			return pb_err(in, "%s has no value %s", pb_type_name(f),
			              json_is_string(v) ? json_string_value(v) : "of that number");
		*(int *)p = ev->value;
		return true;
	}
	case PROTOBUF_C_TYPE_STRING: /* may hold NUL: the C string then ends there */
		if (!json_is_string(v))
			break;
		if ((*(char **)p = sg_arena_strndup(in->a, json_string_value(v),
		                                    json_string_length(v))) == NULL)
			return pb_err(in, "arena full");
		return true;
	case PROTOBUF_C_TYPE_BYTES: { /* the string's bytes, as they are */
		ProtobufCBinaryData *b = p;
		if (!json_is_string(v))
			break;
		b->len = json_string_length(v);
		if ((b->data = sg_arena_alloc(in->a, b->len + 1)) == NULL)
			return pb_err(in, "arena full");
		memcpy(b->data, json_string_value(v), b->len);
		return true;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *d = f->descriptor;
		const ProtobufCFieldDescriptor *wf = &d->fields[0];
		bool wrapper = is_wrapper(d);
		ProtobufCMessage *sub;
		/* a wrapper is written as its plain value, any other message as an object */
		if (wrapper ? json_is_object(v) || json_is_array(v) : !json_is_object(v))
			break;
		if ((sub = sg_arena_calloc(in->a, 1, d->sizeof_message)) == NULL)
			return pb_err(in, "arena full");
		d->message_init(sub);
		if (wrapper ? !pb_put(in, wf, v, (char *)sub + wf->offset, off)
		            : !pb_fill(in, sub, v, off))
			return false;
		*(ProtobufCMessage **)p = sub;
		return true;
	}
	default: break;
	}
	if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_wrapper(f->descriptor))
		return pb_err(in, "%s is written as its plain value, not %s", pb_type_name(f),
		              json_type_name(v));
	return pb_err(in, "%s field cannot take %s%s", pb_type_name(f), json_type_name(v),
	              json_is_integer(v) ? " out of its range" : "");
}

/* Sets the fields of m (initialised) named in the JSON object j; in->path[0..off) names j. */
static bool
pb_fill(pc_pbin *in, ProtobufCMessage *m, json_t *j, size_t off)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char *base = (char *)m;

	in->path[off] = '\0';
	if (!json_is_object(j))
		return pb_err(in, "%s is written as an object, not %s", d->name, json_type_name(j));
	for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it)) {
		const char *key = json_object_iter_key(it);
		json_t *v = json_object_iter_value(it);
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field_by_name(d, key);
		size_t o = path_add(in->path, off, ".%s", key);

		if (f == NULL)
			return pb_err(in, "%s has no such field", d->name);
		if (json_is_null(v))
			continue; /* absent: left at its default */
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = json_array_size(v), sz = pb_elt_size(f->type);
			char *arr;
			if (!json_is_array(v))
				return pb_err(in, "repeated field takes an array, not %s",
				              json_type_name(v));
			if ((arr = sg_arena_calloc(in->a, n > 0 ? n : 1, sz)) == NULL)
				return pb_err(in, "arena full");
			for (size_t i = 0; i < n; i++) {
				json_t *e = json_array_get(v, i);
				size_t oe = path_add(in->path, o, "[%zu]", i);
				if (json_is_null(e))
					return pb_err(in, "a repeated field has no null elements");
				if (!pb_put(in, f, e, arr + i * sz, oe))
					return false;
			}
			*(size_t *)(base + f->quantifier_offset) = n;
			*(char **)(base + f->offset) = arr;
		} else if (!pb_put(in, f, v, base + f->offset, o)) {
			return false;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0)
			*(uint32_t *)(base + f->quantifier_offset) = f->id;
		else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
		         f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1; /* proto2 has_ */
		in->path[off] = '\0';
	}
	return true;
}

/* pb_from_json() with the reason for a refusal in in->err. */
static ProtobufCMessage *
pb_from_json(pc_pbin *in, const ProtobufCMessageDescriptor *d, json_t *j)
{
	ProtobufCMessage *m;

	snprintf(in->path, sizeof(in->path), "request");
	in->err[0] = '\0';
	if ((m = sg_arena_calloc(in->a, 1, d->sizeof_message)) == NULL) {
		pb_err(in, "arena full");
		return NULL;
	}
	d->message_init(m);
	if (j != NULL && !pb_fill(in, m, j, strlen(in->path)))
		return NULL;
	return m;
}

ProtobufCMessage *
sg_cases_pb_from_json(const ProtobufCMessageDescriptor *d, json_t *j, sg_arena *a)
{
	pc_pbin in;
	ProtobufCMessage *m;

	in.a = a;
	if ((m = pb_from_json(&in, d, j)) == NULL)
		fprintf(stderr, "%s\n", in.err);
	return m;
}

/* ================================================================== reply and status checks */

/* The reply against the case's expect_reply (null members: absent). */
static bool
ck_reply(pc_ctx *x, const ProtobufCMessage *m, json_t *want, const char *what)
{
	json_t *got = sg_cases_pb_to_json(m);
	bool ok = ck_json(x, got, want, false, what);
	json_decref(got);
	return ok;
}

bool
sg_cases_reply_matches(const ProtobufCMessage *m, json_t *want, const char *what)
{
	pc_ctx x = {0};
	return ck_reply(&x, m, want, what);
}

/* Packs m and unpacks it with the arena as the protobuf-c allocator; same JSON both ways. */
static bool
ck_round_trip(pc_ctx *x, const ProtobufCMessage *m, sg_arena *a)
{
	int f0 = x->failed;
	size_t n;
	uint8_t *buf;
	ProtobufCMessage *back;

	if (!ck(x, protobuf_c_message_check(m), "protobuf_c_message_check() refuses the reply"))
		return false;
	n = protobuf_c_message_get_packed_size(m);
	if (!ck(x, (buf = malloc(n + 1)) != NULL, "malloc"))
		return false;
	ck_int(x, (long long)protobuf_c_message_pack(m, buf), (long long)n, "packed size");
	back = protobuf_c_message_unpack(m->descriptor, sg_arena_pb(a), n, buf);
	if (ck(x, back != NULL, "the packed reply does not unpack")) {
		json_t *want = sg_cases_pb_to_json(m), *got = sg_cases_pb_to_json(back);
		ck_json(x, got, want, true, "pack/unpack round trip");
		json_decref(got);
		json_decref(want);
		protobuf_c_message_free_unpacked(back, sg_arena_pb(a)); /* arena: a no-op */
	}
	free(buf);
	return x->failed == f0;
}

bool
sg_cases_round_trip(const ProtobufCMessage *m, sg_arena *a)
{
	pc_ctx x = {0};
	return ck_round_trip(&x, m, a);
}

static const char *
jstr_or(json_t *o, const char *key, const char *dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : dflt;
}

static long long
jint_or(json_t *o, const char *key, long long dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static bool
ck_status(pc_ctx *x, const sg_status *st, json_t *want, const char *provider)
{
	const char *msg = st->message != NULL ? st->message : sg_strerror(st->err);
	json_t *viol = json_object_get(want, "violations");
	size_t nv = json_array_size(viol);
	int f0 = x->failed;

	ck_str(x, sg_err_reason(st->err), jstr_or(want, "reason", "?"), "reason");
	if (json_object_get(want, "grpc_code") != NULL)
		ck_int(x, sg_err_code(st->err), jint_or(want, "grpc_code", -1), "grpc_code");
	if (json_object_get(want, "message") != NULL)
		ck_str(x, msg, jstr_or(want, "message", NULL), "message");
	if (json_object_get(want, "message_prefix") != NULL) {
		const char *p = jstr_or(want, "message_prefix", "");
		if (!ck(x, strncmp(msg, p, strlen(p)) == 0, "message_prefix"))
			pc_note(x, "message \"%s\" does not start with \"%s\"", msg, p);
	}
	ck_str(x, st->provider, jstr_or(want, "provider", provider), "provider");
	ck_int(x, st->http_status, jint_or(want, "http_status", 0), "http_status");
	ck_str(x, st->provider_code, jstr_or(want, "provider_code", NULL), "provider_code");
	ck_str(x, st->provider_message, jstr_or(want, "provider_message", NULL),
	       "provider_message");
	ck_int(x, st->retry_after_ms, jint_or(want, "retry_after_ms", 0), "retry_after_ms");
	ck_int(x, (long long)st->nviolations, (long long)nv, "number of violations");
	for (size_t i = 0; i < st->nviolations && i < nv; i++) {
		json_t *w = json_array_get(viol, i);
		ck_str(x, st->violations[i].field, jstr_or(w, "field", "?"), "violation field");
		ck_str(x, st->violations[i].description, jstr_or(w, "description", "?"),
		       "violation description");
	}
	return x->failed == f0;
}

bool
sg_cases_status_matches(const sg_status *st, json_t *want, const char *provider)
{
	pc_ctx x = {0};
	return ck_status(&x, st, want, provider);
}

/* ================================================================== one case */

/* A method of the Shipgate service that providers implement. */
struct pc_method {
	const char *name; /* a case's `method`, as named in the service */
	size_t op;        /* offsetof(sg_provider, <its sg_op>) */
};

static const struct pc_method pc_methods[] = {
        {"Track", offsetof(sg_provider, track)},
        {"GetOrder", offsetof(sg_provider, get_order)},
        {"CreateOrder", offsetof(sg_provider, create_order)},
};

/* A loaded case, ready to run. */
typedef struct pc_case {
	const char *provider;  /* registry name, expected status provider (borrowed) */
	const sg_provider *p;  /* the registry's provider */
	char dir[PC_PATH_MAX]; /* the provider's fixture dir (bodies/ is below it) */
	json_t *doc;           /* the case (borrowed from the caller) */
	const char *method;    /* "Track", ... (borrowed: doc or static) */
	const sg_op *op;       /* the provider's operation for method */
	const ProtobufCMethodDescriptor *md; /* request (input) and reply (output) types */
	sg_pconf pc;                         /* defaults + the case's `config`; strings borrowed */
	char base_url[PC_PATH_MAX];          /* storage for the generic default base_url */
} pc_case;

/* What one run of build + parse left behind. Everything points into the call's arena. */
typedef struct pc_exec {
	sg_http_req hr;          /* build's request */
	sg_err brv;              /* build's result */
	sg_status bst;           /* build's status */
	bool parsed;             /* parse ran (build succeeded and there is an answer) */
	sg_err prv;              /* parse's result */
	sg_status pst;           /* parse's status */
	ProtobufCMessage *reply; /* parse's reply */
} pc_exec;

/* What build and parse must overwrite: a failed build leaves no request, a failed parse no
 * reply. */
static const char pc_poison[] = "(left over)";
static ProtobufCMessage pc_poison_reply;

/* Checks that object o (the case's member `what`) has only keys from the NULL-ended allowed. */
static void
ck_keys(pc_ctx *x, json_t *o, const char *what, const char *const *allowed)
{
	if (o == NULL)
		return;
	if (!json_is_object(o)) {
		pc_fail(x, "%s must be an object", what);
		return;
	}
	for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
		const char *k = json_object_iter_key(it);
		const char *const *a = allowed;
		while (*a != NULL && strcmp(*a, k) != 0)
			a++;
		if (*a == NULL)
			pc_fail(x, "%s: unknown key \"%s\"", what, k);
		else
			x->passed++;
	}
}

/* A config string: absent keeps *dst, null makes it NULL (not configured). */
static void
conf_str(pc_ctx *x, json_t *conf, const char *key, const char **dst)
{
	json_t *v = json_object_get(conf, key);
	if (v == NULL)
		return;
	if (json_is_string(v))
		*dst = json_string_value(v);
	else if (json_is_null(v))
		*dst = NULL;
	else
		pc_fail(x, "config.%s must be a string or null", key);
}

/*
 * Readies c for running: checks the case's shape, finds its method and operation, and applies
 * its config over the defaults. False (with the failure counted) when it cannot run.
 */
static bool
case_prepare(pc_ctx *x, pc_case *c, const sg_pconf *defaults)
{
	static const char *const top[] = {"about",
	                                  "method",
	                                  "config",
	                                  "request",
	                                  "expect_build_error",
	                                  "upstream_request",
	                                  "upstream_reply",
	                                  "expect_reply",
	                                  "expect_error",
	                                  NULL};
	static const char *const conf_keys[] = {"base_url",     "token",      "auth_scheme",
	                                        "utc_offset_s", "timeout_ms", NULL};
	static const char *const ureq[] = {"method", "url", "headers", "body", "body_json", NULL};
	static const char *const urep[] = {"status",    "headers",   "body",
	                                   "body_json", "body_file", NULL};
	static const char *const st_keys[] = {
	        "reason",      "grpc_code",     "message",          "message_prefix", "provider",
	        "http_status", "provider_code", "provider_message", "retry_after_ms", "violations",
	        NULL};
	json_t *d = c->doc, *conf, *v;
	const struct pc_method *m = NULL;
	int f0 = x->failed;

	if (!ck(x, json_is_object(d), "a case is a JSON object"))
		return false;
	ck_keys(x, d, "case", top);
	ck_keys(x, json_object_get(d, "config"), "config", conf_keys);
	ck_keys(x, json_object_get(d, "upstream_request"), "upstream_request", ureq);
	ck_keys(x, json_object_get(d, "upstream_reply"), "upstream_reply", urep);
	ck_keys(x, json_object_get(d, "expect_build_error"), "expect_build_error", st_keys);
	ck_keys(x, json_object_get(d, "expect_error"), "expect_error", st_keys);

	/* exactly one outcome */
	if (json_object_get(d, "expect_build_error") != NULL) {
		if (json_object_get(d, "upstream_request") != NULL ||
		    json_object_get(d, "upstream_reply") != NULL ||
		    json_object_get(d, "expect_reply") != NULL ||
		    json_object_get(d, "expect_error") != NULL)
			pc_fail(x, "expect_build_error goes alone: no upstream_request, "
			           "upstream_reply, expect_reply or expect_error");
	} else {
		if (json_object_get(d, "upstream_request") == NULL ||
		    json_object_get(d, "upstream_reply") == NULL)
			pc_fail(x, "upstream_request and upstream_reply are required "
			           "(or expect_build_error)");
		if ((json_object_get(d, "expect_reply") != NULL) ==
		    (json_object_get(d, "expect_error") != NULL))
			pc_fail(x, "a case has exactly one of expect_reply and expect_error");
	}

	/* the method, and the provider's operation for it */
	v = json_object_get(d, "method");
	c->method = v == NULL ? "Track" : json_string_value(v);
	for (size_t i = 0; c->method != NULL && i < sizeof(pc_methods) / sizeof(pc_methods[0]); i++)
		if (strcmp(pc_methods[i].name, c->method) == 0)
			m = &pc_methods[i];
	if (m == NULL) {
		pc_fail(x, "method must be \"Track\", \"GetOrder\" or \"CreateOrder\"");
		return false;
	}
	c->md = protobuf_c_service_descriptor_get_method_by_name(
	        &shipgate__v1__shipgate__descriptor, m->name);
	c->op = (const sg_op *)((const char *)c->p + m->op);
	if (!ck(x, c->md != NULL, "the service has the method"))
		return false;
	if (c->op->build == NULL || c->op->parse == NULL) {
		pc_fail(x, "provider %s has no %s operation in the registry", c->provider,
		        c->method);
		return false;
	}

	/* the config: the caller's defaults, then the case's overrides */
	if (defaults != NULL) {
		c->pc = *defaults;
	} else {
		memset(&c->pc, 0, sizeof(c->pc));
		snprintf(c->base_url, sizeof(c->base_url), "http://%s.test:4004", c->provider);
		c->pc.base_url = c->base_url;
		c->pc.token = "test-token";
		c->pc.timeout_ms = 5000;
	}
	c->pc.name = c->provider;
	conf = json_object_get(d, "config");
	conf_str(x, conf, "base_url", &c->pc.base_url);
	conf_str(x, conf, "token", &c->pc.token);
	conf_str(x, conf, "auth_scheme", &c->pc.auth_scheme);
	if ((v = json_object_get(conf, "utc_offset_s")) != NULL) {
		if (json_is_integer(v)) {
			c->pc.utc_offset_s = (int32_t)json_integer_value(v);
			c->pc.utc_offset_set = true;
		} else if (json_is_null(v)) {
			c->pc.utc_offset_s = 0;
			c->pc.utc_offset_set = false;
		} else {
			pc_fail(x, "config.utc_offset_s must be an integer or null");
		}
	}
	if ((v = json_object_get(conf, "timeout_ms")) != NULL) {
		if (json_is_integer(v))
			c->pc.timeout_ms = json_integer_value(v);
		else
			pc_fail(x, "config.timeout_ms must be an integer");
	}
	return x->failed == f0;
}

/*
 * The case's request as a typed message in arena a. The `provider` field is set to the
 * provider's id when the case leaves it out, as the server's dispatch would have it.
 */
static ProtobufCMessage *
case_request(pc_ctx *x, const pc_case *c, sg_arena *a)
{
	const ProtobufCMessageDescriptor *d = c->md->input;
	json_t *j = json_object_get(c->doc, "request");
	const ProtobufCFieldDescriptor *pf;
	ProtobufCMessage *req;
	pc_pbin in;

	in.a = a;
	if ((req = pb_from_json(&in, d, j)) == NULL) {
		pc_fail(x, "%s", in.err);
		return NULL;
	}
	x->passed++;
	pf = protobuf_c_message_descriptor_get_field_by_name(d, "provider");
	if (pf != NULL && pf->type == PROTOBUF_C_TYPE_ENUM &&
	    pf->descriptor == &shipgate__v1__provider__descriptor &&
	    json_object_get(j, "provider") == NULL)
		*(int *)((char *)req + pf->offset) = (int)c->p->id;
	ck(x, protobuf_c_message_check(req), "protobuf_c_message_check() refuses the request");
	return req;
}

/*
 * The upstream answer the case describes. The body and the header block are NEW malloc()ed
 * buffers in *body and *hdrs (free them; NULL when not needed).
 */
static bool
case_resp(pc_ctx *x, const pc_case *c, sg_http_resp *resp, char **body, char **hdrs)
{
	json_t *ur = json_object_get(c->doc, "upstream_reply"), *h, *v;
	size_t hlen = 0;
	FILE *f;

	memset(resp, 0, sizeof(*resp));
	*body = NULL;
	*hdrs = NULL;
	resp->status = (int)jint_or(ur, "status", 0);
	if (!ck(x, resp->status >= 100 && resp->status <= 999, "upstream_reply.status"))
		return false;

	/* "HTTP/1.1 <status> ...", then each header, as the engine hands them over */
	if ((f = open_memstream(hdrs, &hlen)) == NULL)
		return ck(x, false, "open_memstream");
	fprintf(f, "HTTP/1.1 %d Whatever\r\n", resp->status);
	h = json_object_get(ur, "headers");
	if (json_is_object(h)) {
		for (void *it = json_object_iter(h); it != NULL;
		     it = json_object_iter_next(h, it)) {
			v = json_object_iter_value(it);
			if (!ck(x, json_is_string(v), "upstream_reply.headers values are strings"))
				break;
			fprintf(f, "%s: %s\r\n", json_object_iter_key(it), json_string_value(v));
		}
	} else if (json_is_array(h)) { /* ["Name: value", ...]: repeated names, exact lines */
		for (size_t i = 0; i < json_array_size(h); i++) {
			const char *line = json_string_value(json_array_get(h, i));
			if (!ck(x, line != NULL, "upstream_reply.headers lines are strings"))
				break;
			fprintf(f, "%s\r\n", line);
		}
	} else if (h != NULL) {
		pc_fail(x, "upstream_reply.headers is an object or an array of lines");
	}
	fputs("\r\n", f);
	if (fclose(f) != 0 || *hdrs == NULL)
		return ck(x, false, "header block");
	resp->headers = *hdrs;
	resp->headers_len = hlen;

	if ((v = json_object_get(ur, "body")) != NULL) {
		if (!ck(x, json_is_string(v), "upstream_reply.body is a string"))
			return false;
		resp->body = json_string_value(v);
		resp->body_len = json_string_length(v);
	} else if ((v = json_object_get(ur, "body_json")) != NULL) {
		if (!ck(x, (*body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL,
		        "upstream_reply.body_json dumps"))
			return false;
		resp->body = *body;
		resp->body_len = strlen(*body);
	} else if ((v = json_object_get(ur, "body_file")) != NULL) {
		char path[PC_PATH_MAX];
		int k = snprintf(path, sizeof(path), "%s/bodies/%s", c->dir,
		                 jstr_or(ur, "body_file", "?"));
		if (k < 0 || (size_t)k >= sizeof(path) ||
		    (*body = sg_cases_slurp(path, &resp->body_len)) == NULL) {
			pc_fail(x, "cannot read %s", path);
			return false;
		}
		resp->body = *body;
	}
	return true;
}

/* Runs build and, when it succeeds and resp is given, parse, in arena a. */
static void
case_exec(const pc_case *c, const ProtobufCMessage *req, const sg_http_resp *resp, sg_arena *a,
          pc_exec *e)
{
	memset(&e->hr, 0, sizeof(e->hr));
	e->hr.method = pc_poison;
	e->hr.url = pc_poison;
	e->hr.headers[0] = pc_poison;
	e->hr.nheaders = 1;
	e->hr.body = pc_poison;
	e->hr.body_len = sizeof(pc_poison) - 1;
	sg_status_clear(&e->bst);
	sg_status_clear(&e->pst);
	e->parsed = false;
	e->prv = SG_OK;
	e->reply = &pc_poison_reply;

	e->brv = c->op->build(&c->pc, req, a, &e->hr, &e->bst);
	if (e->brv != SG_OK || resp == NULL)
		return;
	e->parsed = true;
	e->prv = c->op->parse(&c->pc, req, resp, a, &e->reply, &e->pst);
}

bool
sg_cases_req_empty(const sg_http_req *hr)
{
	return hr->method == NULL && hr->url == NULL && hr->nheaders == 0 && hr->body == NULL &&
	       hr->body_len == 0;
}

static const char *
st_text(const sg_status *st)
{
	return st->message != NULL ? st->message : sg_strerror(st->err);
}

/* The request build made against the case's upstream_request. */
static void
ck_upstream_request(pc_ctx *x, const pc_case *c, const sg_http_req *hr)
{
	json_t *want = json_object_get(c->doc, "upstream_request");
	json_t *wh = json_object_get(want, "headers"), *wb;
	size_t nh = json_array_size(wh);

	ck_str(x, hr->method, jstr_or(want, "method", "?"), "upstream method");
	ck_str(x, hr->url, jstr_or(want, "url", "?"), "upstream url");
	ck_int(x, (long long)hr->nheaders, (long long)nh, "number of upstream headers");
	for (size_t i = 0; i < hr->nheaders && i < nh; i++)
		ck_str(x, hr->headers[i], json_string_value(json_array_get(wh, i)),
		       "upstream header");

	if ((wb = json_object_get(want, "body_json")) != NULL) {
		json_error_t je;
		json_t *got = NULL;
		if (hr->body != NULL)
			got = json_loadb(hr->body, hr->body_len,
			                 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
		if (hr->body == NULL)
			pc_fail(x, "build sent no body; the case expects body_json");
		else if (!ck(x, got != NULL, "the upstream body is JSON"))
			pc_note(x, "%s in: %.*s", je.text, (int)hr->body_len, hr->body);
		else
			ck_json(x, got, wb, true, "upstream body");
		json_decref(got);
	} else if ((wb = json_object_get(want, "body")) != NULL && !json_is_null(wb)) {
		bool same = hr->body != NULL && json_is_string(wb) &&
		            hr->body_len == json_string_length(wb) &&
		            memcmp(hr->body, json_string_value(wb), hr->body_len) == 0;
		if (!ck(x, same, "upstream body"))
			pc_note(x, "got %.*s", hr->body != NULL ? (int)hr->body_len : 6,
			        hr->body != NULL ? hr->body : "(none)");
	} else {
		ck(x, hr->body == NULL && hr->body_len == 0,
		   "build sent a body; the case expects none");
	}
}

/* Everything the case expects of e. scratch: arena for the reply's round trip. */
static void
case_verify(pc_ctx *x, const pc_case *c, const pc_exec *e, sg_arena *scratch)
{
	json_t *want;

	if ((want = json_object_get(c->doc, "expect_build_error")) != NULL) {
		ck(x, e->brv != SG_OK, "build succeeded; the case expects an error");
		ck_err(x, e->brv, e->bst.err, "build result == status err");
		ck_status(x, &e->bst, want, c->provider);
		ck(x, sg_cases_req_empty(&e->hr), "a failed build left a request behind");
		return;
	}
	if (!ck_err(x, e->brv, SG_OK, "build result")) {
		pc_note(x, "build: %s", st_text(&e->bst));
		return;
	}
	ck_upstream_request(x, c, &e->hr);
	if (!ck(x, e->parsed, "parse ran"))
		return;

	if ((want = json_object_get(c->doc, "expect_error")) != NULL) {
		ck(x, e->prv != SG_OK, "parse succeeded; the case expects an error");
		ck_err(x, e->prv, e->pst.err, "parse result == status err");
		ck(x, e->reply == NULL, "a failed parse left a reply behind");
		ck_status(x, &e->pst, want, c->provider);
	} else if ((want = json_object_get(c->doc, "expect_reply")) != NULL) {
		if (!ck_err(x, e->prv, SG_OK, "parse result")) {
			pc_note(x, "parse: %s", st_text(&e->pst));
			return;
		}
		if (!ck(x,
		        e->reply != NULL && e->reply != &pc_poison_reply &&
		                e->reply->descriptor == c->md->output,
		        "parse gave a reply of the method's type"))
			return;
		ck_reply(x, e->reply, want, "reply");
		ck_round_trip(x, e->reply, scratch);
	}
}

/* Sets c up for the case doc of provider p in dir; see case_prepare. */
static bool
case_load(pc_ctx *x, pc_case *c, const char *provider, const sg_provider *p, const char *dir,
          json_t *doc, const sg_pconf *defaults)
{
	memset(c, 0, sizeof(*c));
	c->provider = provider;
	c->p = p;
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	c->doc = doc;
	return case_prepare(x, c, defaults);
}

/* One case, start to end, in a fresh arena. */
static void
case_run(pc_ctx *x, const pc_case *c)
{
	sg_arena a;
	sg_http_resp resp;
	char *body = NULL, *hdrs = NULL;
	ProtobufCMessage *req;
	pc_exec e;
	bool has_resp = json_object_get(c->doc, "upstream_reply") != NULL;

	sg_arena_init(&a, 0, 0);
	if ((req = case_request(x, c, &a)) == NULL)
		goto done;
	if (has_resp && !case_resp(x, c, &resp, &body, &hdrs))
		goto done;
	case_exec(c, req, has_resp ? &resp : NULL, &a, &e);
	case_verify(x, c, &e, &a);
done:
	free(body);
	free(hdrs);
	sg_arena_fini(&a);
}

/* ================================================================== the runners */

/* Registry and name agree: p is the provider for both. */
static bool
ck_provider(pc_ctx *x, const char *provider, const sg_provider *p)
{
	if (!ck(x, p != NULL, "provider in the registry"))
		return false;
	return ck_str(x, p->name, provider, "registry name") &&
	       ck(x, sg_provider_by_name(provider) == p, "sg_provider_by_name() agrees");
}

sg_cases_result
sg_cases_run(const char *provider, Shipgate__V1__Provider id, const char *dir,
             const sg_pconf *defaults)
{
	sg_cases_result r = {0};
	pc_ctx x = {0};
	const sg_provider *p = sg_provider_get(id);
	char path[PC_PATH_MAX];
	char **names;
	size_t n = 0;

	x.name = provider;
	if (!ck_provider(&x, provider, p))
		goto out;
	snprintf(path, sizeof(path), "%s/cases", dir);
	if ((names = list_cases(path, &n)) == NULL) {
		pc_fail(&x, "cannot read %s", path);
		goto out;
	}
	ck(&x, n > 0, "no case files");
	for (size_t i = 0; i < n; i++) {
		pc_case c;
		json_t *doc;
		snprintf(path, sizeof(path), "%s/cases/%s", dir, names[i]);
		x.name = names[i];
		x.named = false;
		if (ck(&x, (doc = sg_cases_load_json(path)) != NULL, "case file loads") &&
		    case_load(&x, &c, provider, p, dir, doc, defaults))
			case_run(&x, &c);
		json_decref(doc);
	}
	free_names(names, n);
out:
	r.ncases = (int)n;
	r.passed = x.passed;
	r.failed = x.failed;
	printf("%s: %d cases, %d checks passed, %d failed\n", provider, r.ncases, r.passed,
	       r.failed);
	return r;
}

/* Whether e stopped on a full arena, checking that it did so cleanly. */
static bool
exec_nomem(pc_ctx *x, const pc_case *c, const pc_exec *e, size_t cap)
{
	int f0 = x->failed;

	if (e->brv == SG_ENOMEM) {
		ck_err(x, e->bst.err, SG_ENOMEM, "build status err");
		ck_str(x, e->bst.provider, c->provider, "build status provider");
		ck(x, sg_cases_req_empty(&e->hr),
		   "build ran out of memory and left a request behind");
	} else if (e->parsed && e->prv == SG_ENOMEM) {
		ck_err(x, e->pst.err, SG_ENOMEM, "parse status err");
		ck_str(x, e->pst.provider, c->provider, "parse status provider");
		ck(x, e->reply == NULL, "parse ran out of memory and left a reply behind");
	} else {
		return false;
	}
	if (x->failed != f0)
		pc_note(x, "at arena cap %zu", cap);
	return true;
}

/* The reason the case expects of a failure (build or parse), or NULL for a reply. */
static const char *
expected_reason(const pc_case *c)
{
	json_t *w = json_object_get(c->doc, "expect_build_error");
	if (w == NULL)
		w = json_object_get(c->doc, "expect_error");
	return w != NULL ? jstr_or(w, "reason", "?") : NULL;
}

sg_cases_result
sg_cases_oom_sweep(const char *provider, const char *method, const char *case_file,
                   const sg_pconf *defaults)
{
	sg_cases_result r = {0};
	pc_ctx x = {0};
	const sg_provider *p = sg_provider_by_name(provider);
	char dir[PC_PATH_MAX], *slash;
	const char *base = strrchr(case_file, '/') ? strrchr(case_file, '/') + 1 : case_file;
	json_t *doc = NULL;
	sg_arena ra, scratch;
	sg_http_resp resp;
	char *body = NULL, *hdrs = NULL;
	ProtobufCMessage *req;
	size_t degraded = 0;
	bool has_resp;
	pc_case c;

	sg_arena_init(&ra, 0, 0);
	sg_arena_init(&scratch, 0, 0);
	x.name = base;
	r.ncases = 1;
	/* <dir>/cases/<name>.json: dir holds bodies/ */
	snprintf(dir, sizeof(dir), "%s", case_file);
	for (int up = 0; up < 2; up++)
		if ((slash = strrchr(dir, '/')) != NULL)
			*slash = '\0';
	if (!ck_provider(&x, provider, p) ||
	    !ck(&x, (doc = sg_cases_load_json(case_file)) != NULL, "case file loads") ||
	    !case_load(&x, &c, provider, p, dir, doc, defaults))
		goto out;
	if (method != NULL)
		ck_str(&x, c.method, method, "the case's method");
	if ((req = case_request(&x, &c, &ra)) == NULL)
		goto out;
	has_resp = json_object_get(doc, "upstream_reply") != NULL;
	if (has_resp && !case_resp(&x, &c, &resp, &body, &hdrs))
		goto out;

	for (size_t cap = 16; cap <= PC_SWEEP_MAX; cap += 16) {
		const char *reason = expected_reason(&c);
		pc_ctx q = {.quiet = true};
		sg_arena a;
		pc_exec e;
		sg_err got;

		sg_arena_init(&a, 64, cap); /* small blocks: many block boundaries too */
		sg_arena_reset(&scratch);
		case_exec(&c, req, has_resp ? &resp : NULL, &a, &e);
		if (exec_nomem(&x, &c, &e, cap)) {
			r.nomem_caps++;
			sg_arena_fini(&a);
			if (x.failed != 0)
				break;
			continue;
		}
		case_verify(&q, &c, &e, &scratch);
		if (q.failed == 0) {
			case_verify(&x, &c, &e, &scratch); /* counted, and the same verdict */
			r.fit_cap = cap;
			sg_arena_fini(&a);
			break;
		}
		/* an expected failure whose detail did not fit yet: the same reason, less text */
		got = e.brv != SG_OK ? e.brv : e.prv;
		if (reason != NULL && got != SG_OK && strcmp(sg_err_reason(got), reason) == 0) {
			degraded++;
			sg_arena_fini(&a);
			continue;
		}
		pc_fail(&x, "at arena cap %zu: neither SG_ENOMEM nor the case's outcome", cap);
		case_verify(&x, &c, &e, &scratch); /* says what differs */
		sg_arena_fini(&a);
		break;
	}
	if (r.fit_cap == 0 && x.failed == 0)
		pc_fail(&x, "does not pass with any arena cap up to %u bytes", PC_SWEEP_MAX);
	/* a reply cannot be built in 16 bytes: a sweep that never ran out did not sweep */
	if (json_object_get(doc, "expect_reply") != NULL)
		ck(&x, r.nomem_caps > 0, "the sweep hit SG_ENOMEM at least once");
out:
	free(body);
	free(hdrs);
	json_decref(doc);
	sg_arena_fini(&scratch);
	sg_arena_fini(&ra);
	r.passed = x.passed;
	r.failed = x.failed;
	if (r.fit_cap > 0)
		snprintf(dir, sizeof(dir), "passes from %zu bytes", r.fit_cap);
	else
		snprintf(dir, sizeof(dir), "never passes");
	printf("%s %s: %zu arena caps out of memory, %zu with a degraded error, %s; %d checks "
	       "passed, %d failed\n",
	       provider, base, r.nomem_caps, degraded, dir, r.passed, r.failed);
	return r;
}

/* ================================================================== hostile ids */

/* st holds exactly one violation, on field, saying want. */
static void
ck_one_violation(pc_ctx *x, const sg_status *st, const char *field, const char *want)
{
	if (!ck_int(x, (long long)st->nviolations, 1, "number of violations"))
		return;
	ck_str(x, st->violations[0].field, field, "violation field");
	ck_str(x, st->violations[0].description, want, "violation description");
}

/* One id (len bytes, with its NUL if any) against t: the validator, then build when it can. */
static void
hostile_id(pc_ctx *x, const char *provider, const sg_cases_idtarget *t, const sg_pconf *pc,
           const char *id, size_t len, const char *want, int *built)
{
	const ProtobufCMessageDescriptor *d = t->base->descriptor;
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field_by_name(d, t->field);
	size_t flen = strlen(t->field);
	const char *seg = pc_poison;
	ProtobufCMessage *req;
	sg_http_req hr;
	sg_status st;
	sg_arena a;

	/* the validator itself, with the explicit length (catches an embedded NUL) */
	sg_arena_init(&a, 0, 0);
	sg_status_clear(&st);
	ck_err(x, sg_path_segment(&a, t->field, id, len, t->pol, &seg, &st), SG_EINVAL,
	       "sg_path_segment() result");
	ck(x, seg == NULL, "a refused id left a segment behind");
	ck_one_violation(x, &st, t->field, want);
	ck(x,
	   st.message != NULL && strncmp(st.message, t->field, flen) == 0 &&
	           strncmp(st.message + flen, ": ", 2) == 0,
	   "the message names the field");

	/* and through build, whenever a C string can carry it */
	if (strlen(id) == len &&
	    ck(x, (req = sg_arena_alloc(&a, d->sizeof_message)) != NULL, "arena for the request")) {
		memcpy(req, t->base, d->sizeof_message);
		*(char **)((char *)req + f->offset) = (char *)id;
		memset(&hr, 0, sizeof(hr));
		hr.method = hr.url = hr.body = pc_poison;
		sg_status_clear(&st);
		ck_err(x, t->op->build(pc, req, &a, &hr, &st), SG_EINVAL, "build result");
		ck_str(x, sg_err_reason(st.err), "INVALID_FIELD", "status reason");
		ck_int(x, sg_err_code(st.err), 3, "status gRPC code");
		ck(x, sg_cases_req_empty(&hr), "a refused id left a request behind");
		ck_one_violation(x, &st, t->field,
		                 len == 0 && t->empty_desc != NULL ? t->empty_desc : want);
		ck_str(x, st.provider, provider, "status provider");
		(*built)++;
	}
	sg_arena_fini(&a);
}

sg_cases_result
sg_cases_hostile_ids(const char *provider, const char *ids_file, const sg_cases_idtarget *t,
                     const sg_pconf *pc)
{
	sg_cases_result r = {0};
	pc_ctx x = {0};
	json_t *ids = sg_cases_load_json(ids_file);
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field_by_name(t->base->descriptor, t->field);
	char name[PC_PATH_MAX];

	x.name = ids_file;
	if (!ck(&x, json_is_array(ids), "the hostile ids file is a JSON array") ||
	    !ck(&x,
	        f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
	                f->label != PROTOBUF_C_LABEL_REPEATED,
	        "the request has that string field"))
		goto out;
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *e = json_array_get(ids, i), *jid = json_object_get(e, "id");
		const char *want = json_string_value(json_object_get(e, "description"));
		snprintf(name, sizeof(name), "hostile_ids[%zu] as %s.%s", i,
		         t->base->descriptor->short_name, t->field);
		x.name = name;
		x.named = false;
		if (ck(&x, json_is_string(jid) && want != NULL,
		       "an entry has an id and a description"))
			hostile_id(&x, provider, t, pc, json_string_value(jid),
			           json_string_length(jid), want, &r.ncases);
	}
out:
	json_decref(ids);
	r.passed = x.passed;
	r.failed = x.failed;
	printf("%s: hostile ids as %s.%s: %d built, %d checks passed, %d failed\n", provider,
	       t->base->descriptor->short_name, t->field, r.ncases, r.passed, r.failed);
	return r;
}

/* ================================================================== misuse */

/* op (of method `method`) called with req, which is not of its type: a bug, reported as such.
 * Failures print under "<method> with a <request type>". */
static void
wrong_request(pc_ctx *x, const char *provider, const sg_op *op, const char *method,
              const ProtobufCMessage *req, const sg_pconf *pc)
{
	static const sg_http_resp resp = {200, "{}", 2, NULL, 0, NULL};
	ProtobufCMessage *reply = &pc_poison_reply;
	char name[128];
	sg_http_req hr;
	sg_status st;
	sg_arena a;

	snprintf(name, sizeof(name), "%s with a %s", method,
	         req != NULL ? req->descriptor->short_name : "NULL request");
	x->name = name;
	x->named = false;
	sg_arena_init(&a, 0, 0);
	memset(&hr, 0, sizeof(hr));
	hr.method = hr.url = hr.body = pc_poison;
	sg_status_clear(&st);
	ck_err(x, op->build(pc, req, &a, &hr, &st), SG_EINTERNAL, "build result");
	ck(x, sg_cases_req_empty(&hr), "a build of the wrong request left a request behind");
	ck_str(x, st.provider, provider, "build status provider");

	sg_status_clear(&st);
	ck_err(x, op->parse(pc, req, &resp, &a, &reply, &st), SG_EINTERNAL, "parse result");
	ck(x, reply == NULL, "a parse of the wrong request left a reply behind");
	ck_int(x, st.http_status, 0, "a bug carries no upstream HTTP status");
	ck_str(x, st.provider, provider, "parse status provider");
	sg_arena_fini(&a);
	x->name = provider;
}

sg_cases_result
sg_cases_wrong_requests(const char *provider, Shipgate__V1__Provider id, const sg_pconf *pc)
{
	Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	Shipgate__V1__GetOrderRequest go = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	Shipgate__V1__CreateOrderRequest co = SHIPGATE__V1__CREATE_ORDER_REQUEST__INIT;
	const ProtobufCMessage *reqs[] = {&tr.base, &go.base, &co.base, NULL};
	const sg_provider *p = sg_provider_get(id);
	sg_cases_result r = {0};
	pc_ctx x = {0};

	x.name = provider;
	if (!ck_provider(&x, provider, p))
		goto out;
	for (size_t m = 0; m < sizeof(pc_methods) / sizeof(pc_methods[0]); m++) {
		const sg_op *op = (const sg_op *)((const char *)p + pc_methods[m].op);
		const ProtobufCMethodDescriptor *md =
		        protobuf_c_service_descriptor_get_method_by_name(
		                &shipgate__v1__shipgate__descriptor, pc_methods[m].name);
		if (op->build == NULL && op->parse == NULL)
			continue; /* not offered */
		r.ncases++;
		if (!ck(&x, op->build != NULL && op->parse != NULL && md != NULL,
		        "an operation has both build and parse"))
			continue;
		for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
			if (reqs[i] == NULL || reqs[i]->descriptor != md->input)
				wrong_request(&x, provider, op, pc_methods[m].name, reqs[i], pc);
	}
out:
	r.passed = x.passed;
	r.failed = x.failed;
	printf("%s: wrong requests to %d operations, %d checks passed, %d failed\n", provider,
	       r.ncases, r.passed, r.failed);
	return r;
}

/* ================================================================== jansson allocation failures */

static long pc_jbudget; /* allocations jansson may still make (< 0: any number) */
static long pc_jlive;   /* allocations jansson has made and not freed */

static void *
pc_jmalloc(size_t n)
{
	if (pc_jbudget == 0)
		return NULL;
	if (pc_jbudget > 0)
		pc_jbudget--;
	pc_jlive++;
	return malloc(n);
}

static void
pc_jfree(void *p)
{
	if (p != NULL)
		pc_jlive--;
	free(p);
}

sg_cases_result
sg_cases_jansson_sweep(const char *name, sg_cases_jfn fn, void *arg, sg_err want, bool malformed_ok)
{
	sg_cases_result r = {0};
	sg_cases_jcall call = {SG_EINTERNAL, false, false};
	pc_ctx x = {0};
	long k, malformed = 0;

	x.name = name;
	r.ncases = 1;
	for (k = 0; k < PC_JSWEEP_MAX; k++) {
		sg_arena a;
		sg_arena_init(&a, 0, 0);
		pc_jbudget = k;
		pc_jlive = 0;
		json_set_alloc_funcs(pc_jmalloc, pc_jfree);
		call = fn(arg, &a);
		json_set_alloc_funcs(malloc, free);
		sg_arena_fini(&a);
		if (!ck_int(&x, pc_jlive, 0, "allocations jansson did not get back"))
			pc_note(&x, "after %ld allocations", k);
		if (call.rv == want && !call.degraded)
			break;
		if (call.rv != SG_ENOMEM && call.rv != want)
			malformed++;
		if (!ck(&x,
		        call.rv == SG_ENOMEM || call.rv == want ||
		                (malformed_ok && call.rv == SG_EUP_MALFORMED),
		        "a call that ran out of jansson memory failed otherwise"))
			pc_note(&x, "after %ld allocations: %s", k, sg_err_reason(call.rv));
		ck(&x, !call.left, "a failed call left a request or a reply behind");
	}
	ck_err(&x, call.rv, want, "the result with memory enough");
	r.nomem_caps = (size_t)k;
	r.passed = x.passed;
	r.failed = x.failed;
	printf("%s: %ld failing allocations, %ld reported as malformed\n", name, k, malformed);
	return r;
}

sg_cases_jcall
sg_cases_jparse(void *arg, sg_arena *a)
{
	const sg_cases_parse *p = arg;
	ProtobufCMessage *reply = NULL;
	sg_cases_jcall call = {0};
	sg_status st;

	sg_status_clear(&st);
	call.rv = p->op->parse(p->pc, p->req, &p->resp, a, &reply, &st);
	call.left = call.rv != SG_OK && reply != NULL;
	call.degraded = call.rv != SG_OK && st.provider_code == NULL;
	return call;
}

/* ================================================================== long histories */

int
sg_cases_shuffled(int i, int n)
{
	return (int)(((long)(i % n) * 7919) % n);
}

bool
sg_cases_events_in_order(const Shipgate__V1__Tracking *t, int64_t t0, int64_t step)
{
	for (size_t i = 0; i < t->n_events; i++) {
		int64_t want = t0 + step * (int64_t)i;
		if (t->events[i]->time_unix != want) {
			fprintf(stderr, "  events[%zu] is at %" PRId64 ", want %" PRId64 "\n", i,
			        t->events[i]->time_unix, want);
			return false;
		}
	}
	return true;
}
