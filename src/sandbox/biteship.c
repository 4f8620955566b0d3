/*
 * biteship.c - Biteship Retrieve Order: GET /biteship/v1/orders/{id}.
 *
 * Auth is the raw API key in Authorization, without "Bearer". Any syntactically fine id returns
 * the document's example with "id" set to the id asked for. Reserved ids give the error and
 * edge cases, plus CAMELCASE (multi-word statuses in camelCase, as some Biteship pages write
 * them) and NULLS ("please assume all field nullable"). Error bodies are
 * {"success": false, "error": ..., "code": 8 digits}.
 */
#include <stdio.h>
#include <string.h>

#include "providers.h"

#define BITESHIP_EXAMPLE   "biteship_order.json"
#define BITESHIP_ID        "5dd599ebdefcd4158eb8470b" /* the example's order id */
#define BITESHIP_ID_NEEDLE "\"id\": \"" BITESHIP_ID "\""
#define BITESHIP_FIRST     1610348621 /* 2021-01-11T14:03:41+07:00, the example's first event */
#define BITESHIP_TZ        (7 * 3600) /* the example's offset */

/* Auth failures. */
#define BITESHIP_NO_KEY     40101001 /* no Authorization header */
#define BITESHIP_BAD_KEY    40101002 /* not the configured key */
#define BITESHIP_BAD_SCHEME 40101003 /* "Bearer <key>": Biteship wants the raw key */

static void
biteship_error(sbx_reply *r, unsigned status, const char *msg, long code)
{
	sbx_reply_json(
	        r, status,
	        json_pack("{s:b, s:s, s:I}", "success", 0, "error", msg, "code", (json_int_t)code),
	        false);
}

/* ================================================================== variants */

/* Sets updated_at of event i: oldest first, one minute apart, with the +07:00 offset. */
static void
biteship_retime(json_t *ev, size_t i, size_t n)
{
	char buf[40];

	(void)n;
	sbx_fmt_time(buf, sizeof(buf), BITESHIP_FIRST + (int64_t)i * 60, BITESHIP_TZ,
	             "%Y-%m-%dT%H:%M:%S+07:00");
	json_object_set_new(ev, "updated_at", json_string(buf));
}

/* CAMELCASE: a history whose multi-word statuses are camelCase. */
static int
biteship_camelcase(json_t *root, json_t *courier)
{
	static const char *const ev[][2] = {
	        {"confirmed", "Order has been confirmed. Locating nearest driver to pickup."},
	        {"allocated", "Courier has been allocated. Waiting to pick up."},
	        {"pickingUp", "Courier is on the way to pick up item."},
	        {"picked", "Item has been picked and ready to be shipped."},
	        {"droppingOff", "Item is on the way to customer."},
	};
	json_t *hist = json_array();
	size_t i;

	if (hist == NULL)
		return -1;
	for (i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		json_t *e = json_pack("{s:s, s:s, s:s, s:n}", "service_type", "-", "status",
		                      ev[i][0], "note", ev[i][1], "updated_at");

		if (e == NULL || json_array_append_new(hist, e) != 0) {
			json_decref(hist);
			return -1;
		}
		biteship_retime(e, i, 0);
	}
	json_object_set_new(courier, "history", hist);
	return json_object_set_new(root, "status", json_string("droppingOff"));
}

/* NULLS: every field null, except success/message/object/id, and one all-null event. */
static int
biteship_nulls(json_t *root, json_t *courier)
{
	const char *key;
	json_t *val;

	json_object_foreach(root, key, val)
	{
		if (strcmp(key, "success") != 0 && strcmp(key, "message") != 0 &&
		    strcmp(key, "object") != 0 && strcmp(key, "id") != 0 &&
		    strcmp(key, "courier") != 0)
			json_object_set_new(root, key, json_null());
	}
	json_object_foreach(courier, key, val)
	{
		json_object_set_new(courier, key, json_null());
	}
	return json_object_set_new(courier, "history",
	                           json_pack("[{s:n, s:n, s:n, s:n}]", "service_type", "status",
	                                     "note", "updated_at"));
}

