/*
 * config.c - the configuration's one key table, its defaults, and its sources (file,
 * environment, flags).
 *
 * Every key is a row of `keys` below, in the spirit of redis's standardConfig: its name, its
 * type, its range, where it goes, and its default. Provider keys ("<provider>.<key>") go into
 * that provider's sg_pconf; their defaults come from the provider's module (its registry entry:
 * sg_provider.defaults), so adding a provider touches its module and the registry only.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SANDBOX_BASE "http://127.0.0.1:18080"

/* The default listen URL; an explicit listen replaces it (compared by address). */
static const char default_listen[] = "tcp://127.0.0.1:7400";

/* How a key's value is read and stored. */
enum ktype {
	K_INT,    /* int */
	K_LONG,   /* long */
	K_SIZE,   /* size_t */
	K_I64,    /* int64_t */
	K_STR,    /* const char *, copied; "" sets NULL */
	K_URL,    /* const char *: http:// or https://, trailing '/' dropped; "" sets NULL */
	K_SCHEME, /* const char *: an Authorization scheme, "raw" for none */
	K_OFFSET, /* a UTC offset: sg_pconf.utc_offset_s and utc_offset_set */
	K_LISTEN, /* one more listen URL (the first one replaces the default) */
};

struct cfg_key {
	sg_config_key pub; /* name, per_provider, range */
	enum ktype type;   /* how it is read */
	size_t off;        /* where it goes: in sg_config, or in sg_pconf when per_provider */
	int64_t dflt;      /* numbers: the default (provider keys take theirs from the provider) */
};

#define G(name, type, min, max, field, dflt)                                                       \
	{                                                                                          \
		{name, false, min, max}, type, offsetof(sg_config, field), dflt                    \
	}
#define PK(name, type, min, max, field)                                                            \
	{                                                                                          \
		{name, true, min, max}, type, offsetof(sg_pconf, field), 0                         \
	}
#define MS_DAY ((int64_t)24 * 3600 * 1000)

static const struct cfg_key keys[] = {
        G("listen", K_LISTEN, 0, 0, listen, 0),
        G("workers", K_INT, 1, 65536, workers, 1024),
        G("max_request_bytes", K_SIZE, 1024, (int64_t)1 << 30, max_request_bytes, 64 << 10),
        G("recv_max_bytes", K_SIZE, 1024, (int64_t)1 << 30, recv_max_bytes, 64 << 10),
        G("max_connections", K_SIZE, 1, 1000000, max_connections, 4096),
        G("max_connections_per_peer", K_SIZE, 0, 1000000, max_connections_per_peer, 1024),
        G("upstream.fd_reserve", K_SIZE, 64, 1000000, fd_reserve, 1024),
        G("default_deadline_ms", K_I64, 1, 3600000, default_deadline_ms, 30000),
        G("max_deadline_ms", K_I64, 1, 3600000, max_deadline_ms, 300000),
        G("drain_timeout_ms", K_I64, 0, 3600000, drain_timeout_ms, 10000),
        G("arena_cap_bytes", K_SIZE, 65536, (int64_t)1 << 32, arena_cap, (int64_t)64 << 20),
        G("verbose", K_INT, 0, 2, verbose, 1),
        G("ipc_watchdog_ms", K_I64, 0, 3600000, ipc_watchdog_ms, 50),
        G("tls.cert_file", K_STR, 0, 0, tls_cert_file, 0),
        G("tls.key_file", K_STR, 0, 0, tls_key_file, 0),
        G("tls.ca_file", K_STR, 0, 0, tls_ca_file, 0),
        G("tls.client_auth", K_STR, 0, 0, tls_client_auth, 0),
        G("tls.min_version", K_STR, 0, 0, tls_min_version, 0),
        G("access.anonymous", K_STR, 0, 0, access_anonymous, 0),
        G("ipc.mode", K_STR, 0, 0, ipc_mode_str, 0),
        G("ipc.group", K_STR, 0, 0, ipc_group, 0),
        G("upstream.threads", K_INT, 1, 16, engine_threads, 2),
        G("upstream.max_host_conns", K_LONG, 0, 1000000, engine.max_host_conns, 256),
        G("upstream.max_total_conns", K_LONG, 0, 1000000, engine.max_total_conns, 0),
        G("upstream.max_body_bytes", K_SIZE, 1024, (int64_t)1 << 30, engine.max_body, 8 << 20),
        G("upstream.recv_buffer_bytes", K_LONG, 1024, 512 << 10, engine.recv_buffer, 1024),
        G("upstream.connect_timeout_ms", K_LONG, 1, 600000, engine.connect_timeout_ms, 5000),
        G("upstream.ca_file", K_STR, 0, 0, upstream_ca_file, 0),
        G("upstream.tls_min_version", K_STR, 0, 0, upstream_tls_min, 0),
        G("upstream.proxy", K_STR, 0, 0, upstream_proxy, 0),
        G("idempotency.max_entries", K_SIZE, 1, 100000000, idem_max_entries, 100000),
        G("idempotency.ttl_ms", K_I64, 1000, 30 * MS_DAY, idem_ttl_ms, MS_DAY),
        G("idempotency.store", K_STR, 0, 0, idem_store, 0),
        G("idempotency.path", K_STR, 0, 0, idem_path, 0),
        G("state_dir", K_STR, 0, 0, state_dir, 0),
        G("idempotency.redis_url", K_STR, 0, 0, redis_url, 0),
        G("idempotency.fleet_id", K_STR, 0, 0, fleet_id, 0),
        G("idempotency.caller_max_keys", K_SIZE, 0, 100000000, idem_caller_max_keys, 0),
        G("idempotency.caller_max_in_flight", K_SIZE, 1, 1000000, idem_caller_max_in_flight, 256),
        G("cache.max_bytes", K_SIZE, 0, (int64_t)1 << 40, cache_max_bytes, (int64_t)64 << 20),
        G("cache.max_entries", K_SIZE, 1, 100000000, cache_max_entries, 100000),
        G("cache.backend", K_STR, 0, 0, cache_backend, 0),
        G("cache.redis_url", K_STR, 0, 0, cache_redis_url, 0),
        G("cache.redis_timeout_ms", K_INT, 1, 10000, cache_redis_timeout_ms, 200),
        PK("base_url", K_URL, 0, 0, base_url),
        PK("token", K_STR, 0, 0, token),
        PK("auth_scheme", K_SCHEME, 0, 0, auth_scheme),
        PK("client_id", K_STR, 0, 0, client_id),
        PK("client_secret", K_STR, 0, 0, client_secret),
        PK("token_file", K_STR, 0, 0, token_file),
        PK("ca_file", K_STR, 0, 0, tls.ca_file),
        PK("client_cert", K_STR, 0, 0, tls.client_cert),
        PK("client_key", K_STR, 0, 0, tls.client_key),
        PK("client_secret_file", K_STR, 0, 0, client_secret_file),
        PK("utc_offset", K_OFFSET, 0, 0, utc_offset_s),
        PK("timeout_ms", K_I64, 1, 3600000, timeout_ms),
        PK("cache_ttl_ms", K_I64, 0, MS_DAY, cache_ttl_ms),
        PK("cache_stale_ms", K_I64, 0, MS_DAY, cache_stale_ms),
};

