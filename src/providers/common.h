/*
 * common.h - what every provider translation shares: safe URLs, the auth header, the HTTP error
 * mapping, typed JSON access and event normalisation.
 *
 * Everything here is pure (no I/O, no clock, no global state) and allocates only from the call's
 * arena, so any thread may call it with its own arena and status. Strings handed back are owned
 * by that arena unless a comment says "borrowed". Every function that can fail records the
 * failure in an sg_status and returns the sg_err; SG_ENOMEM means the arena cap was reached.
 */
#ifndef SG_PROVIDERS_COMMON_H
#define SG_PROVIDERS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/status.h"
#include "core/utf8.h" /* sg_utf8_valid, used by every translation */
#include "google/protobuf/wrappers.pb-c.h"
#include "providers/provider.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* ------------------------------------------------------------------ small helpers */

/* Records SG_ENOMEM in st without allocating (the message is the static one). Returns it. */
sg_err sg_nomem(sg_status *st);

/* ASCII-only case-insensitive compare (locale-independent). NULL sorts before everything. */
int sg_ascii_casecmp(const char *x, const char *y);

/* ------------------------------------------------------------------ identifiers and URLs */

/* Longest identifier accepted into a URL path or query, in bytes. */
#define SG_ID_MAX 128

/*
 * How strict an identifier that goes into a URL path segment must be. Whatever the policy, an
 * accepted identifier can change neither the path (no '/', '\', ".", ".."), nor the query or
 * fragment ('?', '#'), nor a header (no CR, LF, NUL or other control byte), and it is never
 * decoded twice ('%' is refused rather than encoded). The byte table is in common.c
 * (id_byte_class), in one place.
 */
typedef enum sg_idpol {
	SG_ID_STRICT = 0, /* [A-Za-z0-9_-] only: BosCOD order numbers */
	SG_ID_UNRESERVED, /* RFC 3986 unreserved [A-Za-z0-9._~-], but never "." or ".." */
	SG_ID_SUBDELIMS,  /* unreserved, plus ! $ & ' ( ) * + , ; = : @ sent percent-encoded */
} sg_idpol;

/*
 * Validates id[0..len) (len counts bytes; an embedded NUL is refused) under pol and returns in
 * *out an arena copy that is safe to append to a URL path as one segment (percent-encoded where
 * the policy says so). On a refused id: SG_EINVAL with one violation on `field` (borrowed; pass
 * a static string) whose description says why, and a message naming the field; *out is NULL.
 */
sg_err sg_path_segment(sg_arena *a, const char *field, const char *id, size_t len, sg_idpol pol,
                       const char **out, sg_status *st);

/*
 * Encodes v[0..len) for use as a URL query value: everything but [A-Za-z0-9._~-] is
 * percent-encoded (so '&', '=', '+', '#', '%' and space cannot split the query). Refused with
 * SG_EINVAL on `field`: empty, longer than max_len bytes, a control byte (CR, LF, NUL, ...),
 * or bytes that are not valid UTF-8. *out is an arena string.
 */
sg_err sg_query_value(sg_arena *a, const char *field, const char *v, size_t len, size_t max_len,
                      const char **out, sg_status *st);

/*
 * base followed by each part verbatim, for a NULL-terminated list of parts. Trailing '/' on base
 * are dropped so that "http://h/" + "/v1" gives one slash. Parts must be literal path text or
 * outputs of sg_path_segment(). Returns an arena string, or NULL when the arena is full.
 */
char *sg_url_join(sg_arena *a, const char *base, ...) __attribute__((sentinel));

/*
 * url + ("?" or "&") + key + "=" + value. key is a literal from the code (not checked beyond
 * an assert); value must come from sg_query_value(). Arena string, or NULL when full.
 */
char *sg_url_add_query(sg_arena *a, const char *url, const char *key, const char *value);

/* ------------------------------------------------------------------ the upstream request */

/*
 * Checks that req is a message of type d: anything else (NULL included) is SG_EINTERNAL
 * "<what>: not a <d's short name>", a bug in whoever chose the operation, not bad input. what
 * names the operation ("boscod track"; borrowed). On SG_OK the caller may cast req to d's type.
 */
