/*
 * biteship.c - Biteship Retrieve Order (GET /v1/orders/{id}) to GetOrder and Track.
 *
 * The reply (docs/providers.md, "Biteship: reply shape"):
 *   {"success": true, "id", "short_id", "shipper": {..}, "origin": {..}, "destination": {..},
 *    "delivery": {..}, "voucher": {..}, "courier": {.., "history": [{"service_type", "status",
 *    "note", "updated_at"}, ..]}, "items": [..], "extra", "metadata", "tags", "tax_lines",
 *    "price", "status", ...}
 * Every member may be null or missing (docs/providers.md, "Biteship: nullable members"), and stays
 * absent in the reply (a NULL wrapper or message), never a zero. A member of the wrong type is
 * SG_EUP_MALFORMED naming its JSON path. Errors are {"success": false, "error", "code"}, with
 * any HTTP status including 200.
 */
#include "providers/biteship.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/common.h"

typedef Shipgate__V1__TrackingStatus tstatus;

#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* ================================================================== status mapping */

/*
 * Biteship's order statuses (docs/providers.md, "Biteship: order statuses"). Keys are normalised by
 * status_key(): lower case, with '_', '-' and blanks dropped, so snake_case, camelCase and display
 * forms all match. docs/providers.md gives the reasons.
 */
struct status_map {
	const char *key;        /* normalised status */
	tstatus status;         /* canonical status */
	const char *sub_status; /* Biteship's snake_case name */
};

static const struct status_map status_map[] = {
        {"confirmed", TS(INFO_RECEIVED), "confirmed"},           /* AWB generated */
        {"scheduled", TS(INFO_RECEIVED), "scheduled"},           /* AWB generated, later pickup */
        {"allocated", TS(PICKUP_IN_PROGRESS), "allocated"},      /* courier assigned */
        {"pickingup", TS(PICKUP_IN_PROGRESS), "picking_up"},     /* on the way to pick up */
        {"picked", TS(PICKED_UP), "picked"},                     /* first mile done */
        {"droppingoff", TS(OUT_FOR_DELIVERY), "dropping_off"},   /* last mile */
        {"delivered", TS(DELIVERED), "delivered"},               /* terminal */
        {"onhold", TS(ON_HOLD), "on_hold"},                      /* held, resumes when resolved */
        {"returnintransit", TS(RETURNING), "return_in_transit"}, /* going back to the sender */
        {"returned", TS(RETURNED), "returned"},                  /* terminal */
        {"cancelled", TS(CANCELLED), "cancelled"},               /* terminal */
        {"canceled", TS(CANCELLED), "cancelled"},                /* US spelling, same status */
        {"couriernotfound", TS(CANCELLED), "courier_not_found"}, /* Biteship cancels the order */
        {"rejected", TS(EXCEPTION), "rejected"},                 /* "contact Biteship" */
        {"disposed", TS(EXCEPTION), "disposed"},                 /* parcel destroyed */
        {"placed", TS(PENDING), "placed"}, /* inferred: in public client code, not documented */
};

#define STATUS_KEY_MAX 32 /* longer statuses match nothing */

/* Normalises raw into buf (see status_map). False when it cannot be a known status. */
static bool
status_key(const char *raw, char *buf)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++) {
		unsigned char c = *p;
		if (c == '_' || c == '-' || c == ' ' || c == '\t')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (c < 'a' || c > 'z')
			return false;
		if (n + 1 >= STATUS_KEY_MAX)
			return false;
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return n > 0;
}

tstatus
sg_biteship_status(const char *raw, const char **sub_status)
{
	char key[STATUS_KEY_MAX];

	*sub_status = "";
	if (raw == NULL || !status_key(raw, key))
		return TS(UNKNOWN);
	for (size_t i = 0; i < sizeof(status_map) / sizeof(status_map[0]); i++)
		if (strcmp(status_map[i].key, key) == 0) {
			*sub_status = status_map[i].sub_status;
			return status_map[i].status;
		}
	return TS(UNKNOWN); /* the raw status is kept beside it; never guessed */
}

/* ================================================================== build */

