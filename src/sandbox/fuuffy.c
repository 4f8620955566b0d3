/*
 * fuuffy.c - Fuuffy: GET /fuuffy/v1/tracking/get/{order_id},
 * GET /fuuffy/v1/tracking/get?tracking_number=, and POST /fuuffy/v1/auth/token (OAuth2 client
 * credentials).
 *
 * Bearer auth accepts the configured static token and any unexpired token this process issued.
 * Any syntactically fine order id or tracking number returns the document's example with that
 * field echoed. Reserved ids give the error and edge cases, plus JSONSTRING / JSONSTRING-LIST
 * (the document's "json-string" fields sent as strings holding JSON), ALLCODES (one event per
 * SF operation code), ERR-ORDER-NOT-FOUND and ERR-401-LEGACY. Errors use the envelope
 * {"error": {"code", "code_reason", "message", "error_code"?, "error_trace"?}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "providers.h"

#define FUUFFY_EXAMPLE         "fuuffy_tracking.json"
#define FUUFFY_ORDER           "3550875"         /* the example's order_id */
#define FUUFFY_TRACKING        "SF7444700508450" /* the example's tracking_number */
#define FUUFFY_ORDER_NEEDLE    "\"order_id\": \"" FUUFFY_ORDER "\""
#define FUUFFY_TRACKING_NEEDLE "\"tracking_number\": \"" FUUFFY_TRACKING "\""
#define FUUFFY_FIRST           1765273029 /* 2025-12-09 17:37:09 +08:00, the example event */
#define HKT                    (8 * 3600) /* zone of the zone-less event dates, UTC+8 */
#define TOKEN_PREFIX           "fuuffy_sbx."
#define CRED_MAX               256 /* longest client_id / client_secret read */

/* ================================================================== errors */

/* 400 in the document's shape: error_code (optional) and one error_trace entry. */
static void
fuuffy_400(sbx_reply *r, const char *error_code, const char *field, const char *msg)
{
	json_t *j = sbx_fuuffy_error(400, "Bad Request");
	json_t *e = json_object_get(j, "error");

	if (error_code != NULL)
		json_object_set_new(e, "error_code", json_string(error_code));
	json_object_set_new(e, "error_trace",
	                    json_pack("[{s:s, s:s}]", "field", field, "message", msg));
	sbx_reply_json(r, 400, j, false);
}

/* ================================================================== tokens */

/* splitmix64's finaliser: enough mixing for a sandbox token signature. */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebu;
	x ^= x >> 31;
	return x;
}

static uint64_t
token_mac(const sbx_conf *conf, uint64_t expiry)
{
	return mix64(mix64(conf->secret[0] ^ expiry) ^ conf->secret[1]);
}

/* A token "fuuffy_sbx.<expiry>.<mac>" valid until expiry. buf holds at least 64 bytes. */
static void
token_make(const sbx_conf *conf, int64_t ttl_s, char *buf, size_t cap)
{
	uint64_t expiry = (uint64_t)(sbx_now_s() + ttl_s);

	snprintf(buf, cap, TOKEN_PREFIX "%llu.%016llx", (unsigned long long)expiry,
	         (unsigned long long)token_mac(conf, expiry));
}

static bool
token_valid(const sbx_conf *conf, const char *tok)
{
	unsigned long long expiry, mac;
	char tail;

	if (strncmp(tok, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1) != 0)
		return false;
	tok += sizeof(TOKEN_PREFIX) - 1;
	if (strlen(tok) > 40 || sscanf(tok, "%20llu.%16llx%c", &expiry, &mac, &tail) != 2)
		return false;
	return mac == token_mac(conf, expiry) && (int64_t)expiry > sbx_now_s();
}

static bool
fuuffy_auth(const sbx_call *c)
{
	const char *tok = sbx_bearer(c->authorization);

	return tok != NULL && (strcmp(tok, c->conf->token) == 0 || token_valid(c->conf, tok));
}

/* Decodes standard base64 into out (NUL-terminated). Returns the length, or -1. */
static long
b64_decode(const char *s, char *out, size_t cap)
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	for (; *s != '\0' && *s != '='; s++) {
		const char *p;
		static const char abc[] =
		        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

		if ((p = strchr(abc, *s)) == NULL)
			return -1;
		acc = (acc << 6) | (unsigned)(p - abc);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xFF);
		}
	}
	out[o] = '\0';
	return (long)o;
}

