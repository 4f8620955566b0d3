/*
 * common.c - helpers every provider translation shares (see common.h).
 */
#include "providers/common.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== small helpers */

sg_err
sg_nomem(sg_status *st)
{
	st->err = SG_ENOMEM;
	st->message = NULL; /* sg_strerror() text: nothing more can be allocated */
	return SG_ENOMEM;
}

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int
sg_ascii_casecmp(const char *x, const char *y)
{
	if (x == NULL || y == NULL)
		return (x != NULL) - (y != NULL);
	for (;; x++, y++) {
		int cx = ascii_lower((unsigned char)*x), cy = ascii_lower((unsigned char)*y);
		if (cx != cy || cx == '\0')
			return cx - cy;
	}
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static const char hexdig[] = "0123456789ABCDEF";

/* ================================================================== identifiers and URLs */

enum id_class {
	ID_REFUSE,  /* never goes into a URL */
	ID_LITERAL, /* copied as is */
	ID_ENCODE,  /* allowed, but sent as %XX because it is reserved somewhere */
};

/*
 * THE identifier policy: what a byte of an identifier (order number, AWB, form id) may be
 * when it becomes one URL path segment. Everything not listed is refused, in every policy:
 *   - CR, LF, NUL and every other control byte (header injection, C string truncation);
 *   - '/' and '\' (a second path segment; some servers treat '\' as '/');
 *   - '?' and '#' (start the query or the fragment);
 *   - '%' (would be decoded a second time upstream: "a%2Fb" must not become "a/b");
 *   - space, '"', '<', '>', '`', '^', '{', '|', '}', '[', ']' (not valid in a URL);
 *   - bytes >= 0x80 (non-ASCII: no provider id needs it, and encodings differ).
 * Dot segments ("." and "..") are refused separately, since curl collapses them.
 *   SG_ID_STRICT      A-Z a-z 0-9 - _            (BosCOD order numbers are these in practice)
 *   SG_ID_UNRESERVED  ... plus . ~               (RFC 3986 unreserved)
 *   SG_ID_SUBDELIMS   ... plus ! $ & ' ( ) * + , ; = : @, percent-encoded so that no server
 *                     reads them as matrix parameters or credentials
 */
static enum id_class
id_byte_class(unsigned char c, sg_idpol pol)
{
	if (is_alnum(c) || c == '-' || c == '_')
		return ID_LITERAL;
	if (pol == SG_ID_STRICT)
		return ID_REFUSE;
	if (c == '.' || c == '~')
		return ID_LITERAL;
	if (pol == SG_ID_UNRESERVED)
		return ID_REFUSE;
	if (c != '\0' && strchr("!$&'()*+,;=:@", c) != NULL)
		return ID_ENCODE;
	return ID_REFUSE;
}

static const char *
id_policy_text(sg_idpol pol)
{
	switch (pol) {
	case SG_ID_STRICT: return "A-Z a-z 0-9 - _";
	case SG_ID_UNRESERVED: return "A-Z a-z 0-9 - _ . ~";
	default: return "A-Z a-z 0-9 - _ . ~ ! $ & ' ( ) * + , ; = : @";
	}
}

/* A violation whose description is formatted into the arena (static fallback when full). */
static sg_err invalid_fmt(sg_status *st, sg_arena *a, const char *field, const char *fallback,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static sg_err
invalid_fmt(sg_status *st, sg_arena *a, const char *field, const char *fallback, const char *fmt,
            ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *d = sg_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return sg_status_invalid(st, a, field, d != NULL ? d : fallback);
}

sg_err
sg_path_segment(sg_arena *a, const char *field, const char *id, size_t len, sg_idpol pol,
                const char **out, sg_status *st)
{
	size_t extra = 0;

	*out = NULL;
	if (id == NULL || len == 0)
		return sg_status_invalid(st, a, field, "must not be empty");
	if (len > SG_ID_MAX)
		return invalid_fmt(st, a, field, "is too long", "is %zu bytes, longer than %d", len,
		                   SG_ID_MAX);
	if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
		return sg_status_invalid(st, a, field, "must not be \".\" or \"..\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		switch (id_byte_class(c, pol)) {
		case ID_LITERAL: break;
		case ID_ENCODE: extra += 2; break;
		case ID_REFUSE:
			if (c > 0x20 && c < 0x7F)
				return invalid_fmt(
				        st, a, field, "contains a byte that is not allowed",
				        "'%c' at offset %zu is not allowed (allowed: %s)", c, i,
				        id_policy_text(pol));
			return invalid_fmt(st, a, field, "contains a byte that is not allowed",
			                   "byte 0x%02X at offset %zu is not allowed (allowed: %s)",
			                   c, i, id_policy_text(pol));
		}
	}

	char *p = sg_arena_alloc(a, len + extra + 1);
	if (p == NULL)
		return sg_nomem(st);
	char *w = p;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (id_byte_class(c, pol) == ID_ENCODE) {
			*w++ = '%';
			*w++ = hexdig[c >> 4];
			*w++ = hexdig[c & 0xF];
		} else {
			*w++ = (char)c;
		}
	}
	*w = '\0';
	*out = p;
	return SG_OK;
}

