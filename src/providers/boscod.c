/*
 * boscod.c - BosCOD order tracking (GET /v1/order/tracking/{order_no}) to Track.
 *
 * The reply (docs/providers.md, "BosCOD: reply shape"):
 *   {"last_status": "2", "last_update": 1733106237,
 *    "history": [{"note", "description", "branch", "update_on", "status", "pod_photo"}, ...]}
 * with history newest first, times in epoch seconds, and `status` set on only a few entries.
 */
#include "providers/boscod.h"

#include <inttypes.h>
#include <string.h>

#include "providers/common.h"

typedef Shipgate__V1__TrackingStatus tstatus;

#define TS(x) SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_##x

/* ================================================================== status mapping */

/* A BosCOD status code, inferred from the documented example: docs/providers.md,
 * "BosCOD: status codes". */
struct code_map {
	const char *code;       /* `status` / `last_status` value */
	tstatus status;         /* canonical status */
	const char *sub_status; /* used when the note does not say more */
};

static const struct code_map code_map[] = {
        {"0", TS(PENDING), "pending_pickup"}, /* inferred: the only cancellable state */
        {"1", TS(PICKED_UP), "picked_up"},    /* on "Pick up scan" in the example */
        {"2", TS(DELIVERED), "delivered"},    /* on "POD scan", with pod_photo */
};

/* A scan named in `note`. Keys are normalised: lower case, runs of blanks, '-' and '_' made one
 * space, trimmed (see note_key). Exact matches only, so "Return POD scan" is never "POD scan". */
struct note_map {
	const char *key;        /* normalised note */
	tstatus status;         /* canonical status */
	const char *sub_status; /* stable snake_case scan name */
};

static const struct note_map note_map[] = {
        /* seen in the documented example */
        {"pick up scan", TS(PICKED_UP), "pick_up_scan"},
        {"loading scan", TS(IN_TRANSIT), "loading_scan"},
        {"unloading scan", TS(IN_TRANSIT), "unloading_scan"},
        {"sending scan", TS(IN_TRANSIT), "sending_scan"},
        {"arrival scan", TS(IN_TRANSIT), "arrival_scan"},
        {"delivery scan", TS(OUT_FOR_DELIVERY), "delivery_scan"},
        {"pod scan", TS(DELIVERED), "pod_scan"},
        /* plausible variants and the other scans of the same (ID Express style) scan chain */
        {"pickup scan", TS(PICKED_UP), "pick_up_scan"},
        {"pending pickup", TS(PENDING), "pending_pickup"},
        {"transit scan", TS(IN_TRANSIT), "transit_scan"},
        {"problem scan", TS(EXCEPTION), "problem_scan"},
        {"problematic scan", TS(EXCEPTION), "problem_scan"},
        {"hold scan", TS(ON_HOLD), "hold_scan"},
        {"on hold scan", TS(ON_HOLD), "hold_scan"},
        {"failed delivery scan", TS(DELIVERY_FAILED), "failed_delivery_scan"},
        {"delivery failed scan", TS(DELIVERY_FAILED), "failed_delivery_scan"},
        {"undelivered scan", TS(DELIVERY_FAILED), "undelivered_scan"},
        {"undelivered", TS(DELIVERY_FAILED), "undelivered_scan"},
        {"return scan", TS(RETURNING), "return_scan"},
        {"return register scan", TS(RETURNING), "return_scan"},
        {"return pod scan", TS(RETURNED), "return_pod_scan"},
        {"returned scan", TS(RETURNED), "return_pod_scan"},
        {"cancel scan", TS(CANCELLED), "cancel_scan"},
        {"cancelled scan", TS(CANCELLED), "cancel_scan"},
        {"canceled scan", TS(CANCELLED), "cancel_scan"},
        {"cancelled", TS(CANCELLED), "cancel_scan"},
        {"canceled", TS(CANCELLED), "cancel_scan"},
};

