/*
 * test_upstream_tls.c - the gateway to an https provider: the sandbox in its TLS mode, with a
 * CA and certificates the test makes with openssl in a temporary folder.
 *
 *   the right CA (the provider's ca_file, or upstream.ca_file for all): served;
 *   another CA, or none (the system's bundle): FAILED_PRECONDITION / UPSTREAM_TLS, not
 *   retryable, with libcurl's verify error in the message, and nothing sent;
 *   a certificate for another name: the same, naming the mismatch;
 *   a CreateOrder that fails so releases its key: fixed, the same key goes through;
 *   a ca_file that does not exist: the gateway does not start, and says which.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "harness.h"
#include "testutil.h"

static const char *gw_bin, *sb_bin;
static char dir[128];

/* Runs a shell command quietly; true when it exits 0. */
static bool
sh(const char *fmt, const char *arg)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), fmt, arg, arg, arg, arg, arg, arg, arg, arg);
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A CA (ca.pem), another CA (other-ca.pem), a server certificate for 127.0.0.1 from the first
 * (srv.pem, srv.key), and one for other.example only (name.pem, name.key). */
static bool
make_certs(void)
{
	return sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	          "-keyout ca.key -out ca.pem -days 2 -subj '/CN=shipgate test CA' 2>/dev/null &&"
	          " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
	          " -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=another CA'"
	          " 2>/dev/null",
	          dir) &&
	       sh("cd %s && for n in srv name; do openssl req -newkey ec -pkeyopt "
	          "ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /CN=$n "
	          "2>/dev/null || exit 1; done &&"
	          " printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > srv.ext &&"
	          " printf 'subjectAltName=DNS:other.example\\n' > name.ext &&"
	          " for n in srv name; do openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key"
	          " -CAcreateserial -out $n.pem -days 2 -extfile $n.ext 2>/dev/null || exit 1;"
	          " done",
	          dir);
}

static Shipgate__V1__RpcReply *
track(nng_socket s)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = "BOS123";
	req.bypass_cache = true;
	return hs_call(s, "Track", &req.base, 5000, NULL);
}

