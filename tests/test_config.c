/*
 * test_config.c - every configuration key takes effect, bad keys and values are refused with a
 * message naming them, and file, environment and flags layer as documented.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"
#include "providers/provider.h"
#include "testutil.h"

static void
set_ok(sg_config *c, const char *k, const char *v)
{
	char err[256] = "";
	int rv = sg_config_set(c, k, v, err, sizeof(err));
	if (rv != 0)
		fprintf(stderr, "set %s=%s: %s\n", k, v, err);
	CHECK_INT(rv, 0);
}

static void
set_bad(sg_config *c, const char *k, const char *v, const char *mention)
{
	char err[256] = "";
	CHECK_INT(sg_config_set(c, k, v, err, sizeof(err)), -1);
	CHECK(strstr(err, mention) != NULL);
}

static void
test_keys(void)
{
	sg_config c;
	sg_config_defaults(&c);
	CHECK_INT(c.nlisten, 1);
	CHECK_STR(c.providers[0].base_url, "http://127.0.0.1:18080/boscod");
	CHECK_STR(c.providers[2].auth_scheme, "");

	set_ok(&c, "workers", "8");
	CHECK_INT(c.workers, 8);
	set_ok(&c, "max_request_bytes", "65536");
	CHECK_INT(c.max_request_bytes, 65536);
	set_ok(&c, "recv_max_bytes", "262144");
	CHECK_INT(c.recv_max_bytes, 262144);
	set_ok(&c, "default_deadline_ms", "1500");
	CHECK_INT(c.default_deadline_ms, 1500);
	CHECK_INT(c.max_deadline_ms, 300000);
	set_ok(&c, "max_deadline_ms", "60000");
	CHECK_INT(c.max_deadline_ms, 60000);
	set_bad(&c, "max_deadline_ms", "0", "max_deadline_ms");
	set_bad(&c, "max_deadline_ms", "9223372036854775807", "max_deadline_ms");
	set_ok(&c, "drain_timeout_ms", "0");
	CHECK_INT(c.drain_timeout_ms, 0);
	set_ok(&c, "arena_cap_bytes", "1048576");
	CHECK_INT(c.arena_cap, 1048576);
	set_ok(&c, "verbose", "2");
	CHECK_INT(c.verbose, 2);
	set_ok(&c, "ipc_watchdog_ms", "0");
	CHECK_INT(c.ipc_watchdog_ms, 0);
	CHECK_INT(c.engine_threads, 2);
	set_ok(&c, "upstream.threads", "4");
	CHECK_INT(c.engine_threads, 4);
	set_bad(&c, "upstream.threads", "0", "upstream.threads");
	set_ok(&c, "upstream.max_host_conns", "10000");
	CHECK_INT(c.engine.max_host_conns, 10000);
	set_ok(&c, "upstream.max_total_conns", "20000");
	CHECK_INT(c.engine.max_total_conns, 20000);
	set_ok(&c, "upstream.max_body_bytes", "4096");
	CHECK_INT(c.engine.max_body, 4096);
	CHECK_INT(c.engine.recv_buffer, 1024);
	set_ok(&c, "upstream.recv_buffer_bytes", "16384");
	CHECK_INT(c.engine.recv_buffer, 16384);
	set_bad(&c, "upstream.recv_buffer_bytes", "512", "upstream.recv_buffer_bytes");
	set_bad(&c, "upstream.recv_buffer_bytes", "1048576", "upstream.recv_buffer_bytes");
	set_ok(&c, "upstream.connect_timeout_ms", "250");
	CHECK_INT(c.engine.connect_timeout_ms, 250);
	set_ok(&c, "idempotency.max_entries", "42");
	CHECK_INT(c.idem_max_entries, 42);
	set_ok(&c, "idempotency.ttl_ms", "5000");
	CHECK_INT(c.idem_ttl_ms, 5000);
	set_ok(&c, "cache.max_bytes", "0");
	CHECK_INT(c.cache_max_bytes, 0);
	set_ok(&c, "cache.max_entries", "7");
	CHECK_INT(c.cache_max_entries, 7);

	set_ok(&c, "listen", "ipc:///tmp/x.ipc");
	CHECK_INT(c.nlisten, 1); /* the first explicit listen replaces the default */
	CHECK_STR(c.listen[0], "ipc:///tmp/x.ipc");
	set_ok(&c, "listen", "tcp://127.0.0.1:0");
	CHECK_INT(c.nlisten, 2);

	set_ok(&c, "boscod.base_url", "https://api.example.test/");
	CHECK_STR(c.providers[0].base_url, "https://api.example.test");
	set_ok(&c, "boscod.token", "t0k");
	CHECK_STR(c.providers[0].token, "t0k");
	set_ok(&c, "boscod.token", "");
	CHECK(c.providers[0].token == NULL);
	set_ok(&c, "biteship.auth_scheme", "raw");
	CHECK_STR(c.providers[2].auth_scheme, "");
	set_ok(&c, "fuuffy.utc_offset", "+08:00");
	CHECK(c.providers[3].utc_offset_set && c.providers[3].utc_offset_s == 28800);
	set_ok(&c, "fuuffy.utc_offset", "-0530");
	CHECK_INT(c.providers[3].utc_offset_s, -(5 * 3600 + 30 * 60));
	set_ok(&c, "fuuffy.client_id", "me");
	CHECK_STR(c.providers[3].client_id, "me");
	set_ok(&c, "fuuffy.client_secret", "");
	CHECK(c.providers[3].client_secret == NULL);
	set_ok(&c, "bosonline.timeout_ms", "900");
	CHECK_INT(c.providers[1].timeout_ms, 900);
	set_ok(&c, "biteship.cache_ttl_ms", "0");
	CHECK_INT(c.providers[2].cache_ttl_ms, 0);
	set_ok(&c, "biteship.cache_stale_ms", "1234");
	CHECK_INT(c.providers[2].cache_stale_ms, 1234);

	set_bad(&c, "nonsense", "1", "nonsense");
	set_bad(&c, "workers", "0", "workers");
	set_bad(&c, "workers", "12abc", "workers");
	set_bad(&c, "cache.max_bytes", "-1", "cache.max_bytes");
	set_bad(&c, "listen", "http://x", "listen");
	set_bad(&c, "acme.token", "x", "acme");
	set_bad(&c, "boscod.colour", "x", "colour");
	set_bad(&c, "boscod.base_url", "ftp://x", "base_url");
	set_bad(&c, "fuuffy.utc_offset", "+25:00", "utc_offset");

	char err[256];
	/* the idempotency store: sqlite in the state directory by default; memory or sqlite */
	CHECK_STR(c.idem_store, "sqlite");
	set_ok(&c, "idempotency.store", "redis-someday");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "idempotency.store") != NULL);
	set_ok(&c, "idempotency.store", "memory");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	set_ok(&c, "idempotency.store", "redis"); /* needs its URL */
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "idempotency.redis_url") != NULL);
	set_ok(&c, "idempotency.redis_url", "redis://127.0.0.1:6379/2");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.fleet_id, "redis://127.0.0.1:6379/2"); /* the fleet: its Redis, by default */
	set_ok(&c, "idempotency.store", "sqlite");
	set_ok(&c, "idempotency.path", "/tmp/x.db");
	CHECK_STR(c.idem_path, "/tmp/x.db");
	/* the lookup cache's backend: memory by default; redis takes the idempotency store's Redis
	 * unless given its own, and needs the local cache in front of it */
	CHECK_STR(c.cache_backend, "memory");
	CHECK_INT(c.cache_redis_timeout_ms, 200);
	set_ok(&c, "cache.backend", "memcached");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "cache.backend") != NULL);
	set_ok(&c, "cache.backend", "redis");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1); /* cache.max_bytes is 0 here */
	CHECK(strstr(err, "cache.max_bytes") != NULL);
	set_ok(&c, "cache.max_bytes", "1048576");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.cache_redis_url, "redis://127.0.0.1:6379/2");
	set_ok(&c, "cache.redis_url", "redis://10.0.0.1:6380");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.cache_redis_url, "redis://10.0.0.1:6380");
	set_bad(&c, "cache.redis_timeout_ms", "0", "cache.redis_timeout_ms");
	set_bad(&c, "cache.redis_timeout_ms", "10001", "cache.redis_timeout_ms");
	set_ok(&c, "cache.redis_timeout_ms", "50");
	CHECK_INT(c.cache_redis_timeout_ms, 50);
	set_ok(&c, "cache.backend", "memory");
	set_ok(&c, "cache.max_bytes", "0");
	/* secrets from files: one line, printable, no spaces; a final newline (CRLF too) dropped */
	{
		char path[128];
		snprintf(path, sizeof(path), "/tmp/shipgate-test-config-%d.secret", (int)getpid());
		static const struct {
			const char *content;
			const char *want; /* NULL: refused */
		} files[] = {
		        {"file-token-1\n", "file-token-1"},
		        {"file-token-2\r\n", "file-token-2"},
		        {"no-newline", "no-newline"},
		        {"", NULL},
		        {"\n", NULL},
		        {"two words\n", NULL},
		        {"line1\nline2\n", NULL},
		        {"tab\there", NULL},
		};
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			FILE *f = fopen(path, "w");
			fputs(files[i].content, f);
			fclose(f);
			chmod(path, 0600);
			set_ok(&c, "fuuffy.client_secret_file", path);
			int rv = sg_config_validate(&c, err, sizeof(err));
			if (files[i].want != NULL) {
				CHECK_INT(rv, 0);
				CHECK_STR(c.providers[3].client_secret, files[i].want);
			} else {
				CHECK_INT(rv, -1);
				CHECK(strstr(err, "fuuffy.client_secret_file") != NULL);
			}
		}
		set_ok(&c, "fuuffy.client_secret_file", "");
		set_ok(&c, "boscod.token_file", "/nonexistent/shipgate-token");
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
		CHECK(strstr(err, "boscod.token_file") != NULL &&
		      strstr(err, "No such file") != NULL);
		set_ok(&c, "boscod.token_file", "/tmp");
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
		CHECK(strstr(err, "regular file") != NULL);
		FILE *f = fopen(path, "w");
		fputs("boscod-from-file\n", f);
		fclose(f);
		set_ok(&c, "boscod.token_file", path);
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
		CHECK_STR(c.providers[0].token, "boscod-from-file");
		set_ok(&c, "boscod.token_file", "");
		unlink(path);
	}
	/* upstream TLS: a minimum version, a proxy's scheme, readable files, cert and key together
	 */
	set_ok(&c, "upstream.tls_min_version", "1.1");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "upstream.tls_min_version") != NULL);
	set_ok(&c, "upstream.tls_min_version", "1.3");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_INT(c.providers[0].tls.min_version, 13);
	set_ok(&c, "upstream.tls_min_version", "");
	set_ok(&c, "upstream.proxy", "ftp://proxy:21");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "upstream.proxy") != NULL);
	set_ok(&c, "upstream.proxy", "http://10.0.0.9:3128");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.providers[1].tls.proxy, "http://10.0.0.9:3128");
	set_ok(&c, "upstream.proxy", "");
	set_ok(&c, "upstream.ca_file", "/nonexistent/ca.pem");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "ca_file") != NULL && strstr(err, "/nonexistent/ca.pem") != NULL);
	set_ok(&c, "upstream.ca_file", "");
	set_ok(&c, "biteship.client_cert", "/etc/hostname");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "biteship.client_key") != NULL);
	set_ok(&c, "biteship.client_cert", "");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	/* the access table: caller.<name>.* and access.anonymous */
	{
		static const char h[] =
		        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
		CHECK_INT(c.ncallers, 0);
		set_ok(&c, "caller.checkout.token_sha256", h);
		CHECK_INT(c.ncallers, 1);
		CHECK_STR(c.callers[0].name, "checkout");
		CHECK(c.callers[0].has_token && c.callers[0].token_sha256[0] == 0x9f &&
		      c.callers[0].token_sha256[31] == 0x08);
		CHECK_INT(c.callers[0].methods, SG_CALLER_TRACK | SG_CALLER_GET_ORDER);
		set_ok(&c, "caller.checkout.methods", "CreateOrder, Track");
		CHECK_INT(c.callers[0].methods, SG_CALLER_TRACK | SG_CALLER_CREATE_ORDER);
		set_ok(&c, "caller.checkout.providers", "bosonline,boscod");
		CHECK_INT(c.callers[0].providers, (1u << 0) | (1u << 1));
		set_ok(&c, "caller.ops.uid", "1000");
		set_ok(&c, "caller.ops.methods", "*");
		CHECK_INT(c.ncallers, 2);
		CHECK_INT(c.callers[1].uid, 1000);
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
		set_bad(&c, "caller.Bad Name.uid", "1", "caller.");
		set_bad(&c, "caller.x.token_sha256", "abc", "64 hex");
		set_bad(&c, "caller.x.methods", "Track,Delete", "Delete");
		set_bad(&c, "caller.x.providers", "acme", "unknown provider");
		set_bad(&c, "caller.x.uid", "-1", "uid");
		set_bad(&c, "caller.x.colour", "red", "token_sha256, uid");
		/* x was named by the refused keys but got no identity: the start is refused */
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
		CHECK(strstr(err, "caller.x") != NULL);
		set_ok(&c, "caller.x.uid", "1001");
		set_ok(&c, "access.anonymous", "sometimes");
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
		CHECK(strstr(err, "access.anonymous") != NULL);
		set_ok(&c, "access.anonymous", "none");
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
		set_ok(&c, "access.anonymous", "");
		c.ncallers = 0; /* (the rest of this test runs without callers) */
	}
	/* ipc sockets: 0600 by default; an octal mode that keeps the owner's read and write */
	CHECK_INT(c.ipc_mode, 0600);
	set_ok(&c, "ipc.mode", "0660");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_INT(c.ipc_mode, 0660);
	static const char *const bad_modes[] = {"0400", "0644x", "1777", "rw-rw----", "-600"};
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		set_ok(&c, "ipc.mode", bad_modes[i]);
		CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
		CHECK(strstr(err, "ipc.mode") != NULL);
	}
	set_ok(&c, "ipc.mode", "600");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_INT(c.ipc_mode, 0600);
	/* the default deadline and each provider's timeout fit under the cap */
	set_ok(&c, "max_deadline_ms", "1000");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "default_deadline_ms") != NULL);
	set_ok(&c, "default_deadline_ms", "1000");
	set_ok(&c, "boscod.timeout_ms", "5000");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "boscod.timeout_ms") != NULL);
	set_ok(&c, "max_deadline_ms", "300000");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	set_ok(&c, "max_request_bytes", "1048576");
	set_ok(&c, "recv_max_bytes", "1024");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "recv_max_bytes") != NULL);
	sg_config_fini(&c);
}

