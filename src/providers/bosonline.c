/*
 * bosonline.c - bosOnline (BosCOD's online-store API): store tracking to Track, and checkout's
 * "Request Create Order" to CreateOrder.
 *
 * Tracking (docs/providers.md, "bosOnline: tracking reply shape"):
 *   GET /store/order/tracking?awb=<awb>
 *   {"data": [{"note", "description", "branch", "tm", "tm_order", "tm_recon", "reconciled",
 *              "time", "date"}, ...]}
 * newest first; `tm` and friends are epoch seconds in strings, `date`/`time` WIB display text
 * without a year. There is no status code: the status is read from the Indonesian `note`, and
 * one note ("Paket telah diterima") means "delivered" only when it is the newest.
 *
 * Create order (docs/providers.md, "bosOnline: create order request"):
 *   POST /order/{form_id} with the document's JSON body; the 200 reply holds payment
 *   instructions and, by the document's description, the AWB ("resi").
 */
#include "providers/bosonline.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "providers/common.h"

typedef Shipgate__V1__TrackingStatus tstatus;
typedef Shipgate__V1__CreateOrderRequest corder;

#define CORDER_REQ (&shipgate__v1__create_order_request__descriptor) /* corder's type */

#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* ================================================================== status mapping */

/* Where a rule's phrase must sit in the note. Notes are compared ignoring ASCII case, with any
 * run of blanks (space, tab, CR, LF) read as one space and leading blanks skipped. */
enum note_how {
	WHOLE, /* the whole note; trailing blanks and one final '.' are ignored */
	HEAD,  /* the start of the note, then its end or a blank: "<phrase> <place>" */
	WORD,  /* anywhere, starting at the start of a word ("retur" finds "Paket retur ...") */
};

/* One message the couriers behind bosOnline write. */
struct note_rule {
	enum note_how how;      /* where the phrase must be */
	const char *phrase;     /* lower-case ASCII, words separated by one space */
	tstatus status;         /* canonical status */
	const char *sub_status; /* stable snake_case name */
};

/* The bare "Paket telah diterima": DELIVERED as the newest event, else "received" in transit
 * (the meaning depends on where it sits: docs/providers.md, "bosOnline: tracking notes").
 * Handled before the table. */
static const struct note_rule received_rule = {WHOLE, "paket telah diterima", TS(DELIVERED),
                                               "delivered"};

/* First match wins, so whole notes come before the heads they start with, and heads (whose
 * tail is a place name that may hold any word) before the keywords. */
static const struct note_rule note_rules[] = {
        /* the documented example (docs/providers.md, "bosOnline: tracking notes") */
        {WHOLE, "paket akan dikirim ke alamat penerima", TS(OUT_FOR_DELIVERY), "out_for_delivery"},
        /* inferred: the same step in other wordings, and the return leg ("to the sender") */
        {WHOLE, "paket akan dikirimkan ke alamat penerima", TS(OUT_FOR_DELIVERY),
         "out_for_delivery"},
        {WHOLE, "paket akan dikirimkan ke pengirim", TS(RETURNING), "returning_to_sender"},
        {WHOLE, "paket akan dikirim ke pengirim", TS(RETURNING), "returning_to_sender"},
        {WHOLE, "paket telah diterima oleh pengirim", TS(RETURNED), "returned_to_sender"},
        /* the documented example: "<phrase> <branch or hub>" */
        {HEAD, "paket telah diterima oleh", TS(PICKED_UP), "received_at_origin"},
        {HEAD, "paket akan dikirimkan ke", TS(IN_TRANSIT), "departed"},
        {HEAD, "paket telah sampai di", TS(IN_TRANSIT), "arrived"},
        /* inferred: close variants of the same scans */
        {HEAD, "paket akan dikirim ke", TS(IN_TRANSIT), "departed"},
        {HEAD, "paket telah tiba di", TS(IN_TRANSIT), "arrived"},
        {HEAD, "paket sedang dalam perjalanan", TS(IN_TRANSIT), "in_transit"},
        {HEAD, "paket sedang diantar", TS(OUT_FOR_DELIVERY), "out_for_delivery"},
        /* inferred: Indonesian courier vocabulary for the exceptional steps, matched as words
         * anywhere (order matters: a return beats the failed attempt that caused it) */
        {WORD, "telah dikembalikan", TS(RETURNED), "returned_to_sender"},
        {WORD, "retur telah diterima", TS(RETURNED), "returned_to_sender"},
        {WORD, "gagal dijemput", TS(EXCEPTION), "pickup_failed"},
        {WORD, "gagal pickup", TS(EXCEPTION), "pickup_failed"},
        {WORD, "retur", TS(RETURNING), "returning"}, /* also "return", "returned" */
        {WORD, "diretur", TS(RETURNING), "returning"},
        {WORD, "dikembalikan", TS(RETURNING), "returning"},
        {WORD, "gagal", TS(DELIVERY_FAILED), "delivery_failed"},
        {WORD, "tidak berhasil", TS(DELIVERY_FAILED), "delivery_failed"},
        {WORD, "failed", TS(DELIVERY_FAILED), "delivery_failed"},
        {WORD, "dibatalkan", TS(CANCELLED), "cancelled"},
        {WORD, "batal", TS(CANCELLED), "cancelled"},
        {WORD, "cancel", TS(CANCELLED), "cancelled"}, /* also "cancelled", "canceled" */
        {WORD, "ditahan", TS(ON_HOLD), "on_hold"},
        {WORD, "tertahan", TS(ON_HOLD), "on_hold"},
        {WORD, "on hold", TS(ON_HOLD), "on_hold"},
        {WORD, "hilang", TS(EXCEPTION), "lost"},
        {WORD, "rusak", TS(EXCEPTION), "damaged"},
};

