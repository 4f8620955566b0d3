/*
 * shipgate - command-line client of the shipgate gateway, in the spirit of grpcurl.
 *
 *   shipgate [options] call METHOD JSON|-     the request as proto3 JSON, the response as JSON
 *   shipgate [options] list                   the service's methods
 *   shipgate [options] describe METHOD|TYPE   a method's types, a message's fields, enum values
 *
 * Requests are built from JSON with the method's descriptor (pbjson), sent with the client
 * library's raw call, and the response bytes are decoded with the method's output descriptor.
 * Exit status: 0 OK, 1 usage, 2 local error, 10 + gRPC code when the call failed (see usage).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "pbjson.h"
#include "shipgate/client.h"

#define EXIT_USAGE      1
#define EXIT_LOCAL      2
#define EXIT_RPC_BASE   10
#define MAX_URLS        16
#define MAX_METADATA    64
#define MAX_INPUT_BYTES ((size_t)16 << 20) /* JSON read from stdin */

static const char usage_text[] =
        "usage: shipgate [options] call METHOD JSON|-\n"
        "       shipgate [options] list\n"
        "       shipgate [options] describe METHOD|TYPE\n"
        "\n"
        "Calls the shipgate gateway (protobuf over nng REQ/REP) with JSON in and JSON out.\n"
        "\n"
        "commands:\n"
        "  call METHOD JSON   call METHOD (\"Track\", \"shipgate.v1.Shipgate.Track\" or\n"
        "                     \"/shipgate.v1.Shipgate/Track\") with its request as proto3 JSON;\n"
        "                     JSON \"-\" reads the request from standard input\n"
        "  list               the methods, with their request and response types\n"
        "  describe NAME      a method (and its types), a message (its fields) or an enum\n"
        "\n"
        "options (anywhere on the line):\n"
        "  -a URL             gateway address (tcp://, tls+tcp://, ipc://, inproc://); repeat\n"
        "                     for several,\n"
        "                     used round-robin. Default: $SHIPGATE_ADDR (comma-separated URLs),\n"
        "                     else tcp://127.0.0.1:7400\n"
        "  -d MS              deadline of the call in milliseconds, retries included (10000)\n"
        "  -k KEY             idempotency key (CreateOrder needs one). A CreateOrder is retried\n"
        "                     only when nothing was sent or the gateway answered UNAVAILABLE;\n"
        "                     once sent, a broken connection or a timeout ends it with\n"
        "                     UNKNOWN / OUTCOME_UNKNOWN (exit 12), unless the gateways are\n"
        "                     one fleet (Health: scope fleet, the same fleet_id): then it\n"
        "                     moves to another -a of that fleet, which shares the key\n"
        "  -H KEY=VALUE       request metadata (key lower-cased); repeatable\n"
        "  -i ID              request id (default: random)\n"
        "  -r N               attempts at most, the first included (default 3; 1: no retries)\n"
        "  -o json|text       output format (default json)\n"
        "  -e                 JSON output includes fields that hold their default value\n"
        "  -P                 JSON output uses the .proto field names, not lowerCamelCase\n"
        "  --tls-ca FILE      tls+tcp://: the PEM CA the gateway's certificate must chain to\n"
        "                     (default: $SHIPGATE_TLS_CA)\n"
        "  --tls-cert FILE    a PEM client certificate, for a gateway that asks for one\n"
        "  --tls-key FILE     its PEM private key\n"
        "  --tls-server-name NAME  the name the gateway's certificate must carry (default:\n"
        "                     the address's host)\n"
        "  -h, --help         this help\n"
        "\n"
        "output:\n"
        "  json  the response as proto3 JSON on stdout\n"
        "  text  \"field: value\" lines; for Track a summary line, then one line per event:\n"
        "        UTC time (ISO-8601), status, location, text\n"
        "  A failed call prints its status on stderr: as JSON {\"code\", \"message\", \"detail\",\n"
        "  \"requestId\", \"attempts\"} (json), or as one line plus details (text).\n"
        "\n"
        "exit status:\n"
        "  0        OK\n"
        "  1        usage error\n"
        "  2        local error: invalid JSON, unknown method or type, unreadable input,\n"
        "           client setup failed\n"
        "  10+code  the call failed with that gRPC status code, e.g. 14 DEADLINE_EXCEEDED,\n"
        "           15 NOT_FOUND, 13 INVALID_ARGUMENT, 24 UNAVAILABLE, 26 UNAUTHENTICATED,\n"
        "           12 UNKNOWN (OUTCOME_UNKNOWN: check with the provider before trying again)\n";