/* Copies a JSON string member into out; false when absent, not a string, or too long. */
static bool
json_str_member(const json_t *obj, const char *key, char *out, size_t cap)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) || json_string_length(v) >= cap)
		return false;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

/* POST /v1/auth/token: client_credentials from a JSON or form body, or HTTP Basic. */
static void
fuuffy_token(const sbx_call *c, sbx_reply *r)
{
	char id_s[CRED_MAX], secret[CRED_MAX], grant[64], basic[2 * CRED_MAX], tok[80];
	const char *ct = c->content_type ? c->content_type : "";
	int64_t ttl = SBX_TOKEN_TTL_S;
	uint64_t v;
	sbx_id id;

	id_s[0] = secret[0] = grant[0] = '\0';
	if (!sbx_method_is(c, "POST")) {
		sbx_reply_405(r, SBX_STYLE_FUUFFY, NULL, "POST");
		return;
	}
	if (strncasecmp(ct, "application/json", 16) == 0) {
		json_t *j = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, NULL);

		if (!json_is_object(j)) {
			json_decref(j);
			fuuffy_400(r, NULL, "body", "the body must be a JSON object");
			return;
		}
		if (!json_str_member(j, "grant_type", grant, sizeof(grant)))
			grant[0] = '\0';
		if (!json_str_member(j, "client_id", id_s, sizeof(id_s)))
			id_s[0] = '\0';
		if (!json_str_member(j, "client_secret", secret, sizeof(secret)))
			secret[0] = '\0';
		json_decref(j);
	} else if (strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
		if (sbx_form_get(c->body, "grant_type", grant, sizeof(grant), NULL) != 1)
			grant[0] = '\0';
		if (sbx_form_get(c->body, "client_id", id_s, sizeof(id_s), NULL) != 1)
			id_s[0] = '\0';
		if (sbx_form_get(c->body, "client_secret", secret, sizeof(secret), NULL) != 1)
			secret[0] = '\0';
	}
	if (c->authorization != NULL && strncasecmp(c->authorization, "Basic ", 6) == 0) {
		char *colon;

		if (b64_decode(c->authorization + 6, basic, sizeof(basic)) > 0 &&
		    (colon = strchr(basic, ':')) != NULL && (size_t)(colon - basic) < CRED_MAX &&
		    strlen(colon + 1) < CRED_MAX) {
			*colon = '\0';
			strcpy(id_s, basic);
			strcpy(secret, colon + 1);
		}
	}
	if (strcmp(grant, "client_credentials") != 0) {
		fuuffy_400(r, NULL, "grant_type", "grant_type must be client_credentials");
		return;
	}
	if (id_s[0] == '\0') {
		fuuffy_400(r, NULL, "client_id", "client_id is required");
		return;
	}
	if (secret[0] == '\0') {
		fuuffy_400(r, NULL, "client_secret", "client_secret is required");
		return;
	}
	if (!sbx_id_parse((sbx_str){id_s, strlen(id_s)}, &id) ||
	    strcmp(secret, c->conf->token) != 0) {
		sbx_reply_error(r, SBX_STYLE_FUUFFY, 401, NULL);
		return;
	}
	/* EXPIRES-<s>: a token that lives s seconds (to test refreshing) */
	if (strncmp(id.text, "EXPIRES-", 8) == 0) {
		char *end;

		v = strtoull(id.text + 8, &end, 10);
		if (*end != '\0' || id.text[8] == '\0' || v < 1 || v > 86400) {
			fuuffy_400(r, NULL, "client_id", "EXPIRES-<s> takes 1..86400 seconds");
			return;
		}
		ttl = (int64_t)v;
	} else if (sbx_reserved(&id, SBX_STYLE_FUUFFY, sbx_blob_get(FUUFFY_EXAMPLE),
	                        c->authorization, r)) {
		return;
	}
	token_make(c->conf, ttl, tok, sizeof(tok));
	/* wrapped in "data", as Fuuffy's Authentication page shows it (docs/providers.md,
	 * "Fuuffy: token") */
	if (id.kind == SBX_ID_WRONGTYPE)
		sbx_reply_json(r, 200,
		               json_pack("{s:{s:i, s:s, s:s}}", "data", "access_token", 12345,
		                         "token_type", "Bearer", "expires_in", "3600"),
		               false);
	else
		sbx_reply_json(r, 200,
		               json_pack("{s:{s:s, s:s, s:I}}", "data", "access_token", tok,
		                         "token_type", "Bearer", "expires_in", (json_int_t)ttl),
		               false);
}

