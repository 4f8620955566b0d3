/*
 * providers.h - the four providers' documented endpoints, as pure handlers.
 *
 * Each handler gets the path segments after its prefix ("/boscod", "/bosonline", "/biteship",
 * "/fuuffy") and fills the reply: routing within the provider (404/405 in the provider's shape),
 * authentication (401), reserved ids, and the example data. Any thread; no shared mutable state.
 */
#ifndef SBX_PROVIDERS_H
#define SBX_PROVIDERS_H

#include <stddef.h>

#include "reply.h"

/* GET /v1/order/tracking/{order_no}. */
void sbx_boscod(const sbx_call *c, sbx_reply *r);

/* GET /store/order/tracking?awb= and POST /order/{id}. */
void sbx_bosonline(const sbx_call *c, sbx_reply *r);

/* GET /v1/orders/{id}. */
void sbx_biteship(const sbx_call *c, sbx_reply *r);

/* GET /v1/tracking/get/{order_id}, GET /v1/tracking/get?tracking_number=, POST /v1/auth/token. */
void sbx_fuuffy(const sbx_call *c, sbx_reply *r);

/*
 * Start-up self-checks: each verifies that the embedded bodies its handler uses are there, parse,
 * and hold the text the handler substitutes. Returns NULL when fine, else a static reason.
 */
const char *sbx_boscod_check(void);
const char *sbx_bosonline_check(void);
const char *sbx_biteship_check(void);
const char *sbx_fuuffy_check(void);

#endif /* SBX_PROVIDERS_H */
