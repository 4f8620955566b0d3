/*
 * bosonline.h - bosOnline, BosCOD's online-store API:
 *   GET  /store/order/tracking?awb=<awb>  -> Track
 *   POST /order/{form_id}                 -> CreateOrder (checkout: "Request Create Order")
 *
 * Pure translation (see provider.h): no I/O, no global state; every function may be called from
 * any thread, each call with its own arena and status. Results live in the caller's arena.
 * Mapping tables: docs/providers.md, section bosOnline.
 */
#ifndef SG_PROVIDERS_BOSONLINE_H
#define SG_PROVIDERS_BOSONLINE_H

#include <stdbool.h>

#include "providers/provider.h"

/* The provider's name, as in config and ErrorDetail.provider. Static storage. */
#define SG_BOSONLINE_NAME "bosonline"

/*
 * Track, build: req is a Shipgate__V1__TrackRequest. tracking_number is the AWB and is required
 * (order_id is not used): SG_EINVAL on field "tracking_number" when it is empty, longer than 128
 * bytes, or holds anything but [A-Za-z0-9_-]. Then the config is checked (SG_ENOPROVIDER without
 * base_url, SG_ENOCRED without a usable token) and *out is filled with
 * GET <base_url>/store/order/tracking?awb=<awb>, "Authorization" and "Accept: application/json".
 * On failure *out is left empty (method and url NULL) so nothing can be sent.
 * Strings in *out are owned by the arena or by pc.
 */
sg_err sg_bosonline_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                                sg_http_req *out, sg_status *st);

/*
 * Track, parse: maps the answer to a new Shipgate__V1__TrackResponse in the arena (*reply).
 * 2xx with {"data": [...]} -> the Tracking (events oldest first, duplicates removed, statuses
 * from the notes, COD reconciliation from the newest event); non-2xx -> sg_http_error() detail;
 * a body that is not JSON or not of the documented shape -> SG_EUP_MALFORMED naming the JSON
 * path; SG_ENOMEM when the arena is full. *reply is NULL on failure.
 */
sg_err sg_bosonline_track_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                                const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                                sg_status *st);

/*
 * CreateOrder, build: req is a Shipgate__V1__CreateOrderRequest. Checks every field first and
 * reports all problems at once: SG_EINVAL with one violation per bad field ("form_id",
 * "sender.name", "items[1].quantity", "payment.bank", ...). Then the config (as for Track), and
 * fills *out with POST <base_url>/order/<form_id>, "Authorization", "Content-Type:
 * application/json", "Accept: application/json" and the JSON body of the document's example
 * (field names, nesting, types and nulls as there). The body is an arena buffer (not
 * NUL-terminated for the sender's purposes; body_len counts its bytes). On failure *out is left
 * empty.
 */
sg_err sg_bosonline_create_order_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                                       sg_http_req *out, sg_status *st);

/*
 * CreateOrder, parse: maps the answer to a new Shipgate__V1__CreateOrderResponse in the arena.
 * 2xx -> payment accounts, total, CS phone, product, social links, message, and the AWB when
 * the reply carries one (data.awb, data.resi, data.no_resi or data.airwaybill; absent
 * otherwise); non-2xx -> sg_http_error() detail (400 INVALID_ARGUMENT, 404 NOT_FOUND, 503
 * UNAVAILABLE, ...); wrong JSON types -> SG_EUP_MALFORMED with the path. *reply is NULL on
 * failure.
 */
sg_err sg_bosonline_create_order_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                                       const sg_http_resp *resp, sg_arena *a,
                                       ProtobufCMessage **reply, sg_status *st);

/*
 * The canonical status of one tracking note. newest tells whether the event is the newest of the
 * history: a bare "Paket telah diterima" is DELIVERED there and IN_TRANSIT ("received")
 * anywhere else. Matching ignores ASCII case and runs of blanks (table in bosonline.c and
 * docs/providers.md). *sub_status is a static snake_case name ("arrived"), or "" for UNKNOWN.
 * note may be NULL (UNKNOWN). Pure; any thread.
 */
Shipgate__V1__TrackingStatus sg_bosonline_event_status(const char *note, bool newest,
                                                       const char **sub_status);

#endif /* SG_PROVIDERS_BOSONLINE_H */
