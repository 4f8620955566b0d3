/*
 * reply.h - what a sandbox provider handler sees (sbx_call) and fills in (sbx_reply), and the
 * helpers they share: reserved ids, error bodies in each provider's shape, JSON variants, auth
 * and query parsing.
 *
 * Handlers are pure: no sockets and no MHD. server.c builds the sbx_call from the HTTP request,
 * runs the handler, and turns the sbx_reply into an HTTP answer. Every function here may run on
 * any thread; none keeps state between calls.
 */
#ifndef SBX_REPLY_H
#define SBX_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "data.h"

#define SBX_MAX_SEGS    12      /* path segments routed; deeper paths are 404 */
#define SBX_MAX_HDRS    6       /* extra response headers per reply */
#define SBX_ID_MAX      64      /* longest id accepted */
#define SBX_SLOW_MAX_MS 600000u /* SLOW-<ms> upper bound (10 minutes) */
#define SBX_BIG_MAX     100000u /* BIG-<n> upper bound */
#define SBX_TOKEN_TTL_S 3600    /* lifetime of a Fuuffy token from /v1/auth/token */

/* ------------------------------------------------------------------ configuration */

/* The run-time configuration handlers read. Read-only after start; shared by all threads. */
typedef struct sbx_conf {
	const char *token;        /* static bearer token (BosCOD, bosOnline, Fuuffy) */
	const char *biteship_key; /* raw Biteship key, "biteship_test." or "biteship_live." */
	uint64_t delay_ms;        /* extra delay added to every provider response */
	uint64_t secret[2];       /* random key that signs the Fuuffy tokens we issue */
} sbx_conf;

/* ------------------------------------------------------------------ the call */

/* A byte string that is not necessarily NUL-terminated (a path segment may hold "%00"). */
typedef struct sbx_str {
	const char *p; /* bytes; NUL-terminated in practice, but n is what counts */
	size_t n;      /* length */
} sbx_str;

/* One request as a handler sees it. Everything is borrowed for the duration of the call. */
typedef struct sbx_call {
	const sbx_conf *conf;      /* configuration */
	const char *method;        /* "GET", "POST", ... as received */
	sbx_str seg[SBX_MAX_SEGS]; /* percent-decoded path segments after the provider prefix */
	size_t nseg;               /* segments used; "/a/" gives {"a", ""} */
	const char *query;         /* raw query string after '?', or NULL */
	const char *authorization; /* Authorization header value, or NULL */
	const char *content_type;  /* Content-Type header value, or NULL */
	const char *body;          /* request body, NUL-terminated (may hold NULs itself) */
	size_t body_len;           /* bytes in body */
} sbx_call;

/* True when the method is m; HEAD counts as GET. */
bool sbx_method_is(const sbx_call *c, const char *m);

/* True when segment i exists and equals lit. */
bool sbx_seg_is(const sbx_call *c, size_t i, const char *lit);

/* ------------------------------------------------------------------ the reply */

/* One extra response header. */
typedef struct sbx_hdr {
	const char *name; /* static string */
	char value[48];   /* formatted value; never holds CR/LF */
} sbx_hdr;

/* One HTTP answer, filled by a handler. Init with sbx_reply_init, release with sbx_reply_fini. */
typedef struct sbx_reply {
	unsigned status;           /* HTTP status; 0 until set */
	const char *ctype;         /* Content-Type value (static), or NULL for none */
	char *body;                /* body bytes; owned (malloc) unless body_static */
	size_t len;                /* bytes in body */
	bool body_static;          /* body points at static storage: never freed */
	sbx_hdr hdr[SBX_MAX_HDRS]; /* extra headers */
	size_t nhdr;               /* headers used */
	uint64_t delay_ms;         /* hold the answer this long before sending it */
} sbx_reply;