/* Word rules look for their phrase starting in the first NOTE_SCAN_MAX bytes of a note. */
#define NOTE_SCAN_MAX 1024

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Part of a word: ASCII letters and digits, and any non-ASCII byte. */
static bool
is_word(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
	       u >= 0x80;
}

static const char *
skip_blanks(const char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

/* Matches phrase at s (ASCII case ignored, a space in phrase matches a run of blanks). Returns
 * what follows the phrase in s, or NULL when it does not match. Stops at s's NUL. */
static const char *
phrase_at(const char *s, const char *phrase)
{
	for (const char *p = phrase; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*s;
		if (*p == ' ') {
			if (!is_blank(*s))
				return NULL;
			s = skip_blanks(s);
			continue;
		}
		if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != (unsigned char)*p)
			return NULL; /* also at the end of s: *p is never NUL here */
		s++;
	}
	return s;
}

static bool
rule_matches(const struct note_rule *r, const char *note)
{
	const char *head = skip_blanks(note), *rest;

	switch (r->how) {
	case WHOLE:
		if ((rest = phrase_at(head, r->phrase)) == NULL)
			return false;
		rest = skip_blanks(rest);
		if (*rest == '.')
			rest = skip_blanks(rest + 1);
		return *rest == '\0';
	case HEAD:
		rest = phrase_at(head, r->phrase);
		return rest != NULL && (*rest == '\0' || is_blank(*rest));
	default:
		/* bounded: a courier note is a line, and a hostile one must not cost
		 * rules x its length */
		for (const char *s = head; *s != '\0' && s - head < NOTE_SCAN_MAX; s++)
			if ((s == head || !is_word(s[-1])) && phrase_at(s, r->phrase) != NULL)
				return true;
		return false;
	}
}

tstatus
sg_bosonline_event_status(const char *note, bool newest, const char **sub_status)
{
	if (note != NULL && rule_matches(&received_rule, note)) {
		*sub_status = newest ? "delivered" : "received";
		return newest ? TS(DELIVERED) : TS(IN_TRANSIT);
	}
	for (size_t i = 0; note != NULL && i < sizeof(note_rules) / sizeof(note_rules[0]); i++) {
		if (rule_matches(&note_rules[i], note)) {
			*sub_status = note_rules[i].sub_status;
			return note_rules[i].status;
		}
	}
	*sub_status = ""; /* the note is kept as raw_text; never guessed */
	return TS(UNKNOWN);
}

/* ================================================================== track: build */

sg_err
sg_bosonline_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                         sg_http_req *out, sg_status *st)
{
	const Shipgate__V1__TrackRequest *tr;
	const char *awb, *checked, *qv;
	char *url;
	sg_http_req r;
	sg_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = sg_request_check(req, &shipgate__v1__track_request__descriptor, "bosonline track",
	                           a, st)) != SG_OK)
		goto fail;
	tr = (const Shipgate__V1__TrackRequest *)req;
	/* The caller's input is checked first: a hostile AWB never meets the config. */
	awb = tr->tracking_number != NULL ? tr->tracking_number : "";
	if (awb[0] == '\0') {
		rv = sg_status_invalid(st, a, "tracking_number",
		                       "is required (bosOnline tracks by AWB)");
		goto fail;
	}
	/* As strict as a BosCOD order number ([A-Za-z0-9_-], 1-128 bytes), then encoded as a query
	 * value: a no-op for what the check lets through, but the query stays safe by itself. */
	if ((rv = sg_path_segment(a, "tracking_number", awb, strlen(awb), SG_ID_STRICT, &checked,
	                          st)) != SG_OK ||
	    (rv = sg_query_value(a, "tracking_number", checked, strlen(checked), SG_ID_MAX, &qv,
	                         st)) != SG_OK)
		goto fail;
	if ((rv = sg_http_req_start(&r, pc, "GET", a, st)) != SG_OK)
		goto fail;
	if ((url = sg_url_join(a, pc->base_url, "/store/order/tracking", NULL)) == NULL ||
	    (r.url = sg_url_add_query(a, url, "awb", qv)) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_http_req_header(&r, "Accept: application/json", a, st)) != SG_OK)
		goto fail;
	*out = r;
	return SG_OK;

fail:
	st->provider = SG_BOSONLINE_NAME;
	return rv;
}

/* ================================================================== track: parse */

/* The COD reconciliation members of one data[] entry (they repeat on every entry). */
struct cod_in {
	int64_t order_time;  /* tm_order, epoch seconds */
	int64_t recon_time;  /* tm_recon, epoch seconds */
	bool reconciled;     /* reconciled "1" */
	bool has_order;      /* tm_order was present (not null) */
	bool has_recon;      /* tm_recon was present */
	bool has_reconciled; /* reconciled was present */
};

/* Epoch seconds as the document sends them (a decimal string; an integer is taken too).
 * Absent on null/missing; negative values are refused. */
