/*
 * main.c - shipgated: flags, configuration, signals.
 *
 * Signals are blocked in every thread and taken synchronously by main with sigwait, so no
 * handler ever runs inside nng or curl code.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "gateway/store.h"
#include "pbjson.h" /* the proto3 JSON mapping (clients/c), for --idempotency-resolve */
#include "providers/common.h"
#include "server.h"

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: shipgated [options]\n"
	        "  -l, --listen URL       listen on URL (tcp://, ipc://, inproc://); repeatable\n"
	        "                         default tcp://127.0.0.1:7400\n"
	        "  -c, --config FILE      read `key = value` settings from FILE\n"
	        "  -s, --set KEY=VALUE    set one configuration key (see docs/configuration.md)\n"
	        "  -w, --workers N        concurrent calls (nng contexts), default 1024\n"
	        "  -v, --verbose          log every call\n"
	        "  -q, --quiet            log nothing but fatal errors\n"
	        "  -h, --help             this text\n"
	        "Operators (the sqlite or redis idempotency store of this configuration, then "
	        "exit):\n"
	        "  --idempotency-unknown  list the keys whose outcome is unknown (a gateway "
	        "claimed\n"
	        "                         them and stopped without an answer, or the call failed "
	        "after\n"
	        "                         it may have reached the provider), one per line:\n"
	        "                         provider, key, fingerprint, first seen, owner, what "
	        "happened\n"
	        "  --idempotency-release KEY\n"
	        "                         after checking with the provider that KEY created "
	        "nothing,\n"
	        "                         free it: the next call with KEY goes upstream\n"
	        "  --idempotency-resolve KEY JSON\n"
	        "                         after finding the order KEY created at the provider, "
	        "keep\n"
	        "                         JSON (a CreateOrderResponse, proto3 JSON, e.g.\n"
	        "                         '{\"awb\":\"BOS-1\"}') as its answer: later calls "
	        "replay it\n"
	        "Environment: SHIPGATE_<PROVIDER>_TOKEN and SHIPGATE_<PROVIDER>_URL, e.g.\n"
	        "SHIPGATE_BOSCOD_TOKEN. Defaults point at the sandbox providers on :18080.\n");
}

/* One unknown key, as a line: provider, key, fingerprint, first seen (UTC, RFC 3339), owner,
 * what happened. */
static void
print_unknown(void *arg, const sg_store_unknown *u)
{
	char when[32];
	time_t t = (time_t)(u->first_seen_ms / 1000);
	struct tm tm;
	(void)arg;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s\t%s\t%016" PRIx64 "%016" PRIx64 "\t%s\t%s\t%s\n",
	       u->provider[0] ? u->provider : "-", u->key, u->fp_a, u->fp_b, when, u->owner,
	       u->why);
}

/* The packed CreateOrderResponse of an operator's JSON, malloc'd into *out; 0, or -1 with
 * err. */
