/*
 * provider.h - the pure translation layer's interface.
 *
 * A provider module turns a typed request into a description of one HTTP request (build), and
 * the HTTP answer into a typed reply (parse). It includes neither nng nor curl and does no I/O,
 * so tests drive it with fixtures and no sockets. Everything it allocates lives in the call's
 * arena. Build and parse may run on any thread; they share no mutable state.
 */
#ifndef SG_PROVIDER_H
#define SG_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/http.h"
#include "core/status.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* One provider's configuration. Read-only after start-up; shared by all threads. */
typedef struct sg_pconf {
	const char *name;        /* "boscod", "bosonline", "biteship", "fuuffy" */
	const char *base_url;    /* "http://127.0.0.1:18080" (no trailing slash); NULL: disabled */
	const char *token;       /* secret credential; never logged; NULL: not configured */
	const char *auth_scheme; /* "Bearer" (default when NULL), or "" for the raw token */
	int32_t utc_offset_s;    /* zone of zone-less provider times, if utc_offset_set */
	bool utc_offset_set;     /* utc_offset_s was configured (else provider default) */
	int64_t timeout_ms;      /* upstream timeout when the caller gave no deadline */
	int64_t cache_ttl_ms;    /* lookup answers are fresh this long; 0: not cached */
	int64_t cache_stale_ms;  /* then served stale this long while one refresh runs */
	const char *client_id;   /* OAuth2 client credentials, for providers with an auth op; */
	const char *client_secret; /* when both are set the gateway fetches and caches tokens */
	sg_tls_conf tls;           /* TLS to it (ca_file, client_cert, ...; see core/http.h) */
	bool tls_ca_inherited;     /* config: tls.ca_file is upstream.ca_file's */
	const char *token_file;    /* config: token read from this file at start, or NULL */
	const char *client_secret_file; /* config: client_secret read from this file, or NULL */
} sg_pconf;

/*
 * build: validates req and fills out. Returns SG_OK, or an error recorded in st (no upstream call
 * is made then).
 * parse: maps resp (any HTTP status) to *reply (allocated in the arena), or an error in st with
 * the provider's detail (http_status, provider_code/message, violations).
 * `req` and `*reply` are the method's generated protobuf-c messages.
 */
typedef struct sg_op {
	sg_err (*build)(const sg_pconf *pc, const ProtobufCMessage *req, sg_arena *a,
	                sg_http_req *out, sg_status *st);
	sg_err (*parse)(const sg_pconf *pc, const ProtobufCMessage *req, const sg_http_resp *resp,
	                sg_arena *a, ProtobufCMessage **reply, sg_status *st);
} sg_op;

/*
 * Token acquisition (OAuth2 client credentials) for providers that need it. build makes the
 * token request from pc->client_id/client_secret; parse returns the access token (arena) and its
 * lifetime in seconds. The gateway caches the token per provider and hands it to the other
 * operations as pc->token.
 */
typedef struct sg_auth_op {
	sg_err (*build)(const sg_pconf *pc, sg_arena *a, sg_http_req *out, sg_status *st);
	sg_err (*parse)(const sg_pconf *pc, const sg_http_resp *resp, sg_arena *a,
	                const char **token, int64_t *expires_in_s, sg_status *st);
} sg_auth_op;

/* What a provider module says about its own configuration: the defaults of its keys, which
 * point at its sandbox (src/sandbox/), the gateway's embedded default. */
typedef struct sg_provider_defaults {
	const char *token;         /* static credential, or NULL */
	const char *auth_scheme;   /* "Bearer", or "" for the raw token */
	const char *client_id;     /* OAuth2 client credentials (providers with an auth op), */
	const char *client_secret; /*   or NULL */
	int64_t cache_ttl_ms;      /* see sg_pconf */
	int64_t cache_stale_ms;    /* see sg_pconf */
} sg_provider_defaults;

/* A provider: its identity, the operations it supports (NULL build: unsupported), and the
 * defaults of its configuration. Adding a provider is its module plus one registry entry. */
typedef struct sg_provider {
	Shipgate__V1__Provider id;     /* contract enum value */
	const char *name;              /* lower-case name, as in config and ErrorDetail.provider */
	sg_op track;                   /* Track -> TrackResponse */
	sg_op get_order;               /* GetOrder -> GetOrderResponse */
	sg_op create_order;            /* CreateOrder -> CreateOrderResponse */
	sg_auth_op auth;               /* token acquisition, or NULLs when the token is static */
	sg_provider_defaults defaults; /* its configuration's defaults */
} sg_provider;

/* Every provider, in registry order; *n is how many. Static storage. */
const sg_provider *sg_providers(size_t *n);

/* The provider for id, or NULL. Static storage. */
const sg_provider *sg_provider_get(Shipgate__V1__Provider id);

/* The provider named name (case-insensitive), or NULL. */
const sg_provider *sg_provider_by_name(const char *name);

#endif /* SG_PROVIDER_H */