static sg_err
opt_epoch(sg_jctx *c, json_t *e, const sg_jpath *at, const char *key, int64_t *out, bool *present)
{
	sg_err rv;

	if ((rv = sg_json_opt_intstr(c, e, at, key, out, present)) != SG_OK)
		return rv;
	if (*present && *out < 0)
		return sg_json_bad(c, at, key, "negative epoch seconds");
	return SG_OK;
}

/* As opt_epoch, but required. */
static sg_err
req_epoch(sg_jctx *c, json_t *e, const sg_jpath *at, const char *key, int64_t *out)
{
	bool present;
	sg_err rv;

	if ((rv = opt_epoch(c, e, at, key, out, &present)) != SG_OK)
		return rv;
	if (!present)
		return sg_json_bad(c, at, key,
		                   json_object_get(e, key) == NULL
		                           ? "missing"
		                           : "expected integer or decimal string, got null");
	return SG_OK;
}

/* A "0"/"1" flag (the document's form); 0/1 and true/false are taken too. Absent on
 * null/missing. */
static sg_err
opt_flag(sg_jctx *c, json_t *e, const sg_jpath *at, const char *key, bool *out, bool *present)
{
	json_t *v = json_object_get(e, key);
	const char *s = json_string_value(v);

	*present = false;
	if (v == NULL || json_is_null(v))
		return SG_OK;
	if (json_is_boolean(v))
		*out = json_is_true(v);
	else if (s != NULL && json_string_length(v) == 1 && (s[0] == '0' || s[0] == '1'))
		*out = s[0] == '1';
	else if (json_is_integer(v) && (json_integer_value(v) & ~(json_int_t)1) == 0)
		*out = json_integer_value(v) == 1;
	else
		return sg_json_bad(c, at, key, "expected \"0\" or \"1\"");
	*present = true;
	return SG_OK;
}

/* One data[] entry (at `at`) into ev, and its COD members into cod. */
static sg_err
parse_event(sg_jctx *c, json_t *e, const sg_jpath *at, Shipgate__V1__TrackingEvent *ev,
            struct cod_in *cod)
{
	const char *note, *desc, *branch, *date, *time, *sub;
	int64_t tm;
	sg_err rv;

	if ((rv = sg_json_expect_obj(c, e, at)) != SG_OK ||
	    (rv = sg_json_req_str(c, e, at, "note", &note)) != SG_OK ||
	    (rv = sg_json_opt_str(c, e, at, "description", &desc)) != SG_OK ||
	    (rv = sg_json_opt_str(c, e, at, "branch", &branch)) != SG_OK ||
	    (rv = req_epoch(c, e, at, "tm", &tm)) != SG_OK ||
	    (rv = opt_epoch(c, e, at, "tm_order", &cod->order_time, &cod->has_order)) != SG_OK ||
	    (rv = opt_epoch(c, e, at, "tm_recon", &cod->recon_time, &cod->has_recon)) != SG_OK ||
	    (rv = opt_flag(c, e, at, "reconciled", &cod->reconciled, &cod->has_reconciled)) !=
	            SG_OK ||
	    (rv = sg_json_opt_str(c, e, at, "date", &date)) != SG_OK ||
	    (rv = sg_json_opt_str(c, e, at, "time", &time)) != SG_OK)
		return rv;

	/* not known to be the newest yet: the parse fixes the newest one up after sorting */
	ev->status = sg_bosonline_event_status(note, false, &sub);
	ev->sub_status = (char *)sub; /* static; the arena allocator never frees */
	ev->raw_text = (char *)note;
	if (desc != NULL)
		ev->description = (char *)desc;
	if (branch != NULL)
		ev->location = (char *)branch;
	ev->time_unix = tm; /* `tm` is absolute: date/time are never parsed */
	ev->utc_offset_seconds = 0;
	ev->offset_source = SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_EPOCH;
	/* the display text as written ("02 Jun 08:57", WIB, no year) */
	if (date != NULL && time != NULL)
		ev->time_text = sg_arena_printf(c->a, "%s %s", date, time);
	else if (date != NULL || time != NULL)
		ev->time_text = (char *)(date != NULL ? date : time);
	if (ev->time_text == NULL)
		return sg_nomem(c->st);
	return SG_OK;
}

/* Tracking.cod from the newest entry's members; left absent when it had none of them. */
static sg_err
track_cod(const struct cod_in *in, Shipgate__V1__Tracking *t, sg_arena *a, sg_status *st)
{
	Shipgate__V1__CodReconciliation *cod;
	sg_err rv;

	if (!in->has_order && !in->has_recon && !in->has_reconciled)
		return SG_OK;
	if ((cod = sg_arena_alloc(a, sizeof(*cod))) == NULL)
		return sg_nomem(st);
	shipgate__v1__cod_reconciliation__init(cod);
	if ((in->has_order &&
	     (rv = sg_pb_int64(a, in->order_time, &cod->order_time_unix, st)) != SG_OK) ||
	    (in->has_recon &&
	     (rv = sg_pb_int64(a, in->recon_time, &cod->reconciled_time_unix, st)) != SG_OK) ||
	    (in->has_reconciled &&
	     (rv = sg_pb_bool(a, in->reconciled, &cod->reconciled, st)) != SG_OK))
		return rv;
	t->cod = cod;
	return SG_OK;
}