/* ================================================================== tracking */

/* Sets date of event i: oldest first, one minute apart, zone-less Hong Kong time. */
static void
fuuffy_retime(json_t *ev, size_t i, size_t n)
{
	char buf[32];

	(void)n;
	sbx_fmt_time(buf, sizeof(buf), FUUFFY_FIRST + (int64_t)i * 60, HKT, "%Y-%m-%d %H:%M:%S");
	json_object_set_new(ev, "date", json_string(buf));
}

/* ALLCODES: one event per SF operation code the gateway maps (docs/providers.md,
 * "Fuuffy: event codes"), and one unknown code. */
static json_t *
fuuffy_allcodes(void)
{
	static const char *const ev[][3] = {
	        {"50", "深圳市", "顺丰速运 已收取快件"},
	        {"54", "深圳市", "快件已揽收"},
	        {"30", "深圳市", "快件在【深圳宝安集散中心】完成分拣,准备发往下一站"},
	        {"31", "深圳市", "快件到达【深圳宝安集散中心】"},
	        {"36", "深圳市", "快件已发车"},
	        {"105", "深圳市", "快件已到达口岸,等待清关"},
	        {"106", "香港", "快件已完成清关"},
	        {"310", "香港", "快件在【香港集散中心】转运中"},
	        {"70", "香港", "快件到达【香港旺角营业点】"},
	        {"44", "香港", "正在派送途中"},
	        {"204", "香港", "快件交给派送员,正在派送"},
	        {"80", "香港", "已签收,感谢使用顺丰"},
	        {"631", "香港", "快件已退回寄件人"},
	        {"9999", "香港", "未知操作"},
	};
	json_t *list = json_array();
	size_t i;

	for (i = 0; list != NULL && i < sizeof(ev) / sizeof(ev[0]); i++) {
		json_t *e = json_pack("{s:s, s:s, s:n, s:s}", "code", ev[i][0], "location",
		                      ev[i][1], "date", "message", ev[i][2]);

		if (e == NULL || json_array_append_new(list, e) != 0) {
			json_decref(list);
			return NULL;
		}
		fuuffy_retime(e, i, 0);
	}
	return list;
}

/* Replaces obj[key] by a string holding its compact JSON. Returns 0 or -1. */
static int
stringify_member(json_t *obj, const char *key)
{
	char *s = json_dumps(json_object_get(obj, key), JSON_COMPACT | JSON_ENCODE_ANY);
	int rv;

	if (s == NULL)
		return -1;
	rv = json_object_set_new(obj, key, json_string(s));
	free(s);
	return rv;
}

/* ALLCODES, JSONSTRING, JSONSTRING-LIST and WRONGTYPE. */
static int
fuuffy_edit(json_t *root, const sbx_id *id)
{
	json_t *data = json_object_get(root, "data");
	int rv;

	if (strcmp(id->text, "ALLCODES") == 0)
		return json_object_set_new(data, "tracking_msg_list", fuuffy_allcodes());
	if (strcmp(id->text, "JSONSTRING") == 0) {
		rv = stringify_member(data, "tracking_msg_list");
		return rv ? rv : stringify_member(root, "data");
	}
	if (strcmp(id->text, "JSONSTRING-LIST") == 0)
		return stringify_member(data, "tracking_msg_list");
	/* WRONGTYPE: the list is a number (a string would be a valid json-string) */
	return json_object_set_new(data, "tracking_msg_list", json_integer(42));
}

/* Everything but the plain example: reshaped with jansson, field set to the id asked for. */
static void
fuuffy_variant(const sbx_blob *ex, const sbx_id *id, const char *field, sbx_reply *r)
{
	json_t *root = sbx_blob_json(ex);
	json_t *data = json_object_get(root, "data");
	json_t *list = json_object_get(data, "tracking_msg_list");

	json_object_set_new(data, field, json_string(id->text));
	sbx_reply_reshaped(r, root, list, id, fuuffy_retime, fuuffy_edit);
}

static bool
is_special(const char *t)
{
	return strcmp(t, "ALLCODES") == 0 || strcmp(t, "JSONSTRING") == 0 ||
	       strcmp(t, "JSONSTRING-LIST") == 0;
}

