/*
 * test_pbjson.c - protobuf-c <-> proto3 JSON (clients/c/pbjson.c).
 *
 * 1. Every message type of the contract, filled field by field with non-default values by a
 *    descriptor-driven filler, goes message -> JSON -> message and must pack to the same bytes.
 * 2. Table cases: JSON in, the JSON expected back out (or the error expected, by substring).
 * 3. Allocation-failure injection: every allocation of a decode fails once in turn; each
 *    failure must be clean (no leak: the counting allocator balances).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/wrappers.pb-c.h"
#include "pbjson.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"
#include "testutil.h"

/* ------------------------------------------------------------------ a counting allocator */

typedef struct counting {
	long allocs;   /* successful allocations */
	long frees;    /* frees of non-NULL pointers */
	long fail_at;  /* the allocation number (1-based) that fails; 0: none */
	long attempts; /* allocations asked for */
} counting;

static void *
c_alloc(void *ud, size_t n)
{
	counting *c = ud;
	if (++c->attempts == c->fail_at)
		return NULL;
	c->allocs++;
	return malloc(n);
}

static void
c_free(void *ud, void *p)
{
	counting *c = ud;
	if (p != NULL)
		c->frees++;
	free(p);
}

/* ------------------------------------------------------------------ a descriptor-driven filler */

static void fill_message(ProtobufCMessage *m, int depth, int seed);

static char *
xstrdup(const char *s)
{
	char *c = malloc(strlen(s) + 1);
	strcpy(c, s);
	return c;
}

/* One non-default value of field f into dst; seed varies values between elements. */
static void
fill_value(const ProtobufCFieldDescriptor *f, void *dst, int seed, int depth)
{
	char buf[64];

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: *(int32_t *)dst = -(int32_t)(f->id * 1000 + seed) - 1; break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)dst = 4000000000u + f->id + (uint32_t)seed;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		/* beyond 2^53: would lose precision as a JSON number */
		*(int64_t *)dst = -(INT64_C(9007199254740993) + f->id * 10 + seed);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: *(uint64_t *)dst = UINT64_MAX - f->id - (uint64_t)seed; break;
	case PROTOBUF_C_TYPE_FLOAT: *(float *)dst = 0.1f * (float)(f->id + seed); break;
	case PROTOBUF_C_TYPE_DOUBLE: *(double *)dst = 0.1 * f->id + 1e-9 * seed - 3.0; break;
	case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)dst = 1; break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;
		*(int *)dst = e->values[(e->n_values - 1 - (unsigned)seed % e->n_values)].value;
		if (*(int *)dst == 0)
			*(int *)dst = e->values[e->n_values - 1].value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		snprintf(buf, sizeof(buf), "%s-%d \"q\" \\ \n\t caf\xc3\xa9 \xe2\x82\xac", f->name,
		         seed);
		*(char **)dst = xstrdup(buf);
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *bd = dst;
		bd->len = 5 + (size_t)seed % 3;
		bd->data = malloc(bd->len);
		for (size_t i = 0; i < bd->len; i++)
			bd->data[i] = (uint8_t)(0xfb + i * 37 + (size_t)seed);
		bd->data[0] = 0;
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *md = f->descriptor;
		ProtobufCMessage *sub = malloc(md->sizeof_message);
		md->message_init(sub);
		fill_message(sub, depth + 1, seed);
		*(ProtobufCMessage **)dst = sub;
		break;
	}
	}
}

static void
fill_message(ProtobufCMessage *m, int depth, int seed)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (depth > 4)
		return;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *member = (char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t es = f->type == PROTOBUF_C_TYPE_MESSAGE  ? sizeof(void *)
			            : f->type == PROTOBUF_C_TYPE_STRING ? sizeof(char *)
			            : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
			            : f->type == PROTOBUF_C_TYPE_INT64 ||
			                            f->type == PROTOBUF_C_TYPE_UINT64 ||
			                            f->type == PROTOBUF_C_TYPE_SINT64 ||
			                            f->type == PROTOBUF_C_TYPE_FIXED64 ||
			                            f->type == PROTOBUF_C_TYPE_SFIXED64 ||
			                            f->type == PROTOBUF_C_TYPE_DOUBLE
			                    ? 8
			                    : 4;
			char *arr = calloc(2, es);
			for (int k = 0; k < 2; k++)
				fill_value(f, arr + (size_t)k * es, k, depth);
			*(void **)member = arr;
			*(size_t *)((char *)m + f->quantifier_offset) = 2;
			continue;
		}
		fill_value(f, member, seed, depth);
	}
}