/* The order id of a GetOrderRequest (track false) or TrackRequest (track true). */
static sg_err
request_id(const ProtobufCMessage *req, bool track, sg_arena *a, sg_status *st, const char **id)
{
	sg_err rv;

	*id = NULL;
	if (track)
		rv = sg_request_check(req, &shipgate__v1__track_request__descriptor,
		                      "biteship track", a, st);
	else
		rv = sg_request_check(req, &shipgate__v1__get_order_request__descriptor,
		                      "biteship get_order", a, st);
	if (rv != SG_OK)
		return rv;
	*id = track ? ((const Shipgate__V1__TrackRequest *)req)->order_id
	            : ((const Shipgate__V1__GetOrderRequest *)req)->order_id;
	if (*id == NULL)
		*id = "";
	return SG_OK;
}

static sg_err
build(const sg_pconf *pc, const ProtobufCMessage *req, bool track, sg_arena *a, sg_http_req *out,
      sg_status *st)
{
	const char *id, *seg;
	sg_http_req r;
	sg_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = request_id(req, track, a, st, &id)) != SG_OK)
		goto fail;
	/* The caller's input is checked first: a hostile id never meets the config. Biteship ids
	 * are hex object ids ("5dd599ebdefcd4158eb8470b") or short ids ("URf_UO2nY3V"). */
	if ((rv = sg_path_segment(a, "order_id", id, strlen(id), SG_ID_STRICT, &seg, st)) != SG_OK)
		goto fail;
	if ((rv = sg_http_req_start(&r, pc, "GET", a, st)) != SG_OK)
		goto fail;
	if ((r.url = sg_url_join(a, pc->base_url, "/v1/orders/", seg, NULL)) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_http_req_header(&r, "Accept: application/json", a, st)) != SG_OK)
		goto fail;
	*out = r;
	return SG_OK;

fail:
	st->provider = SG_BITESHIP_NAME;
	return rv;
}

sg_err
sg_biteship_get_order_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                            sg_http_req *out, sg_status *st)
{
	return build(pc, req, false, a, out, st);
}

sg_err
sg_biteship_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                        sg_http_req *out, sg_status *st)
{
	return build(pc, req, true, a, out, st);
}

/* ================================================================== errors */

/*
 * The class of a 2xx "success": false by Biteship's code (the member itself, so that a full
 * arena cannot change the class): its first three digits are an HTTP status (40002001: 400,
 * 40101002: 401, 40301001: 403). An integer or a string of 8 digits; anything else is
 * SG_EUP_HTTP.
 */
static sg_err
code_class(json_t *code)
{
	long long v = -1;
	sg_err err;

	if (json_is_integer(code)) {
		v = json_integer_value(code);
	} else if (json_is_string(code) && json_string_length(code) == 8 &&
	           strspn(json_string_value(code), "0123456789") == 8) {
		v = strtoll(json_string_value(code), NULL, 10);
	}
	if (v < 10000000 || v > 99999999)
		return SG_EUP_HTTP;
	err = v / 100000 >= 400 && v / 100000 <= 599 ? sg_err_from_http((int)(v / 100000)) : SG_OK;
	return err != SG_OK ? err : SG_EUP_HTTP;
}

/*
 * An error answer: a non-2xx status (classed by the status, sg_http_error()), or a 2xx whose
 * root (parsed, borrowed) says "success": false (classed by the code). Biteship's text is its
 * "error" member, preferred over a "message" member, which sg_error_body() would take first.
 */
static sg_err
answer_error(const sg_http_resp *resp, json_t *root, sg_arena *a, sg_status *st)
{
	bool refused = sg_http_is_success(resp->status);
	json_t *own = root == NULL ? sg_error_parse(resp->body, resp->body_len) : NULL, *e;
	const char *text;
	sg_err err;

	if (root == NULL)
		root = own;
	sg_http_error_detail(SG_BITESHIP_NAME, resp, root, a, st);
	err = refused ? code_class(json_object_get(root, "code"))
	              : sg_http_error_class(resp->status);
	e = json_object_get(root, "error");
	if (json_is_string(e) &&
	    (text = sg_error_text(a, json_string_value(e), json_string_length(e))) != NULL)
		st->provider_message = text;
	json_decref(own);
	return sg_http_error_say(SG_BITESHIP_NAME, resp, err, refused ? " with success false" : "",
	                         "", a, st);
}

/* ================================================================== the document */

/* What the member readers share. */
struct bs_ctx {
	sg_jctx j;          /* arena and status */
	const sg_pconf *pc; /* the configured UTC offset, for zone-less times */
};