sg_err sg_request_check(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d,
                        const char *what, sg_arena *a, sg_status *st);

/* Resets r and sets method and url (both borrowed: static or arena). */
void sg_http_req_init(sg_http_req *r, const char *method, const char *url);

/*
 * Appends the header line "Name: value" (borrowed). SG_EINTERNAL (a bug, not input) when
 * headers[] is full or the line holds CR, LF or another control byte.
 */
sg_err sg_http_req_header(sg_http_req *r, const char *line, sg_arena *a, sg_status *st);

/*
 * Checks that pc can make a call: SG_ENOPROVIDER when base_url is NULL or empty (provider not
 * configured), SG_EINTERNAL when base_url holds a control byte, space or non-ASCII byte.
 */
sg_err sg_pconf_check(const sg_pconf *pc, sg_arena *a, sg_status *st);

/*
 * The header line "Authorization: <scheme> <token>" built from pc (scheme "Bearer" when
 * auth_scheme is NULL; auth_scheme "" sends the raw token). SG_ENOCRED when the token is NULL or
 * empty, or holds a byte outside visible ASCII (CR, LF, NUL, space, control, non-ASCII), or the
 * scheme is not an HTTP token. The token never appears in a status message. *out: arena string.
 */
sg_err sg_auth_header(const sg_pconf *pc, sg_arena *a, const char **out, sg_status *st);

/*
 * Starts a request that carries pc's credential, once the caller's input has been checked (so
 * that a hostile id never meets the config): pc must be usable (sg_pconf_check()), r is reset
 * with method (borrowed) and no URL yet, and its first header is the credential
 * (sg_auth_header()). The caller then sets r->url from pc->base_url and adds its other headers.
 * Fails as those two do; r is then not to be sent.
 */
sg_err sg_http_req_start(sg_http_req *r, const sg_pconf *pc, const char *method, sg_arena *a,
                         sg_status *st);

/* ------------------------------------------------------------------ the upstream answer */

/* True for a 2xx status. */
bool sg_http_is_success(int http_status);

/*
 * Finds the first header `name` (ASCII case-insensitive) in resp->headers. Lines without a
 * colon (the status line) are skipped; CRLF and bare LF both end a line. On a hit, *val and *len
 * borrow the value from resp, with surrounding blanks trimmed. False when absent.
 */
bool sg_http_header(const sg_http_resp *resp, const char *name, const char **val, size_t *len);

/* Retry-After as milliseconds when it holds delta-seconds (capped at 24 h); 0 if absent,
 * an HTTP-date (this layer reads no clock) or garbage. */
int64_t sg_retry_after_ms(const sg_http_resp *resp);

/*
 * Pulls a provider error code and message out of an error body, trying the common shapes:
 *   {"message": ".." | [".."]}, {"msg": ".."}, {"error": "..", "code": ..},
 *   {"error": {"code": .., "message": ..}}, {"error_code": ..}, {"error_description": ..},
 *   {"detail": ..}, or a bare JSON string.
 * Numeric codes are printed in decimal. Messages longer than 1 KiB are cut at a UTF-8 boundary.
 * Never fails on a non-JSON or odd body: *code and *msg are then NULL. Arena strings (NULL also
 * when the arena is full).
 */
void sg_error_body(const char *body, size_t len, sg_arena *a, const char **code, const char **msg);

/* The body as sg_error_body() parses it (any JSON value, duplicate members refused): a NEW
 * reference, or NULL when there is none or it is not JSON. */
json_t *sg_error_parse(const char *body, size_t len);

/* sg_error_body() on a body already parsed (root borrowed: NULL or any JSON value). */
void sg_error_json(json_t *root, sg_arena *a, const char **code, const char **msg);

/* A provider's text as sg_error_body() keeps it: an arena copy of s[0..n), cut to 1 KiB at a
 * UTF-8 boundary. NULL when the arena is full. */
const char *sg_error_text(sg_arena *a, const char *s, size_t n);

/* A provider's error code member v as sg_error_body() reads it: a string (cut as
 * sg_error_text()) or an integer in decimal. NULL for another type (or v NULL), or a full arena. */