sg_err
sg_query_value(sg_arena *a, const char *field, const char *v, size_t len, size_t max_len,
               const char **out, sg_status *st)
{
	size_t outlen = 0;

	*out = NULL;
	if (v == NULL || len == 0)
		return sg_status_invalid(st, a, field, "must not be empty");
	if (len > max_len)
		return invalid_fmt(st, a, field, "is too long", "is %zu bytes, longer than %zu",
		                   len, max_len);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7F)
			return invalid_fmt(st, a, field, "contains a control byte",
			                   "control byte 0x%02X at offset %zu is not allowed", c,
			                   i);
		size_t n = sg_utf8_seq((const unsigned char *)v + i, len - i);
		if (n == 0)
			return invalid_fmt(st, a, field, "is not valid UTF-8",
			                   "is not valid UTF-8 at offset %zu", i);
		for (size_t k = 0; k < n; k++) {
			unsigned char b = (unsigned char)v[i + k];
			outlen += is_alnum(b) || strchr("-._~", b) != NULL ? 1 : 3;
		}
		i += n;
	}

	char *p = sg_arena_alloc(a, outlen + 1);
	if (p == NULL)
		return sg_nomem(st);
	char *w = p;
	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)v[i];
		if (is_alnum(b) || (b != '\0' && strchr("-._~", b) != NULL)) {
			*w++ = (char)b;
		} else {
			*w++ = '%';
			*w++ = hexdig[b >> 4];
			*w++ = hexdig[b & 0xF];
		}
	}
	*w = '\0';
	*out = p;
	return SG_OK;
}

char *
sg_url_join(sg_arena *a, const char *base, ...)
{
	va_list ap;
	size_t blen = strlen(base), total;
	const char *s;

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	total = blen;
	va_start(ap, base);
	while ((s = va_arg(ap, const char *)) != NULL)
		total += strlen(s);
	va_end(ap);

	char *p = sg_arena_alloc(a, total + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, base, blen);
	char *w = p + blen;
	va_start(ap, base);
	while ((s = va_arg(ap, const char *)) != NULL) {
		size_t n = strlen(s);
		memcpy(w, s, n);
		w += n;
	}
	va_end(ap);
	*w = '\0';
	return p;
}

char *
sg_url_add_query(sg_arena *a, const char *url, const char *key, const char *value)
{
	assert(key[strcspn(key, "?#&=% \r\n")] == '\0'); /* a literal from the code */
	return sg_arena_printf(a, "%s%c%s=%s", url, strchr(url, '?') != NULL ? '&' : '?', key,
	                       value);
}

/* ================================================================== the upstream request */

sg_err
sg_request_check(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d, const char *what,
                 sg_arena *a, sg_status *st)
{
	if (req == NULL || req->descriptor != d)
		return sg_status_set(st, a, SG_EINTERNAL, "%s: not a %s", what, d->short_name);
	return SG_OK;
}

void
sg_http_req_init(sg_http_req *r, const char *method, const char *url)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->url = url;
}

sg_err
sg_http_req_header(sg_http_req *r, const char *line, sg_arena *a, sg_status *st)
{
	for (const unsigned char *p = (const unsigned char *)line; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7F)
			return sg_status_set(st, a, SG_EINTERNAL,
			                     "header line holds a control byte");
	if (r->nheaders >= SG_HTTP_MAX_HEADERS)
		return sg_status_set(st, a, SG_EINTERNAL, "more than %d upstream headers",
		                     SG_HTTP_MAX_HEADERS);
	r->headers[r->nheaders++] = line;
	return SG_OK;
}

sg_err
sg_pconf_check(const sg_pconf *pc, sg_arena *a, sg_status *st)
{
	const char *name = pc->name != NULL ? pc->name : "provider";

	if (pc->base_url == NULL || pc->base_url[0] == '\0')
		return sg_status_set(st, a, SG_ENOPROVIDER, "%s: base_url not configured", name);
	for (const unsigned char *p = (const unsigned char *)pc->base_url; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7F)
			return sg_status_set(st, a, SG_EINTERNAL,
			                     "%s: base_url holds a byte that cannot go in a URL",
			                     name);
	return SG_OK;
}

/* RFC 7230 tchar: what an auth scheme may be made of. */
static bool
is_tchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

sg_err
sg_auth_header(const sg_pconf *pc, sg_arena *a, const char **out, sg_status *st)
{
	const char *name = pc->name != NULL ? pc->name : "provider";
	const char *scheme = pc->auth_scheme != NULL ? pc->auth_scheme : "Bearer";
	char *line;

	*out = NULL;
	if (pc->token == NULL || pc->token[0] == '\0')
		return sg_status_set(st, a, SG_ENOCRED, "%s: token not configured", name);
	/* The token goes into a header line: visible ASCII only, so that no byte of it can end
	 * the line or start another one. The message never quotes the token. */
	for (const unsigned char *p = (const unsigned char *)pc->token; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7F)
			return sg_status_set(st, a, SG_ENOCRED,
			                     "%s: token holds a byte that cannot go in a header "
			                     "(control, space or non-ASCII)",
			                     name);
	for (const unsigned char *p = (const unsigned char *)scheme; *p != '\0'; p++)
		if (!is_tchar(*p))
			return sg_status_set(st, a, SG_ENOCRED,
			                     "%s: auth_scheme is not an HTTP token", name);
	if (scheme[0] == '\0')
		line = sg_arena_printf(a, "Authorization: %s", pc->token);
	else
		line = sg_arena_printf(a, "Authorization: %s %s", scheme, pc->token);
	if (line == NULL)
		return sg_nomem(st);
	*out = line;
	return SG_OK;
}

