/*
 * client_int.h - what the client's source files share and do not export (prefix sgc_).
 */
#ifndef SGC_CLIENT_INT_H
#define SGC_CLIENT_INT_H

#include <stdbool.h>

#include "sgc_policy.h" /* generated from proto/shipgate/v1/client_policy.json */
#include "shipgate/client.h"

/*
 * Replaces all of st's contents with a client-made status (local = true): code, reason (static
 * text, copied) and a printf-formatted message; attempts and request_id end up 0 / NULL (the
 * call sets them when it hands the status over). If memory runs out the strings stay NULL; the
 * code is always set. Thread: the one owning st.
 */
void sgc_status_set(shipgate_status *st, int code, const char *reason, bool retryable,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Replaces all of st's contents with the gateway's wire status (local = false; attempts and
 * request_id 0 / NULL, as above). Returns 0, or -1 when out of memory (st then holds a local
 * RESOURCE_EXHAUSTED status). wire is borrowed.
 */
int sgc_status_from_wire(shipgate_status *st, const Shipgate__V1__Status *wire);

/* shipgate_method_idempotent for a method already looked up (m not NULL). */
bool sgc_method_idempotent(const ProtobufCMethodDescriptor *m);

/* strdup that maps NULL to NULL. */
char *sgc_strdup(const char *s);

#endif /* SGC_CLIENT_INT_H */