#undef G
#undef PK

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const sg_config_key *
sg_config_key_at(size_t i)
{
	return i < NKEYS ? &keys[i].pub : NULL;
}

static int
cfg_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* A copy of s owned by cfg (freed by sg_config_fini), or NULL when out of room. */
static const char *
cfg_strdup(sg_config *cfg, const char *s, size_t n)
{
	if (cfg->nowned >= sizeof(cfg->owned) / sizeof(cfg->owned[0]))
		return NULL;
	char *p = strndup(s, n);
	if (p != NULL)
		cfg->owned[cfg->nowned++] = p;
	return p;
}

static int
parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "+08:00", "-0530", "8", "UTC+7" -> seconds east of UTC. */
static int
parse_offset(const char *s, int32_t *out)
{
	if (strncasecmp(s, "UTC", 3) == 0)
		s += 3;
	int sign = 1;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	int h = 0, m = 0, n = 0;
	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) == 2 && s[n] == '\0') {
	} else if (sscanf(s, "%2d%2d%n", &h, &m, &n) == 2 && s[n] == '\0') {
	} else if (sscanf(s, "%2d%n", &h, &n) == 1 && s[n] == '\0') {
		m = 0;
	} else {
		return -1;
	}
	if (h > 14 || m > 59)
		return -1;
	*out = sign * (h * 3600 + m * 60);
	return 0;
}

/* *str = a copy of value[0..n), or NULL when n is 0. */
static int
set_str(sg_config *cfg, const char **str, const char *value, size_t n, char *err, size_t errlen)
{
	if (n == 0) {
		*str = NULL;
		return 0;
	}
	if ((*str = cfg_strdup(cfg, value, n)) == NULL)
		return cfg_error(err, errlen, "out of memory");
	return 0;
}

/* Stores a number of k's type at dst. */
static void
store_num(const struct cfg_key *k, void *dst, int64_t v)
{
	switch (k->type) {
	case K_INT: *(int *)dst = (int)v; break;
	case K_LONG: *(long *)dst = (long)v; break;
	case K_SIZE: *(size_t *)dst = (size_t)v; break;
	default: *(int64_t *)dst = v; break;
	}
}

/*
 * Sets key k of base (an sg_config, or the sg_pconf of provider `who` when k is per provider)
 * from value. Returns 0, or -1 with a message naming the key.
 */