sg_err
sg_http_req_start(sg_http_req *r, const sg_pconf *pc, const char *method, sg_arena *a,
                  sg_status *st)
{
	const char *auth;
	sg_err rv;

	/* the config before the credential: an unconfigured provider is not a missing token */
	if ((rv = sg_pconf_check(pc, a, st)) != SG_OK ||
	    (rv = sg_auth_header(pc, a, &auth, st)) != SG_OK)
		return rv;
	sg_http_req_init(r, method, NULL);
	return sg_http_req_header(r, auth, a, st);
}

/* ================================================================== the upstream answer */

bool
sg_http_is_success(int http_status)
{
	return http_status >= 200 && http_status <= 299;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

bool
sg_http_header(const sg_http_resp *resp, const char *name, const char **val, size_t *len)
{
	const char *p = resp->headers, *end;
	size_t nlen = strlen(name);

	if (p == NULL)
		return false;
	end = p + resp->headers_len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol != NULL ? eol + 1 : end;
		const char *le = eol != NULL ? eol : end;
		if (le > p && le[-1] == '\r')
			le--;
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (colon != NULL && (size_t)(colon - p) == nlen) {
			size_t i;
			for (i = 0; i < nlen; i++)
				if (ascii_lower((unsigned char)p[i]) !=
				    ascii_lower((unsigned char)name[i]))
					break;
			if (i == nlen) {
				const char *v = colon + 1;
				while (v < le && is_blank(*v))
					v++;
				while (le > v && is_blank(le[-1]))
					le--;
				*val = v;
				*len = (size_t)(le - v);
				return true;
			}
		}
		p = next;
	}
	return false;
}

#define RETRY_AFTER_MAX_S 86400

int64_t
sg_retry_after_ms(const sg_http_resp *resp)
{
	const char *v;
	size_t len;
	int64_t s = 0;

	if (!sg_http_header(resp, "Retry-After", &v, &len) || len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0; /* an HTTP-date, or garbage */
		if (s < RETRY_AFTER_MAX_S)
			s = s * 10 + (v[i] - '0');
	}
	if (s > RETRY_AFTER_MAX_S)
		s = RETRY_AFTER_MAX_S;
	return s * 1000;
}

#define ERR_TEXT_MAX 1024

const char *
sg_error_text(sg_arena *a, const char *s, size_t n)
{
	if (n > ERR_TEXT_MAX) {
		n = ERR_TEXT_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return sg_arena_strndup(a, s, n);
}

const char *
sg_error_code(sg_arena *a, json_t *v)
{
	if (json_is_string(v))
		return sg_error_text(a, json_string_value(v), json_string_length(v));
	if (json_is_integer(v))
		return sg_arena_printf(a, "%lld", (long long)json_integer_value(v));
	return NULL;
}

/* A message member as text: a string, or an array of strings joined with "; ". */
static const char *
err_msg(sg_arena *a, json_t *v)
{
	if (json_is_string(v))
		return sg_error_text(a, json_string_value(v), json_string_length(v));
	if (json_is_array(v) && json_array_size(v) > 0) {
		size_t total = 0, n = json_array_size(v), i;
		for (i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_string(e))
				return NULL;
			total += json_string_length(e) + 2;
			if (total > ERR_TEXT_MAX * 2)
				break;
		}
		char *buf = sg_arena_alloc(a, total + 1);
		if (buf == NULL)
			return NULL;
		char *w = buf;
		for (i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			size_t l = json_string_length(e);
			if ((size_t)(w - buf) + l + 2 > total)
				break;
			if (w != buf) {
				*w++ = ';';
				*w++ = ' ';
			}
			memcpy(w, json_string_value(e), l);
			w += l;
		}
		return sg_error_text(a, buf, (size_t)(w - buf));
	}
	return NULL;
}

json_t *
sg_error_parse(const char *body, size_t len)
{
	if (body == NULL || len == 0)
		return NULL;
	return json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
}

void
sg_error_body(const char *body, size_t len, sg_arena *a, const char **code, const char **msg)
{
	json_t *root = sg_error_parse(body, len);

	sg_error_json(root, a, code, msg);
	json_decref(root);
}

void
sg_error_json(json_t *root, sg_arena *a, const char **code, const char **msg)
{
	json_t *eo;

	*code = *msg = NULL;
	if (root == NULL)
		return; /* not JSON: the HTTP status alone tells what happened */
	if (json_is_string(root)) {
		*msg = err_msg(a, root);
	} else if (json_is_object(root)) {
		eo = json_object_get(root, "error");
		if (!json_is_object(eo))
			eo = NULL;
		const char *msgkeys[] = {"message", "msg", "error", "error_description", "detail"};
		for (size_t i = 0; *msg == NULL && i < sizeof(msgkeys) / sizeof(msgkeys[0]); i++) {
			*msg = err_msg(a, json_object_get(root, msgkeys[i]));
			if (*msg == NULL && eo != NULL && i == 0)
				*msg = err_msg(a, json_object_get(eo, "message"));
		}
		*code = sg_error_code(a, json_object_get(root, "code"));
		if (*code == NULL && eo != NULL)
			*code = sg_error_code(a, json_object_get(eo, "code"));
		if (*code == NULL)
			*code = sg_error_code(a, json_object_get(root, "error_code"));
		if (*code == NULL && eo != NULL)
			*code = sg_error_code(a, json_object_get(eo, "error_code"));
	}
}