/* ------------------------------------------------------------------ options */

typedef struct cli {
	const char *urls[MAX_URLS];         /* -a, or from SHIPGATE_ADDR */
	size_t n_urls;                      /* entries in urls */
	char *env_urls;                     /* SHIPGATE_ADDR copy the urls point into */
	long long deadline_ms;              /* -d; 0: the client's default */
	const char *key;                    /* -k */
	const char *request_id;             /* -i */
	int attempts;                       /* -r; 0: the client's default */
	shipgate_metadata md[MAX_METADATA]; /* -H, keys lower-cased into md_keys */
	char *md_keys[MAX_METADATA];        /* owned copies of the keys */
	size_t n_md;                        /* entries in md */
	bool text;                          /* -o text */
	int json_flags;                     /* -e, -P */
	const char *args[3];                /* command and its operands */
	size_t n_args;                      /* entries in args */
	shipgate_tls_opts tls;              /* --tls-*: for tls+tcp:// addresses */
} cli;

static int
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "shipgate: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(shipgate -h for help)\n");
	return EXIT_USAGE;
}

static int
parse_long(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Parses argv into c. Returns 0, or an exit status (help printed: -1). */
static int
parse_args(cli *c, int argc, char **argv)
{
	bool only_operands = false;
	long long v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		char opt;

		if (only_operands || a[0] != '-' || a[1] == '\0') {
			if (c->n_args == 3)
				return usage_error("too many arguments at \"%s\"", a);
			c->args[c->n_args++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_operands = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_text, stdout);
			return -1;
		}
		static const char *const tls_opts[] = {"--tls-ca", "--tls-cert", "--tls-key",
		                                       "--tls-server-name"};
		const char **tls_slot[] = {&c->tls.ca_file, &c->tls.cert_file, &c->tls.key_file,
		                           &c->tls.server_name};
		bool tls_opt = false;
		for (size_t t = 0; t < 4; t++)
			if (strcmp(a, tls_opts[t]) == 0) {
				if (i + 1 >= argc)
					return usage_error("option %s needs a value", a);
				*tls_slot[t] = argv[++i];
				tls_opt = true;
			}
		if (tls_opt)
			continue;
		opt = a[1];
		if (strchr("adkHiro", opt) != NULL) {
			if (a[2] != '\0')
				val = a + 2;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return usage_error("option %s needs a value", a);
		} else if (a[2] != '\0') {
			return usage_error("unknown option \"%s\"", a);
		}
		switch (opt) {
		case 'a':
			if (c->n_urls == MAX_URLS)
				return usage_error("at most 16 addresses%s", "");
			c->urls[c->n_urls++] = val;
			break;
		case 'd':
			if (parse_long(val, 1, 86400000, &v) != 0)
				return usage_error(
				        "-d wants milliseconds in 1..86400000, not \"%s\"", val);
			c->deadline_ms = v;
			break;
		case 'k': c->key = val; break;
		case 'i': c->request_id = val; break;
		case 'r':
			if (parse_long(val, 1, 100, &v) != 0)
				return usage_error("-r wants 1..100, not \"%s\"", val);
			c->attempts = (int)v;
			break;
		case 'H': {
			const char *eq = strchr(val, '=');
			char *k;
			if (eq == NULL || eq == val)
				return usage_error("-H wants KEY=VALUE, not \"%s\"", val);
			if (c->n_md == MAX_METADATA)
				return usage_error("at most 64 metadata entries%s", "");
			if ((k = strndup(val, (size_t)(eq - val))) == NULL)
				return EXIT_LOCAL;
			for (char *p = k; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
			c->md_keys[c->n_md] = k;
			c->md[c->n_md].key = k;
			c->md[c->n_md].value = eq + 1;
			c->n_md++;
			break;
		}
		case 'o':
			if (strcmp(val, "json") == 0)
				c->text = false;
			else if (strcmp(val, "text") == 0)
				c->text = true;
			else
				return usage_error("-o wants json or text, not \"%s\"", val);
			break;
		case 'e': c->json_flags |= SGC_PBJSON_EMIT_DEFAULTS; break;
		case 'P': c->json_flags |= SGC_PBJSON_ORIG_NAMES; break;
		default: return usage_error("unknown option \"%s\"", a);
		}
	}
	if (c->n_urls == 0) {
		const char *env = getenv("SHIPGATE_ADDR");
		if (env != NULL && env[0] != '\0') {
			char *save = NULL;
			if ((c->env_urls = strdup(env)) == NULL)
				return EXIT_LOCAL;
			for (char *t = strtok_r(c->env_urls, ", ", &save);
			     t != NULL && c->n_urls < MAX_URLS; t = strtok_r(NULL, ", ", &save))
				c->urls[c->n_urls++] = t;
		}
	}
	if (c->n_urls == 0)
		c->urls[c->n_urls++] = SHIPGATE_DEFAULT_URL;
	return 0;
}

/* ------------------------------------------------------------------ the contract's types */

/* Every message and enum reachable from the service and the envelope. */
typedef struct types {
	const ProtobufCMessageDescriptor *msgs[128]; /* messages, in discovery order */
	size_t n_msgs;                               /* entries in msgs */
	const ProtobufCEnumDescriptor *enums[64];    /* enums, in discovery order */
	size_t n_enums;                              /* entries in enums */
} types;

static void
types_add_enum(types *t, const ProtobufCEnumDescriptor *e)
{
	for (size_t i = 0; i < t->n_enums; i++)
		if (t->enums[i] == e)
			return;
	if (t->n_enums < sizeof(t->enums) / sizeof(t->enums[0]))
		t->enums[t->n_enums++] = e;
}

static void
types_add_msg(types *t, const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < t->n_msgs; i++)
		if (t->msgs[i] == d)
			return;
	if (t->n_msgs == sizeof(t->msgs) / sizeof(t->msgs[0]))
		return;
	t->msgs[t->n_msgs++] = d;
	for (unsigned i = 0; i < d->n_fields; i++) {
		if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
			types_add_msg(t, d->fields[i].descriptor);
		else if (d->fields[i].type == PROTOBUF_C_TYPE_ENUM)
			types_add_enum(t, d->fields[i].descriptor);
	}
}