static int
key_set(sg_config *cfg, const struct cfg_key *k, void *base, const char *who, const char *value,
        char *err, size_t errlen)
{
	void *dst = (char *)base + k->off;
	const char **str = dst;
	const char *name = k->pub.name, *dot = who ? "." : "";
	size_t n = strlen(value);
	int64_t v;

	who = who ? who : "";
	switch (k->type) {
	case K_INT:
	case K_LONG:
	case K_SIZE:
	case K_I64:
		if (parse_i64(value, k->pub.min, k->pub.max, &v) != 0)
			return cfg_error(err, errlen, "%s%s%s: want an integer in %lld..%lld", who,
			                 dot, name, (long long)k->pub.min, (long long)k->pub.max);
		store_num(k, dst, v);
		return 0;
	case K_URL:
		if (n != 0 && strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0)
			return cfg_error(err, errlen, "%s%s%s: must start with http:// or https://",
			                 who, dot, name);
		while (n > 0 && value[n - 1] == '/')
			n--; /* stored like a string, without the trailing slashes */
		return set_str(cfg, str, value, n, err, errlen);
	case K_STR: return set_str(cfg, str, value, n, err, errlen);
	case K_SCHEME:
		if (strcasecmp(value, "raw") == 0) {
			*str = "";
			return 0;
		}
		if ((*str = cfg_strdup(cfg, value, n)) == NULL)
			return cfg_error(err, errlen, "out of memory");
		return 0;
	case K_OFFSET: {
		sg_pconf *pc = base;
		if (parse_offset(value, &pc->utc_offset_s) != 0)
			return cfg_error(err, errlen, "%s%s%s: want e.g. +08:00", who, dot, name);
		pc->utc_offset_set = true;
		return 0;
	}
	case K_LISTEN:
		/* the first explicit listen replaces the default */
		if (cfg->nlisten == 1 && cfg->listen[0] == default_listen)
			cfg->nlisten = 0;
		if (cfg->nlisten >= SG_CONFIG_MAX_LISTEN)
			return cfg_error(err, errlen, "listen: at most %d URLs",
			                 SG_CONFIG_MAX_LISTEN);
		if (strncmp(value, "tcp://", 6) != 0 && strncmp(value, "ipc://", 6) != 0 &&
		    strncmp(value, "inproc://", 9) != 0 && strncmp(value, "tls+tcp://", 10) != 0)
			return cfg_error(err, errlen,
			                 "listen: %s: want tcp://, tls+tcp://, ipc:// or inproc://",
			                 value);
		if ((cfg->listen[cfg->nlisten] = cfg_strdup(cfg, value, n)) == NULL)
			return cfg_error(err, errlen, "out of memory");
		cfg->nlisten++;
		return 0;
	}
	return cfg_error(err, errlen, "%s: no such key type", name);
}

void
sg_config_defaults(sg_config *cfg)
{
	size_t np;
	const sg_provider *ps = sg_providers(&np);

	memset(cfg, 0, sizeof(*cfg));
	cfg->listen[cfg->nlisten++] = default_listen;
	for (size_t i = 0; i < NKEYS; i++)
		if (!keys[i].pub.per_provider && keys[i].type != K_LISTEN)
			store_num(&keys[i], (char *)cfg + keys[i].off, keys[i].dflt);
	cfg->engine.default_timeout_ms = cfg->default_deadline_ms;
	cfg->idem_store = "sqlite"; /* in <state_dir>, resolved by sg_config_validate */
	cfg->cache_backend = "memory";
	cfg->ipc_mode = 0600;
	/* each provider's defaults are its module's: the sandbox's credentials */
	for (size_t i = 0; i < np; i++) {
		const sg_provider *p = &ps[i];
		if (p->id < 1 || (size_t)p->id > SG_MAX_PROVIDERS)
			continue; /* cannot be configured; test_config says so */
		sg_pconf *pc = &cfg->providers[p->id - 1];
		char url[128];
		int n = snprintf(url, sizeof(url), SANDBOX_BASE "/%s", p->name);
		pc->name = p->name;
		/* the sandbox serves each provider under its name (NULL only without memory,
		 * which leaves the provider off) */
		pc->base_url = cfg_strdup(cfg, url, (size_t)n);
		pc->token = p->defaults.token;
		pc->auth_scheme = p->defaults.auth_scheme ? p->defaults.auth_scheme : "Bearer";
		pc->client_id = p->defaults.client_id;
		pc->client_secret = p->defaults.client_secret;
		pc->cache_ttl_ms = p->defaults.cache_ttl_ms;
		pc->cache_stale_ms = p->defaults.cache_stale_ms;
		if ((size_t)p->id > cfg->nproviders)
			cfg->nproviders = (size_t)p->id;
	}
}

/* The provider whose name is key[0..n), or NULL. */
static sg_pconf *
provider_named(sg_config *cfg, const char *key, size_t n)
{
	for (size_t i = 0; i < cfg->nproviders; i++) {
		sg_pconf *pc = &cfg->providers[i];
		if (pc->name != NULL && strlen(pc->name) == n && strncmp(pc->name, key, n) == 0)
			return pc;
	}
	return NULL;
}

/* A comma-separated list (spaces allowed) through fn for each item; * is every one. 0 or -1. */
static int
each_item(const char *list, int (*fn)(const char *item, size_t n, void *arg), void *arg)
{
	for (const char *p = list; *p != '\0';) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t n = strcspn(p, ", ");
		if (n > 0 && fn(p, n, arg) != 0)
			return -1;
		p += n;
	}
	return 0;
}

struct caller_set {
	sg_config *cfg;
	sg_caller *c;
};

static int
method_item(const char *item, size_t n, void *arg)
{
	static const struct {
		const char *name;
		unsigned bit;
	} m[] = {{"Health", SG_CALLER_HEALTH},
	         {"Track", SG_CALLER_TRACK},
	         {"GetOrder", SG_CALLER_GET_ORDER},
	         {"CreateOrder", SG_CALLER_CREATE_ORDER},
	         {"*", ~0u}};
	sg_caller *c = ((struct caller_set *)arg)->c;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (strlen(m[i].name) == n && strncmp(m[i].name, item, n) == 0) {
			c->methods |= m[i].bit;
			return 0;
		}
	return -1;
}