static void
test_file_and_env(void)
{
	char path[] = "/tmp/shipgate-config-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "# a comment\n\nworkers = 16\n  boscod.base_url = http://127.0.0.1:1/b  \n"
	           "cache.max_entries=9\n");
	fclose(f);
	sg_config c;
	char err[256];
	sg_config_defaults(&c);
	CHECK_INT(sg_config_load_file(&c, path, err, sizeof(err)), 0);
	CHECK_INT(c.workers, 16);
	CHECK_INT(c.cache_max_entries, 9);
	CHECK_STR(c.providers[0].base_url, "http://127.0.0.1:1/b");
	setenv("SHIPGATE_BOSCOD_TOKEN", "from-env", 1);
	setenv("SHIPGATE_FUUFFY_CLIENT_SECRET", "s3cret", 1);
	CHECK_INT(sg_config_load_env(&c, err, sizeof(err)), 0);
	CHECK_STR(c.providers[0].token, "from-env");
	CHECK_STR(c.providers[3].client_secret, "s3cret");
	unsetenv("SHIPGATE_BOSCOD_TOKEN");
	unsetenv("SHIPGATE_FUUFFY_CLIENT_SECRET");

	/* a bad line names the file and the line */
	f = fopen(path, "w");
	fprintf(f, "workers = 4\nthis line has no equals sign\n");
	fclose(f);
	CHECK_INT(sg_config_load_file(&c, path, err, sizeof(err)), -1);
	CHECK(strstr(err, ":2:") != NULL);
	unlink(path);
	CHECK_INT(sg_config_load_file(&c, path, err, sizeof(err)), -1);
	sg_config_fini(&c);
}