sg_err
sg_bosonline_track_parse(const sg_pconf *pc, const ProtobufCMessage *req, const sg_http_resp *resp,
                         sg_arena *a, ProtobufCMessage **reply, sg_status *st)
{
	const Shipgate__V1__TrackRequest *tr;
	Shipgate__V1__TrackResponse *r;
	Shipgate__V1__Tracking *t;
	sg_jctx c = {a, st};
	sg_jpath dp = {NULL, "data", 0};
	json_t *root = NULL, *data;
	struct cod_in newest_cod = {0};
	int64_t newest_tm = 0;
	const char *sub;
	size_t n;
	sg_err rv;

	*reply = NULL;
	if ((rv = sg_request_check(req, &shipgate__v1__track_request__descriptor, "bosonline track",
	                           a, st)) != SG_OK)
		goto fail;
	tr = (const Shipgate__V1__TrackRequest *)req;
	if (!sg_http_is_success(resp->status)) {
		rv = sg_http_error(SG_BOSONLINE_NAME, resp, a, st);
		goto fail;
	}
	if ((rv = sg_json_parse(&c, resp->body, resp->body_len, &root)) != SG_OK ||
	    (rv = sg_json_expect_obj(&c, root, NULL)) != SG_OK ||
	    (rv = sg_json_req_arr(&c, root, NULL, "data", &data)) != SG_OK)
		goto fail;

	if ((rv = sg_track_response_new(SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE, a, &r, &t,
	                                st)) != SG_OK)
		goto fail;
	if ((t->tracking_number = sg_arena_strdup(
	             a, tr->tracking_number != NULL ? tr->tracking_number : "")) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	/* no current-status field: with no events the status stays UNKNOWN */

	n = json_array_size(data);
	if ((rv = sg_track_events_alloc(t, n, a, st)) != SG_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		sg_jpath ep = {&dp, NULL, i};
		struct cod_in cod = {0};
		Shipgate__V1__TrackingEvent *ev = t->events[n - 1 - i];
		/* bosOnline lists newest first: stored reversed, positions are chronological, so
		 * that entries with the same time keep the provider's order after the sort. */
		if ((rv = parse_event(&c, json_array_get(data, i), &ep, ev, &cod)) != SG_OK)
			goto fail;
		/* The newest entry: the latest tm, and on a tie the one listed first, which is the
		 * event sg_track_normalize() ends with. */
		if (i == 0 || ev->time_unix > newest_tm) {
			newest_tm = ev->time_unix;
			newest_cod = cod;
		}
	}
	if ((rv = sg_track_normalize(t, a, st)) != SG_OK)
		goto fail;
	if (t->n_events > 0) {
		/* Position now known: the newest event's note is read again as the newest. */
		Shipgate__V1__TrackingEvent *last = t->events[t->n_events - 1];
		last->status = sg_bosonline_event_status(last->raw_text, true, &sub);
		last->sub_status = (char *)sub;
		t->status = last->status;
		t->terminal = sg_status_terminal(last->status);
		t->status_text = last->raw_text;
		if ((rv = track_cod(&newest_cod, t, a, st)) != SG_OK)
			goto fail;
	}
	json_decref(root);
	*reply = &r->base;
	return SG_OK;

fail:
	json_decref(root);
	return sg_parse_fail(SG_BOSONLINE_NAME, resp, rv, st);
}

/* ================================================================== create order: checks */

/* What a string field needs. */
enum text_kind {
	T_OPT,   /* may be empty */
	T_REQ,   /* must hold a non-blank character */
	T_PHONE, /* required; digits, with + - ( ) and spaces */
};

/* One string field to check, and the name its violation carries. */
struct text_check {
	const char *field; /* dotted field path (static) */
	const char *value; /* the field's value; NULL reads as "" */
	enum text_kind kind;
};

/* What is wrong with s under kind, or NULL. Static text. */
static const char *
text_problem(const char *s, enum text_kind kind)
{
	bool digit = false;

	if (s == NULL)
		s = "";
	if (kind != T_OPT && *skip_blanks(s) == '\0')
		return "is required";
	if (!sg_utf8_valid(s, strlen(s)))
		return "is not valid UTF-8";
	if (kind == T_PHONE) {
		for (const char *p = s; *p != '\0'; p++) {
			if (*p >= '0' && *p <= '9')
				digit = true;
			else if (strchr("+-() ", *p) == NULL)
				return "must be a phone number (digits, with + - ( ) and spaces)";
		}
		if (!digit)
			return "must be a phone number (digits, with + - ( ) and spaces)";
	}
	return NULL;
}

static void
check_texts(sg_status *st, const struct text_check *tc, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = text_problem(tc[i].value, tc[i].kind);
		if (why != NULL)
			sg_status_violation(st, tc[i].field, why);
	}
}

/* A violation on "<list>[i].<name>", formatted into the arena. false when the arena is full. */
static bool
bad_elem(sg_arena *a, sg_status *st, const char *list, size_t i, const char *name, const char *why)
{
	char *field = sg_arena_printf(a, "%s[%zu].%s", list, i, name);

	if (field == NULL)
		return false;
	sg_status_violation(st, field, why);
	return true;
}

static void
check_coord(sg_status *st, const char *field, const Google__Protobuf__DoubleValue *v, double lim,
            const char *why)
{
	if (v != NULL && !(isfinite(v->value) && fabs(v->value) <= lim))
		sg_status_violation(st, field, why);
}