static void
types_init(types *t)
{
	const ProtobufCServiceDescriptor *sd = shipgate_service();

	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < sd->n_methods; i++) {
		types_add_msg(t, sd->methods[i].input);
		types_add_msg(t, sd->methods[i].output);
	}
	types_add_msg(t, &shipgate__v1__rpc_request__descriptor);
	types_add_msg(t, &shipgate__v1__rpc_reply__descriptor);
	types_add_enum(t, &shipgate__v1__code__descriptor);
}

/* Matches "pkg.Name", ".pkg.Name", or the short name "Name" when it is unique. */
static bool
name_matches(const char *full, const char *short_name, const char *want)
{
	if (want[0] == '.')
		want++;
	return strcmp(full, want) == 0 || strcmp(short_name, want) == 0;
}

static const char *
scalar_name(ProtobufCType t)
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
	return (size_t)t < sizeof(names) / sizeof(names[0]) && names[t] ? names[t] : "?";
}

static const char *
field_type_name(const ProtobufCFieldDescriptor *f)
{
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
	if (f->type == PROTOBUF_C_TYPE_ENUM)
		return ((const ProtobufCEnumDescriptor *)f->descriptor)->name;
	return scalar_name(f->type);
}

static void
describe_message(const ProtobufCMessageDescriptor *d)
{
	char jn[256], decl[512];

	printf("message %s {\n", d->name);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (sgc_pbjson_is_map(d, f)) {
			const ProtobufCMessageDescriptor *e = f->descriptor;
			snprintf(decl, sizeof(decl), "map<%s, %s> %s = %u;",
			         field_type_name(&e->fields[0]), field_type_name(&e->fields[1]),
			         f->name, f->id);
		} else {
			snprintf(decl, sizeof(decl), "%s%s %s = %u;",
			         f->label == PROTOBUF_C_LABEL_REPEATED ? "repeated " : "",
			         field_type_name(f), f->name, f->id);
		}
		sgc_pbjson_json_name(f->name, jn, sizeof(jn));
		printf("  %-58s // json \"%s\"%s\n", decl, jn,
		       f->type == PROTOBUF_C_TYPE_MESSAGE && sgc_pbjson_is_wrapper(f->descriptor)
		               ? ", plain value or null"
		               : "");
	}
	printf("}\n");
}

