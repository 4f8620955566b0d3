/*
 * fuuffy.c - Fuuffy tracking (GET /v1/tracking/get/{order_id}, or ?tracking_number=) to Track,
 * and the OAuth2 client-credentials token (POST /v1/auth/token) as the auth op.
 *
 * The reply (docs/providers.md, "Fuuffy: reply shape"):
 *   {"data": {"tracking_number", "order_id", "order_status", "export_country",
 *             "destination_country", "shipping_provider", "courier_name",
 *             "tracking_msg_list": [{"code", "location", "date", "message"}, ...],
 *             "message": "OK"}}
 * where `data` and `tracking_msg_list` are typed "json-string": the JSON itself, or a string that
 * holds it. Event dates are zone-less local times (UTC+8 unless configured) and event codes are
 * SF Express operation codes (both inferred: docs/providers.md, "Fuuffy: timestamps" and
 * "Fuuffy: event codes"). Errors come in the envelope
 * {"error": {"code", "code_reason", "message", "error_code"?, "error_trace"?}}.
 */
#include "providers/fuuffy.h"

#include <stdio.h>
#include <string.h>

#include "providers/common.h"

typedef Shipgate__V1__TrackingStatus tstatus;

#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* ================================================================== status mapping */

/* An SF operation code, inferred from public client code: docs/providers.md,
 * "Fuuffy: event codes". */
struct code_map {
	const char *code;       /* event `code` */
	tstatus status;         /* canonical status */
	const char *sub_status; /* stable snake_case name */
};

static const struct code_map code_map[] = {
        {"50", TS(PICKED_UP), "collected"},
        {"54", TS(PICKED_UP), "collected"},
        {"30", TS(IN_TRANSIT), "in_transit"},
        {"31", TS(IN_TRANSIT), "in_transit"},
        {"36", TS(IN_TRANSIT), "in_transit"},
        {"105", TS(IN_TRANSIT), "in_transit"},
        {"106", TS(IN_TRANSIT), "in_transit"},
        {"310", TS(IN_TRANSIT), "in_transit"},
        /* the destination site (a delivery station), not a point where the recipient collects:
         * out for delivery normally follows, so not AVAILABLE_FOR_PICKUP */
        {"70", TS(IN_TRANSIT), "arrived_at_destination"},
        {"44", TS(OUT_FOR_DELIVERY), "out_for_delivery"},
        {"204", TS(OUT_FOR_DELIVERY), "out_for_delivery"},
        {"80", TS(DELIVERED), "delivered"},
        /* "returned" (快件已退回): the waybill's last scan; a return travels on a new waybill */
        {"631", TS(RETURNED), "returned"},
};

Shipgate__V1__TrackingStatus
sg_fuuffy_event_status(const char *code, const char **sub_status)
{
	for (size_t i = 0; code != NULL && i < sizeof(code_map) / sizeof(code_map[0]); i++) {
		if (strcmp(code_map[i].code, code) == 0) {
			*sub_status = code_map[i].sub_status;
			return code_map[i].status;
		}
	}
	*sub_status = ""; /* raw code and text are kept on the event; never guessed */
	return TS(UNKNOWN);
}

/* An order status (Fuuffy's order API) or display text, for a tracking with no events. Keys are
 * normalised by order_key(). */
struct order_map {
	const char *key; /* normalised `order_status` */
	tstatus status;  /* canonical status */
};

static const struct order_map order_map[] = {
        {"DRAFT", TS(PENDING)},
        {"PENDING_CONFIRM", TS(PENDING)},
        {"PROCESSING", TS(PENDING)},
        {"PENDING_PROCESSING", TS(PENDING)},
        {"READY_TO_SHIP", TS(INFO_RECEIVED)},  /* label made: the carrier has the data */
        {"PENDING_PICKUP", TS(INFO_RECEIVED)}, /* pickup booked, no courier under way */
        {"PICKUP_COMPLETED", TS(PICKED_UP)},
        {"IN_TRANSIT", TS(IN_TRANSIT)},
        {"DELIVERED", TS(DELIVERED)},
        {"COMPLETED", TS(DELIVERED)},
        {"CANCELLED", TS(CANCELLED)},
        {"CANCELED", TS(CANCELLED)},
        /* "print and arrange pickup": the waybill exists, the parcel is not handed over */
        {"\xe5\x88\x97\xe5\x8d\xb0\xe5\x8f\x8a\xe5\xae\x89\xe6\x8e\x92\xe5\x8f\x96\xe4\xbb\xb6",
         TS(INFO_RECEIVED)}, /* 列印及安排取件 */
};