/* Each registered provider is configurable, with its module's defaults. */
static void
test_provider_defaults(void)
{
	sg_config c;
	size_t n;
	const sg_provider *ps = sg_providers(&n);
	char want[256], err[256];

	sg_config_defaults(&c);
	CHECK(n >= 4);
	for (size_t i = 0; i < n; i++) {
		CHECK(ps[i].id >= 1 && (size_t)ps[i].id <= SG_MAX_PROVIDERS);
		const sg_pconf *pc = sg_config_provider(&c, ps[i].id);
		CHECK(pc != NULL);
		if (pc == NULL)
			continue;
		CHECK_STR(pc->name, ps[i].name);
		snprintf(want, sizeof(want), "http://127.0.0.1:18080/%s", ps[i].name);
		CHECK_STR(pc->base_url, want);
		CHECK(pc->token == ps[i].defaults.token);
		CHECK_INT(pc->cache_ttl_ms, ps[i].defaults.cache_ttl_ms);
		CHECK_INT(pc->cache_stale_ms, ps[i].defaults.cache_stale_ms);
		/* every per-provider key is accepted under its name */
		snprintf(want, sizeof(want), "%s.timeout_ms", ps[i].name);
		CHECK_INT(sg_config_set(&c, want, "1234", err, sizeof(err)), 0);
		CHECK_INT(pc->timeout_ms, 1234);
	}
	CHECK(sg_config_provider(&c, 0) == NULL);
	CHECK(sg_config_provider(&c, (int)c.nproviders + 1) == NULL);
	CHECK(sg_config_provider(&c, 1000) == NULL);
	/* the credentials that differ are the modules' own */
	CHECK_STR(c.providers[2].token, "biteship_test.sandbox");
	CHECK_STR(c.providers[2].auth_scheme, "");
	CHECK_STR(c.providers[3].client_id, "shipgate");
	CHECK_STR(c.providers[0].auth_scheme, "Bearer");
	sg_config_fini(&c);
}