const char *sg_error_code(sg_arena *a, json_t *v);

/*
 * The detail of an error answer, as sg_http_error() records it, without the error itself:
 * http_status, provider (borrowed static name), provider_code and provider_message from
 * sg_error_json() on root (the body as sg_error_parse() gives it, borrowed, may be NULL), and
 * retry_after_ms from Retry-After. For a provider that reads more of the body itself or classes
 * an answer itself (a 2xx whose body says the call failed).
 */
void sg_http_error_detail(const char *provider, const sg_http_resp *resp, json_t *root, sg_arena *a,
                          sg_status *st);

/* The error an HTTP status means: sg_err_from_http(), SG_EUP_HTTP for 1xx/3xx (or a 2xx the
 * caller does not accept). */
sg_err sg_http_error_class(int status);

/* Sets err on st with the message "<provider> answered HTTP <status><mid>[: <provider
 * message>]<tail>" (mid and tail: "" or text). Returns err. */
sg_err sg_http_error_say(const char *provider, const sg_http_resp *resp, sg_err err,
                         const char *mid, const char *tail, sg_arena *a, sg_status *st);

/*
 * Maps a non-2xx answer to st: err from sg_err_from_http() (SG_EUP_HTTP for 1xx/3xx),
 * http_status, provider (`provider`, borrowed static name), provider_code/provider_message from
 * sg_error_body(), retry_after_ms from Retry-After, and a message "<provider> answered HTTP
 * <status>[: <provider message>]". Returns st->err.
 */
sg_err sg_http_error(const char *provider, const sg_http_resp *resp, sg_arena *a, sg_status *st);

/*
 * What every failed parse adds to st before it returns rv: the provider (borrowed static name)
 * and, unless a step set it already or rv is SG_EINTERNAL (a bug, such as the wrong request
 * type, which no upstream answer caused), the upstream HTTP status. Returns rv.
 */
sg_err sg_parse_fail(const char *provider, const sg_http_resp *resp, sg_err rv, sg_status *st);

/* ------------------------------------------------------------------ JSON (jansson) */

/*
 * A location inside a JSON document, built on the caller's stack and formatted only when an
 * error names it: {up=&history, key=NULL, index=3} under {NULL, "history"} is "history[3]".
 */
typedef struct sg_jpath {
	const struct sg_jpath *up; /* enclosing location; NULL at the document root */
	const char *key;           /* member name (borrowed), or NULL for an array element */
	size_t index;              /* element index when key is NULL */
} sg_jpath;

/* What the JSON getters need: where to copy strings and where to record failures. */
typedef struct sg_jctx {
	sg_arena *a;   /* destination of copied strings and of error messages */
	sg_status *st; /* receives SG_EUP_MALFORMED or SG_ENOMEM */
} sg_jctx;

/* Formats at (plus key when not NULL) as "history[3].update_on"; "$" names the root. Arena
 * string, or NULL when the arena is full. */
char *sg_jpath_str(sg_arena *a, const sg_jpath *at, const char *key);

/*
 * Opt-in, once, at program start before any jansson use (process-global hooks): jansson then
 * allocates from the arena the current thread names with sg_json_arena_set (a parse costs no
 * malloc/free and is released with the arena), and from malloc when it names none.
 */
void sg_json_use_arenas(void);

/* Names the arena jansson allocates from on this thread (NULL: malloc); returns the previous.
 * JSON values made meanwhile must not outlive the arena's next reset. */
sg_arena *sg_json_arena_set(sg_arena *a);

/*
 * Parses body[0..len) with JSON_REJECT_DUPLICATES. *out is a NEW reference the caller must
 * json_decref(). Failure: SG_EUP_MALFORMED ("invalid JSON at line L column C: <why>") or
 * SG_ENOMEM when jansson ran out of memory; *out is NULL.
 */
sg_err sg_json_parse(sg_jctx *c, const char *body, size_t len, json_t **out);

/*
 * v as JSON text in arena a: *out NUL-terminated, *len its length (len may be NULL). flags are
 * jansson's without a precision: reals take the fewest digits at which every real in v reads
 * back unchanged (jansson has one precision per dump), so 15.2 stays "15.2", not
 * "15.199999999999999". SG_ENOMEM (in st) when jansson or the arena runs out.
 */