static int
provider_item(const char *item, size_t n, void *arg)
{
	struct caller_set *cs = arg;
	if (n == 1 && item[0] == '*') {
		cs->c->providers = ~0u;
		return 0;
	}
	sg_pconf *pc = provider_named(cs->cfg, item, n);
	if (pc == NULL)
		return -1;
	cs->c->providers |= 1u << (size_t)(pc - cs->cfg->providers);
	return 0;
}

/*
 * caller.<name>.<field> = value: token_sha256 (64 hex digits: the SHA-256 of its caller token,
 * `printf %s TOKEN | sha256sum`), uid (its ipc peer uid), methods and providers (comma lists,
 * * for all). A caller named for the first time may call Track and GetOrder with every
 * provider until told otherwise; CreateOrder must be granted.
 */
static int
caller_set(sg_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const char *name = key + 7, *dot = strchr(name, '.');
	size_t n = dot != NULL ? (size_t)(dot - name) : 0;
	if (n == 0 || n > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") < n)
		return cfg_error(err, errlen, "%s: want caller.NAME.FIELD, NAME of [a-z0-9_-]",
		                 key);
	sg_caller *c = NULL;
	for (size_t i = 0; i < cfg->ncallers; i++)
		if (strlen(cfg->callers[i].name) == n &&
		    strncmp(cfg->callers[i].name, name, n) == 0)
			c = &cfg->callers[i];
	if (c == NULL) {
		if (cfg->ncallers == SG_MAX_CALLERS)
			return cfg_error(err, errlen, "%s: at most %d callers", key,
			                 SG_MAX_CALLERS);
		c = &cfg->callers[cfg->ncallers];
		memset(c, 0, sizeof(*c));
		if ((c->name = cfg_strdup(cfg, name, n)) == NULL)
			return cfg_error(err, errlen, "out of memory");
		c->uid = -1;
		c->methods = SG_CALLER_TRACK | SG_CALLER_GET_ORDER;
		c->providers = ~0u;
		cfg->ncallers++;
	}
	const char *field = dot + 1;
	struct caller_set cs = {cfg, c};
	if (strcmp(field, "token_sha256") == 0) {
		if (strlen(value) != 64 || strspn(value, "0123456789abcdefABCDEF") != 64)
			return cfg_error(err, errlen,
			                 "%s: want 64 hex digits (sha256sum of the token)", key);
		for (size_t i = 0; i < 32; i++) {
			unsigned b;
			sscanf(value + 2 * i, "%2x", &b);
			c->token_sha256[i] = (uint8_t)b;
		}
		c->has_token = true;
		return 0;
	}
	if (strcmp(field, "uid") == 0) {
		char *end;
		long uid = strtol(value, &end, 10);
		if (*value == '\0' || *end != '\0' || uid < 0 || uid > 0x7fffffff)
			return cfg_error(err, errlen, "%s: want a uid", key);
		c->uid = uid;
		return 0;
	}
	if (strcmp(field, "methods") == 0) {
		c->methods = 0;
		if (each_item(value, method_item, &cs) != 0)
			return cfg_error(err, errlen,
			                 "%s: %s: want Track, GetOrder, CreateOrder, Health or *",
			                 key, value);
		return 0;
	}
	if (strcmp(field, "providers") == 0) {
		c->providers = 0;
		if (each_item(value, provider_item, &cs) != 0)
			return cfg_error(err, errlen, "%s: %s: unknown provider (or *)", key,
			                 value);
		return 0;
	}
	if (strcmp(field, "max_keys") == 0 || strcmp(field, "max_keys_in_flight") == 0) {
		int64_t v;
		if (parse_i64(value, 1, 100000000, &v) != 0)
			return cfg_error(err, errlen, "%s: want an integer in 1..100000000", key);
		*(field[8] == '\0' ? &c->max_keys : &c->max_in_flight) = (size_t)v;
		return 0;
	}
	const char **str = strcmp(field, "tenant") == 0        ? &c->tenant_name
	                   : strcmp(field, "tls_listen") == 0  ? &c->tls_listen
	                   : strcmp(field, "tls_ca_file") == 0 ? &c->tls_ca_file
	                                                       : NULL;
	if (str != NULL) {
		if (str == &c->tls_listen && strncmp(value, "tls+tcp://", 10) != 0)
			return cfg_error(err, errlen, "%s: %s: want a tls+tcp:// URL", key, value);
		return set_str(cfg, str, value, strlen(value), err, errlen);
	}
	return cfg_error(err, errlen,
	                 "%s: want token_sha256, uid, tls_listen, tls_ca_file, methods, "
	                 "providers, tenant, max_keys or max_keys_in_flight",
	                 key);
}

/* The keys a tenant may set for a provider: where it is and who it is there. */
static bool
tenant_key_ok(const char *name)
{
	static const char *const ok[] = {"base_url",           "token",     "token_file",
	                                 "auth_scheme",        "client_id", "client_secret",
	                                 "client_secret_file", "ca_file",   "client_cert",
	                                 "client_key"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(name, ok[i]) == 0)
			return true;
	return false;
}

/*
 * tenant.<name>.<provider>.<key> = value: a tenant's own credentials (or base URL) for a
 * provider. Kept as given, and applied over the provider's config when the config is validated
 * (so that the order of lines does not matter).
 */
static int
tenant_set(sg_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const char *name = key + 7, *dot = strchr(name, '.');
	size_t n = dot != NULL ? (size_t)(dot - name) : 0;
	if (n == 0 || n > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") < n)
		return cfg_error(err, errlen,
		                 "%s: want tenant.NAME.PROVIDER.KEY, NAME of [a-z0-9_-]", key);
	const char *pdot = strchr(dot + 1, '.');
	sg_pconf *pc = pdot != NULL ? provider_named(cfg, dot + 1, (size_t)(pdot - dot - 1)) : NULL;
	if (pc == NULL)
		return cfg_error(err, errlen,
		                 "%s: want tenant.NAME.PROVIDER.KEY (a known provider)", key);
	size_t row = NKEYS;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].pub.per_provider && strcmp(pdot + 1, keys[i].pub.name) == 0)
			row = i;
	if (row == NKEYS || !tenant_key_ok(pdot + 1))
		return cfg_error(err, errlen,
		                 "%s: a tenant sets base_url, token, token_file, auth_scheme, "
		                 "client_id, client_secret, client_secret_file, ca_file, "
		                 "client_cert or client_key",
		                 key);
	size_t t = cfg->ntenants;
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (strlen(cfg->tenants[i].name) == n &&
		    strncmp(cfg->tenants[i].name, name, n) == 0)
			t = i;
	if (t == cfg->ntenants) {
		if (cfg->ntenants == SG_MAX_TENANTS)
			return cfg_error(err, errlen, "%s: at most %d tenants", key,
			                 SG_MAX_TENANTS);
		if ((cfg->tenants[t].name = cfg_strdup(cfg, name, n)) == NULL)
			return cfg_error(err, errlen, "out of memory");
		cfg->ntenants++;
	}
	size_t i = 0;
	while (i < cfg->ntenant_keys &&
	       !(cfg->tenant_keys[i].tenant == t &&
	         cfg->tenant_keys[i].provider == (size_t)(pc - cfg->providers) &&
	         cfg->tenant_keys[i].key == row))
		i++; /* a later line for the same key replaces the earlier one */
	if (i == SG_MAX_TENANT_KEYS)
		return cfg_error(err, errlen, "%s: at most %d tenant keys", key,
		                 SG_MAX_TENANT_KEYS);
	sg_tenant_key *tk = &cfg->tenant_keys[i];
	tk->tenant = t;
	tk->provider = (size_t)(pc - cfg->providers);
	tk->key = row;
	if ((tk->value = cfg_strdup(cfg, value, strlen(value))) == NULL)
		return cfg_error(err, errlen, "out of memory");
	if (i == cfg->ntenant_keys)
		cfg->ntenant_keys++;
	return 0;
}

