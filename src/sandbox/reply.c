/*
 * reply.c - replies, error bodies, reserved ids and the small parsers the provider handlers
 * share. No sockets, no MHD, no global state.
 */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/utf8.h"

/* ================================================================== small helpers */

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses 1..7 decimal digits; false on anything else. */
static bool
parse_small_uint(const char *s, uint64_t *out)
{
	size_t i;
	uint64_t v = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (!is_digit((unsigned char)s[i]) || i >= 7)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return false;
	*out = v;
	return true;
}

bool
sbx_method_is(const sbx_call *c, const char *m)
{
	if (strcmp(c->method, m) == 0)
		return true;
	return strcmp(m, "GET") == 0 && strcmp(c->method, "HEAD") == 0;
}

bool
sbx_seg_is(const sbx_call *c, size_t i, const char *lit)
{
	size_t n = strlen(lit);

	return i < c->nseg && c->seg[i].n == n && memcmp(c->seg[i].p, lit, n) == 0;
}

int64_t
sbx_now_s(void)
{
	return (int64_t)time(NULL);
}

void
sbx_fmt_time(char *buf, size_t cap, int64_t t, int off_s, const char *fmt)
{
	time_t tt = (time_t)(t + off_s);
	struct tm tm;

	if (cap == 0)
		return;
	buf[0] = '\0';
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, cap, fmt, &tm) == 0)
		buf[0] = '\0';
}

/* ================================================================== replies */

/* Served when building a reply runs out of memory: static, so it cannot fail. */
static const char oom_body[] = SBX_OOM_BODY;

void
sbx_reply_init(sbx_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void
sbx_reply_fini(sbx_reply *r)
{
	if (!r->body_static)
		free(r->body);
	r->body = NULL;
	r->len = 0;
	r->body_static = false;
}

static void
reply_set_static(sbx_reply *r, unsigned status, const char *ctype, const char *body, size_t len)
{
	sbx_reply_fini(r);
	r->status = status;
	r->ctype = ctype;
	r->body = (char *)body; /* never written through: body_static */
	r->len = len;
	r->body_static = true;
}

static void
reply_oom(sbx_reply *r)
{
	reply_set_static(r, 500, "application/json", oom_body, sizeof(oom_body) - 1);
}

void
sbx_reply_blob(sbx_reply *r, unsigned status, const sbx_blob *b)
{
	reply_set_static(r, status, "application/json", sbx_blob_str(b), b->len);
}

void
sbx_reply_take(sbx_reply *r, unsigned status, const char *ctype, char *body, size_t len)
{
	if (body == NULL) {
		reply_oom(r);
		return;
	}
	sbx_reply_fini(r);
	r->status = status;
	r->ctype = ctype;
	r->body = body;
	r->len = len;
	r->body_static = false;
}

void
sbx_reply_json(sbx_reply *r, unsigned status, json_t *j, bool compact)
{
	size_t len = 0;
	char *s;

	if (j == NULL) {
		reply_oom(r);
		return;
	}
	s = json_dumps(j, compact ? JSON_COMPACT : JSON_INDENT(2));
	json_decref(j);
	if (s != NULL) {
		/* end with a newline, like the embedded bodies (and friendlier to curl) */
		size_t n = strlen(s);
		char *t = realloc(s, n + 2);

		if (t == NULL) {
			free(s);
			sbx_reply_take(r, status, "application/json", NULL, 0);
			return;
		}
		s = t;
		s[n] = '\n';
		s[n + 1] = '\0';
		len = n + 1;
	}
	sbx_reply_take(r, status, "application/json", s, len);
}

void
sbx_reply_header(sbx_reply *r, const char *name, const char *fmt, ...)
{
	va_list ap;
	sbx_hdr *h;
	char *p;

	if (r->nhdr >= SBX_MAX_HDRS)
		return;
	h = &r->hdr[r->nhdr++];
	h->name = name;
	va_start(ap, fmt);
	vsnprintf(h->value, sizeof(h->value), fmt, ap);
	va_end(ap);
	/* values are numbers and fixed words, but a header must never carry a line break */
	for (p = h->value; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	}
}

void
sbx_reply_ratelimit(sbx_reply *r, unsigned remaining)
{
	int64_t now = sbx_now_s();

	sbx_reply_header(r, "X-RateLimit-Limit", "100");
	sbx_reply_header(r, "X-RateLimit-Remaining", "%u", remaining);
	sbx_reply_header(r, "X-RateLimit-Reset", "%lld", (long long)(now + (remaining ? 60 : 2)));
	if (remaining == 0)
		sbx_reply_header(r, "Retry-After", "2");
}

void
sbx_reply_405(sbx_reply *r, sbx_style st, const char *msg, const char *allow)
{
	sbx_reply_error(r, st, 405, msg);
	sbx_reply_header(r, "Allow", "%s", allow);
}

/* ================================================================== error bodies */

/* Default text for a status, BosCOD/bosOnline and sandbox style. */
static const char *
reason_text(unsigned status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Record Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 500 ? "Client Error" : "Server Error";
	}
}