sg_err sg_json_dump(sg_arena *a, json_t *v, size_t flags, const char **out, size_t *len,
                    sg_status *st);

/*
 * Typed member getters on object obj, which sits at location `at` (NULL: the root).
 *   _req_  the member must be present and of the type; null is a wrong type.
 *   _opt_  null or missing gives "absent" (NULL pointer, or *present = false) and SG_OK.
 * A wrong type is SG_EUP_MALFORMED with the message "<path>: expected <type>, got <type>"; a
 * missing required member "<path>: missing". Strings are copied into the arena (jansson has
 * already checked they are UTF-8 without NUL); arrays and objects are BORROWED from obj.
 */
sg_err sg_json_req_str(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key,
                       const char **out);
sg_err sg_json_opt_str(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key,
                       const char **out);
sg_err sg_json_req_int(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, int64_t *out);
sg_err sg_json_opt_int(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, int64_t *out,
                       bool *present);
sg_err sg_json_opt_num(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, double *out,
                       bool *present);
sg_err sg_json_opt_bool(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, bool *out,
                        bool *present);
sg_err sg_json_req_arr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out);
sg_err sg_json_opt_arr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out);
sg_err sg_json_req_obj(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out);
sg_err sg_json_opt_obj(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key, json_t **out);

/*
 * An integer that may also arrive as a string of decimal digits ("1733106237"), as some
 * providers send epoch seconds. Absent on null/missing; SG_EUP_MALFORMED on anything else.
 */
sg_err sg_json_opt_intstr(sg_jctx *c, json_t *obj, const sg_jpath *at, const char *key,
                          int64_t *out, bool *present);

/* Checks that v (at location at, e.g. an array element) is an object: SG_EUP_MALFORMED
 * "<path>: expected object, got <type>" otherwise. v may be NULL (reported as missing). */
sg_err sg_json_expect_obj(sg_jctx *c, json_t *v, const sg_jpath *at);

/*
 * What the getters above record for a member (at/key; key NULL: at itself) of the wrong type:
 * SG_EUP_MALFORMED "<path>: expected <want>, got <type of got>", or "<path>: missing" when got
 * is NULL. When the arena cannot hold the path, the message is left to sg_strerror(). Returns
 * SG_EUP_MALFORMED.
 */
sg_err sg_json_wrong_type(sg_jctx *c, const sg_jpath *at, const char *key, const char *want,
                          const json_t *got);

/* SG_EUP_MALFORMED "<path>: <what>" (what: static text) for a member whose type is right but
 * whose value is not, as sg_json_wrong_type() words and records it. Returns SG_EUP_MALFORMED. */
sg_err sg_json_bad(sg_jctx *c, const sg_jpath *at, const char *key, const char *what);

/* ------------------------------------------------------------------ times */

/* A date and time read from ISO-8601 text by sg_iso8601_parse(). */
typedef struct sg_isotime {
	int64_t wall_s;   /* the written date and time read as if it were UTC, in epoch seconds */
	int32_t offset_s; /* the written offset in seconds east of UTC; 0 for "Z" or none */
	bool has_offset;  /* the text carried "Z" or a numeric offset */
} sg_isotime;

/*
 * Reads s[0..len) as an ISO-8601 / RFC 3339 date-time:
 *   YYYY-MM-DD ('T' | 't' | ' ') hh:mm [:ss [('.' | ',') digits]] [Z | z | +hh:mm | +hhmm | +hh]
 * (or '-' for the sign). Seconds may be left out ("2023-09-24T12:00+07:00"); a fraction is
 * dropped (whole seconds are the contract's unit). Fields are range-checked (month 1-12, the
 * month's days with leap years, hh 0-23, mm 0-59, ss 0-60, offset up to 18:00). Nothing may
 * follow. The UTC instant is wall_s - offset_s when has_offset. False (and *out zeroed) on
 * anything else. Pure: no locale, no TZ, no clock.
 */
bool sg_iso8601_parse(const char *s, size_t len, sg_isotime *out);