#define ORDER_KEY_MAX 64 /* longer texts match nothing */

/* Normalises text into buf: surrounding ASCII blanks dropped, ASCII upper-cased, ' ' and '-'
 * made '_'; other bytes (UTF-8) kept. False when it is too long to be a known status. */
static bool
order_key(const char *text, char *buf)
{
	size_t b = 0, e = strlen(text), n = 0;

	while (b < e && (text[b] == ' ' || text[b] == '\t'))
		b++;
	while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t'))
		e--;
	if (e - b >= ORDER_KEY_MAX)
		return false;
	for (size_t i = b; i < e; i++) {
		char ch = text[i];
		buf[n++] = ch == ' ' || ch == '-'   ? '_'
		           : ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A'
		                                    : ch;
	}
	buf[n] = '\0';
	return true;
}

Shipgate__V1__TrackingStatus
sg_fuuffy_order_status(const char *text)
{
	char key[ORDER_KEY_MAX];

	if (text == NULL || !order_key(text, key))
		return TS(UNKNOWN);
	for (size_t i = 0; i < sizeof(order_map) / sizeof(order_map[0]); i++)
		if (strcmp(order_map[i].key, key) == 0)
			return order_map[i].status;
	return TS(UNKNOWN);
}

/* ================================================================== JSON helpers */

/*
 * The json-string at `at`: v itself when it is not a string; when it is, the JSON document it
 * holds (an object or an array: one level, a string in a string is refused), decoded with
 * duplicate keys refused into a NEW reference in *own that the caller json_decref()s. *out is
 * borrowed from v or *own. SG_EUP_TOOBIG past SG_FUUFFY_JSONSTR_MAX, SG_EUP_MALFORMED
 * "<path>: json-string: <why>", SG_ENOMEM.
 */
static sg_err
jsonstr(sg_jctx *c, json_t *v, const sg_jpath *at, json_t **own, json_t **out)
{
	size_t n;
	char *path;
	sg_err rv;

	*own = NULL;
	*out = v;
	if (!json_is_string(v))
		return SG_OK;
	n = json_string_length(v);
	if (n > SG_FUUFFY_JSONSTR_MAX) {
		path = sg_jpath_str(c->a, at, NULL);
		return sg_status_set(c->st, c->a, SG_EUP_TOOBIG,
		                     "%s: json-string of %zu bytes, over the %zu-byte cap",
		                     path != NULL ? path : "json-string", n, SG_FUUFFY_JSONSTR_MAX);
	}
	if ((rv = sg_json_parse(c, json_string_value(v), n, own)) != SG_OK) {
		if (rv == SG_EUP_MALFORMED && c->st->message != NULL &&
		    (path = sg_jpath_str(c->a, at, NULL)) != NULL)
			sg_status_set(c->st, c->a, rv, "%s: json-string: %s", path, c->st->message);
		return rv;
	}
	*out = *own;
	return SG_OK;
}

/* An optional event code: a string, or an integer written in decimal. */
static sg_err
opt_code(sg_jctx *c, json_t *obj, const sg_jpath *at, const char **out)
{
	json_t *v = json_object_get(obj, "code");

	*out = NULL;
	if (json_is_integer(v)) {
		*out = sg_arena_printf(c->a, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return *out != NULL ? SG_OK : sg_nomem(c->st);
	}
	return sg_json_opt_str(c, obj, at, "code", out);
}

/* ================================================================== errors */

/* The X-RateLimit-* headers as " [X-RateLimit-Limit: 100, ...]" (arena), or "" when there are
 * none. Values of other than visible ASCII, or longer than 32 bytes, are left out. */
static const char *
ratelimit_text(const sg_http_resp *resp, sg_arena *a)
{
	static const char *const names[] = {"X-RateLimit-Limit", "X-RateLimit-Remaining",
	                                    "X-RateLimit-Reset"};
	char buf[256]; /* 3 x (", " + name + ": " + 32) + "]" fits */
	size_t off = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v;
		size_t len, k;
		if (!sg_http_header(resp, names[i], &v, &len) || len == 0 || len > 32 ||
		    off >= sizeof(buf) - 64)
			continue;
		for (k = 0; k < len && v[k] > 0x20 && v[k] < 0x7F; k++)
			;
		if (k < len)
			continue;
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s: %.*s",
		                        off == 0 ? " [" : ", ", names[i], (int)len, v);
	}
	if (off == 0)
		return "";
	snprintf(buf + off, sizeof(buf) - off, "]");
	return sg_arena_strdup(a, buf);
}