static void
check_sender(sg_status *st, const Shipgate__V1__Sender *s)
{
	if (s == NULL) {
		sg_status_violation(st, "sender", "is required");
		return;
	}
	const struct text_check tc[] = {
	        {"sender.warehouse_name", s->warehouse_name, T_OPT},
	        {"sender.name", s->name, T_REQ},
	        {"sender.phone", s->phone, T_PHONE},
	        {"sender.detail", s->detail, T_OPT},
	};
	check_texts(st, tc, sizeof(tc) / sizeof(tc[0]));
	if (s->address_id < 0)
		sg_status_violation(st, "sender.address_id", "must not be negative");
	check_coord(st, "sender.latitude", s->latitude, 90.0,
	            "must be a finite number in [-90, 90]");
	check_coord(st, "sender.longitude", s->longitude, 180.0,
	            "must be a finite number in [-180, 180]");
}

static bool
check_receiver(sg_arena *a, sg_status *st, const Shipgate__V1__Receiver *r)
{
	if (r == NULL) {
		sg_status_violation(st, "receiver", "is required");
		return true;
	}
	const struct text_check tc[] = {
	        {"receiver.name", r->name, T_REQ},
	        {"receiver.phone", r->phone, T_PHONE},
	        {"receiver.address", r->address, T_OPT},
	};
	check_texts(st, tc, sizeof(tc) / sizeof(tc[0]));
	if (r->address_id < 0)
		sg_status_violation(st, "receiver.address_id", "must not be negative");
	for (size_t i = 0; i < r->n_extra_fields; i++) {
		const Shipgate__V1__FormField *f = r->extra_fields[i];
		const char *why;
		if ((why = text_problem(f != NULL ? f->field_name : NULL, T_REQ)) != NULL &&
		    !bad_elem(a, st, "receiver.extra_fields", i, "field_name", why))
			return false;
		if ((why = text_problem(f != NULL ? f->value : NULL, T_OPT)) != NULL &&
		    !bad_elem(a, st, "receiver.extra_fields", i, "value", why))
			return false;
	}
	return true;
}

static void
check_payment(sg_status *st, const Shipgate__V1__Payment *p)
{
	const char *why;

	if (p == NULL) {
		sg_status_violation(st, "payment", "is required");
		return;
	}
	switch (p->type) {
	case SHIPGATE__V1__PAYMENT_TYPE__PAYMENT_TYPE_COD: break;
	case SHIPGATE__V1__PAYMENT_TYPE__PAYMENT_TYPE_BANK:
		if (p->bank == NULL || text_problem(p->bank->value, T_REQ) != NULL)
			sg_status_violation(st, "payment.bank",
			                    "is required when payment.type is PAYMENT_TYPE_BANK");
		break;
	case SHIPGATE__V1__PAYMENT_TYPE__PAYMENT_TYPE_UNSPECIFIED:
		sg_status_violation(st, "payment.type",
		                    "is required (PAYMENT_TYPE_COD or PAYMENT_TYPE_BANK)");
		break;
	default:
		sg_status_violation(st, "payment.type",
		                    "must be PAYMENT_TYPE_COD or PAYMENT_TYPE_BANK");
		break;
	}
	if (p->bank != NULL && (why = text_problem(p->bank->value, T_OPT)) != NULL)
		sg_status_violation(st, "payment.bank", why);
}

static bool
check_items(sg_arena *a, sg_status *st, const corder *co)
{
	if (co->n_items == 0)
		sg_status_violation(st, "items", "at least one item is required");
	for (size_t i = 0; i < co->n_items; i++) {
		const Shipgate__V1__OrderLine *l = co->items[i];
		const char *why = text_problem(l != NULL ? l->sku : NULL, T_REQ);
		if (why != NULL && !bad_elem(a, st, "items", i, "sku", why))
			return false;
		if ((l == NULL || l->quantity < 1) &&
		    !bad_elem(a, st, "items", i, "quantity", "must be at least 1"))
			return false;
	}
	return true;
}

/* The status message for the violations in st: every "field: description", joined by "; ".
 * The message is left to sg_strerror() when it does not fit; the violations still say all. */
static sg_err
invalid_summary(sg_arena *a, sg_status *st)
{
	size_t len = 0;
	char *m, *w;

	st->err = SG_EINVAL;
	st->message = NULL;
	for (size_t i = 0; i < st->nviolations; i++)
		len += strlen(st->violations[i].field) + strlen(st->violations[i].description) + 4;
	if ((m = w = sg_arena_alloc(a, len + 1)) == NULL)
		return SG_EINVAL;
	for (size_t i = 0; i < st->nviolations; i++) {
		size_t fl = strlen(st->violations[i].field);
		size_t dl = strlen(st->violations[i].description);
		if (i > 0) {
			memcpy(w, "; ", 2);
			w += 2;
		}
		memcpy(w, st->violations[i].field, fl);
		w += fl;
		memcpy(w, ": ", 2);
		w += 2;
		memcpy(w, st->violations[i].description, dl);
		w += dl;
	}
	*w = '\0';
	st->message = m;
	return SG_EINVAL;
}

/*
 * Checks the whole request and records one violation per bad field, so that a caller sees every
 * problem at once. *seg is the form id made safe for the path (NULL when it is refused).
 * SG_EINVAL with the violations, or SG_ENOMEM.
 */