/*
 * An event time from ISO-8601 text, with its zone resolved the same way for every provider:
 *   - the text's own offset                           -> OFFSET_SOURCE_TEXT;
 *   - else pc->utc_offset_s when pc->utc_offset_set  -> OFFSET_SOURCE_CONFIG;
 *   - else default_offset_s, the provider's documented or inferred zone
 *                                                     -> OFFSET_SOURCE_PROVIDER_DEFAULT.
 * *utc is the instant in UTC epoch seconds and *offset_s the offset applied. pc may be NULL (no
 * configured offset). False when s does not parse: *utc and *offset_s are 0 and *src
 * OFFSET_SOURCE_UNSPECIFIED. Pure; any thread.
 */
bool sg_time_iso(const sg_pconf *pc, int32_t default_offset_s, const char *s, size_t len,
                 int64_t *utc, int32_t *offset_s, Shipgate__V1__OffsetSource *src);

/* ------------------------------------------------------------------ protobuf building */

/*
 * Wrapper values in the arena, initialised with the generated init functions. For the string
 * form, s NULL gives *out NULL (absent) and SG_OK; otherwise s is borrowed (an arena string, or
 * one that lives as long). SG_ENOMEM on a full arena (recorded in st).
 */
sg_err sg_pb_str(sg_arena *a, const char *s, Google__Protobuf__StringValue **out, sg_status *st);
sg_err sg_pb_int64(sg_arena *a, int64_t v, Google__Protobuf__Int64Value **out, sg_status *st);
sg_err sg_pb_double(sg_arena *a, double v, Google__Protobuf__DoubleValue **out, sg_status *st);
sg_err sg_pb_bool(sg_arena *a, bool v, Google__Protobuf__BoolValue **out, sg_status *st);

/*
 * Checks every string field of the encoded message buf[0..len) of type d, nested messages
 * included, BEFORE protobuf_c_message_unpack(): protobuf-c 1.4 accepts a string with a NUL
 * inside and hands back a C string cut at the NUL ("BOS1\0x" is looked up as "BOS1"), and it
 * does not check UTF-8. Either is SG_EINVAL with a violation on the dotted field path
 * ("order_id", "receiver.name"). Encoding errors are left to unpack (SG_OK here). Reads buf
 * only; pure, any thread. Meant for the server's decode step.
 */
sg_err sg_pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                           sg_arena *a, sg_status *st);

/* ------------------------------------------------------------------ tracking normalisation */

/* True for DELIVERED, RETURNED and CANCELLED: nothing more will happen to the shipment. */
bool sg_status_terminal(Shipgate__V1__TrackingStatus s);

/*
 * Allocates n zero-initialised TrackingEvent messages (each init'ed) and the pointer array
 * in the arena: t->events / t->n_events are set. SG_ENOMEM when full.
 */
sg_err sg_track_events_alloc(Shipgate__V1__Tracking *t, size_t n, sg_arena *a, sg_status *st);

/*
 * A new TrackResponse and the new Tracking it holds, both init'ed in the arena, the Tracking's
 * provider set to id: *r, and *t (its tracking). SG_ENOMEM when full.
 */
sg_err sg_track_response_new(Shipgate__V1__Provider id, sg_arena *a,
                             Shipgate__V1__TrackResponse **r, Shipgate__V1__Tracking **t,
                             sg_status *st);

/*
 * Normalises t in place, the same way for every provider:
 *  - events sorted oldest first by (time_unix, position); equal times keep their position, so a
 *    provider that lists newest first must store its events reversed before calling this;
 *  - exact duplicates (every field equal) removed, the first kept;
 *  - status, terminal and last_update_unix set from the newest event. With no events, status is
 *    left as the provider set it (its current-status fallback) and last_update_unix is 0.
 * The arena holds a scratch index (SG_ENOMEM when full; t is then unchanged).
 */
sg_err sg_track_normalize(Shipgate__V1__Tracking *t, sg_arena *a, sg_status *st);

/* The last step of sg_track_normalize alone, for events already in order without duplicates:
 * status, terminal and last_update_unix from the newest event (or as above with none). */
void sg_track_settle(Shipgate__V1__Tracking *t);

#endif /* SG_PROVIDERS_COMMON_H */