/* Every message and enum reachable from the service and the envelope. */
static const ProtobufCMessageDescriptor *all_msgs[128];
static size_t n_all;

static void
collect(const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < n_all; i++)
		if (all_msgs[i] == d)
			return;
	all_msgs[n_all++] = d;
	for (unsigned i = 0; i < d->n_fields; i++)
		if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
			collect(d->fields[i].descriptor);
}

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(*len + 1);
	protobuf_c_message_pack(m, b);
	return b;
}

/* message -> JSON text -> message, under both name styles; packed bytes must match. */
static void
round_trip(const ProtobufCMessage *m, int flags)
{
	sgc_pbjson_error err = {{0}, {0}};
	counting ca = {0, 0, 0, 0};
	ProtobufCAllocator alloc = {c_alloc, c_free, &ca};
	ProtobufCMessage *back = NULL;
	char *text = sgc_pbjson_encode(m, flags, &err);
	size_t l1, l2;
	uint8_t *b1, *b2;

	CHECK(text != NULL);
	if (text == NULL) {
		fprintf(stderr, "  %s: %s: %s\n", m->descriptor->name, err.path, err.text);
		return;
	}
	CHECK_INT(sgc_pbjson_decode(text, strlen(text), m->descriptor, &alloc, 0, &back, &err), 0);
	if (back == NULL) {
		fprintf(stderr, "  %s: %s: %s\n%s\n", m->descriptor->name, err.path, err.text,
		        text);
		free(text);
		return;
	}
	b1 = pack(m, &l1);
	b2 = pack(back, &l2);
	CHECK_INT(l1, l2);
	CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
	if (l1 != l2 || memcmp(b1, b2, l1) != 0)
		fprintf(stderr, "  %s differs after the round trip:\n%s\n", m->descriptor->name,
		        text);
	protobuf_c_message_free_unpacked(back, &alloc);
	CHECK_INT(ca.allocs, ca.frees);
	free(b1);
	free(b2);
	free(text);
}

static void
test_every_type_round_trips(void)
{
	const ProtobufCServiceDescriptor *sd = &shipgate__v1__shipgate__descriptor;

	for (unsigned i = 0; i < sd->n_methods; i++) {
		collect(sd->methods[i].input);
		collect(sd->methods[i].output);
	}
	collect(&shipgate__v1__rpc_request__descriptor);
	collect(&shipgate__v1__rpc_reply__descriptor);
	collect(&google__protobuf__float_value__descriptor);
	collect(&google__protobuf__uint64_value__descriptor);
	collect(&google__protobuf__uint32_value__descriptor);
	collect(&google__protobuf__int32_value__descriptor);
	collect(&google__protobuf__bytes_value__descriptor);
	CHECK(n_all >= 40);
	for (size_t i = 0; i < n_all; i++) {
		const ProtobufCMessageDescriptor *d = all_msgs[i];
		ProtobufCMessage *m = malloc(d->sizeof_message), *empty = malloc(d->sizeof_message);
		d->message_init(m);
		d->message_init(empty);
		fill_message(m, 0, 0);
		round_trip(m, 0);
		round_trip(m, SGC_PBJSON_ORIG_NAMES);
		round_trip(m, SGC_PBJSON_ENUMS_AS_INTS | SGC_PBJSON_INDENT);
		round_trip(empty, 0);
		round_trip(empty, SGC_PBJSON_EMIT_DEFAULTS);
		protobuf_c_message_free_unpacked(m, NULL);
		protobuf_c_message_free_unpacked(empty, NULL);
	}
}