/* What a member of the document is read as. */
enum fkind {
	F_STR,    /* string | null -> StringValue */
	F_NUM,    /* number | null -> DoubleValue (a string is refused: "27.500" is 27500 IDR) */
	F_INT,    /* integer | null -> Int64Value */
	F_BOOL,   /* boolean | null -> BoolValue */
	F_POSTAL, /* integer | string | null -> StringValue with the integer's decimal text */
	F_JSON,   /* any JSON but null -> StringValue with the value as compact JSON text */
	F_MSG,    /* object | null -> a nested message, read with its own table */
	F_LIST,   /* array | null -> a repeated field: one entry per element that is not null */
	F_FN,     /* read by a function of its own */
};

/* A member read by a function of its own, which knows the type of msg. */
typedef sg_err (*field_fn)(struct bs_ctx *x, json_t *o, const sg_jpath *at, const char *key,
                           void *msg);

/* One element e (not null, at `at`) of an F_LIST member, read into *slot: its entry in the
 * repeated field, whose type the reader knows. */
typedef sg_err (*elem_fn)(struct bs_ctx *x, json_t *e, const sg_jpath *at, void *slot);

/* One member of a Biteship object and the message member it fills. Tables end with key NULL. */
struct field {
	const char *key;                     /* member name in Biteship's document */
	enum fkind kind;                     /* how it is read */
	size_t off;                          /* offset of the pointer member in the message */
	const ProtobufCMessageDescriptor *d; /* F_MSG: the nested message's type */
	const struct field *sub;             /* F_MSG: its members */
	field_fn fn;                         /* F_FN: the reader; it knows the message type */
	size_t n_off;                        /* F_LIST: offset of the repeated field's count */
	elem_fn elem;                        /* F_LIST: the element reader */
};

static sg_err fill(struct bs_ctx *x, json_t *o, const sg_jpath *at, void *msg,
                   const struct field *f);

static sg_err
get_postal(struct bs_ctx *x, json_t *o, const sg_jpath *at, const char *key,
           Google__Protobuf__StringValue **out)
{
	json_t *v = json_object_get(o, key);
	const char *s;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return SG_OK;
	if (json_is_integer(v))
		s = sg_arena_printf(x->j.a, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v))
		s = sg_arena_strndup(x->j.a, json_string_value(v), json_string_length(v));
	else
		return sg_json_wrong_type(&x->j, at, key, "integer or string", v);
	if (s == NULL)
		return sg_nomem(x->j.st);
	return sg_pb_str(x->j.a, s, out, x->j.st);
}

static sg_err
get_json(struct bs_ctx *x, json_t *o, const char *key, Google__Protobuf__StringValue **out)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	sg_err rv;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return SG_OK;
	if ((rv = sg_json_dump(x->j.a, v, JSON_COMPACT | JSON_ENCODE_ANY, &s, NULL, x->j.st)) !=
	    SG_OK)
		return rv;
	return sg_pb_str(x->j.a, s, out, x->j.st);
}

/* A nested object into a new message of type f->d; *out stays NULL when null or missing. */
static sg_err
get_msg(struct bs_ctx *x, json_t *o, const sg_jpath *at, const struct field *f, void *slot)
{
	sg_jpath here = {at, f->key, 0};
	json_t *j;
	void *m;
	sg_err rv;

	if ((rv = sg_json_opt_obj(&x->j, o, at, f->key, &j)) != SG_OK || j == NULL)
		return rv;
	if ((m = sg_arena_alloc(x->j.a, f->d->sizeof_message)) == NULL)
		return sg_nomem(x->j.st);
	protobuf_c_message_init(f->d, m);
	if ((rv = fill(x, j, &here, m, f->sub)) != SG_OK)
		return rv;
	memcpy(slot, &m, sizeof(m)); /* the member is a pointer to the message type */
	return SG_OK;
}

/* Elements of array arr that are not null: null elements are skipped ("all nullable"). */
static size_t
count_present(json_t *arr)
{
	size_t n = 0, i;
	json_t *e;

	json_array_foreach(arr, i, e)
	{
		if (!json_is_null(e))
			n++;
	}
	return n;
}

/* An array into the repeated field at f->off (counted at f->n_off): one entry per element that
 * is not null, read by f->elem; the field stays empty when there is none. */
