/*
 * main.c - shipgated: flags, configuration, signals.
 *
 * Signals are blocked in every thread and taken synchronously by main with sigwait, so no
 * handler ever runs inside nng or curl code.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "config.h"
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
	        "Environment: SHIPGATE_<PROVIDER>_TOKEN and SHIPGATE_<PROVIDER>_URL, e.g.\n"
	        "SHIPGATE_BOSCOD_TOKEN. Defaults point at the sandbox providers on :18080.\n");
}

int
main(int argc, char **argv)
{
	sg_config cfg;
	sg_server *srv = NULL;
	char err[512];
	int rc = 1;
	const char *config_file = NULL;

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
		for (size_t i = 0; i < cfg.nlisten; i++)
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
	for (size_t i = 0; i < cfg.nlisten; i++)
		printf(" %s", sg_server_url(srv, i));
	printf("\n");
	fflush(stdout);

	int sig = 0;
	sigwait(&sigs, &sig);
	if (cfg.verbose >= 1)
		fprintf(stderr, "shipgated: %s: draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	sg_server_stop(srv);
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