/* ------------------------------------------------------------------ table cases */

typedef struct jcase {
	const ProtobufCMessageDescriptor *desc; /* type to parse as */
	const char *in;                         /* JSON in */
	const char *out; /* compact JSON expected back, NULL: expect failure */
	const char *err; /* substring of "path: text" on failure */
	int in_flags;    /* flags for parsing */
	int out_flags;   /* flags for printing */
} jcase;

#define TR  &shipgate__v1__track_request__descriptor
#define EV  &shipgate__v1__tracking_event__descriptor
#define COD &shipgate__v1__cod_reconciliation__descriptor
#define RQ  &shipgate__v1__rpc_request__descriptor
#define HR  &shipgate__v1__health_response__descriptor
#define CO  &shipgate__v1__create_order_request__descriptor
#define CRD &shipgate__v1__coordinate__descriptor
#define ST  &shipgate__v1__status__descriptor
#define SV  &google__protobuf__string_value__descriptor
#define U64 &google__protobuf__uint64_value__descriptor
#define FV  &google__protobuf__float_value__descriptor

static const jcase cases[] = {
        /* names: lowerCamelCase out, both spellings in */
        {TR, "{\"order_id\":\"B1\",\"bypassCache\":true}",
         "{\"orderId\":\"B1\",\"bypassCache\":true}", NULL, 0, 0},
        {TR, "{\"orderId\":\"B1\",\"tracking_number\":\"X\"}",
         "{\"order_id\":\"B1\",\"tracking_number\":\"X\"}", NULL, 0, SGC_PBJSON_ORIG_NAMES},
        {TR, "{\"orderId\":\"B1\",\"order_id\":\"B2\"}", NULL, "given twice", 0, 0},
        /* defaults are omitted, or printed on request */
        {TR, "{\"provider\":\"PROVIDER_UNSPECIFIED\",\"orderId\":\"\",\"bypassCache\":false}", "{}",
         NULL, 0, 0},
        {TR, "{}",
         "{\"provider\":\"PROVIDER_UNSPECIFIED\",\"orderId\":\"\",\"trackingNumber\":\"\","
         "\"bypassCache\":false}",
         NULL, 0, SGC_PBJSON_EMIT_DEFAULTS},
        {HR, "{}",
         "{\"status\":\"SERVING_STATUS_UNKNOWN\",\"version\":\"\",\"uptimeMs\":\"0\",\"inFlight\":"
         "\"0\","
         "\"providers\":[],\"idempotencyStore\":\"\",\"idempotencyScope\":\"\",\"fleetId\":\"\"}",
         NULL, 0, SGC_PBJSON_EMIT_DEFAULTS},
        /* enums: names, numbers in, unknown numbers kept */
        {TR, "{\"provider\":3}", "{\"provider\":\"PROVIDER_BITESHIP\"}", NULL, 0, 0},
        {TR, "{\"provider\":99}", "{\"provider\":99}", NULL, 0, 0},
        {TR, "{\"provider\":\"PROVIDER_BITESHIP\"}", "{\"provider\":3}", NULL, 0,
         SGC_PBJSON_ENUMS_AS_INTS},
        {TR, "{\"provider\":\"DHL\"}", NULL,
         "$.provider: unknown value \"DHL\" for enum shipgate.v1.Provider", 0, 0},
        {TR, "{\"provider\":1.5}", NULL, "not an integer", 0, 0},
        {TR, "{\"provider\":true}", NULL, "expected a shipgate.v1.Provider name or number", 0, 0},
        {HR, "{\"providers\":[\"PROVIDER_BOSCOD\",2]}",
         "{\"providers\":[\"PROVIDER_BOSCOD\",\"PROVIDER_BOSONLINE\"]}", NULL, 0, 0},
        /* int64: strings out; strings, numbers and exponents in */
        {HR, "{\"uptimeMs\":1234567,\"inFlight\":\"-5\"}",
         "{\"uptimeMs\":\"1234567\",\"inFlight\":\"-5\"}", NULL, 0, 0},
        {HR, "{\"uptimeMs\":\"9223372036854775807\"}", "{\"uptimeMs\":\"9223372036854775807\"}",
         NULL, 0, 0},
        {HR, "{\"uptimeMs\":\"9223372036854775808\"}", NULL, "out of range", 0, 0},
        {HR, "{\"uptimeMs\":\"1e3\"}", "{\"uptimeMs\":\"1000\"}", NULL, 0, 0},
        {HR, "{\"uptimeMs\":1e3}", "{\"uptimeMs\":\"1000\"}", NULL, 0, 0},
        {HR, "{\"uptimeMs\":\"12abc\"}", NULL, "$.uptimeMs: \"12abc\" is not an integer", 0, 0},
        {HR, "{\"uptimeMs\":\" 12\"}", NULL, "not an integer", 0, 0},
        {HR, "{\"uptimeMs\":[1]}", NULL, "$.uptimeMs: expected an integer, got an array", 0, 0},
        {U64, "\"18446744073709551615\"", "\"18446744073709551615\"", NULL, 0, 0},
        {U64, "\"-1\"", NULL, "-1 is out of range", 0, 0},
        /* int32 range */
        {EV, "{\"utcOffsetSeconds\":25200}", "{\"utcOffsetSeconds\":25200}", NULL, 0, 0},
        {EV, "{\"utcOffsetSeconds\":\"-25200\"}", "{\"utcOffsetSeconds\":-25200}", NULL, 0, 0},
        {EV, "{\"utcOffsetSeconds\":2147483648}", NULL, "out of range", 0, 0},
        /* wrappers: plain values; null or absent is absent; present defaults stay present */
        {EV, "{\"rawCode\":\"1\",\"podPhotoUrl\":null}", "{\"rawCode\":\"1\"}", NULL, 0, 0},
        {EV, "{\"rawCode\":\"\"}", "{\"rawCode\":\"\"}", NULL, 0, 0},
        {EV, "{\"rawCode\":{\"value\":\"1\"}}", NULL, "$.rawCode: expected a string, got an object",
         0, 0},
        {COD, "{\"orderTimeUnix\":1717290000,\"reconciled\":false}",
         "{\"orderTimeUnix\":\"1717290000\",\"reconciled\":false}", NULL, 0, 0},
        {COD, "{\"reconciledTimeUnix\":\"0\"}", "{\"reconciledTimeUnix\":\"0\"}", NULL, 0, 0},
        {CRD, "{\"latitude\":-6.2,\"longitude\":106.8166667}",
         "{\"latitude\":-6.2,\"longitude\":106.8166667}", NULL, 0, 0},
        {CRD, "{\"latitude\":0}", "{\"latitude\":0}", NULL, 0, 0},
        {CRD, "{\"latitude\":\"NaN\",\"longitude\":\"-Infinity\"}",
         "{\"latitude\":\"NaN\",\"longitude\":\"-Infinity\"}", NULL, 0, 0},
        {CRD, "{\"latitude\":\"1.25\"}", "{\"latitude\":1.25}", NULL, 0, 0},
        {CRD, "{\"latitude\":\"north\"}", NULL, "\"north\" is not a number", 0, 0},
        {FV, "0.1", "0.1", NULL, 0, 0},
        {FV, "1e39", NULL, "out of range for a float", 0, 0},
        {SV, "null", "\"\"", NULL, 0, 0},
        /* bytes: base64, standard or URL-safe, padded or not */
        {RQ, "{\"payload\":\"AP8=\"}", "{\"payload\":\"AP8=\"}", NULL, 0, 0},
        {RQ, "{\"payload\":\"AP8\"}", "{\"payload\":\"AP8=\"}", NULL, 0, 0},
        {RQ, "{\"payload\":\"-_-_\"}", "{\"payload\":\"+/+/\"}", NULL, 0, 0},
        {RQ, "{\"payload\":\"\"}", "{}", NULL, 0, 0},
        {RQ, "{\"payload\":\"A\"}", NULL, "$.payload: invalid base64", 0, 0},
        {RQ, "{\"payload\":\"AP8*\"}", NULL, "invalid base64", 0, 0},
        {RQ, "{\"payload\":5}", NULL, "expected a base64 string", 0, 0},
        /* maps: objects */
        {RQ, "{\"metadata\":{\"caller\":\"ops\",\"trace-id\":\"t1\"}}",
         "{\"metadata\":{\"caller\":\"ops\",\"trace-id\":\"t1\"}}", NULL, 0, 0},
        {RQ, "{\"metadata\":{}}", "{}", NULL, 0, 0},
        {RQ, "{\"metadata\":{\"a\":null}}", NULL, "$.metadata[\"a\"]: map values cannot be null", 0,
         0},
        {RQ, "{\"metadata\":{\"a\":1}}", NULL, "$.metadata[\"a\"]: expected a string", 0, 0},
        {RQ, "{\"metadata\":[\"a\"]}", NULL, "expected an object (map)", 0, 0},
        /* repeated: arrays; null is empty; null elements are not allowed */
        {CO, "{\"items\":[{\"sku\":\"A\",\"quantity\":2},{\"sku\":\"B\"}]}",
         "{\"items\":[{\"sku\":\"A\",\"quantity\":\"2\"},{\"sku\":\"B\"}]}", NULL, 0, 0},
        {CO, "{\"items\":null}", "{}", NULL, 0, 0},
        {CO, "{\"items\":[null]}", NULL, "$.items[0]: null is not allowed", 0, 0},
        {CO, "{\"items\":{\"sku\":\"A\"}}", NULL, "$.items: expected an array, got an object", 0,
         0},
        {CO,
         "{\"receiver\":{\"extraFields\":[{\"fieldName\":\"a\"},{\"field_name\":\"b\",\"val\":1}]}"
         "}",
         NULL, "$.receiver.extraFields[1]: unknown field \"val\" in shipgate.v1.FormField", 0, 0},
        /* wrong types */
        {TR, "{\"bypassCache\":\"true\"}", NULL,
         "$.bypassCache: expected true or false, got a string", 0, 0},
        {TR, "{\"orderId\":12}", NULL, "$.orderId: expected a string, got a number", 0, 0},
        {TR, "{\"orderId\":\"a\\u0000b\"}", NULL, "NUL", 0, 0},
        {TR, "[]", NULL, "$: expected an object (shipgate.v1.TrackRequest), got an array", 0, 0},
        {CO, "{\"sender\":\"x\"}", NULL, "$.sender: expected an object (shipgate.v1.Sender)", 0, 0},
        /* unknown fields: an error naming them, or skipped on request */
        {TR, "{\"orderId\":\"B1\",\"order\":\"x\"}", NULL,
         "$: unknown field \"order\" in shipgate.v1.TrackRequest", 0, 0},
        {TR, "{\"orderId\":\"B1\",\"order\":{\"deep\":[1]}}", "{\"orderId\":\"B1\"}", NULL,
         SGC_PBJSON_IGNORE_UNKNOWN, 0},
        /* bad JSON */
        {TR, "{\"orderId\":\"B1\",}", NULL, "invalid JSON", 0, 0},
        {TR, "{\"orderId\":\"B1\",\"orderId\":\"B2\"}", NULL, "duplicate", 0, 0},
        {TR, "", NULL, "invalid JSON", 0, 0},
        /* nested and enums inside messages */
        {ST,
         "{\"code\":\"NOT_FOUND\",\"detail\":{\"reason\":\"UPSTREAM_NOT_FOUND\","
         "\"fieldViolations\":"
         "[{\"field\":\"order_id\",\"description\":\"unknown\"}],\"retryAfterMs\":\"1500\"}}",
         "{\"code\":\"NOT_FOUND\",\"detail\":{\"reason\":\"UPSTREAM_NOT_FOUND\","
         "\"fieldViolations\":"
         "[{\"field\":\"order_id\",\"description\":\"unknown\"}],\"retryAfterMs\":\"1500\"}}",
         NULL, 0, 0},
};