/* Fuuffy's code_reason for a status. */
static const char *
fuuffy_reason(unsigned status)
{
	switch (status) {
	case 400: return "BAD_REQUEST";
	case 401: return "UNAUTHORIZED";
	case 403: return "FORBIDDEN";
	case 404: return "NOT_FOUND";
	case 405: return "METHOD_NOT_ALLOWED";
	case 413: return "PAYLOAD_TOO_LARGE";
	case 429: return "TOO_MANY_REQUESTS";
	case 500: return "API_ERROR";
	case 503: return "SERVICE_UNAVAILABLE";
	default: return status < 500 ? "CLIENT_ERROR" : "SERVER_ERROR";
	}
}

json_t *
sbx_fuuffy_error(unsigned status, const char *msg)
{
	char code[16];

	/* the document's 500 is "500999"; every other status is "<status>000" */
	snprintf(code, sizeof(code), "%u%s", status, status == 500 ? "999" : "000");
	if (msg == NULL) {
		switch (status) {
		case 400: msg = "Bad Request"; break;
		case 404: msg = "Not Found"; break;
		case 500: msg = "Api Error, please contact customer service"; break;
		default: msg = reason_text(status); break;
		}
	}
	return json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code, "code_reason",
	                 fuuffy_reason(status), "message", sbx_json_bytes(msg, strlen(msg)));
}

/* Biteship's 8-digit code for a status (see docs/sandbox.md for which are invented). */
static long
biteship_code(unsigned status)
{
	switch (status) {
	case 400: return 40002001;
	case 401: return 40101002;
	case 403: return 40301001;
	default: return (long)status * 100000 + 1;
	}
}

static const char *
biteship_text(unsigned status)
{
	switch (status) {
	case 400: return "Bad request";
	case 401: return "Authorization failed: the key is invalid";
	case 403: return "Key doesn't have access to request API calls";
	case 404: return "Order not found";
	case 429: return "Too many requests";
	case 500: return "Something's wrong with Biteship's internal server";
	case 503: return "Service unavailable";
	default: return reason_text(status);
	}
}

void
sbx_reply_error(sbx_reply *r, sbx_style st, unsigned status, const char *msg)
{
	json_t *j = NULL;

	switch (st) {
	case SBX_STYLE_SANDBOX:
		msg = msg ? msg : reason_text(status);
		j = json_pack("{s:o, s:i}", "error", sbx_json_bytes(msg, strlen(msg)), "status",
		              (int)status);
		break;
	case SBX_STYLE_MESSAGE:
		msg = msg ? msg : reason_text(status);
		j = json_pack("{s:o}", "message", sbx_json_bytes(msg, strlen(msg)));
		break;
	case SBX_STYLE_BITESHIP:
		msg = msg ? msg : biteship_text(status);
		j = json_pack("{s:b, s:o, s:I}", "success", 0, "error",
		              sbx_json_bytes(msg, strlen(msg)), "code",
		              (json_int_t)biteship_code(status));
		break;
	case SBX_STYLE_FUUFFY: j = sbx_fuuffy_error(status, msg); break;
	}
	sbx_reply_json(r, status, j, false);
}

/* ================================================================== reserved ids */

