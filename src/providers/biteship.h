/*
 * biteship.h - Biteship Retrieve Order: GET /v1/orders/{id} -> GetOrder and Track.
 *
 * Pure translation (see provider.h): no I/O, no global state; every function may be called from
 * any thread, each call with its own arena and status. Results live in the caller's arena.
 */
#ifndef SG_PROVIDERS_BITESHIP_H
#define SG_PROVIDERS_BITESHIP_H

#include "providers/provider.h"

/* The provider's name, as in config and ErrorDetail.provider. Static storage. */
#define SG_BITESHIP_NAME "biteship"

/* The zone of a zone-less Biteship time when none is configured: Asia/Jakarta (WIB, UTC+7),
 * inferred from the document's "+07:00" times (docs/providers.md, "Biteship: timestamps"). */
#define SG_BITESHIP_DEFAULT_OFFSET_S (7 * 3600)

/*
 * GetOrder / Track, build: req is a Shipgate__V1__GetOrderRequest / Shipgate__V1__TrackRequest.
 * Validates order_id (SG_EINVAL on field "order_id" for an empty, too long, dot-segment or
 * non [A-Za-z0-9_-] id), then checks the config (SG_ENOPROVIDER without base_url, SG_ENOCRED
 * without a usable key) and fills *out with GET <base_url>/v1/orders/<order_id>, the
 * "Authorization" line (the raw key when auth_scheme is "", as Biteship wants) and
 * "Accept: application/json". On failure *out is left empty so nothing can be sent.
 * Strings in *out are owned by the arena or by pc.
 */
sg_err sg_biteship_get_order_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                                   sg_http_req *out, sg_status *st);
sg_err sg_biteship_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                               sg_http_req *out, sg_status *st);

/*
 * GetOrder, parse: maps the answer to a new Shipgate__V1__GetOrderResponse in the arena
 * (*reply): every member of the order document, a null or missing one left absent (see
 * docs/providers.md, "Biteship"). Non-2xx -> the HTTP error mapping with Biteship's code and
 * text; a 2xx body with "success": false -> an error classed by Biteship's 8-digit code; a body
 * that is not JSON or has a member of the wrong type -> SG_EUP_MALFORMED naming the JSON path;
 * SG_ENOMEM when the arena is full. *reply is NULL on failure.
 */
sg_err sg_biteship_get_order_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                                   const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                                   sg_status *st);

/*
 * Track, parse: the same document (and the same errors) as a new Shipgate__V1__TrackResponse:
 * courier.history as the events (oldest first, duplicates removed), courier.waybill_id as the
 * tracking number, courier.company as the courier, the top-level status as raw_status, and the
 * status of the newest event (the order's own status when the history is empty).
 */
sg_err sg_biteship_track_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                               const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                               sg_status *st);

/*
 * The canonical status of a Biteship order or history status. Case, '_', '-' and blanks are
 * ignored ("picking_up", "pickingUp", "PICKING-UP" and "Picking Up" are one status). *sub_status
 * is the status' static snake_case name ("picking_up"), or "" when raw is NULL or unknown (then
 * UNKNOWN). Pure; any thread.
 */
Shipgate__V1__TrackingStatus sg_biteship_status(const char *raw, const char **sub_status);

#endif /* SG_PROVIDERS_BITESHIP_H */