static void
fuuffy_tracking(const sbx_call *c, sbx_reply *r)
{
	const sbx_blob *ex = sbx_blob_get(FUUFFY_EXAMPLE);
	char tn[SBX_ID_MAX + 2], repl[sizeof("\"tracking_number\": \"\"") + SBX_ID_MAX];
	const char *field, *example_val, *needle;
	size_t n = 0, len;
	sbx_str key;
	sbx_id id;
	char *body;
	int found;

	if (!sbx_method_is(c, "GET")) {
		sbx_reply_405(r, SBX_STYLE_FUUFFY, NULL, "GET, HEAD");
		return;
	}
	if (!fuuffy_auth(c)) {
		sbx_reply_error(r, SBX_STYLE_FUUFFY, 401, NULL);
		return;
	}
	if (c->nseg == 4 && c->seg[3].n > 0) {
		key = c->seg[3];
		field = "order_id";
		example_val = FUUFFY_ORDER;
		needle = FUUFFY_ORDER_NEEDLE;
	} else {
		found = c->query ? sbx_form_get(c->query, "tracking_number", tn, sizeof(tn), &n)
		                 : 0;
		if (found == 0 || (found == 1 && n == 0)) {
			fuuffy_400(r, "TRACKING_NUMBER_REQUIRED", "order_id",
			           "order_id is required when tracking_number is not provided");
			return;
		}
		key = (sbx_str){tn, found < 0 ? sizeof(tn) : n};
		field = "tracking_number";
		example_val = FUUFFY_TRACKING;
		needle = FUUFFY_TRACKING_NEEDLE;
	}
	if (!sbx_id_parse(key, &id)) {
		fuuffy_400(r, NULL, field,
		           strcmp(field, "order_id") == 0 ? "order_id is invalid"
		                                          : "tracking_number is invalid");
		return;
	}
	if (strcmp(id.text, "ERR-401-LEGACY") == 0) {
		sbx_reply_json(r, 401,
		               json_pack("{s:{s:s, s:s}}", "error", "code", "invalid_token",
		                         "message", "The access token is invalid or has expired"),
		               false);
		return;
	}
	if (strcmp(id.text, "ERR-ORDER-NOT-FOUND") == 0) {
		fuuffy_400(r, "ORDER_NOT_FOUND", field, "order not found");
		return;
	}
	if (id.kind == SBX_ID_ERR && id.status == 400) { /* the document's sample, as is */
		fuuffy_400(r, NULL, "order_id",
		           "order_id is required when tracking_number is not provided");
		return;
	}
	if (!is_special(id.text) && sbx_reserved(&id, SBX_STYLE_FUUFFY, ex, c->authorization, r))
		return;
	sbx_reply_ratelimit(r, 99);
	if (is_special(id.text) || sbx_id_reshapes(&id)) {
		fuuffy_variant(ex, &id, field, r);
		return;
	}
	if (strcmp(id.text, example_val) == 0) {
		sbx_reply_blob(r, 200, ex);
		return;
	}
	snprintf(repl, sizeof(repl), "\"%s\": \"%s\"", field, id.text);
	body = sbx_blob_replace(ex, needle, repl, &len);
	sbx_reply_take(r, 200, "application/json", body, len);
}

/* ================================================================== entry */

void
sbx_fuuffy(const sbx_call *c, sbx_reply *r)
{
	if (c->nseg == 3 && sbx_seg_is(c, 0, "v1") && sbx_seg_is(c, 1, "auth") &&
	    sbx_seg_is(c, 2, "token"))
		fuuffy_token(c, r);
	else if ((c->nseg == 3 || c->nseg == 4) && sbx_seg_is(c, 0, "v1") &&
	         sbx_seg_is(c, 1, "tracking") && sbx_seg_is(c, 2, "get"))
		fuuffy_tracking(c, r);
	else
		sbx_reply_error(r, SBX_STYLE_FUUFFY, 404, "Resource or endpoint not found.");
}

const char *
sbx_fuuffy_check(void)
{
	const sbx_blob *ex = sbx_blob_get(FUUFFY_EXAMPLE);
	json_t *j;

	if (ex == NULL || (j = sbx_blob_json(ex)) == NULL)
		return FUUFFY_EXAMPLE " missing or not JSON";
	json_decref(j);
	if (sbx_blob_count(ex, FUUFFY_ORDER_NEEDLE) != 1 ||
	    sbx_blob_count(ex, FUUFFY_TRACKING_NEEDLE) != 1)
		return FUUFFY_EXAMPLE " must hold the example order_id and tracking_number once";
	return NULL;
}