void
sg_http_error_detail(const char *provider, const sg_http_resp *resp, json_t *root, sg_arena *a,
                     sg_status *st)
{
	const char *code, *msg;

	sg_error_json(root, a, &code, &msg);
	st->http_status = resp->status;
	st->provider = provider;
	st->provider_code = code;
	st->provider_message = msg;
	st->retry_after_ms = sg_retry_after_ms(resp);
}

sg_err
sg_http_error_class(int status)
{
	sg_err err = sg_err_from_http(status);
	return err != SG_OK ? err : SG_EUP_HTTP; /* 1xx/3xx (or a 2xx the caller does not accept) */
}

sg_err
sg_http_error_say(const char *provider, const sg_http_resp *resp, sg_err err, const char *mid,
                  const char *tail, sg_arena *a, sg_status *st)
{
	const char *msg = st->provider_message;

	return sg_status_set(st, a, err, "%s answered HTTP %d%s%s%s%s", provider, resp->status, mid,
	                     msg != NULL ? ": " : "", msg != NULL ? msg : "", tail);
}

sg_err
sg_http_error(const char *provider, const sg_http_resp *resp, sg_arena *a, sg_status *st)
{
	json_t *root = sg_error_parse(resp->body, resp->body_len);

	sg_http_error_detail(provider, resp, root, a, st);
	json_decref(root);
	return sg_http_error_say(provider, resp, sg_http_error_class(resp->status), "", "", a, st);
}

sg_err
sg_parse_fail(const char *provider, const sg_http_resp *resp, sg_err rv, sg_status *st)
{
	st->provider = provider;
	if (st->http_status == 0 && rv != SG_EINTERNAL)
		st->http_status = resp->status;
	return rv;
}

/* ================================================================== JSON (jansson) */

#define JPATH_BUF 256

static size_t
jpath_fmt(char *buf, size_t off, const sg_jpath *at)
{
	if (at == NULL)
		return off;
	off = jpath_fmt(buf, off, at->up);
	if (off >= JPATH_BUF)
		return off;
	int n;
	if (at->key != NULL)
		n = snprintf(buf + off, JPATH_BUF - off, "%s%s", off > 0 ? "." : "", at->key);
	else
		n = snprintf(buf + off, JPATH_BUF - off, "%s[%zu]", off > 0 ? "" : "$", at->index);
	return n < 0 ? JPATH_BUF : off + (size_t)n;
}

char *
sg_jpath_str(sg_arena *a, const sg_jpath *at, const char *key)
{
	char buf[JPATH_BUF];
	sg_jpath leaf = {at, key, 0};
	size_t n;

	buf[0] = '\0';
	n = jpath_fmt(buf, 0, key != NULL ? &leaf : at);
	if (n == 0)
		return sg_arena_strdup(a, "$");
	return sg_arena_strdup(a, buf); /* snprintf kept it terminated, even when cut */
}

/* The name of v's JSON type, as the messages here give it ("object", "integer", "number",
 * "boolean", ...). Static text. v must not be NULL. */
static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	default: return "null";
	}
}

sg_err
sg_json_bad(sg_jctx *c, const sg_jpath *at, const char *key, const char *what)
{
	char *path = sg_jpath_str(c->a, at, key);

	if (path == NULL) /* keep the kind of error even when its text cannot be made */
		return sg_status_set(c->st, c->a, SG_EUP_MALFORMED, NULL);
	return sg_status_set(c->st, c->a, SG_EUP_MALFORMED, "%s: %s", path, what);
}

sg_err
sg_json_wrong_type(sg_jctx *c, const sg_jpath *at, const char *key, const char *want,
                   const json_t *got)
{
	char *path;

	if (got == NULL)
		return sg_json_bad(c, at, key, "missing");
	if ((path = sg_jpath_str(c->a, at, key)) == NULL)
		return sg_status_set(c->st, c->a, SG_EUP_MALFORMED, NULL);
	return sg_status_set(c->st, c->a, SG_EUP_MALFORMED, "%s: expected %s, got %s", path, want,
	                     json_type_name(got));
}

/* Copies jansson's error text, with anything but printable ASCII replaced by '?'. */
static char *
clean_text(sg_arena *a, const char *s)
{
	char *p = sg_arena_strdup(a, s);
	if (p != NULL)
		for (char *q = p; *q != '\0'; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7F)
				*q = '?';
	return p;
}

/*
 * jansson's allocations can come from the call's arena: a parse then costs bump-pointer
 * allocations and no frees, and everything goes at the arena's reset. The hooks are
 * process-global, so the program opts in once at start-up (before any jansson use), and each
 * thread names its current arena; without one, allocations go to malloc. A 16-byte header says
 * which, so that json_decref frees only what malloc gave.
 */
struct json_hdr {
	uintptr_t from_arena; /* 1: arena (free is a no-op), 0: malloc */
	uintptr_t pad;        /* keeps the payload 16-byte aligned */
};

static _Thread_local sg_arena *json_arena;