bool
sbx_id_parse(sbx_str s, sbx_id *id)
{
	size_t i;
	const char *t;

	memset(id, 0, sizeof(*id));
	if (s.n == 0 || s.n > SBX_ID_MAX || !is_alnum((unsigned char)s.p[0]))
		return false;
	for (i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
			return false;
	}
	memcpy(id->text, s.p, s.n);
	id->text[s.n] = '\0';
	t = id->text;
	id->kind = SBX_ID_NORMAL;

	if (strncmp(t, "ERR-", 4) == 0) {
		uint64_t v;

		id->kind = SBX_ID_BADRESERVED;
		if (strlen(t + 4) == 3 && parse_small_uint(t + 4, &v) && v >= 400 && v <= 599) {
			id->kind = SBX_ID_ERR;
			id->status = (unsigned)v;
		}
	} else if (strncmp(t, "SLOW-", 5) == 0) {
		id->kind = SBX_ID_BADRESERVED;
		if (parse_small_uint(t + 5, &id->n) && id->n <= SBX_SLOW_MAX_MS)
			id->kind = SBX_ID_SLOW;
	} else if (strncmp(t, "BIG-", 4) == 0) {
		id->kind = SBX_ID_BADRESERVED;
		if (parse_small_uint(t + 4, &id->n) && id->n <= SBX_BIG_MAX)
			id->kind = SBX_ID_BIG;
	} else if (strcmp(t, "MALFORMED") == 0) {
		id->kind = SBX_ID_MALFORMED;
	} else if (strcmp(t, "MALFORMED-HTML") == 0) {
		id->kind = SBX_ID_MALFORMED_HTML;
	} else if (strcmp(t, "WRONGTYPE") == 0) {
		id->kind = SBX_ID_WRONGTYPE;
	} else if (strcmp(t, "EMPTY") == 0) {
		id->kind = SBX_ID_EMPTY;
	} else if (strcmp(t, "ECHO-HEADERS") == 0) {
		id->kind = SBX_ID_ECHO_HEADERS;
	}
	return true;
}

/* What an HTML-speaking proxy in front of a provider answers: 200, but not JSON. */
static const char html_body[] =
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n";

bool
sbx_reserved(const sbx_id *id, sbx_style st, const sbx_blob *example, const char *authorization,
             sbx_reply *r)
{
	size_t cut;
	char echo[600];

	switch (id->kind) {
	case SBX_ID_BADRESERVED:
		sbx_reply_error(r, st, 400,
		                st == SBX_STYLE_MESSAGE ? "Bad Request: unknown reserved id"
		                                        : NULL);
		return true;
	case SBX_ID_ERR:
		sbx_reply_error(r, st, id->status, NULL);
		if (id->status == 429)
			sbx_reply_ratelimit(r, 0);
		return true;
	case SBX_ID_MALFORMED:
		/* the example cut in half (on a UTF-8 character boundary), as a dropped proxy
		 * connection would leave it */
		cut = example->len / 2;
		while (cut > 0 && (example->data[cut] & 0xC0) == 0x80)
			cut--;
		reply_set_static(r, 200, "application/json", sbx_blob_str(example), cut);
		return true;
	case SBX_ID_MALFORMED_HTML:
		reply_set_static(r, 200, "text/html", html_body, sizeof(html_body) - 1);
		return true;
	case SBX_ID_SLOW: r->delay_ms += id->n; return false;
	case SBX_ID_ECHO_HEADERS:
		/* a careless provider: its error text repeats what the request sent */
		snprintf(echo, sizeof(echo), "Bad Request: rejected headers: Authorization: %.500s",
		         authorization != NULL ? authorization : "(none)");
		sbx_reply_error(r, st, 400, echo);
		return true;
	case SBX_ID_NORMAL:
	case SBX_ID_WRONGTYPE:
	case SBX_ID_EMPTY:
	case SBX_ID_BIG: return false;
	}
	return false;
}

bool
sbx_id_reshapes(const sbx_id *id)
{
	return id->kind == SBX_ID_EMPTY || id->kind == SBX_ID_BIG || id->kind == SBX_ID_WRONGTYPE;
}

/* ================================================================== JSON helpers */

json_t *
sbx_blob_json(const sbx_blob *b)
{
	return json_loadb(sbx_blob_str(b), b->len, 0, NULL);
}

json_t *
sbx_json_bytes(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	unsigned char *out;
	size_t i = 0, o = 0, k;
	json_t *j;

	if (p == NULL)
		return json_null();
	j = json_stringn(p, n);
	if (j != NULL)
		return j;
	/* invalid UTF-8: each bad byte becomes U+FFFD (3 bytes) */
	if (n > (SIZE_MAX - 1) / 3 || (out = malloc(n * 3 + 1)) == NULL)
		return NULL;
	while (i < n) {
		k = sg_utf8_seq(s + i, n - i);
		if (k == 0) {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		}
	}
	j = json_stringn((const char *)out, o);
	free(out);
	return j;
}

size_t
sbx_blob_count(const sbx_blob *b, const char *needle)
{
	const char *p = sbx_blob_str(b);
	size_t count = 0, nl = strlen(needle);

	while (nl > 0 && (p = strstr(p, needle)) != NULL) {
		count++;
		p += nl;
	}
	return count;
}