/* A gateway on base with extra settings; a Track through it: its code, reason and message. */
static void
track_via(const char *base, const char *const *extra, int want_code, const char *want_reason,
          const char *want_text)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	hs_proc gw;
	char url[256];
	nng_socket s;
	CHECK_INT(hs_gateway_start(&gw, gw_bin, base, listen, extra), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	Shipgate__V1__RpcReply *r = track(s);
	const char *msg = r != NULL && r->status != NULL ? r->status->message : "";
	if (hs_code(r) != want_code || (want_text != NULL && strstr(msg, want_text) == NULL))
		fprintf(stderr, "  want %d %s \"%s\": got %d %s \"%s\"\n", want_code, want_reason,
		        want_text ? want_text : "", hs_code(r), hs_reason(r), msg);
	CHECK_INT(hs_code(r), want_code);
	CHECK_STR(hs_reason(r), want_reason);
	if (want_text != NULL)
		CHECK(strstr(msg, want_text) != NULL);
	if (want_code != 0)
		CHECK(r != NULL && r->status != NULL && r->status->detail != NULL &&
		      !r->status->detail->retryable);
	if (r)
		shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

int
main(int argc, char **argv)
{
	hs_test_start(argc, argv, 2, "SHIPGATED SANDBOX");
	gw_bin = argv[1];
	sb_bin = argv[2];
	snprintf(dir, sizeof(dir), "/tmp/shipgate-tls-XXXXXX");
	if (mkdtemp(dir) == NULL || !make_certs()) {
		fprintf(stderr, "  cannot make certificates with openssl in %s\n", dir);
		CHECK(0);
		TEST_MAIN_END();
	}
	char cert[256], key[256], ca[256], other[256], ncert[256], nkey[256];
	snprintf(cert, sizeof(cert), "%s/srv.pem", dir);
	snprintf(key, sizeof(key), "%s/srv.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(other, sizeof(other), "%s/other-ca.pem", dir);
	snprintf(ncert, sizeof(ncert), "%s/name.pem", dir);
	snprintf(nkey, sizeof(nkey), "%s/name.key", dir);

	hs_proc sb, sbn;
	char base[256], nbase[256], set[300];
	CHECK_INT(hs_sandbox_start_tls(&sb, sb_bin, cert, key, base, sizeof(base)), 0);
	CHECK(strncmp(base, "https://", 8) == 0);
	CHECK_INT(hs_sandbox_start_tls(&sbn, sb_bin, ncert, nkey, nbase, sizeof(nbase)), 0);

	/* the right CA: the provider's own, then the global one */
	snprintf(set, sizeof(set), "boscod.ca_file=%s", ca);
	const char *const own[] = {"--set", set, NULL};
	track_via(base, own, 0, "", NULL);
	char gset[300];
	snprintf(gset, sizeof(gset), "upstream.ca_file=%s", ca);
	const char *const global[] = {"--set", gset, "--set", "upstream.tls_min_version=1.2", NULL};
	track_via(base, global, 0, "", NULL);
	/* another CA, or only the system's */
	char oset[300];
	snprintf(oset, sizeof(oset), "boscod.ca_file=%s", other);
	const char *const wrong[] = {"--set", oset, NULL};
	track_via(base, wrong, 9, "UPSTREAM_TLS", "certificate");
	track_via(base, NULL, 9, "UPSTREAM_TLS", "certificate");
	/* the right CA, a certificate for another name */
	track_via(nbase, own, 9, "UPSTREAM_TLS", "127.0.0.1");

	/* a CreateOrder refused by TLS is released: nothing was sent, the same key then works */
	{
		static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
		hs_proc gw;
		char url[256], sd[300];
		snprintf(sd, sizeof(sd), "state_dir=%s/state", dir);
		char gbset[300];
		snprintf(gbset, sizeof(gbset), "bosonline.ca_file=%s", ca);
		const char *const good[] = {"--set", gbset, "--set", sd, NULL};
		char bset[300];
		snprintf(bset, sizeof(bset), "bosonline.ca_file=%s", other);
		const char *const bad2[] = {"--set", bset, "--set", sd, NULL};
		json_t *doc = json_load_file(SG_EXAMPLES "/bosonline-create-order.json", 0, NULL);
		char *js = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
		CHECK(js != NULL);
		for (int round = 0; round < 2 && js != NULL; round++) {
			CHECK_INT(hs_gateway_start(&gw, gw_bin, base, listen,
			                           round == 0 ? bad2 : good),
			          0);
			CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
			char cmd[4096];
			snprintf(cmd, sizeof(cmd),
			         "%s -a %s -k tls-release-1 call CreateOrder '%s' >/dev/null 2>&1",
			         SG_CLI, url, js);
			int st = system(cmd);
			int want = round == 0 ? 19 : 0; /* 10 + FAILED_PRECONDITION, then OK */
			CHECK(WIFEXITED(st));
			CHECK_INT(WEXITSTATUS(st), want);
			CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
		}
		free(js);
		json_decref(doc);
	}

	/* a ca_file that is not there: the gateway does not start, and says which */
	{
		char cmd[1024];
		snprintf(cmd, sizeof(cmd),
		         "%s --quiet -l tcp://127.0.0.1:0 --set boscod.ca_file=%s/missing.pem 2>&1 "
		         "| grep -q 'boscod.ca_file: %s/missing.pem'",
		         gw_bin, dir, dir);
		int st = system(cmd);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	fprintf(stderr, "  https provider: right CA served; another CA, none, and a name mismatch "
	                "UPSTREAM_TLS; a refused CreateOrder released\n");
	hs_proc_stop(&sb, SIGTERM);
	hs_proc_stop(&sbn, SIGTERM);
	sh("rm -rf %s", dir);
	curl_global_cleanup();
	TEST_MAIN_END();
}