static int
resolve_payload(const char *text, uint8_t **out, size_t *len, char *err, size_t errlen)
{
	json_error_t je;
	sgc_pbjson_error pe;
	ProtobufCMessage *m = NULL;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (j == NULL) {
		snprintf(err, errlen, "--idempotency-resolve: not JSON: %s", je.text);
		return -1;
	}
	int rv = sgc_pbjson_to_message(j, &shipgate__v1__create_order_response__descriptor, NULL, 0,
	                               &m, &pe);
	json_decref(j);
	if (rv != 0) {
		snprintf(err, errlen,
		         "--idempotency-resolve: not a CreateOrderResponse: %.120s: %.200s",
		         pe.path, pe.text);
		return -1;
	}
	((Shipgate__V1__CreateOrderResponse *)m)->replayed = 0; /* set on every replay */
	*len = protobuf_c_message_get_packed_size(m);
	if ((*out = malloc(*len + 1)) == NULL) {
		protobuf_c_message_free_unpacked(m, NULL);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	protobuf_c_message_pack(m, *out);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* --idempotency-unknown, --idempotency-release and --idempotency-resolve: exit status 0 done,
 * 1 nothing to change (not a key with an unknown outcome), 2 an error. */
static int
operator_command(const sg_config *cfg, bool list, const char *key, const char *resolve)
{
	char err[512];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	bool redis = strcmp(cfg->idem_store, "redis") == 0;
	const char *where = redis ? cfg->redis_url : cfg->idem_path;
	uint8_t *payload = NULL;
	size_t len = 0;
	int r;

	if (!redis && strcmp(cfg->idem_store, "sqlite") != 0) {
		fprintf(stderr,
		        "shipgated: idempotency.store is %s: only the sqlite and redis stores "
		        "outlive the gateway\n",
		        cfg->idem_store);
		return 2;
	}
	if (list) {
		int n = redis ? sg_store_redis_unknown(where, print_unknown, NULL, err, sizeof(err))
		              : sg_store_sqlite_unknown(where, now, print_unknown, NULL, err,
		                                        sizeof(err));
		if (n < 0) {
			fprintf(stderr, "shipgated: %s\n", err);
			return 2;
		}
		fflush(stdout);
		fprintf(stderr, "shipgated: %d key%s with an unknown outcome in %s\n", n,
		        n == 1 ? "" : "s", where);
		return 0;
	}
	if (resolve != NULL && resolve_payload(resolve, &payload, &len, err, sizeof(err)) != 0) {
		fprintf(stderr, "shipgated: %s\n", err);
		return 2;
	}
	r = redis ? sg_store_redis_resolve(where, key, payload, len, cfg->idem_ttl_ms, err,
	                                   sizeof(err))
	          : sg_store_sqlite_resolve(where, key, payload, len, cfg->idem_ttl_ms, now, err,
	                                    sizeof(err));
	free(payload);
	if (r < 0) {
		fprintf(stderr, "shipgated: %s\n", err);
		return 2;
	}
	if (r == 0)
		fprintf(stderr,
		        "shipgated: %s is not a key with an unknown outcome; nothing changed\n",
		        key);
	else if (resolve != NULL)
		fprintf(stderr, "shipgated: %s resolved: its calls replay the order given\n", key);
	else
		fprintf(stderr, "shipgated: %s released: its next call goes upstream\n", key);
	return r ? 0 : 1;
}

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit (capped by the kernel's fs.nr_open): a soft
 * limit of 1024, the usual default, lets a handful of idle peers use up every descriptor. The
 * server then fits max_connections and upstream.fd_reserve into what it got.
 */
static void
raise_nofile(int verbose)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = rl.rlim_max, was = rl.rlim_cur;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	unsigned long long nr = 0;
	if (f != NULL) {
		if (fscanf(f, "%llu", &nr) == 1 && nr > 0 && (want == RLIM_INFINITY || want > nr))
			want = (rlim_t)nr;
		fclose(f);
	}
	if (want == RLIM_INFINITY || want <= was)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "shipgated: RLIMIT_NOFILE stays %llu: %s\n",
		        (unsigned long long)was, strerror(errno));
		return;
	}
	if (verbose >= 1)
		fprintf(stderr,
		        "shipgated: RLIMIT_NOFILE raised from %llu to %llu (the hard limit)\n",
		        (unsigned long long)was, (unsigned long long)want);
}