/* Each error_trace entry {field, message} (both strings) as a violation, arena copies. Entries
 * of another shape are skipped; a full arena drops the rest. */
static void
trace_violations(json_t *trace, sg_arena *a, sg_status *st)
{
	for (size_t i = 0; i < json_array_size(trace) && st->nviolations < SG_STATUS_MAX_VIOLATIONS;
	     i++) {
		json_t *e = json_array_get(trace, i);
		json_t *f = json_object_get(e, "field"), *m = json_object_get(e, "message");
		const char *fs, *ms;
		if (!json_is_string(f) || !json_is_string(m))
			continue;
		if ((fs = sg_error_text(a, json_string_value(f), json_string_length(f))) == NULL ||
		    (ms = sg_error_text(a, json_string_value(m), json_string_length(m))) == NULL)
			return;
		sg_status_violation(st, fs, ms);
	}
}

sg_err
sg_fuuffy_http_error(const sg_http_resp *resp, sg_arena *a, sg_status *st)
{
	sg_err err = sg_http_error_class(resp->status);
	json_t *root = sg_error_parse(resp->body, resp->body_len), *own = NULL, *e;
	const char *rl = "";

	sg_http_error_detail(SG_FUUFFY_NAME, resp, root, a, st);
	e = json_object_get(root, "error");
	/* 403 and 404 are documented with `error` as a json-string */
	if (json_is_string(e) && json_string_length(e) <= SG_FUUFFY_JSONSTR_MAX)
		e = own = json_loadb(json_string_value(e), json_string_length(e),
		                     JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(e)) {
		json_t *ec = json_object_get(e, "error_code"), *code = json_object_get(e, "code");
		json_t *m = json_object_get(e, "message");

		/* the specific error_code says more than the generic "400000" */
		st->provider_code = json_is_string(ec) && json_string_length(ec) > 0
		                            ? sg_error_code(a, ec)
		                            : sg_error_code(a, code);
		st->provider_message = json_is_string(m) ? sg_error_text(a, json_string_value(m),
		                                                         json_string_length(m))
		                                         : NULL;
		/* Fuuffy answers an unknown (or someone else's) order with 400 ORDER_NOT_FOUND:
		 * callers branch on NOT_FOUND for that, whatever the provider */
		if (err == SG_EUP_BADREQ && json_is_string(ec) &&
		    strcmp(json_string_value(ec), "ORDER_NOT_FOUND") == 0)
			err = SG_EUP_NOTFOUND;
		trace_violations(json_object_get(e, "error_trace"), a, st);
	}
	json_decref(own);
	json_decref(root);

	/* the contract has no place for the rate-limit headers: the message names them */
	if (resp->status == 429 && (rl = ratelimit_text(resp, a)) == NULL)
		rl = "";
	return sg_http_error_say(SG_FUUFFY_NAME, resp, err, "", rl, a, st);
}

/* ================================================================== Track: build */

static bool
is_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

sg_err
sg_fuuffy_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                      sg_http_req *out, sg_status *st)
{
	const Shipgate__V1__TrackRequest *tr;
	const char *seg = NULL, *tn = NULL;
	char *url;
	sg_http_req r;
	sg_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = sg_request_check(req, &shipgate__v1__track_request__descriptor, "fuuffy track", a,
	                           st)) != SG_OK)
		goto fail;
	tr = (const Shipgate__V1__TrackRequest *)req;
	/* The caller's input is checked first: a hostile id never meets the config. order_id wins
	 * when both are given; the other one is then not used (and not checked). */
	if (is_set(tr->order_id)) {
		rv = sg_path_segment(a, "order_id", tr->order_id, strlen(tr->order_id),
		                     SG_ID_STRICT, &seg, st);
	} else if (is_set(tr->tracking_number)) {
		/* the strict bytes of a path id, then query-encoded (a no-op for those bytes) */
		const char *v = tr->tracking_number;
		if ((rv = sg_path_segment(a, "tracking_number", v, strlen(v), SG_ID_STRICT, &v,
		                          st)) == SG_OK)
			rv = sg_query_value(a, "tracking_number", v, strlen(v), SG_ID_MAX, &tn, st);
	} else {
		sg_status_violation(st, "order_id", "required when tracking_number is not set");
		sg_status_violation(st, "tracking_number", "required when order_id is not set");
		rv = sg_status_set(st, a, SG_EINVAL,
		                   "one of order_id or tracking_number is required");
	}
	if (rv != SG_OK)
		goto fail;
	/* pc->token: the static token, or the one the gateway got with the auth op */
	if ((rv = sg_http_req_start(&r, pc, "GET", a, st)) != SG_OK)
		goto fail;
	if (seg != NULL) {
		url = sg_url_join(a, pc->base_url, "/v1/tracking/get/", seg, NULL);
	} else {
		url = sg_url_join(a, pc->base_url, "/v1/tracking/get", NULL);
		if (url != NULL)
			url = sg_url_add_query(a, url, "tracking_number", tn);
	}
	if ((r.url = url) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_http_req_header(&r, "Content-Type: application/json", a, st)) != SG_OK ||
	    (rv = sg_http_req_header(&r, "Accept: application/json", a, st)) != SG_OK)
		goto fail;
	*out = r;
	return SG_OK;