/* The state directory: $STATE_DIRECTORY (systemd), else shipgate-state; the sqlite store's
 * file in it unless idempotency.path says otherwise. */
static void
test_state_dir(void)
{
	sg_config c;
	char err[256];

	unsetenv("STATE_DIRECTORY");
	sg_config_defaults(&c);
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.state_dir, "shipgate-state");
	CHECK_STR(c.idem_path, "shipgate-state/idempotency.db");
	sg_config_fini(&c);

	setenv("STATE_DIRECTORY", "/var/lib/shipgate:/var/lib/other", 1);
	sg_config_defaults(&c);
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.state_dir, "/var/lib/shipgate");
	CHECK_STR(c.idem_path, "/var/lib/shipgate/idempotency.db");
	sg_config_fini(&c);
	unsetenv("STATE_DIRECTORY");

	sg_config_defaults(&c);
	set_ok(&c, "state_dir", "/srv/sg");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.idem_path, "/srv/sg/idempotency.db");
	sg_config_fini(&c);

	sg_config_defaults(&c);
	set_ok(&c, "state_dir", "/srv/sg");
	set_ok(&c, "idempotency.path", "/data/keys.db");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(c.idem_path, "/data/keys.db");
	sg_config_fini(&c);
}

/* Every key of the table is documented in docs/configuration.md. */
static void
test_keys_documented(void)
{
	FILE *f = fopen(SG_DOCS_DIR "/configuration.md", "r");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	static char doc[1 << 16];
	size_t len = fread(doc, 1, sizeof(doc) - 1, f);
	doc[len] = '\0';
	fclose(f);
	const sg_config_key *k;
	char want[128];
	int nkeys = 0;
	for (size_t i = 0; (k = sg_config_key_at(i)) != NULL; i++, nkeys++) {
		snprintf(want, sizeof(want), k->per_provider ? "`<provider>.%s`" : "`%s`", k->name);
		if (strstr(doc, want) == NULL)
			fprintf(stderr, "  %s is not in docs/configuration.md\n", want);
		CHECK(strstr(doc, want) != NULL);
	}
	CHECK(nkeys >= 29);
}