static void
test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const jcase *k = &cases[i];
		sgc_pbjson_error err = {{0}, {0}};
		counting ca = {0, 0, 0, 0};
		ProtobufCAllocator alloc = {c_alloc, c_free, &ca};
		ProtobufCMessage *m = NULL;
		char full[600];
		int rv = sgc_pbjson_decode(k->in, strlen(k->in), k->desc, &alloc, k->in_flags, &m,
		                           &err);

		snprintf(full, sizeof(full), "%s: %s", err.path, err.text);
		if (k->out == NULL) {
			CHECK_INT(rv, -1);
			CHECK(m == NULL);
			CHECK(strstr(full, k->err) != NULL);
			if (rv != -1 || strstr(full, k->err) == NULL)
				fprintf(stderr, "  case %zu (%s): got \"%s\", want \"%s\"\n", i,
				        k->in, full, k->err);
		} else {
			char *out;
			CHECK_INT(rv, 0);
			if (rv != 0) {
				fprintf(stderr, "  case %zu (%s): %s\n", i, k->in, full);
				continue;
			}
			out = sgc_pbjson_encode(m, k->out_flags, &err);
			CHECK_STR(out, k->out);
			free(out);
		}
		protobuf_c_message_free_unpacked(m, &alloc);
		CHECK_INT(ca.allocs, ca.frees);
	}
}