static sg_err
check_order(const corder *co, sg_arena *a, sg_status *st, const char **seg)
{
	const char *fid = co->form_id != NULL ? co->form_id : "";
	sg_err rv;

	/* The form id is one path segment: the strict id policy ([A-Za-z0-9_-], as in a UUID). A
	 * refused id leaves its violation in st and the other fields are checked all the same. */
	rv = sg_path_segment(a, "form_id", fid, strlen(fid), SG_ID_STRICT, seg, st);
	if (rv == SG_ENOMEM)
		return rv;
	check_sender(st, co->sender);
	if (!check_receiver(a, st, co->receiver))
		return sg_nomem(st);
	if (co->pickup_via != SHIPGATE__V1__PICKUP_METHOD__PICKUP_METHOD_PICKUP &&
	    co->pickup_via != SHIPGATE__V1__PICKUP_METHOD__PICKUP_METHOD_DROP_OFF)
		sg_status_violation(st, "pickup_via",
		                    "must be PICKUP_METHOD_PICKUP or PICKUP_METHOD_DROP_OFF");
	const struct text_check tc[] = {
	        {"service_code", co->service_code, T_OPT},
	        {"courier_code", co->courier_code, T_OPT},
	        {"note", co->note != NULL ? co->note->value : NULL, T_OPT},
	        {"delivery_voucher_code",
	         co->delivery_voucher_code != NULL ? co->delivery_voucher_code->value : NULL,
	         T_OPT},
	        {"discount_voucher_code",
	         co->discount_voucher_code != NULL ? co->discount_voucher_code->value : NULL,
	         T_OPT},
	};
	check_texts(st, tc, sizeof(tc) / sizeof(tc[0]));
	check_payment(st, co->payment);
	if (!check_items(a, st, co))
		return sg_nomem(st);
	if (st->nviolations == 0)
		return SG_OK;
	return invalid_summary(a, st);
}

/* ================================================================== create order: body */

/*
 * The body is built bottom-up with jansson: each object is complete before it is attached, and
 * put()/push() steal their value whatever happens (jansson frees it when the container is NULL),
 * so a failed allocation anywhere only clears *ok and leaks nothing.
 */
static void
put(bool *ok, json_t *obj, const char *key, json_t *v)
{
	if (json_object_set_new(obj, key, v) != 0)
		*ok = false;
}

static void
push(bool *ok, json_t *arr, json_t *v)
{
	if (json_array_append_new(arr, v) != 0)
		*ok = false;
}

/* A NEW string ("" for NULL), or NULL when jansson's allocation fails (UTF-8 checked before). */
static json_t *
jtext(const char *s)
{
	return json_string(s != NULL ? s : "");
}

/* A NEW string, or null for an absent wrapper. */
static json_t *
jtext_or_null(const Google__Protobuf__StringValue *w)
{
	return w != NULL ? jtext(w->value) : json_null();
}

/* A NEW real, or null for an absent wrapper (finite: checked before). */
static json_t *
jreal_or_null(const Google__Protobuf__DoubleValue *w)
{
	return w != NULL ? json_real(w->value) : json_null();
}

static json_t *
sender_json(const Shipgate__V1__Sender *s, bool *ok)
{
	json_t *o = json_object();

	put(ok, o, "warehouse_name", jtext(s->warehouse_name));
	put(ok, o, "sender_name", jtext(s->name));
	put(ok, o, "sender_phone", jtext(s->phone));
	put(ok, o, "sender_addr_id", json_integer(s->address_id));
	put(ok, o, "sender_detail", jtext(s->detail));
	put(ok, o, "sender_latitude", jreal_or_null(s->latitude));
	put(ok, o, "sender_longitude", jreal_or_null(s->longitude));
	return o;
}

static json_t *
receiver_json(const Shipgate__V1__Receiver *r, bool *ok)
{
	json_t *o = json_object(), *detail = json_array();

	put(ok, o, "receiver_name", jtext(r->name));
	put(ok, o, "receiver_phone", jtext(r->phone));
	put(ok, o, "receiver_addr_id", json_integer(r->address_id));
	put(ok, o, "receiver_address", jtext(r->address));
	for (size_t i = 0; i < r->n_extra_fields; i++) {
		json_t *f = json_object();
		put(ok, f, "field_name", jtext(r->extra_fields[i]->field_name));
		put(ok, f, "value", jtext(r->extra_fields[i]->value));
		push(ok, detail, f);
	}
	put(ok, o, "receiver_detail", detail);
	return o;
}

static json_t *
items_json(const corder *co, bool *ok)
{
	json_t *o = json_object(), *pay = json_object(), *lines = json_array();
	bool bank = co->payment->type == SHIPGATE__V1__PAYMENT_TYPE__PAYMENT_TYPE_BANK;

	put(ok, pay, "type", json_string(bank ? "bank" : "cod"));
	put(ok, pay, "bank", jtext_or_null(co->payment->bank));
	for (size_t i = 0; i < co->n_items; i++) {
		json_t *l = json_object();
		put(ok, l, "item_sku", jtext(co->items[i]->sku));
		put(ok, l, "item_qty", json_integer(co->items[i]->quantity));
		push(ok, lines, l);
	}
	/* the document's order of members */
	put(ok, o, "pickup_via", json_integer(co->pickup_via)); /* 0 pickup, 1 drop-off */
	put(ok, o, "service_code", jtext(co->service_code));
	put(ok, o, "insurance_type", json_integer(co->insurance_type));
	put(ok, o, "courier_code", jtext(co->courier_code));
	put(ok, o, "note", jtext_or_null(co->note));
	put(ok, o, "payment_method", pay);
	put(ok, o, "order_type", json_integer(co->order_type));
	put(ok, o, "delivery_voucher_code", jtext_or_null(co->delivery_voucher_code));
	put(ok, o, "discount_voucher_code", jtext_or_null(co->discount_voucher_code));
	put(ok, o, "wa_validation", json_boolean(co->wa_validation));
	put(ok, o, "order_items", lines);
	return o;
}