int
sg_config_set(sg_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	if (strncmp(key, "caller.", 7) == 0)
		return caller_set(cfg, key, value, err, errlen);
	if (strncmp(key, "tenant.", 7) == 0)
		return tenant_set(cfg, key, value, err, errlen);
	for (size_t i = 0; i < NKEYS; i++)
		if (!keys[i].pub.per_provider && strcmp(key, keys[i].pub.name) == 0)
			return key_set(cfg, &keys[i], cfg, NULL, value, err, errlen);
	const char *dot = strchr(key, '.');
	sg_pconf *pc = dot != NULL ? provider_named(cfg, key, (size_t)(dot - key)) : NULL;
	if (pc == NULL)
		return cfg_error(err, errlen,
		                 dot != NULL ? "unknown provider in key %s" : "unknown key %s",
		                 key);
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].pub.per_provider && strcmp(dot + 1, keys[i].pub.name) == 0)
			return key_set(cfg, &keys[i], pc, pc->name, value, err, errlen);
	return cfg_error(err, errlen, "unknown key %s", key);
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
sg_config_load_file(sg_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return cfg_error(err, errlen, "%s: %s", path, strerror(errno));
	char line[4096];
	int lineno = 0, rv = 0;
	while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			rv = cfg_error(err, errlen, "%s:%d: want key = value", path, lineno);
			break;
		}
		*eq = '\0';
		char sub[512];
		if (sg_config_set(cfg, trim(s), trim(eq + 1), sub, sizeof(sub)) != 0)
			rv = cfg_error(err, errlen, "%s:%d: %s", path, lineno, sub);
	}
	fclose(f);
	return rv;
}

int
sg_config_load_env(sg_config *cfg, char *err, size_t errlen)
{
	static const char *const what[] = {"TOKEN", "URL", "CLIENT_ID", "CLIENT_SECRET"};
	static const char *const key[] = {"token", "base_url", "client_id", "client_secret"};

	for (size_t i = 0; i < cfg->nproviders; i++) {
		const char *pname = cfg->providers[i].name;
		if (pname == NULL)
			continue;
		for (size_t j = 0; j < sizeof(what) / sizeof(what[0]); j++) {
			char name[64], k[64];
			snprintf(name, sizeof(name), "SHIPGATE_%s_%s", pname, what[j]);
			for (char *p = name; *p; p++)
				*p = (char)toupper((unsigned char)*p);
			const char *v = getenv(name);
			snprintf(k, sizeof(k), "%s.%s", pname, key[j]);
			if (v != NULL && sg_config_set(cfg, k, v, err, errlen) != 0)
				return -1;
		}
	}
	return 0;
}

/*
 * A secret from a file (<provider>.token_file, .client_secret_file): a regular file of at most
 * 8 KiB, one line (a final newline is dropped), printable ASCII with no spaces inside (it goes
 * into a header: a CR or LF there would inject one). A file that others may read is warned
 * about. 0 with the secret in *out (owned by cfg), or -1 with err.
 */