char *
sbx_blob_replace(const sbx_blob *b, const char *needle, const char *with, size_t *len)
{
	const char *s = sbx_blob_str(b);
	const char *hit = strstr(s, needle);
	size_t nl = strlen(needle), wl = strlen(with), pre;
	char *out;

	if (hit == NULL)
		return NULL;
	pre = (size_t)(hit - s);
	*len = b->len - nl + wl;
	if ((out = malloc(*len + 1)) == NULL)
		return NULL;
	memcpy(out, s, pre);
	memcpy(out + pre, with, wl);
	memcpy(out + pre + wl, hit + nl, b->len - pre - nl);
	out[*len] = '\0';
	return out;
}

/* Which original event synthetic event i of n copies (see sbx_big_fill). */
static size_t
big_pick(size_t i, size_t n, size_t len)
{
	if (len <= 2)
		return i % len;
	if (i == 0)
		return 0;
	if (i == n - 1)
		return len - 1;
	return 1 + (i - 1) % (len - 2);
}

int
sbx_big_fill(json_t *arr, size_t n, sbx_retime_fn fn)
{
	json_t *tpl, *ev;
	size_t len, i;
	int rv = 0;

	if ((tpl = json_copy(arr)) == NULL) /* shallow: holds the original events */
		return -1;
	len = json_array_size(tpl);
	json_array_clear(arr);
	for (i = 0; i < n && len > 0; i++) {
		ev = json_deep_copy(json_array_get(tpl, big_pick(i, n, len)));
		if (ev == NULL) {
			rv = -1;
			break;
		}
		fn(ev, i, n);
		if (json_array_append_new(arr, ev) != 0) {
			rv = -1;
			break;
		}
	}
	json_decref(tpl);
	return rv;
}

void
sbx_reply_reshaped(sbx_reply *r, json_t *root, json_t *hist, const sbx_id *id, sbx_retime_fn retime,
                   sbx_reshape_fn edit)
{
	int rv;

	if (root == NULL || !json_is_array(hist)) {
		json_decref(root);
		sbx_reply_json(r, 500, NULL, false);
		return;
	}
	switch (id->kind) {
	case SBX_ID_EMPTY: rv = json_array_clear(hist); break;
	case SBX_ID_BIG: rv = sbx_big_fill(hist, (size_t)id->n, retime); break;
	default: rv = edit(root, id); break;
	}
	if (rv != 0) {
		json_decref(root);
		root = NULL;
	}
	sbx_reply_json(r, 200, root, id->kind == SBX_ID_BIG);
}

/* ================================================================== request parsing */

const char *
sbx_bearer(const char *authz)
{
	if (authz == NULL || strncasecmp(authz, "Bearer", 6) != 0 || authz[6] != ' ')
		return NULL;
	authz += 6;
	while (*authz == ' ')
		authz++;
	return authz;
}

bool
sbx_auth_bearer(const sbx_call *c, sbx_reply *r)
{
	const char *tok = sbx_bearer(c->authorization);

	if (tok != NULL && strcmp(tok, c->conf->token) == 0)
		return true;
	sbx_reply_error(r, SBX_STYLE_MESSAGE, 401, "Unauthorized");
	return false;
}

long
sbx_pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus)
{
	size_t i, o = 0;

	if (cap == 0)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (o + 1 >= cap) {
			out[o] = '\0';
			return -1;
		}
		if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			c = (char)(hexval((unsigned char)s[i + 1]) * 16 +
			           hexval((unsigned char)s[i + 2]));
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return (long)o;
}

int
sbx_form_get(const char *form, const char *key, char *out, size_t cap, size_t *outlen)
{
	const char *p = form, *amp, *eq;
	char name[128];
	long k, v;

	while (p != NULL && *p != '\0') {
		amp = strchr(p, '&');
		if (amp == NULL)
			amp = p + strlen(p);
		eq = memchr(p, '=', (size_t)(amp - p));
		k = sbx_pct_decode(p, (size_t)((eq ? eq : amp) - p), name, sizeof(name), true);
		if (k >= 0 && strcmp(name, key) == 0 && (size_t)k == strlen(name)) {
			v = eq ? sbx_pct_decode(eq + 1, (size_t)(amp - eq - 1), out, cap, true)
			       : sbx_pct_decode("", 0, out, cap, true);
			if (v < 0)
				return -1;
			if (outlen != NULL)
				*outlen = (size_t)v;
			return 1;
		}
		p = *amp ? amp + 1 : amp;
	}
	return 0;
}

/* ================================================================== embedded data */

const sbx_blob *
sbx_blob_get(const char *name)
{
	size_t i;

	for (i = 0; i < sbx_nblobs; i++) {
		if (strcmp(sbx_blobs[i].name, name) == 0)
			return &sbx_blobs[i];
	}
	return NULL;
}