fail:
	st->provider = SG_FUUFFY_NAME;
	return rv;
}

/* ================================================================== Track: parse */

/* One tracking_msg_list entry (at `at`) into ev. Its zone-less date is read at the configured
 * offset, else at UTC+8; an offset written in the text would win (OFFSET_SOURCE_TEXT). */
static sg_err
parse_event(sg_jctx *c, const sg_pconf *pc, json_t *m, const sg_jpath *at,
            Shipgate__V1__TrackingEvent *ev)
{
	const char *code, *loc, *date, *msg, *sub;
	Shipgate__V1__OffsetSource src;
	int32_t offset;
	int64_t when;
	sg_err rv;

	if ((rv = sg_json_expect_obj(c, m, at)) != SG_OK ||
	    (rv = opt_code(c, m, at, &code)) != SG_OK ||
	    (rv = sg_json_opt_str(c, m, at, "location", &loc)) != SG_OK ||
	    (rv = sg_json_req_str(c, m, at, "date", &date)) != SG_OK ||
	    (rv = sg_json_opt_str(c, m, at, "message", &msg)) != SG_OK)
		return rv;
	if (!sg_time_iso(pc, SG_FUUFFY_DEFAULT_OFFSET_S, date, strlen(date), &when, &offset, &src))
		return sg_json_bad(c, at, "date", "expected a \"YYYY-MM-DD HH:MM:SS\" time");

	ev->status = sg_fuuffy_event_status(code, &sub);
	ev->sub_status = (char *)sub; /* static; the arena allocator never frees */
	if ((rv = sg_pb_str(c->a, code, &ev->raw_code, c->st)) != SG_OK)
		return rv;
	if (msg != NULL)
		ev->raw_text = (char *)msg;
	if (loc != NULL)
		ev->location = (char *)loc;
	ev->time_unix = when;
	ev->time_text = (char *)date; /* verbatim */
	ev->utc_offset_seconds = offset;
	ev->offset_source = src;
	return SG_OK;
}

/* An arena copy of the first of x, y that is set (non-empty), or "" when neither is; NULL when
 * the arena is full. */
static char *
first_set(sg_arena *a, const char *x, const char *y)
{
	return sg_arena_strdup(a, is_set(x) ? x : is_set(y) ? y : "");
}

