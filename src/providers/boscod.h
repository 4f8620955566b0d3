/*
 * boscod.h - BosCOD order tracking: GET /v1/order/tracking/{order_no} -> Track.
 *
 * Pure translation (see provider.h): no I/O, no global state; every function may be called from
 * any thread, each call with its own arena and status. Results live in the caller's arena.
 */
#ifndef SG_PROVIDERS_BOSCOD_H
#define SG_PROVIDERS_BOSCOD_H

#include "providers/provider.h"

/* The provider's name, as in config and ErrorDetail.provider. Static storage. */
#define SG_BOSCOD_NAME "boscod"

/*
 * Track, build: req is a Shipgate__V1__TrackRequest. Validates order_id (SG_EINVAL on field
 * "order_id" for an empty, too long, dot-segment or non [A-Za-z0-9_-] id), checks the config
 * (SG_ENOPROVIDER without base_url, SG_ENOCRED without a usable token) and fills *out with
 * GET <base_url>/v1/order/tracking/<order_id>, "Authorization" and "Accept: application/json".
 * On failure *out is left empty (method and url NULL) so nothing can be sent.
 * Strings in *out are owned by the arena or by pc.
 */
sg_err sg_boscod_track_build(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
                             sg_http_req *out, sg_status *st);

/*
 * Track, parse: maps the answer to a new Shipgate__V1__TrackResponse in the arena (*reply).
 * 2xx with the documented body -> the Tracking (events oldest first, duplicates removed);
 * non-2xx -> sg_http_error() detail; a body that is not JSON or not of the documented shape ->
 * SG_EUP_MALFORMED naming the JSON path; SG_ENOMEM when the arena is full. *reply is NULL on
 * failure.
 */
sg_err sg_boscod_track_parse(const sg_pconf *pc, const ProtobufCMessage *req,
                             const sg_http_resp *resp, sg_arena *a, ProtobufCMessage **reply,
                             sg_status *st);

/*
 * The canonical status of one history entry. code is the entry's `status` (NULL when null),
 * note its `note`. A known code wins ("0" pending, "1" picked up, "2" delivered); otherwise the
 * note is matched case-insensitively against the known scans; otherwise UNKNOWN. *sub_status is
 * a static snake_case scan name ("arrival_scan"), or "" when there is none.
 * Pure; any thread.
 */
Shipgate__V1__TrackingStatus sg_boscod_event_status(const char *code, const char *note,
                                                    const char **sub_status);

#endif /* SG_PROVIDERS_BOSCOD_H */