static sg_err
get_list(struct bs_ctx *x, json_t *o, const sg_jpath *at, const struct field *f, void *msg)
{
	sg_jpath ap = {at, f->key, 0};
	size_t *count = (size_t *)((char *)msg + f->n_off);
	json_t *arr, *e;
	char *slots;
	size_t i, n;
	sg_err rv;

	if ((rv = sg_json_opt_arr(&x->j, o, at, f->key, &arr)) != SG_OK || arr == NULL ||
	    (n = count_present(arr)) == 0)
		return rv;
	/* entries are pointers (messages or strings); each reader stores its own type */
	if ((slots = sg_arena_calloc(x->j.a, n, sizeof(void *))) == NULL)
		return sg_nomem(x->j.st);
	memcpy((char *)msg + f->off, &slots, sizeof(slots)); /* the member points to the entries */
	json_array_foreach(arr, i, e)
	{
		sg_jpath ep = {&ap, NULL, i};
		if (json_is_null(e))
			continue;
		if ((rv = f->elem(x, e, &ep, slots + *count * sizeof(void *))) != SG_OK)
			return rv;
		(*count)++;
	}
	return SG_OK;
}

/* Fills the members of msg listed in f from object o (at location at). Stops at the first
 * error; members not reached stay absent (the reply is dropped then anyway). */
static sg_err
fill(struct bs_ctx *x, json_t *o, const sg_jpath *at, void *msg, const struct field *f)
{
	sg_jctx *c = &x->j;
	sg_err rv = SG_OK;

	for (; f->key != NULL && rv == SG_OK; f++) {
		void *slot = (char *)msg + f->off;
		const char *s;
		double d;
		int64_t i;
		bool b, present;

		switch (f->kind) {
		case F_STR:
			if ((rv = sg_json_opt_str(c, o, at, f->key, &s)) == SG_OK && s != NULL)
				rv = sg_pb_str(x->j.a, s, slot, x->j.st);
			break;
		case F_NUM:
			if ((rv = sg_json_opt_num(c, o, at, f->key, &d, &present)) == SG_OK &&
			    present)
				rv = sg_pb_double(c->a, d, slot, c->st);
			break;
		case F_INT:
			if ((rv = sg_json_opt_int(c, o, at, f->key, &i, &present)) == SG_OK &&
			    present)
				rv = sg_pb_int64(c->a, i, slot, c->st);
			break;
		case F_BOOL:
			if ((rv = sg_json_opt_bool(c, o, at, f->key, &b, &present)) == SG_OK &&
			    present)
				rv = sg_pb_bool(c->a, b, slot, c->st);
			break;
		case F_POSTAL: rv = get_postal(x, o, at, f->key, slot); break;
		case F_JSON: rv = get_json(x, o, f->key, slot); break;
		case F_MSG: rv = get_msg(x, o, at, f, slot); break;
		case F_LIST: rv = get_list(x, o, at, f, msg); break;
		case F_FN: rv = f->fn(x, o, at, f->key, msg); break;
		}
	}
	return rv;
}

#define FLD(T, key, kind, member)                                                                  \
	{                                                                                          \
		key, kind, offsetof(T, member), NULL, NULL, NULL, 0, NULL                          \
	}
#define MSG(T, key, member, d, f)                                                                  \
	{                                                                                          \
		key, F_MSG, offsetof(T, member), &d, f, NULL, 0, NULL                              \
	}