/* Presence of wrappers, on messages built in C. */
static void
test_wrapper_presence(void)
{
	Shipgate__V1__TrackingEvent ev = SHIPGATE__V1__TRACKING_EVENT__INIT;
	Google__Protobuf__StringValue code = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
	char *s;

	ev.status = SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_DELIVERED;
	ev.time_unix = 1717290000;
	s = sgc_pbjson_encode(&ev.base, 0, NULL);
	CHECK_STR(s, "{\"status\":\"TRACKING_STATUS_DELIVERED\",\"timeUnix\":\"1717290000\"}");
	free(s);
	ev.raw_code = &code; /* present, holding "" */
	s = sgc_pbjson_encode(&ev.base, 0, NULL);
	CHECK_STR(s, "{\"status\":\"TRACKING_STATUS_DELIVERED\",\"rawCode\":\"\","
	             "\"timeUnix\":\"1717290000\"}");
	free(s);
	code.value = "2";
	s = sgc_pbjson_encode(&ev.base, SGC_PBJSON_ORIG_NAMES, NULL);
	CHECK_STR(s, "{\"status\":\"TRACKING_STATUS_DELIVERED\",\"raw_code\":\"2\","
	             "\"time_unix\":\"1717290000\"}");
	free(s);
}

/* Output problems: invalid UTF-8 in a string field is reported, with its path. */
static void
test_output_errors(void)
{
	Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
	sgc_pbjson_error err = {{0}, {0}};
	char bad[] = {'a', (char)0xff, 'b', 0};

	tr.order_id = bad;
	CHECK(sgc_pbjson_from_message(&tr.base, 0, &err) == NULL);
	CHECK_STR(err.path, "$.orderId");
	CHECK(strstr(err.text, "order_id") != NULL && strstr(err.text, "UTF-8") != NULL);
	CHECK(sgc_pbjson_from_message(NULL, 0, &err) == NULL);
}