sg_err
sg_fuuffy_track_parse(const sg_pconf *pc, const ProtobufCMessage *req, const sg_http_resp *resp,
                      sg_arena *a, ProtobufCMessage **reply, sg_status *st)
{
	const Shipgate__V1__TrackRequest *tr;
	Shipgate__V1__TrackResponse *r;
	Shipgate__V1__Tracking *t;
	sg_jctx c = {a, st};
	sg_jpath dp = {NULL, "data", 0}, lp = {&dp, "tracking_msg_list", 0};
	json_t *root = NULL, *data_own = NULL, *list_own = NULL, *data, *list;
	const char *order_id, *tn, *ostatus, *export_c, *dest_c, *shipping, *courier;
	size_t n;
	sg_err rv;

	*reply = NULL;
	if ((rv = sg_request_check(req, &shipgate__v1__track_request__descriptor, "fuuffy track", a,
	                           st)) != SG_OK)
		goto fail;
	tr = (const Shipgate__V1__TrackRequest *)req;
	if (!sg_http_is_success(resp->status)) {
		rv = sg_fuuffy_http_error(resp, a, st);
		goto fail;
	}
	if ((rv = sg_json_parse(&c, resp->body, resp->body_len, &root)) != SG_OK ||
	    (rv = sg_json_expect_obj(&c, root, NULL)) != SG_OK ||
	    (rv = jsonstr(&c, json_object_get(root, "data"), &dp, &data_own, &data)) != SG_OK ||
	    (rv = sg_json_expect_obj(&c, data, &dp)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "order_id", &order_id)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "tracking_number", &tn)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "order_status", &ostatus)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "export_country", &export_c)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "destination_country", &dest_c)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "shipping_provider", &shipping)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, data, &dp, "courier_name", &courier)) != SG_OK ||
	    (rv = jsonstr(&c, json_object_get(data, "tracking_msg_list"), &lp, &list_own, &list)) !=
	            SG_OK)
		goto fail;
	/* no list (missing or null) is no events; anything but an array is wrong */
	if (list != NULL && !json_is_null(list) && !json_is_array(list)) {
		rv = sg_json_wrong_type(&c, &lp, NULL, "array", list);
		goto fail;
	}

	if ((rv = sg_track_response_new(SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY, a, &r, &t, st)) !=
	    SG_OK)
		goto fail;
	/* the provider's own ids when it gives them, else the ones asked for */
	if ((t->order_id = first_set(a, order_id, tr->order_id)) == NULL ||
	    (t->tracking_number = first_set(a, tn, tr->tracking_number)) == NULL ||
	    (t->courier = first_set(a, courier, shipping)) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_pb_str(a, ostatus, &t->raw_status, st)) != SG_OK)
		goto fail;
	if (ostatus != NULL)
		t->status_text = (char *)ostatus; /* display text, often Chinese: verbatim */
	if (export_c != NULL)
		t->origin_country = (char *)export_c;
	if (dest_c != NULL)
		t->destination_country = (char *)dest_c;
	/* order_status speaks only when there is no event to take the status from */
	t->status = sg_fuuffy_order_status(ostatus);

	n = json_array_size(list); /* 0 for no list */
	if ((rv = sg_track_events_alloc(t, n, a, st)) != SG_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		sg_jpath ep = {&lp, NULL, i};
		/* read as listed (oldest first in the sandbox and in SF's route lists): entries
		 * with the same time keep this order after the sort */
		if ((rv = parse_event(&c, pc, json_array_get(list, i), &ep, t->events[i])) != SG_OK)
			goto fail;
	}
	if ((rv = sg_track_normalize(t, a, st)) != SG_OK)
		goto fail;
	json_decref(list_own);
	json_decref(data_own);
	json_decref(root);
	*reply = &r->base;
	return SG_OK;

fail:
	json_decref(list_own);
	json_decref(data_own);
	json_decref(root);
	return sg_parse_fail(SG_FUUFFY_NAME, resp, rv, st);
}

/* ================================================================== token: build */

/* A client credential from the config: set, non-empty, printable ASCII (space allowed: it goes
 * into a JSON body, not a header). A stray CR/LF from a secrets file is caught here. */
static sg_err
cred_check(const char *v, const char *what, sg_arena *a, sg_status *st)
{
	if (v == NULL || v[0] == '\0')
		return sg_status_set(st, a, SG_ENOCRED, "fuuffy: %s not configured", what);
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7F)
			return sg_status_set(st, a, SG_ENOCRED,
			                     "fuuffy: %s holds a control or non-ASCII byte", what);
	return SG_OK;
}

/* s (printable ASCII) as an application/x-www-form-urlencoded value: everything but
 * [A-Za-z0-9._~-] percent-encoded (so '&', '=', '+' and '%' cannot split the form). Arena
 * string, or NULL. */
static bool
form_safe(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '~' || c == '-';
}

static char *
form_value(sg_arena *a, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	char *q, *w;

	for (const char *p = s; *p != '\0'; p++)
		n += form_safe((unsigned char)*p) ? 1 : 3;
	if ((q = sg_arena_alloc(a, n + 1)) == NULL)
		return NULL;
	w = q;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (form_safe(c)) {
			*w++ = (char)c;
		} else {
			*w++ = '%';
			*w++ = hex[c >> 4];
			*w++ = hex[c & 0xF];
		}
	}
	*w = '\0';
	return q;
}