/* Which provider's shape error bodies take. */
typedef enum sbx_style {
	SBX_STYLE_SANDBOX,  /* {"error": msg, "status": n} - the sandbox's own hooks and 404s */
	SBX_STYLE_MESSAGE,  /* {"message": msg} - BosCOD and bosOnline */
	SBX_STYLE_BITESHIP, /* {"success": false, "error": msg, "code": 8 digits} */
	SBX_STYLE_FUUFFY,   /* {"error": {"code", "code_reason", "message", ...}} */
} sbx_style;

void sbx_reply_init(sbx_reply *r);

/* Frees an owned body. r may then be reused after sbx_reply_init. */
void sbx_reply_fini(sbx_reply *r);

/* Answers with embedded bytes as application/json (no copy). */
void sbx_reply_blob(sbx_reply *r, unsigned status, const sbx_blob *b);

/* Answers with body, taking ownership of it (malloc'd) in every case. NULL body: 500. */
void sbx_reply_take(sbx_reply *r, unsigned status, const char *ctype, char *body, size_t len);

/* Answers with j serialised (pretty unless compact), stealing the reference. NULL j: 500. */
void sbx_reply_json(sbx_reply *r, unsigned status, json_t *j, bool compact);

/* Answers with an error body in the style's shape. msg NULL: the style's default text. */
void sbx_reply_error(sbx_reply *r, sbx_style st, unsigned status, const char *msg);