/* The request body, serialised into the arena: *body (NUL-terminated) and *len. Compact, members
 * in the document's order. Reals (the coordinates) take the fewest digits that read back as the
 * caller's very double (sg_json_dump): the document's 2.9372132131231 goes out as written, not
 * 2.9372132131230999. Needs a request that
 * check_order() accepted. SG_ENOMEM when jansson or the arena runs out. */
static sg_err
order_body(const corder *co, sg_arena *a, const char **body, size_t *len, sg_status *st)
{
	json_t *root = json_object();
	bool ok = true;
	sg_err rv;

	put(&ok, root, "sender", sender_json(co->sender, &ok));
	put(&ok, root, "receiver", receiver_json(co->receiver, &ok));
	put(&ok, root, "items", items_json(co, &ok));
	rv = ok ? sg_json_dump(a, root, JSON_COMPACT, body, len, st) : sg_nomem(st);
	json_decref(root);
	return rv;
}

sg_err
sg_bosonline_create_order_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                                sg_http_req *out, sg_status *st)
{
	const corder *co;
	const char *seg = NULL, *body = NULL;
	size_t body_len = 0;
	sg_http_req r;
	sg_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = sg_request_check(req, CORDER_REQ, "bosonline create order", a, st)) != SG_OK)
		goto fail;
	co = (const corder *)req;
	/* every field first, all problems at once; a bad request never meets the config */
	if ((rv = check_order(co, a, st, &seg)) != SG_OK)
		goto fail;
	if ((rv = sg_http_req_start(&r, pc, "POST", a, st)) != SG_OK)
		goto fail;
	if ((rv = order_body(co, a, &body, &body_len, st)) != SG_OK)
		goto fail;
	if ((r.url = sg_url_join(a, pc->base_url, "/order/", seg, NULL)) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_http_req_header(&r, "Content-Type: application/json", a, st)) != SG_OK ||
	    (rv = sg_http_req_header(&r, "Accept: application/json", a, st)) != SG_OK)
		goto fail;
	r.body = body;
	r.body_len = body_len;
	*out = r;
	return SG_OK;

fail:
	st->provider = SG_BOSONLINE_NAME;
	return rv;
}

/* ================================================================== create order: parse */

/* Where the AWB may be, in this order. The document promises it ("resi") but its example lacks
 * it, so the plausible spellings are tried; the first non-empty one wins. */
static const char *const awb_keys[] = {"awb", "resi", "no_resi", "airwaybill"};

/* *out: the AWB (arena), or NULL when the reply has none. A string or an integer (read in
 * decimal); another type is SG_EUP_MALFORMED. "" counts as no AWB. */
static sg_err
order_awb(sg_jctx *c, json_t *d, const sg_jpath *at, const char **out)
{
	const char *s;
	sg_err rv;

	*out = NULL;
	for (size_t i = 0; i < sizeof(awb_keys) / sizeof(awb_keys[0]); i++) {
		json_t *v = json_object_get(d, awb_keys[i]);
		if (json_is_integer(v)) {
			if ((*out = sg_arena_printf(c->a, "%" JSON_INTEGER_FORMAT,
			                            json_integer_value(v))) == NULL)
				return sg_nomem(c->st);
			return SG_OK;
		}
		if ((rv = sg_json_opt_str(c, d, at, awb_keys[i], &s)) != SG_OK)
			return rv;
		if (s != NULL && s[0] != '\0') {
			*out = s;
			return SG_OK;
		}
	}
	return SG_OK;
}

/* One string member of a list's elements, and the message field it fills. */
struct str_member {
	const char *key; /* member name in the reply */
	size_t off;      /* offset of the (char *) field in the element's message */
};

/* A list in the reply's `data` whose elements are objects of string members. */
struct reply_list {
	const ProtobufCMessageDescriptor *d; /* the elements' message type */
	size_t arr_off;                      /* offset of the element array in the response */
	size_t n_off;                        /* offset of its count */
	const struct str_member *members;    /* the elements' members, ended by key NULL */
};

typedef Shipgate__V1__CreateOrderResponse oreply;
typedef Shipgate__V1__PaymentAccount pb_payment;
typedef Shipgate__V1__SocialLink pb_social;

static const struct str_member payment_members[] = {
        {"bank_atasnama", offsetof(pb_payment, account_name)},
        {"bank_code", offsetof(pb_payment, bank_code)},
        {"bank_name", offsetof(pb_payment, bank_name)},
        {"bank_rekening", offsetof(pb_payment, account_number)},
        {"file_name", offsetof(pb_payment, file_name)},
        {"file_path", offsetof(pb_payment, file_path)},
        {NULL, 0},
};

/* data.payment[] -> payment_accounts */
static const struct reply_list payment_list = {
        &shipgate__v1__payment_account__descriptor, offsetof(oreply, payment_accounts),
        offsetof(oreply, n_payment_accounts), payment_members};

