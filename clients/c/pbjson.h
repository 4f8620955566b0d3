/*
 * pbjson.h - any protobuf-c message to JSON and back, driven by its descriptor.
 *
 * Follows the proto3 JSON mapping (https://protobuf.dev/programming-guides/proto3/#json):
 * - field names: lowerCamelCase on output (or the .proto name with SGC_PBJSON_ORIG_NAMES);
 *   both spellings are accepted on input, and giving one field under both is an error;
 * - enums: value names on output; names or numbers on input (unknown numbers are kept);
 * - 64-bit integers: decimal strings on output; strings or JSON numbers on input;
 * - float/double: numbers, or "NaN", "Infinity", "-Infinity"; doubles print in their shortest
 *   form that reads back to the same value;
 * - bytes: standard base64 with padding on output; standard or URL-safe, padded or not, on input;
 * - google.protobuf.*Value wrappers: the plain wrapped value; an absent wrapper is omitted on
 *   output, and `null` on input leaves it absent;
 * - maps: JSON objects (keys are strings, also for integer and bool keys);
 * - repeated fields: arrays; `null` means empty;
 * - proto3 fields holding their default value are omitted unless SGC_PBJSON_EMIT_DEFAULTS;
 * - an unknown JSON member is an error naming it and where it is (SGC_PBJSON_IGNORE_UNKNOWN
 *   skips it instead).
 * Other well-known types (Timestamp, Duration, Struct, Any) are treated as ordinary messages.
 *
 * Big unsigned 64-bit values above 2^63-1 must be given as strings: jansson's parser rejects
 * larger JSON integers.
 *
 * Every function here is reentrant and may be called from any thread. jansson's allocator hooks
 * are process-global; this module does not touch them.
 */
#ifndef SGC_PBJSON_H
#define SGC_PBJSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* Flags, or-ed together. Output flags are ignored on input and the other way round. */
enum {
	SGC_PBJSON_EMIT_DEFAULTS = 1 << 0,  /* out: print proto3 scalars, strings, bytes, repeated
	                                       and map fields that hold their default value */
	SGC_PBJSON_ORIG_NAMES = 1 << 1,     /* out: use the .proto field names */
	SGC_PBJSON_ENUMS_AS_INTS = 1 << 2,  /* out: print enum values as numbers */
	SGC_PBJSON_INDENT = 1 << 3,         /* dump: two-space indentation, one member per line */
	SGC_PBJSON_IGNORE_UNKNOWN = 1 << 4, /* in: skip unknown members instead of failing */
};

/* Where and why a conversion failed. Filled on failure only; may be NULL. */
typedef struct sgc_pbjson_error {
	char path[256]; /* JSON path of the offending value: "$", "$.receiver.extraFields[1]" */
	char text[256]; /* what is wrong, naming the field or value */
} sgc_pbjson_error;

/*
 * Converts msg to a JSON value (an object, or a plain value for a wrapper message).
 * Returns a new reference owned by the caller (json_decref), or NULL on failure (invalid UTF-8
 * in a string field, out of memory, nesting over 100 levels) with err filled.
 */
json_t *sgc_pbjson_from_message(const ProtobufCMessage *msg, int flags, sgc_pbjson_error *err);

/*
 * Builds a message of type desc from json. Every allocation goes through alloc (NULL: malloc),
 * so the result is freed with protobuf_c_message_free_unpacked(*out, alloc) - or all at once by
 * resetting an arena allocator. On success returns 0 and stores the new message in *out; on
 * failure returns -1, leaves *out NULL, frees what it built and fills err. json is borrowed.
 */
int sgc_pbjson_to_message(const json_t *json, const ProtobufCMessageDescriptor *desc,
                          ProtobufCAllocator *alloc, int flags, ProtobufCMessage **out,
                          sgc_pbjson_error *err);

/*
 * Serialises json as text: compact, or indented with SGC_PBJSON_INDENT; object members keep
 * their insertion order; reals print in their shortest round-trip form. Returns a malloc'd,
 * NUL-terminated string owned by the caller (free), or NULL when out of memory.
 */
char *sgc_pbjson_dumps(const json_t *json, int flags);

/* sgc_pbjson_from_message + sgc_pbjson_dumps: malloc'd text owned by the caller, or NULL. */
char *sgc_pbjson_encode(const ProtobufCMessage *msg, int flags, sgc_pbjson_error *err);

/*
 * Parses text[0..len) (jansson, duplicate keys rejected) and builds a message of type desc as
 * sgc_pbjson_to_message does. Returns 0 or -1 with err filled; *out is owned by the caller.
 */
int sgc_pbjson_decode(const char *text, size_t len, const ProtobufCMessageDescriptor *desc,
                      ProtobufCAllocator *alloc, int flags, ProtobufCMessage **out,
                      sgc_pbjson_error *err);

/*
 * The JSON name of a .proto field name ("tracking_number" -> "trackingNumber") written into
 * buf (always NUL-terminated when size > 0). Returns the full length, like snprintf.
 */
size_t sgc_pbjson_json_name(const char *proto_name, char *buf, size_t size);

/* True when desc is one of the google.protobuf.*Value wrapper messages. */
int sgc_pbjson_is_wrapper(const ProtobufCMessageDescriptor *desc);

/* True when field is a map (a repeated, generated *Entry message with key and value). */
int sgc_pbjson_is_map(const ProtobufCMessageDescriptor *parent,
                      const ProtobufCFieldDescriptor *field);

#endif /* SGC_PBJSON_H */
