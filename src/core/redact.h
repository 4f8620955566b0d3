/*
 * redact.h - keeping configured secrets out of what leaves the gateway: a provider that echoes
 * its request's headers into an error text (or an answer) would otherwise hand its bearer token
 * to every caller and every log.
 */
#ifndef SG_REDACT_H
#define SG_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"

/* Secrets shorter than this are not looked for: a 1-byte "secret" would shred every text. */
#define SG_REDACT_MIN 6

/* What a secret becomes. */
#define SG_REDACTED "[redacted]"

/* Whether any of the n secrets (NULL entries and short ones skipped) occurs in the len bytes at
 * p. Pure. */
bool sg_redact_found(const void *p, size_t len, const char *const *secrets, size_t n);

/* text with every occurrence of each secret replaced by SG_REDACTED: text itself when none
 * occurs, else a copy in a. When a has no room, a fixed text saying it was withheld (never the
 * secret). NULL stays NULL. */
const char *sg_redact(sg_arena *a, const char *text, const char *const *secrets, size_t n);

/* Every string field of m, in nested messages and repeated fields too, through sg_redact (the
 * new strings in a). Returns how many strings changed. */
size_t sg_redact_message(ProtobufCMessage *m, sg_arena *a, const char *const *secrets, size_t n);

#endif /* SG_REDACT_H */