static void
test_dumps(void)
{
	json_t *j = json_pack("{s:f,s:f,s:f,s:I,s:s,s:[],s:{},s:n,s:b}", "a", 0.1, "b", 1e21, "c",
	                      -2.5e-7, "d", (json_int_t)-42, "e", "tab\there \"q\" \x01 \xc3\xa9",
	                      "f", "g", "h", "i", 1);
	char *s = sgc_pbjson_dumps(j, 0);
	CHECK_STR(s, "{\"a\":0.1,\"b\":1e+21,\"c\":-2.5e-07,\"d\":-42,"
	             "\"e\":\"tab\\there \\\"q\\\" \\u0001 \xc3\xa9\",\"f\":[],\"g\":{},\"h\":null,"
	             "\"i\":true}");
	free(s);
	json_decref(j);
	j = json_pack("{s:[i,{s:s}]}", "a", 1, "b", "c");
	s = sgc_pbjson_dumps(j, SGC_PBJSON_INDENT);
	CHECK_STR(s, "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"c\"\n    }\n  ]\n}");
	free(s);
	json_decref(j);
}

static void
test_json_names(void)
{
	char buf[64];
	CHECK_INT(sgc_pbjson_json_name("tracking_number", buf, sizeof(buf)), 14);
	CHECK_STR(buf, "trackingNumber");
	sgc_pbjson_json_name("utc_offset_seconds", buf, sizeof(buf));
	CHECK_STR(buf, "utcOffsetSeconds");
	sgc_pbjson_json_name("field_1x", buf, sizeof(buf));
	CHECK_STR(buf, "field1x");
	sgc_pbjson_json_name("tracking_number", buf, 5);
	CHECK_STR(buf, "trac");
	CHECK(sgc_pbjson_is_wrapper(&google__protobuf__string_value__descriptor));
	CHECK(!sgc_pbjson_is_wrapper(&shipgate__v1__track_request__descriptor));
	CHECK(sgc_pbjson_is_map(&shipgate__v1__rpc_request__descriptor,
	                        &shipgate__v1__rpc_request__descriptor.fields[3]));
	CHECK(!sgc_pbjson_is_map(&shipgate__v1__tracking__descriptor,
	                         protobuf_c_message_descriptor_get_field_by_name(
	                                 &shipgate__v1__tracking__descriptor, "events")));
}