static void *
json_hook_malloc(size_t n)
{
	struct json_hdr *h;
	sg_arena *a = json_arena;
	if (n > SIZE_MAX - sizeof(*h))
		return NULL;
	h = a != NULL ? sg_arena_alloc(a, n + sizeof(*h)) : malloc(n + sizeof(*h));
	if (h == NULL)
		return NULL;
	h->from_arena = a != NULL;
	return h + 1;
}

static void
json_hook_free(void *p)
{
	if (p != NULL) {
		struct json_hdr *h = (struct json_hdr *)p - 1;
		if (!h->from_arena)
			free(h);
	}
}

void
sg_json_use_arenas(void)
{
	json_set_alloc_funcs(json_hook_malloc, json_hook_free);
}

sg_arena *
sg_json_arena_set(sg_arena *a)
{
	sg_arena *old = json_arena;
	json_arena = a;
	return old;
}

/* The fewest significant digits (1-17) with which "%.*g" prints d so that it reads back as
 * exactly d: 17 always do, most values need fewer. */
static int
real_digits(double d)
{
	char buf[40];

	for (int p = 1; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			return p;
	}
	return 17;
}

/* The digits that every real inside v needs (0 when v holds none). */
static int
digits_needed(json_t *v)
{
	const char *k;
	json_t *e;
	size_t i;
	int p = 0, q;

	if (json_is_real(v))
		return real_digits(json_real_value(v));
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			if ((q = digits_needed(e)) > p)
				p = q;
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, e)
		{
			if ((q = digits_needed(e)) > p)
				p = q;
		}
	}
	return p;
}

sg_err
sg_json_dump(sg_arena *a, json_t *v, size_t flags, const char **out, size_t *len, sg_status *st)
{
	int prec = digits_needed(v);
	size_t n;
	char *buf;

	*out = NULL;
	flags |= JSON_REAL_PRECISION(prec > 0 ? prec : 17);
	if ((n = json_dumpb(v, NULL, 0, flags)) == 0 || (buf = sg_arena_alloc(a, n + 1)) == NULL ||
	    json_dumpb(v, buf, n, flags) != n)
		return sg_nomem(st); /* jansson (loop check) or the arena ran out */
	buf[n] = '\0';
	*out = buf;
	if (len != NULL)
		*len = n;
	return SG_OK;
}

sg_err
sg_json_parse(sg_jctx *c, const char *body, size_t len, json_t **out)
{
	json_error_t je;

	*out = NULL;
	if (body == NULL || len == 0)
		return sg_status_set(c->st, c->a, SG_EUP_MALFORMED,
		                     "empty body where JSON was expected");
	if ((*out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)) != NULL)
		return SG_OK;
	/* jansson 2.14 seldom says json_error_out_of_memory: a failed allocation usually leaves
	 * the error text empty (no error was recorded), and sometimes surfaces as a syntax error,
	 * which cannot be told apart from a real one. */
	if (json_error_code(&je) == json_error_out_of_memory || je.text[0] == '\0')
		return sg_nomem(c->st);
	char *why = clean_text(c->a, je.text);
	if (why == NULL)
		return sg_status_set(c->st, c->a, SG_EUP_MALFORMED, NULL);
	return sg_status_set(c->st, c->a, SG_EUP_MALFORMED, "invalid JSON at line %d column %d: %s",
	                     je.line, je.column, why);
}

enum jwant { J_STR, J_INT, J_NUM, J_BOOL, J_ARR, J_OBJ };

static const char *const jwant_name[] = {"string",  "integer", "number",
                                         "boolean", "array",   "object"};

static bool
jwant_ok(const json_t *v, enum jwant w)
{
	switch (w) {
	case J_STR: return json_is_string(v);
	case J_INT: return json_is_integer(v);
	case J_NUM: return json_is_number(v);
	case J_BOOL: return json_is_boolean(v);
	case J_ARR: return json_is_array(v);
	default: return json_is_object(v);
	}
}

/* The member key of obj if it has type w. *out NULL when null/missing and nullable. */
static sg_err
jmember(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, enum jwant w, bool nullable,
        json_t **out)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (nullable)
			return SG_OK;
		return sg_json_wrong_type(c, at, key, jwant_name[w], v);
	}
	if (!jwant_ok(v, w))
		return sg_json_wrong_type(c, at, key, jwant_name[w], v);
	*out = v;
	return SG_OK;
}

static sg_err
jstr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, bool nullable, const char **out)
{
	json_t *v;
	sg_err rv;

	*out = NULL;
	if ((rv = jmember(c, obj, at, key, J_STR, nullable, &v)) != SG_OK || v == NULL)
		return rv;
	if ((*out = sg_arena_strndup(c->a, json_string_value(v), json_string_length(v))) == NULL)
		return sg_nomem(c->st);
	return SG_OK;
}

sg_err
sg_json_req_str(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, const char **out)
{
	return jstr(c, obj, at, key, false, out);
}

sg_err
sg_json_opt_str(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, const char **out)
{
	return jstr(c, obj, at, key, true, out);
}

sg_err
sg_json_req_int(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, int64_t *out)
{
	json_t *v;
	sg_err rv;

	if ((rv = jmember(c, obj, at, key, J_INT, false, &v)) != SG_OK)
		return rv;
	*out = (int64_t)json_integer_value(v);
	return SG_OK;
}