/* Adds a header (name static; the value is formatted and silently cut at 47 bytes). */
void sbx_reply_header(sbx_reply *r, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

/* Adds X-RateLimit-Limit/-Remaining/-Reset (and Retry-After: 2 when remaining is 0). */
void sbx_reply_ratelimit(sbx_reply *r, unsigned remaining);

/* Answers 405 with an error body in the style's shape (msg as for sbx_reply_error) and Allow. */
void sbx_reply_405(sbx_reply *r, sbx_style st, const char *msg, const char *allow);

/* The 500 body served when a reply cannot be built (server.c serves it too, before routing). */
#define SBX_OOM_BODY "{\"error\": \"sandbox out of memory\", \"status\": 500}\n"

/* A Fuuffy error envelope {"error": {code, code_reason, message}}. New reference or NULL. */
json_t *sbx_fuuffy_error(unsigned status, const char *msg);

/* ------------------------------------------------------------------ reserved ids */

typedef enum sbx_idkind {
	SBX_ID_NORMAL,         /* an ordinary id: the example answer */
	SBX_ID_ERR,            /* ERR-<status>: that status with the provider's error body */
	SBX_ID_MALFORMED,      /* MALFORMED: 200, application/json, the example cut in half */
	SBX_ID_MALFORMED_HTML, /* MALFORMED-HTML: 200, text/html, a proxy's error page */
	SBX_ID_WRONGTYPE,      /* WRONGTYPE: 200, JSON with fields of the wrong types */
	SBX_ID_SLOW,           /* SLOW-<ms>: the example answer after ms milliseconds */
	SBX_ID_EMPTY,          /* EMPTY: the example with an empty history */
	SBX_ID_BIG,            /* BIG-<n>: the example with n history events */
	SBX_ID_ECHO_HEADERS, /* ECHO-HEADERS: 400 whose message repeats the Authorization header */
	SBX_ID_BADRESERVED,  /* starts ERR-/SLOW-/BIG- but is not one we know: 400 */
} sbx_idkind;

/* A parsed id. */
typedef struct sbx_id {
	sbx_idkind kind;           /* what the id asks for */
	unsigned status;           /* SBX_ID_ERR: the HTTP status (400..599) */
	uint64_t n;                /* SBX_ID_SLOW: milliseconds; SBX_ID_BIG: events */
	char text[SBX_ID_MAX + 1]; /* the id itself, NUL-terminated */
} sbx_id;

/*
 * Parses s. Returns false when it is not a syntactically fine id: 1..64 bytes of
 * [A-Za-z0-9._-], starting with a letter or digit (so no "", ".", "..", "/", "%00", CR/LF).
 */
bool sbx_id_parse(sbx_str s, sbx_id *id);

/*
 * The reserved ids every provider shares. Handles ERR-*, MALFORMED, MALFORMED-HTML and a bad
 * reserved id by filling r and returning true (the reply is final). SLOW-<ms> adds to
 * r->delay_ms and returns false, as do the ids the provider must shape itself (NORMAL, EMPTY,
 * BIG, WRONGTYPE). example is the provider's success body (MALFORMED cuts it).
 */
bool sbx_reserved(const sbx_id *id, sbx_style st, const sbx_blob *example,
                  const char *authorization, sbx_reply *r);

/* True for the ids a provider answers with its example reshaped: EMPTY, BIG-<n>, WRONGTYPE. */
bool sbx_id_reshapes(const sbx_id *id);

/* ------------------------------------------------------------------ JSON helpers */

/* The blob parsed. New reference, or NULL (never for the checked embedded blobs). */
json_t *sbx_blob_json(const sbx_blob *b);

/* A JSON string of n bytes, invalid UTF-8 replaced by U+FFFD. New reference or NULL. */
json_t *sbx_json_bytes(const char *p, size_t n);

/* Occurrences of needle in the blob. */
size_t sbx_blob_count(const sbx_blob *b, const char *needle);

/*
 * A copy of the blob with the first occurrence of needle replaced by with. Returns a new malloc'd
 * buffer (caller frees) with *len set, or NULL on no memory or when needle is absent.
 */
char *sbx_blob_replace(const sbx_blob *b, const char *needle, const char *with, size_t *len);

/* Gives event i of n its own time (and whatever else must differ). */
typedef void (*sbx_retime_fn)(json_t *ev, size_t i, size_t n);

/*
 * Replaces the events in arr by n synthetic ones cut from the originals: the first and last
 * keep their place (newest/oldest), the ones between cycle through the middle ones, and fn gives
 * each its own time. Returns 0, or -1 on no memory (arr is then partly filled).
 */
int sbx_big_fill(json_t *arr, size_t n, sbx_retime_fn fn);

/* A provider's own edit of its parsed example for id (WRONGTYPE, or an id of its own). 0 or -1. */
typedef int (*sbx_reshape_fn)(json_t *root, const sbx_id *id);

/*
 * Answers 200 with root (stolen) reshaped for id: EMPTY clears hist, BIG-<n> refills it with
 * sbx_big_fill(retime), any other id is left to edit. hist is the example's history array,
 * borrowed from root. root NULL or hist not an array: 500. BIG-<n> is compact, the rest pretty;
 * no memory (or edit failing): 500.
 */
void sbx_reply_reshaped(sbx_reply *r, json_t *root, json_t *hist, const sbx_id *id,
                        sbx_retime_fn retime, sbx_reshape_fn edit);

/* Formats epoch t shifted by off_s seconds with strftime fmt into buf. */
void sbx_fmt_time(char *buf, size_t cap, int64_t t, int off_s, const char *fmt);

/* Wall-clock seconds. */
int64_t sbx_now_s(void);

/* ------------------------------------------------------------------ request parsing */

/*
 * The credential after "Bearer " (scheme case-insensitive, then one or more spaces) in an
 * Authorization value, or NULL. Borrowed from authz.
 */
const char *sbx_bearer(const char *authz);

/*
 * BosCOD and bosOnline auth: true when the bearer credential is the configured token, else
 * answers 401 {"message": "Unauthorized"} and returns false.
 */
bool sbx_auth_bearer(const sbx_call *c, sbx_reply *r);

/*
 * Percent-decodes n bytes of s into out (cap bytes, always NUL-terminated when cap > 0). plus:
 * '+' means space (query strings). A bad escape is copied literally. Returns the decoded length,
 * or -1 when it does not fit.
 */
long sbx_pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus);

/*
 * Looks up key in an application/x-www-form-urlencoded string (a query or a form body) and
 * decodes the first value into out (cap bytes, NUL-terminated). Returns 1 when found, 0 when
 * absent, -1 when found but too long for out.
 */
int sbx_form_get(const char *form, const char *key, char *out, size_t cap, size_t *outlen);

#endif /* SBX_REPLY_H */