sg_err
sg_fuuffy_auth_build(const sg_pconf *pc, sg_arena *a, sg_http_req *out, sg_status *st)
{
	char *url, *id, *secret, *body;
	sg_http_req r;
	sg_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = sg_pconf_check(pc, a, st)) != SG_OK ||
	    (rv = cred_check(pc->client_id, "client_id", a, st)) != SG_OK ||
	    (rv = cred_check(pc->client_secret, "client_secret", a, st)) != SG_OK)
		goto fail;
	/* a form body, as Fuuffy's Authentication page sends it (docs/providers.md, "Fuuffy:
	 * token") */
	if ((url = sg_url_join(a, pc->base_url, "/v1/auth/token", NULL)) == NULL ||
	    (id = form_value(a, pc->client_id)) == NULL ||
	    (secret = form_value(a, pc->client_secret)) == NULL ||
	    (body = sg_arena_printf(a,
	                            "grant_type=client_credentials&client_id=%s&client_secret=%s",
	                            id, secret)) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	sg_http_req_init(&r, "POST", url);
	if ((rv = sg_http_req_header(&r, "Content-Type: application/x-www-form-urlencoded", a,
	                             st)) != SG_OK ||
	    (rv = sg_http_req_header(&r, "Accept: application/json", a, st)) != SG_OK)
		goto fail;
	r.body = body;
	r.body_len = strlen(body);
	*out = r;
	return SG_OK;

fail:
	st->provider = SG_FUUFFY_NAME;
	return rv;
}

/* ================================================================== token: parse */

#define TOKEN_MAX 4096 /* longest access token accepted into a header line */

sg_err
sg_fuuffy_auth_parse(const sg_pconf *pc, const sg_http_resp *resp, sg_arena *a, const char **token,
                     int64_t *expires_in_s, sg_status *st)
{
	sg_jctx c = {a, st};
	json_t *root = NULL;
	const char *tok, *type;
	int64_t ttl = SG_FUUFFY_DEFAULT_TOKEN_TTL_S;
	bool has_ttl;
	sg_err rv;

	(void)pc;
	*token = NULL;
	*expires_in_s = 0;
	if (!sg_http_is_success(resp->status)) {
		rv = sg_fuuffy_http_error(resp, a, st);
		goto fail;
	}
	/* Fuuffy wraps every successful answer in "data" (docs/providers.md, "Fuuffy: token");
	 * an answer with the members at the top level, as RFC 6749 has them, is read too */
	json_t *obj;
	const sg_jpath data_at = {NULL, "data", 0}, *at = NULL;
	if ((rv = sg_json_parse(&c, resp->body, resp->body_len, &root)) != SG_OK ||
	    (rv = sg_json_expect_obj(&c, root, NULL)) != SG_OK)
		goto fail;
	obj = root;
	if (json_object_get(root, "data") != NULL) {
		if ((rv = sg_json_req_obj(&c, root, NULL, "data", &obj)) != SG_OK)
			goto fail;
		at = &data_at;
	}
	if ((rv = sg_json_req_str(&c, obj, at, "access_token", &tok)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, obj, at, "token_type", &type)) != SG_OK ||
	    (rv = sg_json_opt_intstr(&c, obj, at, "expires_in", &ttl, &has_ttl)) != SG_OK)
		goto fail;
	/* the token goes into a header line: visible ASCII only; it is never quoted back */
	if (tok[0] == '\0' || strlen(tok) > TOKEN_MAX) {
		rv = sg_status_set(st, a, SG_EUP_MALFORMED,
		                   "access_token: empty or longer than %d bytes", TOKEN_MAX);
		goto fail;
	}
	for (const unsigned char *p = (const unsigned char *)tok; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7F) {
			rv = sg_status_set(st, a, SG_EUP_MALFORMED,
			                   "access_token: holds a byte that cannot go in a header");
			goto fail;
		}
	}
	if (type != NULL && sg_ascii_casecmp(type, "Bearer") != 0) {
		rv = sg_status_set(st, a, SG_EUP_MALFORMED, "token_type: expected \"Bearer\"");
		goto fail;
	}
	if (!has_ttl) {
		ttl = SG_FUUFFY_DEFAULT_TOKEN_TTL_S;
	} else if (ttl <= 0) {
		rv = sg_status_set(st, a, SG_EUP_MALFORMED, "expires_in: %lld is not a lifetime",
		                   (long long)ttl);
		goto fail;
	}
	json_decref(root);
	*token = tok;
	*expires_in_s = ttl;
	return SG_OK;

fail:
	json_decref(root);
	return sg_parse_fail(SG_FUUFFY_NAME, resp, rv, st); /* never SG_EINTERNAL here */
}