sg_err
sg_json_opt_int(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, int64_t *out,
                bool *present)
{
	json_t *v;
	sg_err rv;

	*present = false;
	if ((rv = jmember(c, obj, at, key, J_INT, true, &v)) != SG_OK || v == NULL)
		return rv;
	*out = (int64_t)json_integer_value(v);
	*present = true;
	return SG_OK;
}

sg_err
sg_json_opt_num(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, double *out,
                bool *present)
{
	json_t *v;
	sg_err rv;

	*present = false;
	if ((rv = jmember(c, obj, at, key, J_NUM, true, &v)) != SG_OK || v == NULL)
		return rv;
	*out = json_number_value(v);
	*present = true;
	return SG_OK;
}

sg_err
sg_json_opt_bool(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, bool *out,
                 bool *present)
{
	json_t *v;
	sg_err rv;

	*present = false;
	if ((rv = jmember(c, obj, at, key, J_BOOL, true, &v)) != SG_OK || v == NULL)
		return rv;
	*out = json_is_true(v);
	*present = true;
	return SG_OK;
}

sg_err
sg_json_req_arr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out)
{
	return jmember(c, obj, at, key, J_ARR, false, out);
}

sg_err
sg_json_opt_arr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out)
{
	return jmember(c, obj, at, key, J_ARR, true, out);
}

sg_err
sg_json_req_obj(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out)
{
	return jmember(c, obj, at, key, J_OBJ, false, out);
}

sg_err
sg_json_opt_obj(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out)
{
	return jmember(c, obj, at, key, J_OBJ, true, out);
}

sg_err
sg_json_opt_intstr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, int64_t *out,
                   bool *present)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	*present = false;
	if (v == NULL || json_is_null(v))
		return SG_OK;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		*present = true;
		return SG_OK;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v), i = 0;
		bool neg = false;
		int64_t x = 0;
		if (n > 0 && s[0] == '-') {
			neg = true;
			i = 1;
		}
		if (i == n || n - i > 18) /* 18 digits cannot overflow int64 */
			goto bad;
		for (; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				goto bad;
			x = x * 10 + (s[i] - '0');
		}
		*out = neg ? -x : x;
		*present = true;
		return SG_OK;
	}
bad:
	return sg_json_wrong_type(c, at, key, "integer or decimal string", v);
}

sg_err
sg_json_expect_obj(sg_jctx *c, json_t *v, const sg_jpath *at)
{
	if (json_is_object(v))
		return SG_OK;
	return sg_json_wrong_type(c, at, NULL, "object", v);
}

/* ================================================================== times */