#define NOTE_KEY_MAX 48 /* longer notes match nothing */

/* Normalises note into buf (see note_map). False when it is too long to be a known scan. */
static bool
note_key(const char *note, char *buf)
{
	size_t n = 0;
	bool gap = false;

	for (const unsigned char *p = (const unsigned char *)note; *p != '\0'; p++) {
		unsigned char c = *p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-' || c == '_') {
			gap = n > 0;
			continue;
		}
		if (n + (gap ? 2 : 1) >= NOTE_KEY_MAX)
			return false;
		if (gap)
			buf[n++] = ' ';
		gap = false;
		buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	buf[n] = '\0';
	return true;
}

static const struct note_map *
find_note(const char *note)
{
	char key[NOTE_KEY_MAX];

	if (note == NULL || !note_key(note, key))
		return NULL;
	for (size_t i = 0; i < sizeof(note_map) / sizeof(note_map[0]); i++)
		if (strcmp(note_map[i].key, key) == 0)
			return &note_map[i];
	return NULL;
}

static const struct code_map *
find_code(const char *code)
{
	if (code == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(code_map) / sizeof(code_map[0]); i++)
		if (strcmp(code_map[i].code, code) == 0)
			return &code_map[i];
	return NULL;
}

tstatus
sg_boscod_event_status(const char *code, const char *note, const char **sub_status)
{
	const struct code_map *cm = find_code(code);
	const struct note_map *nm = find_note(note);

	if (cm != NULL) {
		/* the note names the scan more precisely, when both agree */
		*sub_status =
		        nm != NULL && nm->status == cm->status ? nm->sub_status : cm->sub_status;
		return cm->status;
	}
	if (nm != NULL) {
		*sub_status = nm->sub_status;
		return nm->status;
	}
	*sub_status = ""; /* raw code and text are kept on the event; never guessed */
	return TS(UNKNOWN);
}

/* ================================================================== build */

sg_err
sg_boscod_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                      sg_http_req *out, sg_status *st)
{
	const Shipgate__V1__TrackRequest *tr;
	const char *seg, *id;
	sg_http_req r;
	sg_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = sg_request_check(req, &shipgate__v1__track_request__descriptor, "boscod track", a,
	                           st)) != SG_OK)
		goto fail;
	tr = (const Shipgate__V1__TrackRequest *)req;
	/* The caller's input is checked first: a hostile id never meets the config. */
	id = tr->order_id != NULL ? tr->order_id : "";
	if ((rv = sg_path_segment(a, "order_id", id, strlen(id), SG_ID_STRICT, &seg, st)) != SG_OK)
		goto fail;
	if ((rv = sg_http_req_start(&r, pc, "GET", a, st)) != SG_OK)
		goto fail;
	if ((r.url = sg_url_join(a, pc->base_url, "/v1/order/tracking/", seg, NULL)) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_http_req_header(&r, "Accept: application/json", a, st)) != SG_OK)
		goto fail;
	*out = r;
	return SG_OK;

fail:
	st->provider = SG_BOSCOD_NAME;
	return rv;
}

/* ================================================================== parse */