static int
read_secret(sg_config *cfg, const char *key, const char *path, const char **out, char *err,
            size_t errlen)
{
	char buf[8193];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cfg_error(err, errlen, "%s: %s: %s", key, path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 8192) {
		close(fd);
		return cfg_error(err, errlen, "%s: %s: not a regular file of at most 8 KiB", key,
		                 path);
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return cfg_error(err, errlen, "%s: %s: %s", key, path, strerror(errno));
	size_t len = (size_t)n;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0)
		return cfg_error(err, errlen, "%s: %s is empty", key, path);
	for (size_t i = 0; i < len; i++)
		if (buf[i] < 0x21 || buf[i] > 0x7e)
			return cfg_error(err, errlen,
			                 "%s: %s: byte %zu is not printable ASCII (one line, no "
			                 "spaces)",
			                 key, path, i);
	if ((st.st_mode & 077) != 0)
		fprintf(stderr, "shipgated: warning: %s: %s may be read by others (mode %03o)\n",
		        key, path, (unsigned)(st.st_mode & 0777));
	if ((*out = cfg_strdup(cfg, buf, len)) == NULL)
		return cfg_error(err, errlen, "out of memory");
	return 0;
}

/* One provider's config, after every key is set (who names it in messages: "fuuffy", or
 * "tenant.acme.fuuffy"): TLS inherited from upstream.*, files readable, secrets read from their
 * files, the timeout. 0, or -1 with err. */
static int
pconf_validate(sg_config *cfg, sg_pconf *pc, const char *who, int tls_min, char *err, size_t errlen)
{
	char key[128];
	/* TLS: the provider's own CA bundle, else the global one; files readable now */
	if (pc->tls_ca_inherited) /* (validated before: the global one may have changed) */
		pc->tls.ca_file = NULL;
	pc->tls_ca_inherited = pc->tls.ca_file == NULL;
	if (pc->tls.ca_file == NULL)
		pc->tls.ca_file = cfg->upstream_ca_file;
	pc->tls.min_version = tls_min;
	pc->tls.proxy = cfg->upstream_proxy;
	if ((pc->tls.client_cert == NULL) != (pc->tls.client_key == NULL))
		return cfg_error(err, errlen, "%s.client_cert and %s.client_key go together", who,
		                 who);
	const char *files[][2] = {{"ca_file", pc->tls.ca_file},
	                          {"client_cert", pc->tls.client_cert},
	                          {"client_key", pc->tls.client_key}};
	for (size_t k = 0; k < 3; k++)
		if (files[k][1] != NULL && access(files[k][1], R_OK) != 0)
			return cfg_error(err, errlen, "%s.%s: %s: %s", who, files[k][0],
			                 files[k][1], strerror(errno));
	snprintf(key, sizeof(key), "%s.token_file", who);
	if (pc->token_file != NULL &&
	    read_secret(cfg, key, pc->token_file, &pc->token, err, errlen) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s.client_secret_file", who);
	if (pc->client_secret_file != NULL &&
	    read_secret(cfg, key, pc->client_secret_file, &pc->client_secret, err, errlen) != 0)
		return -1;
	if (pc->timeout_ms == 0)
		pc->timeout_ms = cfg->default_deadline_ms;
	if (pc->timeout_ms > cfg->max_deadline_ms)
		return cfg_error(err, errlen, "%s.timeout_ms must be <= max_deadline_ms", who);
	return 0;
}

/* Each tenant's providers: the providers' config with the tenant's keys over it. */
static int
tenants_validate(sg_config *cfg, int tls_min, char *err, size_t errlen)
{
	for (size_t t = 0; t < cfg->ntenants; t++) {
		sg_tenant *tn = &cfg->tenants[t];
		memcpy(tn->providers, cfg->providers, sizeof(tn->providers));
		for (size_t i = 0; i < cfg->ntenant_keys; i++) {
			const sg_tenant_key *tk = &cfg->tenant_keys[i];
			if (tk->tenant != t)
				continue;
			sg_pconf *pc = &tn->providers[tk->provider];
			const struct cfg_key *k = &keys[tk->key];
			char who[80];
			snprintf(who, sizeof(who), "tenant.%s.%s", tn->name, pc->name);
			/* a value given here replaces the file the providers' own came from */
			if (strcmp(k->pub.name, "token") == 0)
				pc->token_file = NULL;
			else if (strcmp(k->pub.name, "client_secret") == 0)
				pc->client_secret_file = NULL;
			else if (strcmp(k->pub.name, "ca_file") == 0)
				pc->tls_ca_inherited = false;
			if (key_set(cfg, k, pc, who, tk->value, err, errlen) != 0)
				return -1;
		}
		for (size_t i = 0; i < cfg->nproviders; i++) {
			sg_pconf *pc = &tn->providers[i];
			char who[80];
			snprintf(who, sizeof(who), "tenant.%s.%s", tn->name,
			         pc->name ? pc->name : "");
			if (pc->name != NULL &&
			    pconf_validate(cfg, pc, who, tls_min, err, errlen) != 0)
				return -1;
		}
	}
	return 0;
}

/* The callers' tenants and their own TLS listeners. */
static int
callers_validate(sg_config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->ncallers; i++) {
		sg_caller *c = &cfg->callers[i];
		c->tenant = 0;
		if (c->tenant_name != NULL) {
			for (size_t t = 0; t < cfg->ntenants; t++)
				if (strcmp(cfg->tenants[t].name, c->tenant_name) == 0)
					c->tenant = t + 1;
			if (c->tenant == 0)
				return cfg_error(
				        err, errlen,
				        "caller.%s.tenant: %s: no tenant.%s.* keys name it",
				        c->name, c->tenant_name, c->tenant_name);
		}
		if ((c->tls_listen == NULL) != (c->tls_ca_file == NULL))
			return cfg_error(
			        err, errlen,
			        "caller.%s.tls_listen and caller.%s.tls_ca_file go together",
			        c->name, c->name);
		if (c->tls_listen == NULL)
			continue;
		if (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL)
			return cfg_error(
			        err, errlen,
			        "caller.%s.tls_listen needs tls.cert_file and tls.key_file",
			        c->name);
		if (access(c->tls_ca_file, R_OK) != 0)
			return cfg_error(err, errlen, "caller.%s.tls_ca_file: %s: %s", c->name,
			                 c->tls_ca_file, strerror(errno));
		const char *colon = strrchr(c->tls_listen, ':');
		if (colon != NULL && strcmp(colon, ":0") == 0)
			continue; /* a port of its own, whatever the others are */
		for (size_t j = 0; j < cfg->nlisten; j++)
			if (strcmp(cfg->listen[j], c->tls_listen) == 0)
				return cfg_error(err, errlen,
				                 "caller.%s.tls_listen: %s is also a listen URL",
				                 c->name, c->tls_listen);
		for (size_t j = 0; j < i; j++)
			if (cfg->callers[j].tls_listen != NULL &&
			    strcmp(cfg->callers[j].tls_listen, c->tls_listen) == 0)
				return cfg_error(err, errlen,
				                 "caller.%s.tls_listen: %s is caller %s's already",
				                 c->name, c->tls_listen, cfg->callers[j].name);
	}
	return 0;
}