/* s[0..n) as a decimal number when it is exactly n digits. */
static bool
fixed_digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil): no timegm(), which depends on the C library and TZ. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
month_days(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* The zone suffix z[0..n) after the time ("Z", "+07:00", "+0700", "+07"). */
static bool
iso_zone(const char *z, size_t n, sg_isotime *out)
{
	int hh = 0, mm = 0;
	bool ok;

	if (n == 1 && (z[0] == 'Z' || z[0] == 'z')) {
		out->has_offset = true;
		return true;
	}
	if (n < 3 || (z[0] != '+' && z[0] != '-'))
		return false;
	if (n == 3)
		ok = fixed_digits(z + 1, 2, &hh);
	else if (n == 5)
		ok = fixed_digits(z + 1, 2, &hh) && fixed_digits(z + 3, 2, &mm);
	else if (n == 6)
		ok = z[3] == ':' && fixed_digits(z + 1, 2, &hh) && fixed_digits(z + 4, 2, &mm);
	else
		ok = false;
	if (!ok || hh > 18 || mm > 59 || (hh == 18 && mm > 0))
		return false;
	out->offset_s = (z[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
	out->has_offset = true;
	return true;
}

bool
sg_iso8601_parse(const char *s, size_t len, sg_isotime *out)
{
	int y, mo, d, h, mi, sec = 0;
	size_t i = 16;

	memset(out, 0, sizeof(*out));
	if (s == NULL || len < 16)
		return false;
	if (!fixed_digits(s, 4, &y) || s[4] != '-' || !fixed_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !fixed_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !fixed_digits(s + 11, 2, &h) || s[13] != ':' || !fixed_digits(s + 14, 2, &mi))
		return false;
	if (i < len && s[i] == ':') {
		if (len - i < 3 || !fixed_digits(s + i + 1, 2, &sec))
			return false;
		i += 3;
		if (i < len && (s[i] == '.' || s[i] == ',')) {
			size_t start = ++i;
			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
			if (i == start)
				return false;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || sec > 60 ||
	    (i < len && !iso_zone(s + i, len - i, out))) {
		memset(out, 0, sizeof(*out));
		return false;
	}
	out->wall_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return true;
}

bool
sg_time_iso(const sg_pconf *pc, int32_t default_offset_s, const char *s, size_t len, int64_t *utc,
            int32_t *offset_s, Shipgate__V1__OffsetSource *src)
{
	sg_isotime t;

	*utc = 0;
	*offset_s = 0;
	*src = SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_UNSPECIFIED;
	if (!sg_iso8601_parse(s, len, &t))
		return false;
	if (t.has_offset) {
		*offset_s = t.offset_s;
		*src = SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_TEXT;
	} else if (pc != NULL && pc->utc_offset_set) {
		*offset_s = pc->utc_offset_s;
		*src = SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_CONFIG;
	} else {
		*offset_s = default_offset_s;
		*src = SHIPGATE__V1__OFFSET_SOURCE__OFFSET_SOURCE_PROVIDER_DEFAULT;
	}
	*utc = t.wall_s - *offset_s;
	return true;
}

/* ================================================================== protobuf building */

sg_err
sg_pb_str(sg_arena *a, const char *s, Google__Protobuf__StringValue **out, sg_status *st)
{
	Google__Protobuf__StringValue *w;

	*out = NULL;
	if (s == NULL)
		return SG_OK;
	if ((w = sg_arena_alloc(a, sizeof(*w))) == NULL)
		return sg_nomem(st);
	google__protobuf__string_value__init(w);
	w->value = (char *)s; /* borrowed: the arena never frees */
	*out = w;
	return SG_OK;
}

sg_err
sg_pb_int64(sg_arena *a, int64_t v, Google__Protobuf__Int64Value **out, sg_status *st)
{
	Google__Protobuf__Int64Value *w;

	if ((*out = w = sg_arena_alloc(a, sizeof(*w))) == NULL)
		return sg_nomem(st);
	google__protobuf__int64_value__init(w);
	w->value = v;
	return SG_OK;
}

sg_err
sg_pb_double(sg_arena *a, double v, Google__Protobuf__DoubleValue **out, sg_status *st)
{
	Google__Protobuf__DoubleValue *w;

	if ((*out = w = sg_arena_alloc(a, sizeof(*w))) == NULL)
		return sg_nomem(st);
	google__protobuf__double_value__init(w);
	w->value = v;
	return SG_OK;
}

sg_err
sg_pb_bool(sg_arena *a, bool v, Google__Protobuf__BoolValue **out, sg_status *st)
{
	Google__Protobuf__BoolValue *w;

	if ((*out = w = sg_arena_alloc(a, sizeof(*w))) == NULL)
		return sg_nomem(st);
	google__protobuf__bool_value__init(w);
	w->value = v;
	return SG_OK;
}

#define PB_MAX_DEPTH 32

/* Reads a varint at *p (< end); false when truncated or longer than 10 bytes. */
static bool
pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7F) << shift;
		if ((b & 0x80) == 0)
			return true;
	}
	return false;
}

static sg_err
pb_bad_string(const sg_jpath *at, const char *why, sg_arena *a, sg_status *st)
{
	char *path = sg_jpath_str(a, at, NULL);
	return sg_status_invalid(st, a, path != NULL ? path : "request", why);
}

static sg_err
pb_walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
        const sg_jpath *at, int depth, sg_arena *a, sg_status *st)
{
	uint64_t tag, n;
	sg_err rv;

	while (p < end) {
		if (!pb_varint(&p, end, &tag))
			return SG_OK; /* unpack reports it */
		switch (tag & 7) {
		case 0:
			if (!pb_varint(&p, end, &n))
				return SG_OK;
			break;
		case 1:
			if ((size_t)(end - p) < 8)
				return SG_OK;
			p += 8;
			break;
		case 5:
			if ((size_t)(end - p) < 4)
				return SG_OK;
			p += 4;
			break;
		case 2: {
			if (!pb_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return SG_OK;
			const ProtobufCFieldDescriptor *f =
			        tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(
			                                         d, (unsigned)(tag >> 3))
			                               : NULL;
			sg_jpath here = {at, f != NULL ? f->name : NULL, 0};
			if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING) {
				if (memchr(p, '\0', (size_t)n) != NULL)
					return pb_bad_string(&here, "contains a NUL byte", a, st);
				for (size_t i = 0; i < n;) {
					size_t k = sg_utf8_seq(p + i, (size_t)n - i);
					if (k == 0)
						return pb_bad_string(&here, "is not valid UTF-8", a,
						                     st);
					i += k;
				}
			} else if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			           depth < PB_MAX_DEPTH) {
				rv = pb_walk(f->descriptor, p, p + n, &here, depth + 1, a, st);
				if (rv != SG_OK)
					return rv;
			}
			p += n;
			break;
		}
		default: return SG_OK; /* groups or garbage: unpack decides */
		}
	}
	return SG_OK;
}

sg_err
sg_pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                    sg_arena *a, sg_status *st)
{
	if (buf == NULL || len == 0)
		return SG_OK;
	return pb_walk(d, buf, buf + len, NULL, 0, a, st);
}

/* ================================================================== tracking normalisation */

bool
sg_status_terminal(Shipgate__V1__TrackingStatus s)
{
	return s == SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_DELIVERED ||
	       s == SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_RETURNED ||
	       s == SHIPGATE__V1__TRACKING_STATUS__TRACKING_STATUS_CANCELLED;
}

sg_err
sg_track_events_alloc(Shipgate__V1__Tracking *t, size_t n, sg_arena *a, sg_status *st)
{
	Shipgate__V1__TrackingEvent **pv = NULL, *ev = NULL;

	t->n_events = 0;
	t->events = NULL;
	if (n == 0)
		return SG_OK;
	if ((pv = sg_arena_calloc(a, n, sizeof(*pv))) == NULL ||
	    (ev = sg_arena_calloc(a, n, sizeof(*ev))) == NULL)
		return sg_nomem(st);
	for (size_t i = 0; i < n; i++) {
		shipgate__v1__tracking_event__init(&ev[i]);
		pv[i] = &ev[i];
	}
	t->events = pv;
	t->n_events = n;
	return SG_OK;
}

