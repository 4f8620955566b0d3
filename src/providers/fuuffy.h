/*
 * fuuffy.h - Fuuffy tracking: GET /v1/tracking/get/{order_id} or
 * GET /v1/tracking/get?tracking_number= -> Track, and the OAuth2 client-credentials token
 * (POST /v1/auth/token) as the provider's auth op.
 *
 * Pure translation (see provider.h): no I/O, no clock, no global state; every function may be
 * called from any thread, each call with its own arena and status. Results live in the caller's
 * arena.
 */
#ifndef SG_PROVIDERS_FUUFFY_H
#define SG_PROVIDERS_FUUFFY_H

#include <stdint.h>

#include "providers/provider.h"

/* The provider's name, as in config and ErrorDetail.provider. Static storage. */
#define SG_FUUFFY_NAME "fuuffy"

/* Zone of the zone-less event dates when the config sets none: UTC+8 (inferred: docs/providers.md,
 * "Fuuffy: timestamps"). */
#define SG_FUUFFY_DEFAULT_OFFSET_S (8 * 3600)

/* Token lifetime assumed when the token answer carries no expires_in: the documented 3600 s
 * (docs/providers.md, "Fuuffy: token"). */
#define SG_FUUFFY_DEFAULT_TOKEN_TTL_S 3600

/* Largest json-string (a string holding JSON) that is decoded, in bytes. */
#define SG_FUUFFY_JSONSTR_MAX ((size_t)16 << 20)

/*
 * Track, build: req is a Shipgate__V1__TrackRequest. With order_id set (it wins when both are):
 * GET <base_url>/v1/tracking/get/<order_id>; else with tracking_number set:
 * GET <base_url>/v1/tracking/get?tracking_number=<tracking_number>. Both identifiers must be
 * 1-128 bytes of [A-Za-z0-9_-] (SG_EINVAL on the field otherwise); with neither, SG_EINVAL
 * with a violation on each field. The caller's input is checked before the config
 * (SG_ENOPROVIDER without base_url, SG_ENOCRED without a usable pc->token: the static token, or
 * the one the gateway obtained with the auth op). Headers: Authorization (Bearer),
 * "Content-Type: application/json" (the document requires it, even on GET) and
 * "Accept: application/json". On failure *out is left empty (method and url NULL).
 * Strings in *out are owned by the arena or by pc.
 */
sg_err sg_fuuffy_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                             sg_http_req *out, sg_status *st);

/*
 * Track, parse: maps the answer to a new Shipgate__V1__TrackResponse in the arena (*reply).
 * 2xx with {"data": ...} -> the Tracking; `data` and `data.tracking_msg_list` may each be JSON
 * or a json-string (a string holding that JSON), decoded once with duplicate keys refused.
 * Non-2xx -> the error envelope's detail (see sg_fuuffy_http_error()). A body that is not JSON
 * or not of the documented shape, or an event date that is not a date-time (documented:
 * "YYYY-MM-DD HH:MM:SS", zone-less; read by sg_time_iso()) -> SG_EUP_MALFORMED naming the path; a
 * json-string over SG_FUUFFY_JSONSTR_MAX -> SG_EUP_TOOBIG; SG_ENOMEM when the arena is full. *reply
 * is NULL on failure.
 */
sg_err sg_fuuffy_track_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                             const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                             sg_status *st);

/*
 * Token, build: POST <base_url>/v1/auth/token with the form body
 * grant_type=client_credentials&client_id=..&client_secret=.. (values percent-encoded) and
 * "Content-Type: application/x-www-form-urlencoded", "Accept: application/json" (no
 * Authorization header), as Fuuffy's Authentication page sends it.
 * SG_ENOCRED when client_id or client_secret is unset, empty, or holds a byte outside visible
 * ASCII; SG_ENOPROVIDER without base_url. The secret never appears in a status message.
 * The body is an arena string.
 */
sg_err sg_fuuffy_auth_build(const sg_pconf *pc, sg_arena *a, sg_http_req *out, sg_status *st);

/*
 * Token, parse: 2xx {"data": {"access_token": "..", "token_type"?: "Bearer", "expires_in"?: N}}
 * (or the same members at the top level, without "data") ->
 * *token (arena copy; visible ASCII only, as it goes into a header) and *expires_in_s (> 0;
 * SG_FUUFFY_DEFAULT_TOKEN_TTL_S when absent; an integer or a decimal string). Another
 * token_type, an empty token or a lifetime <= 0 -> SG_EUP_MALFORMED. Non-2xx -> the error
 * envelope's detail. On failure *token is NULL and *expires_in_s 0 (docs/providers.md,
 * "Fuuffy: token").
 */
sg_err sg_fuuffy_auth_parse(const sg_pconf *pc, const sg_http_resp *resp, sg_arena *a,
                            const char **token, int64_t *expires_in_s, sg_status *st);

/*
 * Maps a non-2xx answer (or one the caller does not accept) to st, as sg_http_error() does,
 * then reads Fuuffy's envelope {"error": {"code", "code_reason", "message", "error_code"?,
 * "error_trace"?}} (or the older {"error": {"code", "message"}}), where `error` may also be a
 * json-string: provider_code is error_code when present, else code; provider_message is
 * message; each error_trace {field, message} becomes a field violation (arena copies).
 * A 400/422 whose error_code is ORDER_NOT_FOUND is SG_EUP_NOTFOUND. A 429 names the
 * X-RateLimit-* headers in the message. Never fails on an odd body; a full arena only drops
 * detail. Returns st->err.
 */
sg_err sg_fuuffy_http_error(const sg_http_resp *resp, sg_arena *a, sg_status *st);

/*
 * The canonical status of one event code (an SF operation code, inferred; see
 * docs/providers.md). *sub_status is a static snake_case name, or "" for an unknown code
 * (UNKNOWN; never guessed). code may be NULL. Pure; any thread.
 */
Shipgate__V1__TrackingStatus sg_fuuffy_event_status(const char *code, const char **sub_status);

/*
 * The canonical status of `order_status`, used only when there are no events: Fuuffy's order
 * statuses (DRAFT ... CANCELLED; matched ignoring ASCII case and surrounding blanks, with ' '
 * and '-' read as '_') and the known Chinese display text; UNKNOWN otherwise. text may be NULL.
 * Pure; any thread.
 */
Shipgate__V1__TrackingStatus sg_fuuffy_order_status(const char *text);

#endif /* SG_PROVIDERS_FUUFFY_H */