static void
describe_enum(const ProtobufCEnumDescriptor *e)
{
	printf("enum %s {\n", e->name);
	for (unsigned i = 0; i < e->n_values; i++)
		printf("  %s = %d;\n", e->values[i].name, e->values[i].value);
	printf("}\n");
}

static int
cmd_list(void)
{
	const ProtobufCServiceDescriptor *sd = shipgate_service();
	char full[256];

	for (unsigned i = 0; i < sd->n_methods; i++) {
		const ProtobufCMethodDescriptor *m = &sd->methods[i];
		snprintf(full, sizeof(full), "/%s/%s", sd->name, m->name);
		printf("%-36s %s -> %s%s\n", full, m->input->name, m->output->name,
		       shipgate_method_idempotent(full) ? "  (idempotent)" : "");
	}
	return 0;
}

static int
cmd_describe(const char *name)
{
	const ProtobufCMethodDescriptor *m;
	char full[256];
	types t;

	if ((m = shipgate_method_lookup(name, full, sizeof(full))) != NULL) {
		printf("rpc %s(%s) returns (%s);  // %s%s\n\n", m->name, m->input->name,
		       m->output->name, full,
		       shipgate_method_idempotent(full) ? ", idempotent" : ", not idempotent");
		describe_message(m->input);
		printf("\n");
		describe_message(m->output);
		return 0;
	}
	types_init(&t);
	for (size_t i = 0; i < t.n_msgs; i++)
		if (name_matches(t.msgs[i]->name, t.msgs[i]->short_name, name)) {
			describe_message(t.msgs[i]);
			return 0;
		}
	for (size_t i = 0; i < t.n_enums; i++)
		if (name_matches(t.enums[i]->name, t.enums[i]->short_name, name)) {
			describe_enum(t.enums[i]);
			return 0;
		}
	fprintf(stderr, "shipgate: no method or type named \"%s\" (see shipgate list)\n", name);
	return EXIT_LOCAL;
}

/* ------------------------------------------------------------------ output */

static void
print_status_text(const shipgate_status *st)
{
	fprintf(stderr, "error: %s: %s\n", shipgate_code_name(st->code),
	        st->message != NULL ? st->message : "(no message)");
	if (st->reason != NULL)
		fprintf(stderr, "  reason: %s%s\n", st->reason,
		        st->retryable ? " (retryable)" : "");
	if (st->provider != NULL)
		fprintf(stderr, "  provider: %s\n", st->provider);
	if (st->upstream_http_status != 0)
		fprintf(stderr, "  upstream HTTP status: %d\n", (int)st->upstream_http_status);
	if (st->provider_code != NULL || st->provider_message != NULL)
		fprintf(stderr, "  provider said: %s %s\n",
		        st->provider_code != NULL ? st->provider_code : "-",
		        st->provider_message != NULL ? st->provider_message : "");
	for (size_t i = 0; i < st->n_violations; i++)
		fprintf(stderr, "  field %s: %s\n", st->violations[i].field,
		        st->violations[i].description);
	if (st->retry_after_ms > 0)
		fprintf(stderr, "  retry after: %lld ms\n", (long long)st->retry_after_ms);
	fprintf(stderr, "  request id: %s, attempts: %d%s\n",
	        st->request_id != NULL ? st->request_id : "-", st->attempts,
	        st->local ? ", reported by the client" : "");
}

