/*
 * config.h - the gateway's configuration: defaults, file, environment, flags.
 *
 * One key space serves the config file (`key = value` lines), `--set key=value` flags and the
 * dedicated flags. Later sources win: defaults < file < environment < flags. The defaults are
 * the embedded sandbox providers on 127.0.0.1:18080, so a bare `shipgated` runs the demo.
 * A config is filled once at start-up and read-only afterwards (any thread may read it).
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "providers/provider.h"
#include "upstream/engine.h"

#define SG_CONFIG_MAX_LISTEN 8
#define SG_MAX_PROVIDERS     16  /* highest contract Provider id the config can hold */
#define SG_MAX_CALLERS       64  /* callers the access table can name */
#define SG_MAX_TENANTS       16  /* tenants with credentials of their own */
#define SG_MAX_TENANT_KEYS   256 /* tenant.<name>.<provider>.<key> lines in all */

/* The contract's methods, as bits of a caller's allowed set. */
enum {
	SG_CALLER_HEALTH = 1 << 0,
	SG_CALLER_TRACK = 1 << 1,
	SG_CALLER_GET_ORDER = 1 << 2,
	SG_CALLER_CREATE_ORDER = 1 << 3,
};

/* One caller of the access table (caller.<name>.*). */
typedef struct sg_caller {
	const char *name;         /* [a-z0-9_-], 1..32 */
	uint8_t token_sha256[32]; /* SHA-256 of its caller token, when has_token */
	bool has_token;
	long uid;                /* its ipc peer uid, or -1 */
	unsigned methods;        /* SG_CALLER_* bits it may call (Health is always allowed) */
	uint32_t providers;      /* bit (id - 1) per provider it may use */
	const char *tenant_name; /* caller.<name>.tenant as given, or NULL */
	size_t tenant;           /* 0: the providers' own credentials; i: tenants[i - 1]'s */
	size_t max_keys;         /* live idempotency keys it may hold; 0: idempotency's default */
	size_t max_in_flight;    /* its CreateOrder keys running at once; 0: the default */
	const char *tls_listen;  /* a tls+tcp:// URL whose every verified peer is this caller */
	const char *tls_ca_file; /* the CA (or the pinned certificate) of its certificates */
} sg_caller;

/* A tenant: a set of provider credentials of its own (tenant.<name>.<provider>.<key>). Its
 * callers' token caches, idempotency keys and cache entries are its own. */
typedef struct sg_tenant {
	const char *name;                     /* [a-z0-9_-], 1..32 */
	sg_pconf providers[SG_MAX_PROVIDERS]; /* the providers' config, with its own credentials */
} sg_tenant;

/* One tenant.<name>.<provider>.<key> line, applied when the config is validated. */
typedef struct sg_tenant_key {
	size_t tenant;     /* index in tenants[] */
	size_t provider;   /* index in providers[] */
	size_t key;        /* the row of the key table */
	const char *value; /* as given (owned by the config) */
} sg_tenant_key;