sg_err
sg_track_response_new(Shipgate__V1__Provider id, sg_arena *a, Shipgate__V1__TrackResponse **r,
                      Shipgate__V1__Tracking **t, sg_status *st)
{
	Shipgate__V1__TrackResponse *resp;
	Shipgate__V1__Tracking *trk;

	if ((resp = sg_arena_alloc(a, sizeof(*resp))) == NULL ||
	    (trk = sg_arena_alloc(a, sizeof(*trk))) == NULL)
		return sg_nomem(st);
	shipgate__v1__track_response__init(resp);
	shipgate__v1__tracking__init(trk);
	resp->tracking = trk;
	trk->provider = id;
	*r = resp;
	*t = trk;
	return SG_OK;
}

/* One event and where it stood before sorting. */
struct ev_slot {
	Shipgate__V1__TrackingEvent *ev; /* borrowed from the Tracking */
	size_t pos;                      /* index in t->events on entry */
	bool dup;                        /* an exact copy of an earlier event */
};

static int
cmp_i64(int64_t x, int64_t y)
{
	return (x > y) - (x < y);
}

static int
cmp_s(const char *x, const char *y)
{
	return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

static int
cmp_sv(const Google__Protobuf__StringValue *x, const Google__Protobuf__StringValue *y)
{
	if (x == NULL || y == NULL)
		return (x != NULL) - (y != NULL);
	return cmp_s(x->value, y->value);
}

/* Orders every field of two events, time first; 0 means an exact duplicate. */
static int
ev_cmp(const Shipgate__V1__TrackingEvent *x, const Shipgate__V1__TrackingEvent *y)
{
	int r;

	if ((r = cmp_i64(x->time_unix, y->time_unix)) != 0 ||
	    (r = cmp_i64(x->status, y->status)) != 0 ||
	    (r = cmp_s(x->sub_status, y->sub_status)) != 0 ||
	    (r = cmp_sv(x->raw_code, y->raw_code)) != 0 ||
	    (r = cmp_s(x->raw_text, y->raw_text)) != 0 ||
	    (r = cmp_s(x->time_text, y->time_text)) != 0 ||
	    (r = cmp_i64(x->utc_offset_seconds, y->utc_offset_seconds)) != 0 ||
	    (r = cmp_i64(x->offset_source, y->offset_source)) != 0 ||
	    (r = cmp_s(x->location, y->location)) != 0 ||
	    (r = cmp_s(x->description, y->description)) != 0 ||
	    (r = cmp_sv(x->pod_photo_url, y->pod_photo_url)) != 0 ||
	    (r = cmp_s(x->service_type, y->service_type)) != 0)
		return r;
	return 0;
}

/* (every field, position): equal events end up side by side, the first one leading. */
static int
slot_cmp_content(const void *p, const void *q)
{
	const struct ev_slot *x = p, *y = q;
	int r = ev_cmp(x->ev, y->ev);
	return r != 0 ? r : cmp_i64((int64_t)x->pos, (int64_t)y->pos);
}

/* (time, position): the output order. */
static int
slot_cmp_time(const void *p, const void *q)
{
	const struct ev_slot *x = p, *y = q;
	int r = cmp_i64(x->ev->time_unix, y->ev->time_unix);
	return r != 0 ? r : cmp_i64((int64_t)x->pos, (int64_t)y->pos);
}

void
sg_track_settle(Shipgate__V1__Tracking *t)
{
	if (t->n_events == 0) {
		t->last_update_unix = 0;
		t->terminal = sg_status_terminal(t->status);
		return;
	}
	const Shipgate__V1__TrackingEvent *newest = t->events[t->n_events - 1];
	t->status = newest->status;
	t->terminal = sg_status_terminal(newest->status);
	t->last_update_unix = newest->time_unix;
}

sg_err
sg_track_normalize(Shipgate__V1__Tracking *t, sg_arena *a, sg_status *st)
{
	size_t n = t->n_events, m = 0;
	struct ev_slot *s;

	if (n == 0) {
		sg_track_settle(t);
		return SG_OK;
	}
	if ((s = sg_arena_calloc(a, n, sizeof(*s))) == NULL)
		return sg_nomem(st);
	for (size_t i = 0; i < n; i++) {
		s[i].ev = t->events[i];
		s[i].pos = i;
	}
	/* Sorting by content puts duplicates next to each other in O(n log n), where comparing
	 * every pair with the same time would be quadratic for a hostile history. */
	qsort(s, n, sizeof(*s), slot_cmp_content);
	for (size_t i = 1; i < n; i++)
		s[i].dup = ev_cmp(s[i - 1].ev, s[i].ev) == 0;
	for (size_t i = 0; i < n; i++)
		if (!s[i].dup)
			s[m++] = s[i];
	qsort(s, m, sizeof(*s), slot_cmp_time);
	for (size_t i = 0; i < m; i++)
		t->events[i] = s[i].ev;
	t->n_events = m;
	sg_track_settle(t);
	return SG_OK;
}