/* The status as shipgate.v1.Status JSON, plus requestId and attempts. */
static void
print_status_json(const shipgate_status *st)
{
	Shipgate__V1__Status ws = SHIPGATE__V1__STATUS__INIT;
	Shipgate__V1__ErrorDetail d = SHIPGATE__V1__ERROR_DETAIL__INIT;
	Shipgate__V1__FieldViolation *fv = NULL, **fvp = NULL;
	sgc_pbjson_error err;
	json_t *j;
	char *s;

	ws.code = (Shipgate__V1__Code)st->code;
	ws.message = st->message != NULL ? st->message : (char *)"";
	ws.detail = &d;
	d.reason = st->reason != NULL ? st->reason : (char *)"";
	d.retryable = st->retryable;
	d.upstream_http_status = st->upstream_http_status;
	d.provider = st->provider != NULL ? st->provider : (char *)"";
	d.provider_code = st->provider_code != NULL ? st->provider_code : (char *)"";
	d.provider_message = st->provider_message != NULL ? st->provider_message : (char *)"";
	d.retry_after_ms = st->retry_after_ms;
	if (st->n_violations > 0) {
		fv = calloc(st->n_violations, sizeof(*fv));
		fvp = calloc(st->n_violations, sizeof(*fvp));
	}
	if (fv != NULL && fvp != NULL) {
		for (size_t i = 0; i < st->n_violations; i++) {
			shipgate__v1__field_violation__init(&fv[i]);
			fv[i].field = st->violations[i].field;
			fv[i].description = st->violations[i].description;
			fvp[i] = &fv[i];
		}
		d.n_field_violations = st->n_violations;
		d.field_violations = fvp;
	}
	j = sgc_pbjson_from_message(&ws.base, 0, &err);
	if (j != NULL) {
		if (ws.code == SHIPGATE__V1__CODE__OK)
			json_object_set_new(j, "code", json_string("OK"));
		if (st->request_id != NULL)
			json_object_set_new(j, "requestId", json_string(st->request_id));
		json_object_set_new(j, "attempts", json_integer(st->attempts));
	}
	s = j != NULL ? sgc_pbjson_dumps(j, SGC_PBJSON_INDENT) : NULL;
	if (s != NULL)
		fprintf(stderr, "%s\n", s);
	else
		print_status_text(st);
	free(s);
	json_decref(j);
	free(fv);
	free(fvp);
}

/* "key: value" lines, nested by indentation, for any message as JSON. */
static void
print_text_value(const char *key, const json_t *v, int depth)
{
	const char *k;
	json_t *e;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (key != NULL)
			printf("%*s%s:\n", depth * 2, "", key);
		json_object_foreach((json_t *)v, k, e)
		        print_text_value(k, e, key != NULL ? depth + 1 : depth);
		break;
	case JSON_ARRAY:
		json_array_foreach((json_t *)v, i, e)
		{
			char item[300];
			snprintf(item, sizeof(item), "%s[%zu]", key != NULL ? key : "", i);
			print_text_value(item, e, depth);
		}
		break;
	case JSON_STRING:
		printf("%*s%s: %s\n", depth * 2, "", key != NULL ? key : "", json_string_value(v));
		break;
	default: {
		char *s = sgc_pbjson_dumps(v, 0);
		printf("%*s%s: %s\n", depth * 2, "", key != NULL ? key : "", s != NULL ? s : "?");
		free(s);
	}
	}
}

static const char *
enum_short(const ProtobufCEnumDescriptor *e, int value, const char *prefix)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(e, value);
	size_t pl = strlen(prefix);

	if (v == NULL)
		return "?";
	return strncmp(v->name, prefix, pl) == 0 ? v->name + pl : v->name;
}

static void
utc_iso(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%-20s", "-");
}