int
sg_config_validate(sg_config *cfg, char *err, size_t errlen)
{
	if (cfg->nlisten == 0)
		return cfg_error(err, errlen, "no listen URL");
	if (cfg->recv_max_bytes < cfg->max_request_bytes)
		return cfg_error(err, errlen, "recv_max_bytes must be >= max_request_bytes");
	if (cfg->default_deadline_ms > cfg->max_deadline_ms)
		return cfg_error(err, errlen, "default_deadline_ms must be <= max_deadline_ms");
	if (cfg->idem_store == NULL ||
	    (strcmp(cfg->idem_store, "memory") != 0 && strcmp(cfg->idem_store, "sqlite") != 0 &&
	     strcmp(cfg->idem_store, "redis") != 0))
		return cfg_error(err, errlen, "idempotency.store: want sqlite, memory or redis");
	if (strcmp(cfg->idem_store, "redis") == 0 && cfg->redis_url == NULL)
		return cfg_error(err, errlen, "idempotency.redis_url: the redis store needs one");
	if (cfg->fleet_id == NULL)
		cfg->fleet_id = cfg->redis_url;
	if (cfg->access_anonymous != NULL && strcmp(cfg->access_anonymous, "local") != 0 &&
	    strcmp(cfg->access_anonymous, "all") != 0 && strcmp(cfg->access_anonymous, "none") != 0)
		return cfg_error(err, errlen, "access.anonymous: %s: want local, all or none",
		                 cfg->access_anonymous);
	for (size_t i = 0; i < cfg->ncallers; i++)
		if (!cfg->callers[i].has_token && cfg->callers[i].uid < 0 &&
		    cfg->callers[i].tls_listen == NULL)
			return cfg_error(
			        err, errlen,
			        "caller.%s: needs token_sha256, uid or tls_listen (how it is "
			        "known)",
			        cfg->callers[i].name);
	/* TLS for callers: a tls+tcp:// listener needs a certificate and its key */
	bool tls_listen = false;
	for (size_t i = 0; i < cfg->nlisten; i++)
		tls_listen |= strncmp(cfg->listen[i], "tls+tcp://", 10) == 0;
	if (tls_listen && (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL))
		return cfg_error(err, errlen,
		                 "a tls+tcp:// listener needs tls.cert_file and tls.key_file");
	if (cfg->tls_client_auth != NULL && strcmp(cfg->tls_client_auth, "none") != 0 &&
	    strcmp(cfg->tls_client_auth, "optional") != 0 &&
	    strcmp(cfg->tls_client_auth, "required") != 0)
		return cfg_error(err, errlen,
		                 "tls.client_auth: %s: want none, optional or required",
		                 cfg->tls_client_auth);
	if (cfg->tls_client_auth != NULL && strcmp(cfg->tls_client_auth, "none") != 0 &&
	    cfg->tls_ca_file == NULL)
		return cfg_error(err, errlen,
		                 "tls.client_auth %s needs tls.ca_file (the CA of the callers' "
		                 "certificates)",
		                 cfg->tls_client_auth);
	if (cfg->tls_min_version != NULL && strcmp(cfg->tls_min_version, "1.2") != 0 &&
	    strcmp(cfg->tls_min_version, "1.3") != 0)
		return cfg_error(err, errlen, "tls.min_version: %s: want 1.2 or 1.3",
		                 cfg->tls_min_version);
	if (cfg->ipc_mode_str != NULL) {
		char *end;
		long m = strtol(cfg->ipc_mode_str, &end, 8);
		if (*cfg->ipc_mode_str == '\0' || *end != '\0' || m < 0 || m > 0777 ||
		    (m & 0600) != 0600)
			return cfg_error(err, errlen,
			                 "ipc.mode: %s: want an octal mode such as 0600 or 0660, "
			                 "with read and write for the owner",
			                 cfg->ipc_mode_str);
		cfg->ipc_mode = (int)m;
	}
	if (cfg->cache_backend == NULL ||
	    (strcmp(cfg->cache_backend, "memory") != 0 && strcmp(cfg->cache_backend, "redis") != 0))
		return cfg_error(err, errlen, "cache.backend: want memory or redis");
	if (strcmp(cfg->cache_backend, "redis") == 0) {
		if (cfg->cache_redis_url == NULL)
			cfg->cache_redis_url = cfg->redis_url;
		if (cfg->cache_redis_url == NULL)
			return cfg_error(err, errlen,
			                 "cache.redis_url: the redis cache needs one (or "
			                 "idempotency.redis_url)");
		if (cfg->cache_max_bytes == 0)
			return cfg_error(
			        err, errlen,
			        "cache.backend redis: the local cache in front of it is off "
			        "(cache.max_bytes = 0)");
	}
	if (cfg->state_dir == NULL) {
		/* systemd's StateDirectory= sets STATE_DIRECTORY (a ':'-separated list) */
		const char *sd = getenv("STATE_DIRECTORY");
		size_t n = sd != NULL ? strcspn(sd, ":") : 0;
		cfg->state_dir = n > 0 ? cfg_strdup(cfg, sd, n) : "shipgate-state";
		if (cfg->state_dir == NULL)
			return cfg_error(err, errlen, "out of memory");
	}
	if (cfg->idem_path == NULL) {
		char path[4096];
		int n = snprintf(path, sizeof(path), "%s/idempotency.db", cfg->state_dir);
		if (n < 0 || (size_t)n >= sizeof(path) ||
		    (cfg->idem_path = cfg_strdup(cfg, path, (size_t)n)) == NULL)
			return cfg_error(err, errlen, "state_dir: too long");
	}
	cfg->engine.default_timeout_ms = cfg->default_deadline_ms;
	int tls_min = 12;
	if (cfg->upstream_tls_min != NULL) {
		if (strcmp(cfg->upstream_tls_min, "1.2") == 0)
			tls_min = 12;
		else if (strcmp(cfg->upstream_tls_min, "1.3") == 0)
			tls_min = 13;
		else
			return cfg_error(err, errlen,
			                 "upstream.tls_min_version: %s: want 1.2 or 1.3",
			                 cfg->upstream_tls_min);
	}
	if (cfg->upstream_proxy != NULL && strncmp(cfg->upstream_proxy, "http://", 7) != 0 &&
	    strncmp(cfg->upstream_proxy, "https://", 8) != 0 &&
	    strncmp(cfg->upstream_proxy, "socks5h://", 10) != 0)
		return cfg_error(
		        err, errlen,
		        "upstream.proxy: %s: want http://, https:// or socks5h://HOST:PORT",
		        cfg->upstream_proxy);
	for (size_t i = 0; i < cfg->nproviders; i++)
		if (cfg->providers[i].name != NULL &&
		    pconf_validate(cfg, &cfg->providers[i], cfg->providers[i].name, tls_min, err,
		                   errlen) != 0)
			return -1;
	if (tenants_validate(cfg, tls_min, err, errlen) != 0 ||
	    callers_validate(cfg, err, errlen) != 0)
		return -1;
	return 0;
}

