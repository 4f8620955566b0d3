/*
 * config.c - parsing and defaults of sg_config.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SANDBOX_BASE "http://127.0.0.1:18080"

/* Provider names in Provider enum order (index = enum value - 1). */
static const char *const provider_names[SG_PROVIDER_COUNT] = {"boscod", "bosonline", "biteship",
                                                              "fuuffy"};

static int
cfg_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *
cfg_strdup(sg_config *cfg, const char *s)
{
	if (cfg->nowned >= sizeof(cfg->owned) / sizeof(cfg->owned[0]))
		return NULL;
	char *p = strdup(s);
	if (p != NULL)
		cfg->owned[cfg->nowned++] = p;
	return p;
}

void
sg_config_defaults(sg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen[cfg->nlisten++] = "tcp://127.0.0.1:7400";
	cfg->workers = 1024;
	cfg->max_request_bytes = (size_t)1 << 20;
	cfg->recv_max_bytes = (size_t)4 << 20;
	cfg->default_deadline_ms = 30000;
	cfg->max_deadline_ms = 300000;
	cfg->drain_timeout_ms = 10000;
	cfg->arena_cap = (size_t)64 << 20;
	cfg->verbose = 1;
	cfg->ipc_watchdog_ms = 1000;
	cfg->idem_max_entries = 100000;
	cfg->cache_max_bytes = (size_t)64 << 20;
	cfg->cache_max_entries = 100000;
	for (int i = 0; i < SG_PROVIDER_COUNT; i++) {
		cfg->cache_ttl_ms[i] = 30000;
		cfg->cache_stale_ms[i] = 60000;
	}
	cfg->idem_ttl_ms = 24 * 3600 * 1000;
	cfg->engine.max_host_conns = 256;
	cfg->engine_threads = 2;
	cfg->engine.max_body = (size_t)8 << 20;
	cfg->engine.connect_timeout_ms = 5000;
	cfg->engine.recv_buffer = 1024;
	cfg->engine.default_timeout_ms = 30000;
	static const char *const urls[SG_PROVIDER_COUNT] = {
	        SANDBOX_BASE "/boscod", SANDBOX_BASE "/bosonline", SANDBOX_BASE "/biteship",
	        SANDBOX_BASE "/fuuffy"};
	for (int i = 0; i < SG_PROVIDER_COUNT; i++) {
		sg_pconf *pc = &cfg->providers[i];
		pc->name = provider_names[i];
		pc->base_url = urls[i];
		pc->token = "sandbox-token";
		pc->auth_scheme = "Bearer";
	}
	/* Biteship takes the raw key, without "Bearer" (docs/providers.md, "Biteship: endpoint and
	 * authentication"). */
	cfg->providers[2].token = "biteship_test.sandbox";
	cfg->providers[2].auth_scheme = "";
	/* Fuuffy issues bearer tokens by OAuth2 client credentials; the sandbox's secret. */
	cfg->providers[3].client_id = "shipgate";
	cfg->providers[3].client_secret = "sandbox-token";
	/* Fuuffy's SF Express scans carry Hong Kong / mainland time, UTC+8 (inferred). */
	cfg->providers[3].utc_offset_s = 8 * 3600;
	cfg->providers[3].utc_offset_set = false;
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

static int
set_provider(sg_config *cfg, sg_pconf *pc, const char *key, const char *value, char *err,
             size_t errlen)
{
	int64_t v;
	if (strcmp(key, "base_url") == 0) {
		size_t n = strlen(value);
		if (n != 0 && strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0)
			return cfg_error(err, errlen,
			                 "%s.base_url: must start with http:// or https://",
			                 pc->name);
		while (n > 0 && value[n - 1] == '/')
			n--;
		char *u = strndup(value, n);
		if (u == NULL || cfg->nowned >= sizeof(cfg->owned) / sizeof(cfg->owned[0])) {
			free(u);
			return cfg_error(err, errlen, "out of memory");
		}
		cfg->owned[cfg->nowned++] = u;
		pc->base_url = n ? u : NULL;
		return 0;
	}
	if (strcmp(key, "token") == 0) {
		pc->token = *value ? cfg_strdup(cfg, value) : NULL;
		return 0;
	}
	if (strcmp(key, "client_id") == 0 || strcmp(key, "client_secret") == 0) {
		const char *copy = *value ? cfg_strdup(cfg, value) : NULL;
		if (*value && copy == NULL)
			return cfg_error(err, errlen, "out of memory");
		if (key[7] == 'i')
			pc->client_id = copy;
		else
			pc->client_secret = copy;
		return 0;
	}
	if (strcmp(key, "auth_scheme") == 0) {
		pc->auth_scheme = strcasecmp(value, "raw") == 0 ? "" : cfg_strdup(cfg, value);
		return 0;
	}
	if (strcmp(key, "utc_offset") == 0) {
		if (parse_offset(value, &pc->utc_offset_s) != 0)
			return cfg_error(err, errlen, "%s.utc_offset: want e.g. +08:00", pc->name);
		pc->utc_offset_set = true;
		return 0;
	}
	if (strcmp(key, "cache_ttl_ms") == 0 || strcmp(key, "cache_stale_ms") == 0) {
		if (parse_i64(value, 0, (int64_t)24 * 3600 * 1000, &v) != 0)
			return cfg_error(err, errlen, "%s.%s: want 0..86400000", pc->name, key);
		int i = (int)(pc - cfg->providers);
		if (key[6] == 't')
			cfg->cache_ttl_ms[i] = v;
		else
			cfg->cache_stale_ms[i] = v;
		return 0;
	}
	if (strcmp(key, "timeout_ms") == 0) {
		if (parse_i64(value, 1, 3600000, &v) != 0)
			return cfg_error(err, errlen, "%s.timeout_ms: want 1..3600000", pc->name);
		pc->timeout_ms = v;
		return 0;
	}
	return cfg_error(err, errlen, "unknown key %s.%s", pc->name, key);
}

int
sg_config_set(sg_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	int64_t v;
	const char *dot = strchr(key, '.');

	if (dot != NULL && strncmp(key, "upstream.", 9) != 0 &&
	    strncmp(key, "idempotency.", 12) != 0 && strncmp(key, "cache.", 6) != 0) {
		for (int i = 0; i < SG_PROVIDER_COUNT; i++) {
			size_t n = strlen(provider_names[i]);
			if ((size_t)(dot - key) == n && strncmp(key, provider_names[i], n) == 0)
				return set_provider(cfg, &cfg->providers[i], dot + 1, value, err,
				                    errlen);
		}
		return cfg_error(err, errlen, "unknown provider in key %s", key);
	}
	if (strcmp(key, "listen") == 0) {
		/* the first explicit listen replaces the default */
		static const char *const dflt = "tcp://127.0.0.1:7400";
		if (cfg->nlisten == 1 && cfg->listen[0] == dflt)
			cfg->nlisten = 0;
		if (cfg->nlisten >= SG_CONFIG_MAX_LISTEN)
			return cfg_error(err, errlen, "listen: at most %d URLs",
			                 SG_CONFIG_MAX_LISTEN);
		if (strncmp(value, "tcp://", 6) != 0 && strncmp(value, "ipc://", 6) != 0 &&
		    strncmp(value, "inproc://", 9) != 0)
			return cfg_error(err, errlen,
			                 "listen: %s: want tcp://, ipc:// or inproc://", value);
		const char *u = cfg_strdup(cfg, value);
		if (u == NULL)
			return cfg_error(err, errlen, "out of memory");
		cfg->listen[cfg->nlisten++] = u;
		return 0;
	}
	/* Integer keys and where they go: kind 'i' int, 'l' long, 'z' size_t, 'q' int64_t. */
	struct {
		const char *key;  /* config key */
		int64_t min, max; /* accepted range */
		void *dst;        /* the field it sets */
		char kind;        /* the field's type */
	} const ints[] = {
	        {"workers", 1, 65536, &cfg->workers, 'i'},
	        {"max_request_bytes", 1024, (int64_t)1 << 30, &cfg->max_request_bytes, 'z'},
	        {"recv_max_bytes", 1024, (int64_t)1 << 30, &cfg->recv_max_bytes, 'z'},
	        {"default_deadline_ms", 1, 3600000, &cfg->default_deadline_ms, 'q'},
	        {"max_deadline_ms", 1, 3600000, &cfg->max_deadline_ms, 'q'},
	        {"drain_timeout_ms", 0, 3600000, &cfg->drain_timeout_ms, 'q'},
	        {"arena_cap_bytes", 65536, (int64_t)1 << 32, &cfg->arena_cap, 'z'},
	        {"verbose", 0, 2, &cfg->verbose, 'i'},
	        {"ipc_watchdog_ms", 0, 3600000, &cfg->ipc_watchdog_ms, 'q'},
	        {"upstream.threads", 1, 16, &cfg->engine_threads, 'i'},
	        {"upstream.max_host_conns", 0, 1000000, &cfg->engine.max_host_conns, 'l'},
	        {"upstream.max_total_conns", 0, 1000000, &cfg->engine.max_total_conns, 'l'},
	        {"upstream.max_body_bytes", 1024, (int64_t)1 << 30, &cfg->engine.max_body, 'z'},
	        {"upstream.recv_buffer_bytes", 1024, 512 << 10, &cfg->engine.recv_buffer, 'l'},
	        {"upstream.connect_timeout_ms", 1, 600000, &cfg->engine.connect_timeout_ms, 'l'},
	        {"idempotency.max_entries", 1, 100000000, &cfg->idem_max_entries, 'z'},
	        {"idempotency.ttl_ms", 1000, (int64_t)30 * 24 * 3600 * 1000, &cfg->idem_ttl_ms,
	         'q'},
	        {"cache.max_bytes", 0, (int64_t)1 << 40, &cfg->cache_max_bytes, 'z'},
	        {"cache.max_entries", 1, 100000000, &cfg->cache_max_entries, 'z'},
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (strcmp(key, ints[i].key) != 0)
			continue;
		if (parse_i64(value, ints[i].min, ints[i].max, &v) != 0)
			return cfg_error(err, errlen, "%s: want an integer in %lld..%lld", key,
			                 (long long)ints[i].min, (long long)ints[i].max);
		switch (ints[i].kind) {
		case 'i': *(int *)ints[i].dst = (int)v; break;
		case 'l': *(long *)ints[i].dst = (long)v; break;
		case 'z': *(size_t *)ints[i].dst = (size_t)v; break;
		default: *(int64_t *)ints[i].dst = v; break;
		}
		return 0;
	}
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
	for (int i = 0; i < SG_PROVIDER_COUNT; i++) {
		static const char *const what[] = {"TOKEN", "URL", "CLIENT_ID", "CLIENT_SECRET"};
		static const char *const key[] = {"token", "base_url", "client_id",
		                                  "client_secret"};
		for (int j = 0; j < 4; j++) {
			char name[64];
			snprintf(name, sizeof(name), "SHIPGATE_%s_%s", provider_names[i], what[j]);
			for (char *p = name; *p; p++)
				*p = (char)toupper((unsigned char)*p);
			const char *v = getenv(name);
			if (v != NULL &&
			    set_provider(cfg, &cfg->providers[i], key[j], v, err, errlen) != 0)
				return -1;
		}
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
	for (int i = 0; i < SG_PROVIDER_COUNT; i++) {
		if (cfg->providers[i].timeout_ms == 0)
			cfg->providers[i].timeout_ms = cfg->default_deadline_ms;
		if (cfg->providers[i].timeout_ms > cfg->max_deadline_ms)
			return cfg_error(err, errlen, "%s.timeout_ms must be <= max_deadline_ms",
			                 cfg->providers[i].name);
	}
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
sg_config_provider(const sg_config *cfg, int provider_id)
{
	if (provider_id < 1 || provider_id > SG_PROVIDER_COUNT)
		return NULL;
	return &cfg->providers[provider_id - 1];
}