#define LIST(T, key, member, elem)                                                                 \
	{                                                                                          \
		key, F_LIST, offsetof(T, member), NULL, NULL, NULL, offsetof(T, n_##member), elem  \
	}
#define FN(key, fn)                                                                                \
	{                                                                                          \
		key, F_FN, 0, NULL, NULL, fn, 0, NULL                                              \
	}
#define END                                                                                        \
	{                                                                                          \
		NULL, F_STR, 0, NULL, NULL, NULL, 0, NULL                                          \
	}

typedef Shipgate__V1__Coordinate pb_coordinate;
typedef Shipgate__V1__Shipper pb_shipper;
typedef Shipgate__V1__Origin pb_origin;
typedef Shipgate__V1__ProofOfDelivery pb_pod;
typedef Shipgate__V1__CashOnDelivery pb_cod;
typedef Shipgate__V1__Destination pb_destination;
typedef Shipgate__V1__Delivery pb_delivery;
typedef Shipgate__V1__Voucher pb_voucher;
typedef Shipgate__V1__Insurance pb_insurance;
typedef Shipgate__V1__Courier pb_courier;
typedef Shipgate__V1__Item pb_item;
typedef Shipgate__V1__Order pb_order;

/* ------------------------------------------------------------------ readers of their own */

/* One courier.history entry (at `at`) into ev. */
static sg_err
parse_event(struct bs_ctx *x, json_t *h, const sg_jpath *at, Shipgate__V1__TrackingEvent *ev)
{
	sg_jctx *c = &x->j;
	const char *service, *code, *note, *when, *sub;
	sg_err rv;

	if ((rv = sg_json_expect_obj(c, h, at)) != SG_OK ||
	    (rv = sg_json_opt_str(c, h, at, "service_type", &service)) != SG_OK ||
	    (rv = sg_json_opt_str(c, h, at, "status", &code)) != SG_OK ||
	    (rv = sg_json_opt_str(c, h, at, "note", &note)) != SG_OK ||
	    (rv = sg_json_opt_str(c, h, at, "updated_at", &when)) != SG_OK)
		return rv;

	ev->status = sg_biteship_status(code, &sub);
	ev->sub_status = (char *)sub; /* static */
	if (code != NULL && (rv = sg_pb_str(x->j.a, code, &ev->raw_code, x->j.st)) != SG_OK)
		return rv;
	if (note != NULL)
		ev->raw_text = (char *)note;
	if (service != NULL)
		ev->service_type = (char *)service;
	if (when != NULL) {
		/* kept as written; an unreadable time is time_unix 0 (sorted first), not an error
		 * for the whole order */
		ev->time_text = (char *)when;
		(void)sg_time_iso(x->pc, SG_BITESHIP_DEFAULT_OFFSET_S, when, strlen(when),
		                  &ev->time_unix, &ev->utc_offset_seconds, &ev->offset_source);
	}
	return SG_OK;
}

/* courier.history -> Courier.history: oldest first, exact duplicates removed. */
static sg_err
courier_history(struct bs_ctx *x, json_t *o, const sg_jpath *at, const char *key, void *msg)
{
	Shipgate__V1__Courier *m = msg;
	Shipgate__V1__Tracking t = SHIPGATE__V1__TRACKING__INIT;
	sg_jpath hp = {at, key, 0};
	json_t *arr, *h;
	size_t i, k = 0;
	sg_err rv;

	if ((rv = sg_json_opt_arr(&x->j, o, at, key, &arr)) != SG_OK || arr == NULL)
		return rv;
	if ((rv = sg_track_events_alloc(&t, count_present(arr), x->j.a, x->j.st)) != SG_OK)
		return rv;
	json_array_foreach(arr, i, h)
	{
		sg_jpath ep = {&hp, NULL, i};
		if (json_is_null(h))
			continue;
		/* Biteship lists oldest first: positions are chronological as they stand */
		if ((rv = parse_event(x, h, &ep, t.events[k++])) != SG_OK)
			return rv;
	}
	if ((rv = sg_track_normalize(&t, x->j.a, x->j.st)) != SG_OK)
		return rv;
	m->history = t.events;
	m->n_history = t.n_events;
	return SG_OK;
}

/* delivery.datetime -> Delivery.datetime (verbatim) and datetime_unix (when it reads). */
static sg_err
delivery_datetime(struct bs_ctx *x, json_t *o, const sg_jpath *at, const char *key, void *msg)
{
	Shipgate__V1__Delivery *m = msg;
	Shipgate__V1__OffsetSource src;
	const char *s;
	int64_t utc;
	int32_t off;
	sg_err rv;

	if ((rv = sg_json_opt_str(&x->j, o, at, key, &s)) != SG_OK || s == NULL)
		return rv;
	if ((rv = sg_pb_str(x->j.a, s, &m->datetime, x->j.st)) != SG_OK)
		return rv;
	if (sg_time_iso(x->pc, SG_BITESHIP_DEFAULT_OFFSET_S, s, strlen(s), &utc, &off, &src))
		return sg_pb_int64(x->j.a, utc, &m->datetime_unix, x->j.st);
	return SG_OK;
}

static const struct field item_f[] = {
        FLD(pb_item, "name", F_STR, name),         FLD(pb_item, "description", F_STR, description),
        FLD(pb_item, "sku", F_STR, sku),           FLD(pb_item, "value", F_NUM, value),
        FLD(pb_item, "quantity", F_INT, quantity), FLD(pb_item, "length", F_NUM, length),
        FLD(pb_item, "width", F_NUM, width),       FLD(pb_item, "height", F_NUM, height),
        FLD(pb_item, "weight", F_NUM, weight),     END,
};

/* An items[] element -> a new Item: an object. */
static sg_err
read_item(struct bs_ctx *x, json_t *e, const sg_jpath *at, void *slot)
{
	Shipgate__V1__Item *it;
	sg_err rv;

	if ((rv = sg_json_expect_obj(&x->j, e, at)) != SG_OK)
		return rv;
	if ((it = sg_arena_alloc(x->j.a, sizeof(*it))) == NULL)
		return sg_nomem(x->j.st);
	shipgate__v1__item__init(it);
	if ((rv = fill(x, e, at, it, item_f)) != SG_OK)
		return rv;
	*(Shipgate__V1__Item **)slot = it;
	return SG_OK;
}

/* A tags[] element -> a string. */
static sg_err
read_tag(struct bs_ctx *x, json_t *e, const sg_jpath *at, void *slot)
{
	char *s;

	if (!json_is_string(e))
		return sg_json_wrong_type(&x->j, at, NULL, "string", e);
	if ((s = sg_arena_strndup(x->j.a, json_string_value(e), json_string_length(e))) == NULL)
		return sg_nomem(x->j.st);
	*(char **)slot = s;
	return SG_OK;
}

/* A tax_lines[] element -> its JSON text (any JSON). */
static sg_err
read_json_text(struct bs_ctx *x, json_t *e, const sg_jpath *at, void *slot)
{
	const char *s;
	sg_err rv;

	if ((rv = sg_json_dump(x->j.a, e, JSON_COMPACT | JSON_ENCODE_ANY, &s, NULL, x->j.st)) !=
	    SG_OK)
		return rv;
	*(char **)slot = (char *)s;
	return SG_OK;
}

/* status -> Order.raw_status (verbatim) and Order.status (canonical). */
static sg_err
order_status(struct bs_ctx *x, json_t *o, const sg_jpath *at, const char *key, void *msg)
{
	Shipgate__V1__Order *m = msg;
	const char *s, *sub;
	sg_err rv;

	if ((rv = sg_json_opt_str(&x->j, o, at, key, &s)) != SG_OK || s == NULL)
		return rv;
	m->status = sg_biteship_status(s, &sub);
	return sg_pb_str(x->j.a, s, &m->raw_status, x->j.st);
}

/* ------------------------------------------------------------------ the tables */

static const struct field coordinate_f[] = {
        FLD(pb_coordinate, "latitude", F_NUM, latitude),
        FLD(pb_coordinate, "longitude", F_NUM, longitude),
        END,
};

static const struct field shipper_f[] = {
        FLD(pb_shipper, "name", F_STR, name),
        FLD(pb_shipper, "email", F_STR, email),
        FLD(pb_shipper, "phone", F_STR, phone),
        FLD(pb_shipper, "organization", F_STR, organization),
        END,
};

static const struct field origin_f[] = {
        FLD(pb_origin, "contact_name", F_STR, contact_name),
        FLD(pb_origin, "contact_phone", F_STR, contact_phone),
        FLD(pb_origin, "address", F_STR, address),
        FLD(pb_origin, "note", F_STR, note),
        FLD(pb_origin, "postal_code", F_POSTAL, postal_code),
        MSG(pb_origin, "coordinate", coordinate, shipgate__v1__coordinate__descriptor,
            coordinate_f),
        END,
};

static const struct field pod_f[] = {
        FLD(pb_pod, "use", F_BOOL, use),
        FLD(pb_pod, "fee", F_NUM, fee),
        FLD(pb_pod, "note", F_STR, note),
        FLD(pb_pod, "link", F_STR, link),
        END,
};

static const struct field cod_f[] = {
        FLD(pb_cod, "id", F_STR, id),
        FLD(pb_cod, "amount", F_NUM, amount),
        FLD(pb_cod, "amount_currency", F_STR, amount_currency),
        FLD(pb_cod, "fee", F_NUM, fee),
        FLD(pb_cod, "fee_currency", F_STR, fee_currency),
        FLD(pb_cod, "note", F_STR, note),
        FLD(pb_cod, "type", F_STR, type),
        END,
};

static const struct field destination_f[] = {
        FLD(pb_destination, "contact_name", F_STR, contact_name),
        FLD(pb_destination, "contact_phone", F_STR, contact_phone),
        FLD(pb_destination, "contact_email", F_STR, contact_email),
        FLD(pb_destination, "address", F_STR, address),
        FLD(pb_destination, "note", F_STR, note),
        MSG(pb_destination, "proof_of_delivery", proof_of_delivery,
            shipgate__v1__proof_of_delivery__descriptor, pod_f),
        FLD(pb_destination, "postal_code", F_POSTAL, postal_code),
        MSG(pb_destination, "coordinate", coordinate, shipgate__v1__coordinate__descriptor,
            coordinate_f),
        MSG(pb_destination, "cash_on_delivery", cash_on_delivery,
            shipgate__v1__cash_on_delivery__descriptor, cod_f),
        END,
};

static const struct field delivery_f[] = {
        FN("datetime", delivery_datetime),
        FLD(pb_delivery, "note", F_STR, note),
        FLD(pb_delivery, "type", F_STR, type),
        FLD(pb_delivery, "distance", F_NUM, distance),
        FLD(pb_delivery, "distance_unit", F_STR, distance_unit),
        END,
};

static const struct field voucher_f[] = {
        FLD(pb_voucher, "id", F_STR, id),
        FLD(pb_voucher, "name", F_STR, name),
        FLD(pb_voucher, "value", F_NUM, value),
        FLD(pb_voucher, "type", F_STR, type),
        END,
};

static const struct field insurance_f[] = {
        FLD(pb_insurance, "amount", F_NUM, amount),
        FLD(pb_insurance, "amount_currency", F_STR, amount_currency),
        FLD(pb_insurance, "fee", F_NUM, fee),
        FLD(pb_insurance, "fee_currency", F_STR, fee_currency),
        FLD(pb_insurance, "note", F_STR, note),
        END,
};

static const struct field courier_f[] = {
        FLD(pb_courier, "tracking_id", F_STR, tracking_id),
        FLD(pb_courier, "waybill_id", F_STR, waybill_id),
        FLD(pb_courier, "company", F_STR, company),
        FN("history", courier_history),
        FLD(pb_courier, "link", F_STR, link),
        FLD(pb_courier, "name", F_STR, name),   /* deprecated by Biteship */
        FLD(pb_courier, "phone", F_STR, phone), /* deprecated by Biteship */
        FLD(pb_courier, "driver_name", F_STR, driver_name),
        FLD(pb_courier, "driver_phone", F_STR, driver_phone),
        FLD(pb_courier, "driver_photo_url", F_STR, driver_photo_url),
        FLD(pb_courier, "driver_plate_number", F_STR, driver_plate_number),
        FLD(pb_courier, "type", F_STR, type),
        FLD(pb_courier, "shipment_fee", F_NUM, shipment_fee),
        MSG(pb_courier, "insurance", insurance, shipgate__v1__insurance__descriptor, insurance_f),
        END,
};

/* The order's members after `id` (read first: it has a fallback), in the document's order. */
static const struct field order_f[] = {
        FLD(pb_order, "draft_order_id", F_STR, draft_order_id),
        FLD(pb_order, "short_id", F_STR, short_id),
        MSG(pb_order, "shipper", shipper, shipgate__v1__shipper__descriptor, shipper_f),
        MSG(pb_order, "origin", origin, shipgate__v1__origin__descriptor, origin_f),
        MSG(pb_order, "destination", destination, shipgate__v1__destination__descriptor,
            destination_f),
        MSG(pb_order, "delivery", delivery, shipgate__v1__delivery__descriptor, delivery_f),
        MSG(pb_order, "voucher", voucher, shipgate__v1__voucher__descriptor, voucher_f),
        MSG(pb_order, "courier", courier, shipgate__v1__courier__descriptor, courier_f),
        FLD(pb_order, "reference_id", F_STR, reference_id),
        FLD(pb_order, "invoice_id", F_STR, invoice_id),
        LIST(pb_order, "items", items, read_item),
        FLD(pb_order, "extra", F_JSON, extra_json),
        FLD(pb_order, "metadata", F_JSON, metadata_json),
        LIST(pb_order, "tags", tags, read_tag),
        FLD(pb_order, "note", F_STR, note),
        FLD(pb_order, "currency", F_STR, currency),
        LIST(pb_order, "tax_lines", tax_lines_json, read_json_text),
        FLD(pb_order, "price", F_NUM, price),
        FN("status", order_status),
        FLD(pb_order, "ticket_status", F_STR, ticket_status),
        END,
};

/* ================================================================== parse */

/* The whole document (root, an object) into a new Order. */
static sg_err
parse_order(struct bs_ctx *x, json_t *root, const char *req_id, Shipgate__V1__Order **out)
{
	Shipgate__V1__Order *o;
	const char *id;
	sg_err rv;

	*out = NULL;
	if ((o = sg_arena_alloc(x->j.a, sizeof(*o))) == NULL)
		return sg_nomem(x->j.st);
	shipgate__v1__order__init(o);
	o->provider = SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP;
	if ((rv = sg_json_opt_str(&x->j, root, NULL, "id", &id)) != SG_OK)
		return rv;
	/* a null id: the order is still the one asked for */
	if (id == NULL && (id = sg_arena_strdup(x->j.a, req_id)) == NULL)
		return sg_nomem(x->j.st);
	o->id = (char *)id;
	if ((rv = fill(x, root, NULL, o, order_f)) != SG_OK)
		return rv;
	*out = o;
	return SG_OK;
}

/* Any answer to the order: the Order, or the error it carries. */
static sg_err
parse_answer(const sg_pconf *pc, const char *req_id, const sg_http_resp *resp, sg_arena *a,
             sg_status *st, Shipgate__V1__Order **out)
{
	struct bs_ctx x = {{a, st}, pc};
	json_t *root = NULL;
	bool ok = true, present;
	sg_err rv;

	*out = NULL;
	if (!sg_http_is_success(resp->status))
		return answer_error(resp, NULL, a, st);
	if ((rv = sg_json_parse(&x.j, resp->body, resp->body_len, &root)) == SG_OK &&
	    (rv = sg_json_expect_obj(&x.j, root, NULL)) == SG_OK &&
	    (rv = sg_json_opt_bool(&x.j, root, NULL, "success", &ok, &present)) == SG_OK)
		/* a missing or null "success" is not a refusal: every member is nullable */
		rv = ok ? parse_order(&x, root, req_id, out) : answer_error(resp, root, a, st);
	json_decref(root);
	return rv;
}

sg_err
sg_biteship_get_order_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                            const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                            sg_status *st)
{
	Shipgate__V1__GetOrderResponse *r;
	Shipgate__V1__Order *o;
	const char *id;
	sg_err rv;

	*reply = NULL;
	if ((rv = request_id(req, false, a, st, &id)) != SG_OK ||
	    (rv = parse_answer(pc, id, resp, a, st, &o)) != SG_OK)
		goto fail;
	if ((r = sg_arena_alloc(a, sizeof(*r))) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	shipgate__v1__get_order_response__init(r);
	r->order = o;
	*reply = &r->base;
	return SG_OK;

fail:
	return sg_parse_fail(SG_BITESHIP_NAME, resp, rv, st);
}

sg_err
sg_biteship_track_parse(const sg_pconf *pc, const ProtobufCMessage *req, const sg_http_resp *resp,
                        sg_arena *a, ProtobufCMessage **reply, sg_status *st)
{
	Shipgate__V1__TrackResponse *r;
	Shipgate__V1__Tracking *t;
	Shipgate__V1__Order *o;
	const Shipgate__V1__Courier *cr;
	const char *id;
	sg_err rv;

	*reply = NULL;
	if ((rv = request_id(req, true, a, st, &id)) != SG_OK ||
	    (rv = parse_answer(pc, id, resp, a, st, &o)) != SG_OK)
		goto fail;
	if ((rv = sg_track_response_new(SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP, a, &r, &t,
	                                st)) != SG_OK)
		goto fail;
	cr = o->courier;
	t->order_id = o->id;
	if (cr != NULL && cr->waybill_id != NULL)
		t->tracking_number = cr->waybill_id->value;
	if (cr != NULL && cr->company != NULL)
		t->courier = cr->company->value;
	t->raw_status = o->raw_status;
	/* The order's status speaks only when there is no event to take the status from. */
	t->status = o->status;
	if (cr != NULL) { /* already oldest first without duplicates; shared with the Order */
		t->events = cr->history;
		t->n_events = cr->n_history;
	}
	sg_track_settle(t);  /* the events were normalised with the Order */
	if (t->n_events > 0) /* Biteship's words for the newest event, which gave the status */
		t->status_text = t->events[t->n_events - 1]->raw_text;
	*reply = &r->base;
	return SG_OK;

fail:
	return sg_parse_fail(SG_BITESHIP_NAME, resp, rv, st);
}