/* CAMELCASE, NULLS and WRONGTYPE. */
static int
biteship_edit(json_t *root, const sbx_id *id)
{
	json_t *courier = json_object_get(root, "courier");

	if (strcmp(id->text, "CAMELCASE") == 0)
		return biteship_camelcase(root, courier);
	if (strcmp(id->text, "NULLS") == 0)
		return biteship_nulls(root, courier);
	/* WRONGTYPE: history a string, price a string */
	json_object_set_new(courier, "history", json_string("confirmed"));
	json_object_set_new(root, "price", json_string("27500"));
	return 0;
}

/* Everything but the plain example: reshaped with jansson, "id" set to the id asked for. */
static void
biteship_variant(const sbx_blob *ex, const sbx_id *id, sbx_reply *r)
{
	json_t *root = sbx_blob_json(ex);
	json_t *hist = json_object_get(json_object_get(root, "courier"), "history");

	json_object_set_new(root, "id", json_string(id->text));
	sbx_reply_reshaped(r, root, hist, id, biteship_retime, biteship_edit);
}

/* ================================================================== entry */

void
sbx_biteship(const sbx_call *c, sbx_reply *r)
{
	const sbx_blob *ex = sbx_blob_get(BITESHIP_EXAMPLE);
	const char *key = c->authorization;
	char needle[sizeof("\"id\": \"\"") + SBX_ID_MAX];
	char *body;
	size_t len;
	sbx_id id;

	if (c->nseg != 3 || !sbx_seg_is(c, 0, "v1") || !sbx_seg_is(c, 1, "orders") ||
	    c->seg[2].n == 0) {
		sbx_reply_error(r, SBX_STYLE_BITESHIP, 404, "Endpoint not found");
		return;
	}
	if (!sbx_method_is(c, "GET")) {
		sbx_reply_405(r, SBX_STYLE_BITESHIP, "Method not allowed", "GET, HEAD");
		return;
	}
	if (key == NULL || *key == '\0') {
		biteship_error(r, 401, "Authorization failed: no key has been provided",
		               BITESHIP_NO_KEY);
		return;
	}
	if (sbx_bearer(key) != NULL) {
		biteship_error(r, 401,
		               "Authorization failed: send the raw API key, without \"Bearer\"",
		               BITESHIP_BAD_SCHEME);
		return;
	}
	if (strcmp(key, c->conf->biteship_key) != 0) {
		biteship_error(r, 401, "Authorization failed: the key is invalid",
		               BITESHIP_BAD_KEY);
		return;
	}
	if (!sbx_id_parse(c->seg[2], &id)) {
		sbx_reply_error(r, SBX_STYLE_BITESHIP, 400, "Invalid order id");
		return;
	}
	if (strcmp(id.text, "CAMELCASE") == 0 || strcmp(id.text, "NULLS") == 0) {
		biteship_variant(ex, &id, r);
		return;
	}
	if (sbx_reserved(&id, SBX_STYLE_BITESHIP, ex, c->authorization, r))
		return;
	if (sbx_id_reshapes(&id)) {
		biteship_variant(ex, &id, r);
		return;
	}
	if (strcmp(id.text, BITESHIP_ID) == 0) {
		sbx_reply_blob(r, 200, ex);
		return;
	}
	/* any other id: the example with the id echoed, byte for byte otherwise */
	snprintf(needle, sizeof(needle), "\"id\": \"%s\"", id.text);
	body = sbx_blob_replace(ex, BITESHIP_ID_NEEDLE, needle, &len);
	sbx_reply_take(r, 200, "application/json", body, len);
}

const char *
sbx_biteship_check(void)
{
	const sbx_blob *ex = sbx_blob_get(BITESHIP_EXAMPLE);
	json_t *j;

	if (ex == NULL || (j = sbx_blob_json(ex)) == NULL)
		return BITESHIP_EXAMPLE " missing or not JSON";
	json_decref(j);
	if (sbx_blob_count(ex, BITESHIP_ID_NEEDLE) != 1)
		return BITESHIP_EXAMPLE " must hold " BITESHIP_ID_NEEDLE " exactly once";
	return NULL;
}