/* One history entry (at `at`) into ev. */
static sg_err
parse_event(sg_jctx *c, json_t *h, const sg_jpath *at, Shipgate__V1__TrackingEvent *ev)
{
	const char *note, *desc, *branch, *code, *pod, *sub;
	int64_t when;
	sg_err rv;

	if ((rv = sg_json_expect_obj(c, h, at)) != SG_OK ||
	    (rv = sg_json_req_str(c, h, at, "note", &note)) != SG_OK ||
	    (rv = sg_json_req_str(c, h, at, "description", &desc)) != SG_OK ||
	    (rv = sg_json_req_str(c, h, at, "branch", &branch)) != SG_OK ||
	    (rv = sg_json_req_int(c, h, at, "update_on", &when)) != SG_OK ||
	    (rv = sg_json_opt_str(c, h, at, "status", &code)) != SG_OK ||
	    (rv = sg_json_opt_str(c, h, at, "pod_photo", &pod)) != SG_OK)
		return rv;

	ev->status = sg_boscod_event_status(code, note, &sub);
	ev->sub_status = (char *)sub; /* static; the arena allocator never frees */
	if ((rv = sg_pb_str(c->a, code, &ev->raw_code, c->st)) != SG_OK ||
	    (rv = sg_pb_str(c->a, pod, &ev->pod_photo_url, c->st)) != SG_OK)
		return rv;
	ev->raw_text = (char *)note;
	ev->description = (char *)desc;
	ev->location = (char *)branch;
	ev->time_unix = when;
	if ((ev->time_text = sg_arena_printf(c->a, "%" PRId64, when)) == NULL)
		return sg_nomem(c->st);
	ev->utc_offset_seconds = 0; /* an absolute epoch needs no offset */
	ev->offset_source = SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_EPOCH;
	return SG_OK;
}

sg_err
sg_boscod_track_parse(const sg_pconf *pc, const ProtobufCMessage *req, const sg_http_resp *resp,
                      sg_arena *a, ProtobufCMessage **reply, sg_status *st)
{
	const Shipgate__V1__TrackRequest *tr;
	Shipgate__V1__TrackResponse *r;
	Shipgate__V1__Tracking *t;
	sg_jctx c = {a, st};
	sg_jpath hp = {NULL, "history", 0};
	json_t *root = NULL, *hist;
	const char *last_status, *sub;
	int64_t last_update;
	size_t n;
	sg_err rv;

	*reply = NULL;
	if ((rv = sg_request_check(req, &shipgate__v1__track_request__descriptor, "boscod track", a,
	                           st)) != SG_OK)
		goto fail;
	tr = (const Shipgate__V1__TrackRequest *)req;
	if (!sg_http_is_success(resp->status)) {
		rv = sg_http_error(SG_BOSCOD_NAME, resp, a, st);
		goto fail;
	}
	if ((rv = sg_json_parse(&c, resp->body, resp->body_len, &root)) != SG_OK ||
	    (rv = sg_json_expect_obj(&c, root, NULL)) != SG_OK ||
	    (rv = sg_json_req_str(&c, root, NULL, "last_status", &last_status)) != SG_OK ||
	    (rv = sg_json_req_int(&c, root, NULL, "last_update", &last_update)) != SG_OK ||
	    (rv = sg_json_req_arr(&c, root, NULL, "history", &hist)) != SG_OK)
		goto fail;

	if ((rv = sg_track_response_new(SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD, a, &r, &t, st)) !=
	    SG_OK)
		goto fail;
	if ((t->order_id = sg_arena_strdup(a, tr->order_id != NULL ? tr->order_id : "")) == NULL) {
		rv = sg_nomem(st);
		goto fail;
	}
	if ((rv = sg_pb_str(a, last_status, &t->raw_status, st)) != SG_OK)
		goto fail;
	/* The current code speaks only when there is no event to take the status from. */
	t->status = sg_boscod_event_status(last_status, NULL, &sub);

	n = json_array_size(hist);
	if ((rv = sg_track_events_alloc(t, n, a, st)) != SG_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		sg_jpath ep = {&hp, NULL, i};
		json_t *h = json_array_get(hist, i);
		/* BosCOD lists newest first: stored reversed, positions are chronological, so that
		 * entries with the same time keep the provider's order after the sort. */
		if ((rv = parse_event(&c, h, &ep, t->events[n - 1 - i])) != SG_OK)
			goto fail;
	}
	if ((rv = sg_track_normalize(t, a, st)) != SG_OK)
		goto fail;
	(void)last_update; /* checked for shape; the contract takes the newest event's time */
	json_decref(root);
	*reply = &r->base;
	return SG_OK;

fail:
	json_decref(root);
	return sg_parse_fail(SG_BOSCOD_NAME, resp, rv, st);
}