void
sg_config_fini(sg_config *cfg)
{
	for (size_t i = 0; i < cfg->nowned; i++)
		free(cfg->owned[i]);
	cfg->nowned = 0;
}

const sg_pconf *
sg_config_tenant_provider(const sg_config *cfg, size_t tenant, int provider_id)
{
	if (tenant == 0 || tenant > cfg->ntenants)
		return sg_config_provider(cfg, provider_id);
	if (provider_id < 1 || (size_t)provider_id > cfg->nproviders)
		return NULL;
	const sg_pconf *pc = &cfg->tenants[tenant - 1].providers[provider_id - 1];
	return pc->name != NULL ? pc : NULL;
}

size_t
sg_config_caller_max_keys(const sg_config *cfg, const sg_caller *c)
{
	if (c != NULL && c->max_keys > 0)
		return c->max_keys;
	if (cfg->idem_caller_max_keys > 0)
		return cfg->idem_caller_max_keys;
	return cfg->idem_max_entries / 4 > 0 ? cfg->idem_max_entries / 4 : 1;
}

size_t
sg_config_caller_max_in_flight(const sg_config *cfg, const sg_caller *c)
{
	if (c != NULL && c->max_in_flight > 0)
		return c->max_in_flight;
	return cfg->idem_caller_max_in_flight;
}

const sg_pconf *
sg_config_provider(const sg_config *cfg, int provider_id)
{
	if (provider_id < 1 || (size_t)provider_id > cfg->nproviders)
		return NULL;
	const sg_pconf *pc = &cfg->providers[provider_id - 1];
	return pc->name != NULL ? pc : NULL;
}
