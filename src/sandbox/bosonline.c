/*
 * bosonline.c - bosOnline: GET /bosonline/store/order/tracking?awb= (store tracking) and
 * POST /bosonline/order/{id} (checkout: Request Create Order).
 *
 * Bearer token auth. Any syntactically fine awb returns the tracking example; any fine form id
 * with a body of the document's structure returns the create-order example. Reserved ids (in
 * awb, or in the form id) give the error and edge cases. Error bodies are {"message": ...}.
 */
#include <stdio.h>
#include <strings.h>

#include "providers.h"

#define BOSONLINE_TRACKING "bosonline_tracking.json"
#define BOSONLINE_CREATE   "bosonline_create_order.json"
#define BOSONLINE_NEWEST   1748829434 /* tm of the example's newest event */
#define WIB                (7 * 3600) /* date/time display zone, UTC+7 */

/* ================================================================== store tracking */

/* BIG-<n>: newest first, one minute apart; tm, time and date agree (date/time in WIB). */
static void
bosonline_retime(json_t *ev, size_t i, size_t n)
{
	int64_t t = BOSONLINE_NEWEST - (int64_t)i * 60;
	char buf[32];

	(void)n;
	snprintf(buf, sizeof(buf), "%lld", (long long)t);
	json_object_set_new(ev, "tm", json_string(buf));
	sbx_fmt_time(buf, sizeof(buf), t, WIB, "%H:%M");
	json_object_set_new(ev, "time", json_string(buf));
	sbx_fmt_time(buf, sizeof(buf), t, WIB, "%d %b");
	json_object_set_new(ev, "date", json_string(buf));
}

/* WRONGTYPE: the history (data) is a string. */
static int
tracking_wrongtype(json_t *root, const sbx_id *id)
{
	(void)id;
	json_object_set_new(root, "data", json_string("Paket telah diterima"));
	return 0;
}

static void
bosonline_tracking(const sbx_call *c, sbx_reply *r)
{
	const sbx_blob *ex = sbx_blob_get(BOSONLINE_TRACKING);
	char awb[SBX_ID_MAX + 2];
	size_t n = 0;
	json_t *root;
	int found;
	sbx_id id;

	if (!sbx_method_is(c, "GET")) {
		sbx_reply_405(r, SBX_STYLE_MESSAGE, NULL, "GET, HEAD");
		return;
	}
	if (!sbx_auth_bearer(c, r))
		return;
	found = c->query ? sbx_form_get(c->query, "awb", awb, sizeof(awb), &n) : 0;
	if (found == 0 || (found == 1 && n == 0)) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "awb is required");
		return;
	}
	if (found < 0 || !sbx_id_parse((sbx_str){awb, n}, &id)) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "Bad Request: invalid awb");
		return;
	}
	if (sbx_reserved(&id, SBX_STYLE_MESSAGE, ex, c->authorization, r))
		return;
	if (sbx_id_reshapes(&id)) {
		root = sbx_blob_json(ex);
		sbx_reply_reshaped(r, root, json_object_get(root, "data"), &id, bosonline_retime,
		                   tracking_wrongtype);
	} else {
		sbx_reply_blob(r, 200, ex);
	}
}

/* ================================================================== create order */

/* The document's request structure; returns NULL when body fits, else what is wrong. */
static const char *
order_invalid(const json_t *root)
{
	const json_t *items, *list, *it;
	size_t i;

	if (!json_is_object(root))
		return "the body must be a JSON object";
	if (!json_is_object(json_object_get(root, "sender")))
		return "sender must be an object";
	if (!json_is_object(json_object_get(root, "receiver")))
		return "receiver must be an object";
	items = json_object_get(root, "items");
	if (!json_is_object(items))
		return "items must be an object";
	list = json_object_get(items, "order_items");
	if (!json_is_array(list) || json_array_size(list) == 0)
		return "items.order_items must be a non-empty array";
	json_array_foreach(list, i, it)
	{
		const json_t *sku = json_object_get(it, "item_sku");
		const json_t *qty = json_object_get(it, "item_qty");

		if (!json_is_object(it))
			return "items.order_items[] must be objects";
		if (!json_is_string(sku) || json_string_length(sku) == 0)
			return "items.order_items[].item_sku must be a non-empty string";
		if (!json_is_integer(qty) || json_integer_value(qty) <= 0)
			return "items.order_items[].item_qty must be a positive integer";
	}
	return NULL;
}

static void
bosonline_create(const sbx_call *c, sbx_reply *r)
{
	const sbx_blob *ex = sbx_blob_get(BOSONLINE_CREATE);
	const char *why;
	char msg[256];
	json_error_t jerr;
	json_t *body, *data;
	sbx_id id;

	if (!sbx_method_is(c, "POST")) {
		sbx_reply_405(r, SBX_STYLE_MESSAGE, NULL, "POST");
		return;
	}
	if (!sbx_auth_bearer(c, r))
		return;
	if (!sbx_id_parse(c->seg[1], &id)) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "Invalid input: invalid form id");
		return;
	}
	if (sbx_reserved(&id, SBX_STYLE_MESSAGE, ex, c->authorization, r))
		return;
	if (c->content_type == NULL || strncasecmp(c->content_type, "application/json", 16) != 0) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400,
		                "Invalid input: Content-Type must be application/json");
		return;
	}
	body = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL) {
		snprintf(msg, sizeof(msg), "Invalid input: body is not valid JSON (line %d: %s)",
		         jerr.line, jerr.text);
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, msg);
		return;
	}
	why = order_invalid(body);
	json_decref(body);
	if (why != NULL) {
		snprintf(msg, sizeof(msg), "Invalid input: %s", why);
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, msg);
		return;
	}
	if (id.kind != SBX_ID_WRONGTYPE) { /* EMPTY and BIG-<n> mean nothing here */
		sbx_reply_blob(r, 200, ex);
		return;
	}
	/* WRONGTYPE: payment a string, total_payment a string */
	body = sbx_blob_json(ex);
	data = json_object_get(body, "data");
	json_object_set_new(data, "payment", json_string("BCA"));
	json_object_set_new(data, "total_payment", json_string("102200"));
	sbx_reply_json(r, 200, body, false);
}

/* ================================================================== entry */

void
sbx_bosonline(const sbx_call *c, sbx_reply *r)
{
	if (c->nseg == 3 && sbx_seg_is(c, 0, "store") && sbx_seg_is(c, 1, "order") &&
	    sbx_seg_is(c, 2, "tracking"))
		bosonline_tracking(c, r);
	else if (c->nseg == 2 && sbx_seg_is(c, 0, "order") && c->seg[1].n > 0)
		bosonline_create(c, r);
	else
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 404, "Not Found");
}

const char *
sbx_bosonline_check(void)
{
	const char *names[] = {BOSONLINE_TRACKING, BOSONLINE_CREATE};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const sbx_blob *b = sbx_blob_get(names[i]);
		json_t *j;

		if (b == NULL || (j = sbx_blob_json(b)) == NULL)
			return "a bosOnline example is missing or not JSON";
		json_decref(j);
	}
	return NULL;
}
