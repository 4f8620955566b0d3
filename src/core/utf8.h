/*
 * utf8.h - UTF-8 checks for text that crosses the contract.
 *
 * proto3 requires every `string` field to be valid UTF-8, and strict decoders (Go, Python's
 * upb, protobuf-es) refuse a message that breaks the rule. So every string the gateway puts in
 * a reply is checked or made valid here: a text cut to a length is cut at a character boundary,
 * and bytes that are not UTF-8 (a provider's HTML error page, say) are replaced with U+FFFD.
 * Pure functions; any thread.
 */
#ifndef SG_UTF8_H
#define SG_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

/* Length of the valid UTF-8 sequence at s[0..len) (len > 0), or 0 when it is not one
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
size_t sg_utf8_seq(const unsigned char *s, size_t len);

/* True when s[0..len) is valid UTF-8. */
bool sg_utf8_valid(const char *s, size_t len);

/* The length of the longest prefix of the NUL-terminated s that is at most max bytes and ends
 * on a character boundary: what "%.*s" should print to cut s to max bytes. s need not be
 * valid; an invalid byte counts as one character. */
int sg_utf8_prefix(const char *s, size_t max);

/* s when it is valid UTF-8 (or NULL); otherwise a copy in a with every byte that does not
 * start a valid sequence replaced by U+FFFD. Returns a constant replacement text when the
 * arena is full. The result is borrowed (s, the arena, or static). */
const char *sg_utf8_clean(sg_arena *a, const char *s);

#endif /* SG_UTF8_H */
