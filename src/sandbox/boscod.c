/*
 * boscod.c - BosCOD order tracking: GET /boscod/v1/order/tracking/{order_no}.
 *
 * Bearer token auth. Every syntactically fine order_no returns the document's example (the body
 * carries no order number to echo); reserved ids give the error and edge cases. Error bodies
 * are {"message": ...}.
 */
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

/* WRONGTYPE: history a string, last_update a string. */
static int
boscod_wrongtype(json_t *root, const sbx_id *id)
{
	(void)id;
	json_object_set_new(root, "history", json_string("POD scan"));
	json_object_set_new(root, "last_update", json_string("1733106237"));
	return 0;
}

void
sbx_boscod(const sbx_call *c, sbx_reply *r)
{
	const sbx_blob *ex = sbx_blob_get(BOSCOD_EXAMPLE);
	json_t *root;
	sbx_id id;

	if ((c->nseg != 3 && c->nseg != 4) || !sbx_seg_is(c, 0, "v1") ||
	    !sbx_seg_is(c, 1, "order") || !sbx_seg_is(c, 2, "tracking")) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 404, "Not Found");
		return;
	}
	if (!sbx_method_is(c, "GET")) {
		sbx_reply_405(r, SBX_STYLE_MESSAGE, NULL, "GET, HEAD");
		return;
	}
	if (!sbx_auth_bearer(c, r))
		return;
	if (c->nseg == 3 || c->seg[3].n == 0) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "order_no is required");
		return;
	}
	if (!sbx_id_parse(c->seg[3], &id)) {
		sbx_reply_error(r, SBX_STYLE_MESSAGE, 400, "Bad Request: invalid order_no");
		return;
	}
	if (sbx_reserved(&id, SBX_STYLE_MESSAGE, ex, c->authorization, r))
		return;
	if (sbx_id_reshapes(&id)) {
		root = sbx_blob_json(ex);
		sbx_reply_reshaped(r, root, json_object_get(root, "history"), &id, boscod_retime,
		                   boscod_wrongtype);
	} else {
		sbx_reply_blob(r, 200, ex);
	}
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