/* ------------------------------------------------------------------ allocation failures */

static void
test_alloc_failures(void)
{
	static const char in[] =
	        "{\"provider\":\"PROVIDER_BOSONLINE\",\"formId\":\"f\",\"sender\":{\"name\":\"S\","
	        "\"latitude\":-6.2},\"receiver\":{\"name\":\"R\",\"extraFields\":[{\"fieldName\":"
	        "\"a\","
	        "\"value\":\"b\"},{\"fieldName\":\"c\"}]},\"note\":\"n\",\"payment\":{\"type\":"
	        "\"PAYMENT_TYPE_BANK\",\"bank\":\"bca\"},\"items\":[{\"sku\":\"X\",\"quantity\":1}]"
	        "}";
	long total;
	int clean = 0, failed = 0;

	/* first count the allocations of a successful decode */
	{
		counting ca = {0, 0, 0, 0};
		ProtobufCAllocator alloc = {c_alloc, c_free, &ca};
		ProtobufCMessage *m = NULL;
		CHECK_INT(sgc_pbjson_decode(in, strlen(in),
		                            &shipgate__v1__create_order_request__descriptor, &alloc,
		                            0, &m, NULL),
		          0);
		total = ca.allocs;
		protobuf_c_message_free_unpacked(m, &alloc);
	}
	CHECK(total > 10);
	for (long n = 1; n <= total; n++) {
		counting ca = {0, 0, n, 0};
		ProtobufCAllocator alloc = {c_alloc, c_free, &ca};
		sgc_pbjson_error err = {{0}, {0}};
		ProtobufCMessage *m = NULL;
		int rv = sgc_pbjson_decode(in, strlen(in),
		                           &shipgate__v1__create_order_request__descriptor, &alloc,
		                           0, &m, &err);
		failed += rv == -1 && m == NULL && strstr(err.text, "out of memory") != NULL;
		if (m != NULL)
			protobuf_c_message_free_unpacked(m, &alloc);
		clean += ca.allocs == ca.frees;
	}
	CHECK_INT(failed, total);
	CHECK_INT(clean, total);
}

int
main(void)
{
	test_every_type_round_trips();
	test_cases();
	test_wrapper_presence();
	test_output_errors();
	test_dumps();
	test_json_names();
	test_alloc_failures();
	TEST_MAIN_END();
}