/* Tenants (tenant.<name>.<provider>.<key>, caller.<name>.tenant) and the callers' quotas. */
static void
test_tenants(void)
{
	sg_config c;
	char err[256];
	char dir[] = "/tmp/shipgate-cfg-tenant-XXXXXX", file[128];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(file, sizeof(file), "%s/acme-fuuffy-secret", dir);
	FILE *f = fopen(file, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("acme-client-secret\n", f);
		fclose(f);
	}
	sg_config_defaults(&c);
	set_ok(&c, "state_dir", dir);
	set_ok(&c, "boscod.token", "shared-token");
	/* the order of lines does not matter: the tenant's keys go over the providers' at the end
	 */
	set_ok(&c, "tenant.acme.boscod.token", "acme-token");
	set_ok(&c, "tenant.acme.boscod.base_url", "https://acme.example/api/");
	set_ok(&c, "tenant.acme.fuuffy.client_secret_file", file);
	set_ok(&c, "tenant.acme.boscod.token", "acme-token-2"); /* a later line wins */
	set_ok(&c, "boscod.timeout_ms", "7000");
	set_ok(&c, "tenant.beta.bosonline.auth_scheme", "raw");
	set_ok(&c, "caller.shop.token_sha256",
	       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	set_ok(&c, "caller.shop.tenant", "acme");
	set_ok(&c, "caller.shop.max_keys", "10");
	set_ok(&c, "caller.shop.max_keys_in_flight", "2");
	CHECK_INT(c.ntenants, 2);
	CHECK_INT(c.ntenant_keys, 4);
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	const sg_pconf *own = sg_config_tenant_provider(&c, 0, 1),
	               *t = sg_config_tenant_provider(&c, 1, 1);
	CHECK(own != NULL && t != NULL && own != t);
	if (own != NULL && t != NULL) {
		CHECK_STR(own->token, "shared-token");
		CHECK_STR(t->token, "acme-token-2");
		CHECK_STR(t->base_url, "https://acme.example/api");
		CHECK_INT(t->timeout_ms, 7000); /* what the tenant does not set is the provider's */
		CHECK_STR(t->name, own->name);
	}
	const sg_pconf *fu = sg_config_tenant_provider(&c, 1, 4), *fu0 = sg_config_provider(&c, 4);
	CHECK(fu != NULL && fu0 != NULL);
	if (fu != NULL && fu0 != NULL) {
		CHECK_STR(fu->client_secret, "acme-client-secret");
		CHECK(strcmp(fu0->client_secret, "acme-client-secret") != 0);
		CHECK_STR(fu->client_id, fu0->client_id);
	}
	const sg_pconf *b = sg_config_tenant_provider(&c, 2, 2);
	CHECK(b != NULL && b->auth_scheme != NULL && b->auth_scheme[0] == '\0');
	CHECK(sg_config_tenant_provider(&c, 3, 1) == sg_config_provider(&c, 1)); /* none: own */
	CHECK_INT(c.callers[0].tenant, 1);
	/* quotas: the caller's own, the defaults for others and for callers not known */
	CHECK_INT(sg_config_caller_max_keys(&c, &c.callers[0]), 10);
	CHECK_INT(sg_config_caller_max_in_flight(&c, &c.callers[0]), 2);
	CHECK_INT(sg_config_caller_max_keys(&c, NULL), 25000);
	CHECK_INT(sg_config_caller_max_in_flight(&c, NULL), 256);
	set_ok(&c, "idempotency.caller_max_keys", "500");
	CHECK_INT(sg_config_caller_max_keys(&c, NULL), 500);
	/* a token given to a tenant replaces the provider's token_file */
	set_ok(&c, "fuuffy.token_file", file);
	set_ok(&c, "tenant.acme.fuuffy.token", "acme-fuuffy-token");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	CHECK_STR(sg_config_tenant_provider(&c, 1, 4)->token, "acme-fuuffy-token");
	CHECK_STR(sg_config_provider(&c, 4)->token, "acme-client-secret");
	CHECK_STR(sg_config_tenant_provider(&c, 2, 4)->token, "acme-client-secret");

	/* refused at once: names, providers, keys a tenant may not set, bad values */
	set_bad(&c, "tenant.Acme.boscod.token", "x", "tenant.NAME.PROVIDER.KEY");
	set_bad(&c, "tenant.acme.dhl.token", "x", "a known provider");
	set_bad(&c, "tenant.acme.boscod", "x", "a known provider");
	set_bad(&c, "tenant.acme.boscod.timeout_ms", "5", "a tenant sets base_url");
	set_bad(&c, "tenant.acme.boscod.colour", "red", "a tenant sets base_url");
	set_bad(&c, "caller.shop.max_keys", "0", "1..100000000");
	set_bad(&c, "caller.shop.max_keys_in_flight", "lots", "1..100000000");
	set_bad(&c, "caller.shop.tls_listen", "tcp://127.0.0.1:9", "tls+tcp://");
	/* refused at validation: a bad URL, an unknown tenant, a missing file, a TLS listener
	 * without its CA or a server certificate */
	set_ok(&c, "tenant.acme.boscod.base_url", "ftp://acme.example");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "tenant.acme.boscod.base_url") != NULL);
	set_ok(&c, "tenant.acme.boscod.base_url", "https://acme.example");
	set_ok(&c, "caller.shop.tenant", "gamma");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "caller.shop.tenant: gamma") != NULL);
	set_ok(&c, "caller.shop.tenant", "acme");
	set_ok(&c, "tenant.beta.fuuffy.client_secret_file", "/nonexistent/secret");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "tenant.beta.fuuffy.client_secret_file") != NULL);
	set_ok(&c, "tenant.beta.fuuffy.client_secret_file", file);
	set_ok(&c, "caller.shop.tls_listen", "tls+tcp://127.0.0.1:7411");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "go together") != NULL);
	set_ok(&c, "caller.shop.tls_ca_file", file);
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "needs tls.cert_file") != NULL);
	set_ok(&c, "tls.cert_file", file);
	set_ok(&c, "tls.key_file", file);
	set_ok(&c, "listen", "tls+tcp://127.0.0.1:7411");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), -1);
	CHECK(strstr(err, "also a listen URL") != NULL);
	set_ok(&c, "caller.shop.tls_listen", "tls+tcp://127.0.0.1:7412");
	CHECK_INT(sg_config_validate(&c, err, sizeof(err)), 0);
	/* 16 tenants at most */
	for (int i = 0; i < 14; i++) {
		char key[64];
		snprintf(key, sizeof(key), "tenant.t%d.boscod.token", i);
		set_ok(&c, key, "x");
	}
	set_bad(&c, "tenant.one-too-many.boscod.token", "x", "at most 16 tenants");
	sg_config_fini(&c);
	unlink(file);
	rmdir(dir);
}

int
main(void)
{
	test_keys();
	test_tenants();
	test_file_and_env();
	test_provider_defaults();
	test_state_dir();
	test_keys_documented();
	TEST_MAIN_END();
}