static const struct str_member social_members[] = {
        {"name", offsetof(pb_social, name)},
        {"url", offsetof(pb_social, url)},
        {NULL, 0},
};

/* data.social_media[] -> social_media */
static const struct reply_list social_list = {&shipgate__v1__social_link__descriptor,
                                              offsetof(oreply, social_media),
                                              offsetof(oreply, n_social_media), social_members};

/* The objects of arr (at `at`; NULL or empty: nothing) into r's list l, one message each. */
static sg_err
order_list(sg_jctx *c, json_t *arr, const sg_jpath *at, const struct reply_list *l, oreply *r)
{
	size_t n = json_array_size(arr), size = l->d->sizeof_message;
	void **pv;
	char *msgs;
	sg_err rv;

	if (n == 0)
		return SG_OK;
	if ((pv = sg_arena_calloc(c->a, n, sizeof(*pv))) == NULL ||
	    (msgs = sg_arena_calloc(c->a, n, size)) == NULL)
		return sg_nomem(c->st);
	for (size_t i = 0; i < n; i++) {
		sg_jpath ep = {at, NULL, i};
		json_t *e = json_array_get(arr, i);
		char *m = msgs + i * size;
		if ((rv = sg_json_expect_obj(c, e, &ep)) != SG_OK)
			return rv;
		protobuf_c_message_init(l->d, m);
		for (const struct str_member *sm = l->members; sm->key != NULL; sm++) {
			const char *v;
			if ((rv = sg_json_opt_str(c, e, &ep, sm->key, &v)) != SG_OK)
				return rv;
			/* null stays "" (plain string fields); the arena never frees the static ""
			 */
			*(char **)(m + sm->off) = (char *)(v != NULL ? v : "");
		}
		pv[i] = m;
	}
	/* the members are pointers to the element type, as protobuf-c's own unpack fills them */
	memcpy((char *)r + l->arr_off, &pv, sizeof(pv));
	*(size_t *)((char *)r + l->n_off) = n;
	return SG_OK;
}

/* The reply's `data` object (at "data") into r. */
static sg_err
order_data(sg_jctx *c, json_t *d, Shipgate__V1__CreateOrderResponse *r)
{
	sg_jpath dp = {NULL, "data", 0};
	sg_jpath pp = {&dp, "payment", 0}, sp = {&dp, "social_media", 0};
	const char *awb, *cs_phone, *product;
	json_t *pay, *social;
	double total;
	bool has_total;
	sg_err rv;

	if ((rv = order_awb(c, d, &dp, &awb)) != SG_OK ||
	    (rv = sg_json_opt_str(c, d, &dp, "cs_phone", &cs_phone)) != SG_OK ||
	    (rv = sg_json_opt_arr(c, d, &dp, "payment", &pay)) != SG_OK ||
	    (rv = sg_json_opt_str(c, d, &dp, "product_name", &product)) != SG_OK ||
	    (rv = sg_json_opt_arr(c, d, &dp, "social_media", &social)) != SG_OK ||
	    (rv = sg_json_opt_num(c, d, &dp, "total_payment", &total, &has_total)) != SG_OK)
		return rv;
	if ((rv = sg_pb_str(c->a, awb, &r->awb, c->st)) != SG_OK ||
	    (has_total && (rv = sg_pb_double(c->a, total, &r->total_payment, c->st)) != SG_OK) ||
	    (rv = order_list(c, pay, &pp, &payment_list, r)) != SG_OK ||
	    (rv = order_list(c, social, &sp, &social_list, r)) != SG_OK)
		return rv;
	if (cs_phone != NULL)
		r->cs_phone = (char *)cs_phone;
	if (product != NULL)
		r->product_name = (char *)product;
	return SG_OK;
}

sg_err
sg_bosonline_create_order_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                                const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                                sg_status *st)
{
	Shipgate__V1__CreateOrderResponse *r;
	sg_jctx c = {a, st};
	json_t *root = NULL, *data;
	const char *message;
	sg_err rv;

	*reply = NULL;
	if ((rv = sg_request_check(req, CORDER_REQ, "bosonline create order", a, st)) != SG_OK)
		goto fail;
	if (!sg_http_is_success(resp->status)) {
		rv = sg_http_error(SG_BOSONLINE_NAME, resp, a, st);
		goto fail;
	}
	/* A 2xx means the order was accepted: members that are missing or null leave their fields
	 * empty rather than turn an accepted order into an error (a caller would retry it). Members
	 * of the wrong type are still refused. */
	if ((rv = sg_json_parse(&c, resp->body, resp->body_len, &root)) != SG_OK ||
	    (rv = sg_json_expect_obj(&c, root, NULL)) != SG_OK ||
	    (rv = sg_json_opt_obj(&c, root, NULL, "data", &data)) != SG_OK ||
	    (rv = sg_json_opt_str(&c, root, NULL, "message", &message)) != SG_OK)
		goto fail;
	if ((r = sg_arena_alloc(a, sizeof(*r))) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	shipgate__v1__create_order_response__init(r);
	if (message != NULL)
		r->message = (char *)message;
	if (data != NULL && (rv = order_data(&c, data, r)) != SG_OK)
		goto fail;
	json_decref(root);
	*reply = &r->base;
	return SG_OK;

fail:
	json_decref(root);
	return sg_parse_fail(SG_BOSONLINE_NAME, resp, rv, st);
}