typedef struct sg_config {
	const char *listen[SG_CONFIG_MAX_LISTEN]; /* nng URLs: tcp://, ipc://, inproc:// */
	size_t nlisten;                           /* entries used in listen[] */
	int workers;                              /* nng contexts = calls handled at once */
	size_t max_request_bytes;                 /* larger requests get RESOURCE_EXHAUSTED */
	size_t recv_max_bytes;           /* NNG_OPT_RECVMAXSZ: larger ones drop the connection */
	size_t max_connections;          /* caller connections held at most */
	size_t max_connections_per_peer; /* by one address (or ipc uid); 0: no such cap */
	size_t fd_reserve;               /* fds kept for the provider side and the stores */
	int64_t default_deadline_ms;     /* when a request carries deadline_ms = 0 */
	int64_t max_deadline_ms;         /* longer deadlines are cut to this */
	int64_t drain_timeout_ms;        /* how long a graceful stop waits for in-flight calls */
	size_t arena_cap;                /* per-call memory cap */
	int verbose;                     /* 0 quiet, 1 start/stop and errors, 2 every call */
	size_t cache_max_bytes;          /* lookup cache memory; 0 disables the cache */
	size_t cache_max_entries;        /* lookup cache keys at most */
	const char *cache_backend;   /* "memory" (this process) or "redis" (shared by a fleet) */
	const char *cache_redis_url; /* the redis cache; NULL: redis_url */
	int cache_redis_timeout_ms;  /* its connect and command timeout */
	size_t idem_max_entries;     /* idempotency keys held at most */
	int64_t idem_ttl_ms;         /* how long a CreateOrder outcome is kept */
	const char *idem_store;      /* "memory" or "sqlite" */
	const char *idem_path;       /* the sqlite store's file; NULL: <state_dir>/idempotency.db */
	const char *state_dir;     /* where state lives; NULL: $STATE_DIRECTORY or shipgate-state */
	const char *redis_url;     /* the redis store: redis://HOST:PORT[/DB] */
	const char *fleet_id;      /* the redis store's fleet; NULL: redis_url */
	int64_t ipc_watchdog_ms;   /* ipc listener probe period (nng #1518); 0 = off */
	const char *tls_cert_file; /* tls+tcp listeners: the server certificate (PEM chain) */
	const char *tls_key_file;  /* and its key (PEM) */
	const char *tls_ca_file;   /* the CA of callers' certificates, or NULL: none asked for */
	const char *tls_client_auth;  /* none | optional | required (required with tls_ca_file) */
	const char *tls_min_version;  /* "1.2" (default) or "1.3" */
	const char *ipc_mode_str;     /* ipc.mode as given (octal), or NULL */
	int ipc_mode;                 /* ipc sockets' mode, whatever the umask (0600) */
	const char *ipc_group;        /* their group (a name or a gid), or NULL: the process's */
	sg_engine_conf engine;        /* upstream engine knobs */
	const char *upstream_ca_file; /* CA bundle for providers without their own; NULL: system */
	const char *upstream_tls_min; /* "1.2" (default) or "1.3" */
	const char *upstream_proxy;   /* egress proxy URL, or NULL: none (environment ignored) */
	int engine_threads;           /* upstream engines, one thread and curl multi each */
	sg_pconf providers[SG_MAX_PROVIDERS]; /* indexed by Provider id - 1; name NULL: none */
	size_t nproviders;                    /* entries in use: the highest provider id */
	char *owned[1024];                    /* strings this config allocated */
	size_t nowned;                        /* entries used in owned[] */
	sg_caller callers[SG_MAX_CALLERS];    /* the access table; name NULL past ncallers */
	size_t ncallers;
	const char *access_anonymous;     /* callers without an identity: "local" (loopback, ipc and
	                                     inproc only; default), "all" or "none" */
	size_t idem_caller_max_keys;      /* a caller's live idempotency keys; 0: max_entries / 4 */
	size_t idem_caller_max_in_flight; /* a caller's CreateOrder keys running at once */
	sg_tenant tenants[SG_MAX_TENANTS];
	size_t ntenants;
	sg_tenant_key tenant_keys[SG_MAX_TENANT_KEYS];
	size_t ntenant_keys;
} sg_config;

/* Fills cfg with the defaults (the embedded sandbox). */
void sg_config_defaults(sg_config *cfg);

/* Sets one key. Returns 0, or -1 with a message in err[errlen]. Copies value. */
int sg_config_set(sg_config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Reads a `key = value` file ('#' comments). Returns 0 or -1 with err. */
int sg_config_load_file(sg_config *cfg, const char *path, char *err, size_t errlen);

/* Applies SHIPGATE_<PROVIDER>_TOKEN and SHIPGATE_<PROVIDER>_URL from the environment. */
int sg_config_load_env(sg_config *cfg, char *err, size_t errlen);

/* Checks cross-field rules after everything is set. Returns 0 or -1 with err. */
int sg_config_validate(sg_config *cfg, char *err, size_t errlen);

/* Frees strings owned by cfg. */
void sg_config_fini(sg_config *cfg);

/* The provider config for id, or NULL when id is not a known provider. Borrowed. */
const sg_pconf *sg_config_provider(const sg_config *cfg, int provider_id);

/* The same for a tenant: 0 is the providers' own config, i is tenants[i - 1]'s. */
const sg_pconf *sg_config_tenant_provider(const sg_config *cfg, size_t tenant, int provider_id);

/* A caller's quotas on idempotency keys, with the defaults applied (c NULL: callers that are
 * not known). */
size_t sg_config_caller_max_keys(const sg_config *cfg, const sg_caller *c);
size_t sg_config_caller_max_in_flight(const sg_config *cfg, const sg_caller *c);

/* One configuration key, as the key table knows it (for docs and tests). */
typedef struct sg_config_key {
	const char *name;  /* "workers", or a provider key's suffix ("base_url") */
	bool per_provider; /* set as "<provider>.<name>" */
	int64_t min, max;  /* accepted range of a number */
} sg_config_key;

/* The i-th key of the table, or NULL past the last. Static storage. */
const sg_config_key *sg_config_key_at(size_t i);

#endif /* SG_CONFIG_H */
