/*
 * envelope.h - the contract's code in one place: the method table, the request envelope's
 * checks and decoding, and the reply's encoding.
 *
 * Every field number and method the gateway needs is read from the protobuf-c descriptors at
 * start (sg_envelope_init), never copied from the .proto by hand: a contract change that moves
 * or drops one makes the gateway refuse to start instead of writing wrong bytes.
 *
 * A reply is written by hand (RpcReply {request_id, status, payload}) so that a stored outcome
 * (an idempotent replay, a cache hit) is sent to any caller without decoding it; fields can be
 * appended to its payload, since protobuf merges them and a later field wins.
 *
 * Threads: sg_envelope_init once, before any other call; everything else is pure and may run
 * on any thread.
 */
#ifndef SG_ENVELOPE_H
#define SG_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/status.h"
#include "gateway/flight.h"
#include "shipgate/v1/rpc.pb-c.h"

/* What a method does once its request is decoded. */
typedef enum sg_method_kind {
	SG_M_UNSERVED = 0, /* declared in the contract, not served by this gateway */
	SG_M_HEALTH,       /* answered by the gateway itself */
	SG_M_TRACK,        /* provider->track */
	SG_M_GET_ORDER,    /* provider->get_order */
	SG_M_CREATE_ORDER, /* provider->create_order */
} sg_method_kind;

/* One method of the service, and the policy that goes with it. Read-only after init. */
typedef struct sg_method {
	const ProtobufCMethodDescriptor *desc; /* name, input and output messages */
	sg_method_kind kind;                   /* what it does */
	bool upstream;                         /* goes to a provider */
	bool cacheable;                        /* answers are kept in the lookup cache */
	bool needs_key;                        /* requires an idempotency_key (never repeated
	                                          upstream: one key, one provider call) */
	size_t provider_offset;                /* upstream: offset of the input's `provider` */
	uint32_t replayed_field;               /* output's `replayed` (bool), or 0 */
	uint32_t cache_field;                  /* output's `cache` (CacheInfo), or 0 */
} sg_method;

/* An encoded outcome: a packed shipgate.v1.Status and, when OK, the packed response. */
typedef sg_flight_outcome sg_outcome;

/* Builds the method table and the field numbers from the descriptors. Returns 0, or -1 with a
 * message in err[errlen] when the contract lacks what the gateway needs. Idempotent. */
int sg_envelope_init(char *err, size_t errlen);

/* The methods, in the service descriptor's order. */
const sg_method *sg_methods(size_t *n);

/* Resolves "/shipgate.v1.Shipgate/Track" (the one accepted spelling, so that method names
 * stay a stable contract). NULL when unknown. Borrowed. */
const sg_method *sg_method_resolve(const char *name);

/* The service's full name ("shipgate.v1.Shipgate"). */
const char *sg_service_name(void);

/* The provider id of an upstream method's decoded request. */
int sg_method_provider(const sg_method *m, const ProtobufCMessage *req);

/*
 * Decodes an RpcRequest into arena a. Every string in it (method, request_id, idempotency_key,
 * metadata) must be valid UTF-8 without NUL: protobuf-c would cut at a NUL and accept bad
 * UTF-8. Returns SG_OK with *env set, or an error recorded in st (*env NULL: the envelope,
 * request_id included, is not to be trusted).
 */
sg_err sg_envelope_decode(const uint8_t *buf, size_t len, sg_arena *a,
                          Shipgate__V1__RpcRequest **env, sg_status *st);

/* Decodes m's payload from env into arena a, with the same string checks. SG_OK or an error
 * recorded in st. */
sg_err sg_payload_decode(const sg_method *m, const Shipgate__V1__RpcRequest *env, sg_arena *a,
                         ProtobufCMessage **req, sg_status *st);

/* Packs st (as shipgate.v1.Status) into o->status, in arena a; every string made valid UTF-8.
 * Returns 0 or -1 (arena full). */
int sg_status_pack(const sg_status *st, sg_arena *a, sg_outcome *o);

/* Packs msg into o->payload, in arena a. Returns 0 or -1 (arena full). */
int sg_payload_pack(const ProtobufCMessage *msg, sg_arena *a, sg_outcome *o);

/* Bytes of the RpcReply for request_id (may be NULL), o and `extra_len` bytes appended to its
 * payload. */
size_t sg_reply_size(const char *request_id, const sg_outcome *o, size_t extra_len);

/* Writes that RpcReply into dst (sg_reply_size bytes). Returns the bytes written. */
size_t sg_reply_write(uint8_t *dst, const char *request_id, const sg_outcome *o,
                      const uint8_t *extra, size_t extra_len);

/* Longest field an sg_reply_*_field writes. */
#define SG_REPLY_EXTRA_MAX 24

/* m's `replayed = true`, encoded into buf; returns its length (0 when m has none). */
size_t sg_reply_replayed_field(const sg_method *m, uint8_t buf[SG_REPLY_EXTRA_MAX]);

/* m's `cache = {hit: true, age_ms, stale}`, encoded into buf; returns its length (0 when m has
 * none). */
size_t sg_reply_cache_field(const sg_method *m, int64_t age_ms, bool stale,
                            uint8_t buf[SG_REPLY_EXTRA_MAX]);

#endif /* SG_ENVELOPE_H */