/* Track: a summary, then one line per event (UTC time, status, location, text). */
static void
print_track_text(const Shipgate__V1__TrackResponse *r)
{
	const Shipgate__V1__Tracking *t = r->tracking;
	char when[40], prov[32];

	if (t == NULL) {
		printf("(no tracking)\n");
		return;
	}
	/* lower-case, as ErrorDetail.provider writes providers */
	snprintf(prov, sizeof(prov), "%s",
	         enum_short(&shipgate__v1__provider__descriptor, t->provider, "PROVIDER_"));
	for (char *p = prov; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	utc_iso(t->last_update_unix, when, sizeof(when));
	printf("%s %s%s%s: %s%s, updated %s%s%s\n", prov, t->order_id[0] ? t->order_id : "-",
	       t->tracking_number[0] ? " awb " : "", t->tracking_number,
	       enum_short(&shipgate__v1__tracking_status__descriptor, t->status,
	                  "TRACKING_STATUS_"),
	       t->terminal ? " (terminal)" : "", when, t->courier[0] ? ", courier " : "",
	       t->courier);
	for (size_t i = 0; i < t->n_events; i++) {
		const Shipgate__V1__TrackingEvent *e = t->events[i];
		const char *text = e->description[0] ? e->description : e->raw_text;
		utc_iso(e->time_unix, when, sizeof(when));
		printf("%s  %-22s  %s  %s\n", when,
		       enum_short(&shipgate__v1__tracking_status__descriptor, e->status,
		                  "TRACKING_STATUS_"),
		       e->location[0] ? e->location : "-", text);
	}
	if (r->cache != NULL && r->cache->hit)
		printf("(cached, age %lld ms%s)\n", (long long)r->cache->age_ms,
		       r->cache->stale ? ", stale" : "");
}

/* ------------------------------------------------------------------ call */

static char *
read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap), *nb;

	while (buf != NULL) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
		if (n == cap) {
			if (cap >= MAX_INPUT_BYTES) {
				fprintf(stderr, "shipgate: input over %zu bytes\n",
				        MAX_INPUT_BYTES);
				free(buf);
				return NULL;
			}
			if ((nb = realloc(buf, cap * 2)) == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	if (buf == NULL || ferror(f)) {
		fprintf(stderr, "shipgate: cannot read the request: %s\n", strerror(errno));
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static int
cmd_call(cli *c, const char *method, const char *json_arg)
{
	const ProtobufCMethodDescriptor *md;
	shipgate_client_opts co = {0};
	shipgate_call_opts opts = {0};
	shipgate_status st = SHIPGATE_STATUS_INIT;
	shipgate_client *client = NULL;
	ProtobufCMessage *req = NULL, *rep = NULL;
	sgc_pbjson_error err;
	char full[256], *input = NULL;
	void *payload = NULL, *out = NULL;
	size_t in_len = 0, len, out_len = 0;
	int rv, code, ex = EXIT_LOCAL;

	if ((md = shipgate_method_lookup(method, full, sizeof(full))) == NULL) {
		fprintf(stderr, "shipgate: unknown method \"%s\" (see shipgate list)\n", method);
		return EXIT_LOCAL;
	}
	if (strcmp(json_arg, "-") == 0) {
		if ((input = read_all(stdin, &in_len)) == NULL)
			return EXIT_LOCAL;
	} else if ((input = strdup(json_arg)) != NULL) {
		in_len = strlen(input);
	}
	if (input == NULL)
		goto done;
	if (sgc_pbjson_decode(input, in_len, md->input, NULL, 0, &req, &err) != 0) {
		fprintf(stderr, "shipgate: request is not a valid %s: %s: %s\n", md->input->name,
		        err.path, err.text);
		goto done;
	}
	len = protobuf_c_message_get_packed_size(req);
	if (len > 0 && (payload = malloc(len)) == NULL)
		goto done;
	if (len > 0)
		protobuf_c_message_pack(req, payload);

	co.urls = c->urls;
	co.tls = c->tls;
	if (co.tls.ca_file == NULL)
		co.tls.ca_file = getenv("SHIPGATE_TLS_CA");
	co.n_urls = c->n_urls;
	co.retry.max_attempts = c->attempts;
	if ((rv = shipgate_client_new(&client, &co)) != SHIPGATE_OK) {
		fprintf(stderr, "shipgate: cannot use the address(es)");
		for (size_t i = 0; i < c->n_urls; i++)
			fprintf(stderr, " %s", c->urls[i]);
		fprintf(stderr, ": %s\n", shipgate_strerror(rv));
		for (size_t i = 0; i < c->n_urls; i++)
			if (strncmp(c->urls[i], "tls+tcp://", 10) == 0 && co.tls.ca_file == NULL) {
				fprintf(stderr,
				        "shipgate: a tls+tcp:// address needs --tls-ca FILE "
				        "(or $SHIPGATE_TLS_CA)\n");
				break;
			}
		if (co.tls.ca_file != NULL && rv == SHIPGATE_EINVAL)
			fprintf(stderr,
			        "shipgate: check --tls-ca, --tls-cert and --tls-key: each must "
			        "be a readable PEM file, the certificate with its key\n");
		goto done;
	}
	opts.deadline_ms = c->deadline_ms;
	opts.idempotency_key = c->key;
	opts.request_id = c->request_id;
	opts.metadata = c->md;
	opts.n_metadata = c->n_md;
	code = shipgate_call_raw(client, full, payload, len, &opts, &out, &out_len, &st);
	if (code != SHIPGATE__V1__CODE__OK) {
		if (c->text)
			print_status_text(&st);
		else
			print_status_json(&st);
		ex = EXIT_RPC_BASE + code;
		goto done;
	}
	if ((rep = protobuf_c_message_unpack(md->output, NULL, out_len, out)) == NULL) {
		fprintf(stderr, "shipgate: the reply is not a valid %s\n", md->output->name);
		goto done;
	}
	if (c->text && md->output == &shipgate__v1__track_response__descriptor) {
		print_track_text((const Shipgate__V1__TrackResponse *)rep);
	} else {
		json_t *j = sgc_pbjson_from_message(
		        rep, c->json_flags | (c->text ? SGC_PBJSON_ORIG_NAMES : 0), &err);
		char *s = NULL;
		if (j == NULL) {
			fprintf(stderr, "shipgate: cannot show the reply: %s: %s\n", err.path,
			        err.text);
			goto done;
		}
		if (c->text)
			print_text_value(NULL, j, 0);
		else if ((s = sgc_pbjson_dumps(j, SGC_PBJSON_INDENT)) != NULL)
			printf("%s\n", s);
		free(s);
		json_decref(j);
		if (!c->text && s == NULL)
			goto done;
	}
	ex = 0;
done:
	if (ex == EXIT_LOCAL && input == NULL)
		fprintf(stderr, "shipgate: out of memory\n");
	if (rep != NULL)
		protobuf_c_message_free_unpacked(rep, NULL);
	if (req != NULL)
		protobuf_c_message_free_unpacked(req, NULL);
	shipgate_buf_free(out);
	shipgate_status_fini(&st);
	shipgate_client_free(client);
	free(payload);
	free(input);
	return ex;
}

/* ------------------------------------------------------------------ main */

int
main(int argc, char **argv)
{
	cli c;
	int ex;

	memset(&c, 0, sizeof(c));
	if ((ex = parse_args(&c, argc, argv)) != 0) {
		ex = ex < 0 ? 0 : ex;
	} else if (c.n_args == 0) {
		fputs(usage_text, stderr);
		ex = EXIT_USAGE;
	} else if (strcmp(c.args[0], "list") == 0 && c.n_args == 1) {
		ex = cmd_list();
	} else if (strcmp(c.args[0], "describe") == 0 && c.n_args == 2) {
		ex = cmd_describe(c.args[1]);
	} else if (strcmp(c.args[0], "call") == 0 && c.n_args == 3) {
		ex = cmd_call(&c, c.args[1], c.args[2]);
	} else {
		ex = usage_error("bad command line near \"%s\"", c.args[0]);
	}
	for (size_t i = 0; i < c.n_md; i++)
		free(c.md_keys[i]);
	free(c.env_urls);
	fflush(stdout);
	return ex;
}