int
main(int argc, char **argv)
{
	sg_config cfg;
	sg_server *srv = NULL;
	char err[512];
	int rc = 1;
	const char *config_file = NULL, *op_key = NULL, *resolve_json = NULL;
	bool list_unknown = false;

	sg_config_defaults(&cfg);
	/* The config file is read first, so flags given before or after --config both win. */
	for (int i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
			config_file = argv[i + 1];
	if (config_file != NULL && sg_config_load_file(&cfg, config_file, err, sizeof(err)) != 0)
		goto fail;
	if (sg_config_load_env(&cfg, err, sizeof(err)) != 0)
		goto fail;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = 0;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			sg_config_fini(&cfg);
			return 0;
		} else if (strcmp(a, "--idempotency-unknown") == 0) {
			list_unknown = true;
			continue;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			cfg.verbose = 2;
			continue;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			cfg.verbose = 0;
			continue;
		}
		if (v == NULL) {
			snprintf(err, sizeof(err), "%s: missing value (try --help)", a);
			goto fail;
		}
		i++;
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			continue;
		} else if (strcmp(a, "--idempotency-release") == 0) {
			op_key = v;
		} else if (strcmp(a, "--idempotency-resolve") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, sizeof(err), "%s: want KEY JSON (try --help)", a);
				rc = 2; /* an operator command's error */
				goto fail;
			}
			op_key = v;
			resolve_json = argv[++i];
		} else if (strcmp(a, "-l") == 0 || strcmp(a, "--listen") == 0) {
			r = sg_config_set(&cfg, "listen", v, err, sizeof(err));
		} else if (strcmp(a, "-w") == 0 || strcmp(a, "--workers") == 0) {
			r = sg_config_set(&cfg, "workers", v, err, sizeof(err));
		} else if (strcmp(a, "-s") == 0 || strcmp(a, "--set") == 0) {
			char key[128];
			const char *eq = strchr(v, '=');
			if (eq == NULL || (size_t)(eq - v) >= sizeof(key)) {
				snprintf(err, sizeof(err), "--set %s: want KEY=VALUE", v);
				goto fail;
			}
			memcpy(key, v, (size_t)(eq - v));
			key[eq - v] = '\0';
			r = sg_config_set(&cfg, key, eq + 1, err, sizeof(err));
		} else {
			snprintf(err, sizeof(err), "unknown option %s (try --help)", a);
			goto fail;
		}
		if (r != 0)
			goto fail;
	}
	if (sg_config_validate(&cfg, err, sizeof(err)) != 0)
		goto fail;
	if (list_unknown || op_key != NULL) {
		rc = operator_command(&cfg, list_unknown, op_key, resolve_json);
		sg_config_fini(&cfg);
		return rc;
	}

	raise_nofile(cfg.verbose);

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by nng's and curl's threads */
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sg_json_use_arenas(); /* before any jansson use */

	if (sg_server_new(&srv, &cfg, err, sizeof(err)) != SG_OK ||
	    sg_server_start(srv, err, sizeof(err)) != SG_OK)
		goto fail;
	if (cfg.verbose >= 1) {
		for (size_t i = 0; sg_server_url(srv, i) != NULL; i++)
			fprintf(stderr, "shipgated: listening on %s\n", sg_server_url(srv, i));
		for (size_t i = 0; i < cfg.nproviders; i++) {
			const sg_pconf *pc = &cfg.providers[i];
			if (pc->name == NULL)
				continue;
			fprintf(stderr, "shipgated: provider %-9s %s%s\n", pc->name,
			        pc->base_url ? pc->base_url : "(disabled)",
			        pc->token || pc->client_id ? "" : " (no credential)");
		}
	}
	/* Readiness line on stdout for scripts and tests. */
	printf("shipgated ready on");
	for (size_t i = 0; sg_server_url(srv, i) != NULL; i++)
		printf(" %s", sg_server_url(srv, i));
	printf("\n");
	fflush(stdout);

	int sig = 0;
	sigwait(&sigs, &sig);
	if (cfg.verbose >= 1)
		fprintf(stderr, "shipgated: %s: draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	if (!sg_server_stop(srv)) {
		/* Every call was answered and every store write made before the close. Exiting
		 * without freeing is what a kill would do, minus the lost answers. */
		fprintf(stderr, "shipgated: warning: the nng socket did not close within 2 s (a "
		                "known nng 1.5.2 shutdown hang); exiting without it\n");
		fflush(NULL);
		_exit(0);
	}
	if (cfg.verbose >= 1)
		fprintf(stderr, "shipgated: stopped\n");
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "shipgated: %s\n", err);
done:
	sg_server_free(srv);
	sg_config_fini(&cfg);
	curl_global_cleanup();
	return rc;
}
