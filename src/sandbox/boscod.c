/*
 * boscod.c - BosCOD order tracking: GET /boscod/v1/order/tracking/{order_no}.
 *
 * Bearer token auth. Every syntactically fine order_no returns the document's example (the body
 * carries no order number to echo); reserved ids give the error and edge cases. Error bodies
 * are {"message": ...}.
 */
#include <string.h>

#include "providers.h"

#define BOSCOD_EXAMPLE "boscod_tracking.json"
#define BOSCOD_NEWEST  1733106237 /* update_on of the example's newest event */

/* BIG-<n>: newest first, one minute apart, ending at the example's newest event. */
static void
boscod_retime(json_t *ev, size_t i, size_t n)
{
	(void)n;
	json_object_set_new(ev, "update_on", json_integer(BOSCOD_NEWEST - (json_int_t)i * 60));
}

/* EMPTY, BIG-<n> and WRONGTYPE: the example, reshaped. */
static void
boscod_variant(const sbx_blob *ex, const sbx_id *id, sbx_reply *r)
{
	json_t *root = sbx_blob_json(ex);
	json_t *hist = json_object_get(root, "history");

	if (root == NULL || !json_is_array(hist)) {
		json_decref(root);
		sbx_reply_json(r, 500, NULL, false);
		return;
	}
	switch (id->kind) {
	case SBX_ID_EMPTY: json_array_clear(hist); break;
	case SBX_ID_BIG:
		if (sbx_big_fill(hist, (size_t)id->n, boscod_retime) != 0) {
			json_decref(root);
			root = NULL;
		}
		break;
	default: /* WRONGTYPE: history a string, last_update a string */
		json_object_set_new(root, "history", json_string("POD scan"));
		json_object_set_new(root, "last_update", json_string("1733106237"));
		break;
	}
	sbx_reply_json(r, 200, root, id->kind == SBX_ID_BIG);
}

void
sbx_boscod(const sbx_call *c, sbx_reply *r)
{
	const sbx_blob *ex = sbx_blob_get(BOSCOD_EXAMPLE);
	const char *tok;
	sbx_id id;

	if ((c->nseg != 3 && c->nseg != 4) || !sbx_seg_is(c, 0, "v1") ||
	    !sbx_seg_is(c, 1, "order") || !sbx_seg_is(c, 2, "tracking")) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 404, "Not Found");
		return;
	}
	if (!sbx_method_is(c, "GET")) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 405, NULL);
		sbx_reply_header(r, "Allow", "GET, HEAD");
		return;
	}
	tok = sbx_bearer(c->authorization);
	if (tok == NULL || strcmp(tok, c->conf->token) != 0) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 401, "Unauthorized");
		return;
	}
	if (c->nseg == 3 || c->seg[3].n == 0) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "order_no is required");
		return;
	}
	if (!sbx_id_parse(c->seg[3], &id)) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "Bad Request: invalid order_no");
		return;
	}
	if (sbx_reserved(&id, SBX_STYLE_MESSAGE, ex, r))
		return;
	if (id.kind == SBX_ID_EMPTY || id.kind == SBX_ID_BIG || id.kind == SBX_ID_WRONGTYPE)
		boscod_variant(ex, &id, r);
	else
		sbx_reply_blob(r, 200, ex);
}

const char *
sbx_boscod_check(void)
{
	const sbx_blob *ex = sbx_blob_get(BOSCOD_EXAMPLE);
	json_t *j;

	if (ex == NULL || (j = sbx_blob_json(ex)) == NULL)
		return BOSCOD_EXAMPLE " missing or not JSON";
	json_decref(j);
	return NULL;
}
