/*
 * test_caller_tls.c - TLS for callers: tls+tcp:// listeners, with the C client and the CLI,
 * over certificates the test makes with openssl in a temporary folder.
 *
 *   server certificate only: a client with the CA is served; one with another CA, or
 *   expecting another name, never connects;
 *   client certificates required (tls.ca_file): a certificate from the CA is served; none,
 *   one from another CA and an expired one are refused; optional: every caller is served;
 *   a tls+tcp:// listener without a certificate, or a CA file that is not there: the gateway
 *   does not start, and says why;
 *   who is calling: a caller's own listener (caller.<name>.tls_listen) with its own CA, or its
 *   pinned self-signed certificate, names the caller (the access table applies to it); a
 *   certificate of another CA is refused there; a token of another caller on that connection
 *   is UNAUTHENTICATED; a verified certificate on the shared listener names no one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"
#include "shipgate/client.h"
#include "testutil.h"

static const char *gw_bin, *sb_bin, *cli_bin;
static char dir[128], sandbox[256];

static bool
sh(const char *cmd)
{
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ca (the callers' and the gateway's CA), other-ca; srv (127.0.0.1, from ca), client (CN
 * checkout, from ca), stranger (from other-ca), expired (from ca, valid in 2020 only). */
static bool
make_certs(void)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
	         "cd %s && set -e; gen() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	         "-nodes -keyout $1.key -out $1.csr -subj /CN=$2 2>/dev/null; };"
	         " for c in ca other-ca; do openssl req -x509 -newkey ec -pkeyopt "
	         "ec_paramgen_curve:P-256 -nodes -keyout $c.key -out $c.pem -days 2 -subj /CN=$c "
	         "2>/dev/null; done;"
	         " gen srv 127.0.0.1; gen client checkout; gen stranger stranger; gen expired old;"
	         " printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\\n' > srv.ext;"
	         " printf 'extendedKeyUsage=clientAuth\\n' > client.ext;"
	         " openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
	         "srv.pem -days 2 -extfile srv.ext 2>/dev/null;"
	         " openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
	         "client.pem -days 2 -extfile client.ext 2>/dev/null;"
	         " openssl x509 -req -in stranger.csr -CA other-ca.pem -CAkey other-ca.key "
	         "-CAcreateserial -out stranger.pem -days 2 -extfile client.ext 2>/dev/null;"
	         " printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=index.txt\\nnew_certs_dir=.\\n"
	         "serial=serial\\ndefault_md=sha256\\npolicy=p\\n[p]\\ncommonName=supplied\\n' > "
	         "ca.cnf; : > index.txt; echo 01 > serial;"
	         " openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr "
	         "-out expired.pem -startdate 20200101000000Z -enddate 20200102000000Z "
	         ">/dev/null 2>&1;"
	         " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
	         "pinned.key -out pinned.pem -days 2 -subj /CN=ops -addext "
	         "extendedKeyUsage=clientAuth 2>/dev/null",
	         dir);
	return sh(cmd);
}

static void
path(char *out, size_t n, const char *file)
{
	snprintf(out, n, "%s/%s", dir, file);
}

/* A gateway with one tls+tcp listener and extra settings; its URL into url. */
static bool
start_tls(hs_proc *gw, const char *const *extra, char *url, size_t n)
{
	static const char *const listen[] = {"tls+tcp://127.0.0.1:0", NULL};
	return hs_gateway_start(gw, gw_bin, sandbox, listen, extra) == 0 &&
	       hs_gateway_url(gw, 0, url, n) == 0;
}

/* A call through a C client over TLS with t, with an optional caller token: its status code
 * (0 OK, or the client's own failure as -100 + its code), its reason into reason[n]. */
static int
call_as(const char *url, const shipgate_tls_opts *t, const char *token, const char *method,
        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *out, char *reason, size_t n)
{
	const char *urls[] = {url};
	shipgate_client_opts o = {.urls = urls, .n_urls = 1, .connect_timeout_ms = 1500};
	o.tls = *t;
	o.retry.max_attempts = 1;
	shipgate_client *c = NULL;
	reason[0] = '\0';
	int rv = shipgate_client_new(&c, &o);
	if (rv != SHIPGATE_OK)
		return -100 + rv;
	char bearer[128];
	snprintf(bearer, sizeof(bearer), "Bearer %s", token ? token : "");
	shipgate_metadata md = {"authorization", bearer};
	shipgate_call_opts co = {.deadline_ms = 3000, .metadata = &md, .n_metadata = token ? 1 : 0};
	ProtobufCMessage *reply = NULL;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	int code = shipgate_call(c, method, req, out, &co, &reply, &st);
	snprintf(reason, n, "%s", st.reason ? st.reason : "");
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	return code;
}

/* Health through a C client over TLS with t: the code (0 OK), or the local failure's. */
static int
health(const char *url, const shipgate_tls_opts *t)
{
	Shipgate__V1__HealthRequest req = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	char reason[64];
	return call_as(url, t, NULL, "Health", &req.base,
	               &shipgate__v1__health_response__descriptor, reason, sizeof(reason));
}

/* BosCOD's Track the same way, as the caller with token (NULL: none). */
static int
track_as(const char *url, const shipgate_tls_opts *t, const char *token, char *reason, size_t n)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = "BOS123";
	return call_as(url, t, token, "Track", &req.base, &shipgate__v1__track_response__descriptor,
	               reason, n);
}

/* Callers named by their own listeners: CA-issued (partner) and pinned (ops). */
static void
test_identity(const char *scert, const char *skey, const char *sca, const char *ca,
              const char *other, const char *cl, const char *clk, const char *st, const char *stk,
              const char *pin, const char *pink)
{
	char partner_ca[260], ops_ca[260], url[256], purl[256], ourl[256], reason[64];
	snprintf(partner_ca, sizeof(partner_ca), "caller.partner.tls_ca_file=%s", other);
	snprintf(ops_ca, sizeof(ops_ca), "caller.ops.tls_ca_file=%s", pin);
	/* reader: a caller known by its token (sha256 of "reader-secret") */
	const char *const extra[] = {
	        "--set",
	        scert,
	        "--set",
	        skey,
	        "--set",
	        sca,
	        "--set",
	        "caller.partner.tls_listen=tls+tcp://127.0.0.1:0",
	        "--set",
	        partner_ca,
	        "--set",
	        "caller.partner.providers=bosonline",
	        "--set",
	        "caller.ops.tls_listen=tls+tcp://127.0.0.1:0",
	        "--set",
	        ops_ca,
	        "--set",
	        "caller.reader.token_sha256="
	        "f03319dee240faa729e0cfa7ab5ffd80a1d64a127e3643f239009abff6382914",
	        "--set",
	        "access.anonymous=none",
	        NULL};
	hs_proc gw;
	CHECK(start_tls(&gw, extra, url, sizeof(url)));
	CHECK_INT(hs_gateway_url(&gw, 1, purl, sizeof(purl)), 0);
	CHECK_INT(hs_gateway_url(&gw, 2, ourl, sizeof(ourl)), 0);
	CHECK(strncmp(purl, "tls+tcp://127.0.0.1:", 20) == 0 && strcmp(purl, url) != 0);
	CHECK(strncmp(ourl, "tls+tcp://127.0.0.1:", 20) == 0 && strcmp(ourl, purl) != 0);
	shipgate_tls_opts partner = {.ca_file = ca, .cert_file = st, .key_file = stk},
	                  ops = {.ca_file = ca, .cert_file = pin, .key_file = pink},
	                  mine = {.ca_file = ca, .cert_file = cl, .key_file = clk};
	/* partner is known by its listener: the access table applies (BosCOD is not its) */
	CHECK_INT(track_as(purl, &partner, NULL, reason, sizeof(reason)), 7);
	CHECK_STR(reason, "CALLER_PERMISSION_DENIED");
	CHECK_INT(health(purl, &partner), 0);
	/* ops, by its pinned certificate: every provider */
	CHECK_INT(track_as(ourl, &ops, NULL, reason, sizeof(reason)), 0);
	/* another caller's certificate does not get into partner's or ops's listener */
	CHECK(health(purl, &mine) != 0);
	CHECK(health(purl, &ops) != 0);
	CHECK(health(ourl, &partner) != 0);
	/* a token of another caller on partner's connection: two identities, neither believed */
	CHECK_INT(track_as(purl, &partner, "reader-secret", reason, sizeof(reason)), 16);
	CHECK_STR(reason, "CALLER_UNAUTHENTICATED");
	/* the shared listener's verified certificate names no one (anonymous: none) */
	CHECK_INT(track_as(url, &mine, NULL, reason, sizeof(reason)), 16);
	CHECK_STR(reason, "CALLER_UNAUTHENTICATED");
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* set-up mistakes: a listener without its CA; a CA file that is not there */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
	         "%s --quiet --set %s --set %s --set caller.x.tls_listen=tls+tcp://127.0.0.1:0 "
	         "2>&1 | grep -q 'tls_listen and caller.x.tls_ca_file go together'",
	         gw_bin, scert, skey);
	CHECK(sh(cmd));
	snprintf(cmd, sizeof(cmd),
	         "%s --quiet --set %s --set %s --set caller.x.tls_listen=tls+tcp://127.0.0.1:0 "
	         "--set caller.x.tls_ca_file=%s/none.pem 2>&1 | grep -q 'caller.x.tls_ca_file'",
	         gw_bin, scert, skey, dir);
	CHECK(sh(cmd));
}

int
main(int argc, char **argv)
{
	hs_test_start(argc, argv, 3, "SHIPGATED SANDBOX CLI");
	gw_bin = argv[1];
	sb_bin = argv[2];
	cli_bin = argv[3];
	snprintf(dir, sizeof(dir), "/tmp/shipgate-ctls-XXXXXX");
	if (mkdtemp(dir) == NULL || !make_certs()) {
		fprintf(stderr, "  cannot make certificates with openssl in %s\n", dir);
		CHECK(0);
		TEST_MAIN_END();
	}
	char ca[200], other[200], srv[200], srvk[200], cl[200], clk[200], st[200], stk[200],
	        ex[200], exk[200];
	path(ca, sizeof(ca), "ca.pem");
	path(other, sizeof(other), "other-ca.pem");
	path(srv, sizeof(srv), "srv.pem");
	path(srvk, sizeof(srvk), "srv.key");
	path(cl, sizeof(cl), "client.pem");
	path(clk, sizeof(clk), "client.key");
	path(st, sizeof(st), "stranger.pem");
	path(stk, sizeof(stk), "stranger.key");
	path(ex, sizeof(ex), "expired.pem");
	path(exk, sizeof(exk), "expired.key");
	char pin[200], pink[200];
	path(pin, sizeof(pin), "pinned.pem");
	path(pink, sizeof(pink), "pinned.key");
	hs_proc sb, gw;
	CHECK_INT(hs_sandbox_start(&sb, sb_bin, sandbox, sizeof(sandbox)), 0);

	char scert[260], skey[260], sca[260], url[256];
	snprintf(scert, sizeof(scert), "tls.cert_file=%s", srv);
	snprintf(skey, sizeof(skey), "tls.key_file=%s", srvk);
	snprintf(sca, sizeof(sca), "tls.ca_file=%s", ca);

	/* ---- the server's certificate only */
	const char *const plain[] = {"--set", scert, "--set", skey, NULL};
	CHECK(start_tls(&gw, plain, url, sizeof(url)));
	CHECK(strncmp(url, "tls+tcp://127.0.0.1:", 20) == 0);
	CHECK_INT(health(url, &(shipgate_tls_opts){.ca_file = ca}), 0);
	CHECK(health(url, &(shipgate_tls_opts){.ca_file = other}) != 0);
	CHECK(health(url, &(shipgate_tls_opts){.ca_file = ca, .server_name = "wrong.example"}) !=
	      0);
	CHECK_INT(health(url, &(shipgate_tls_opts){0}), -100 + SHIPGATE_EINVAL); /* no CA */
	/* the CLI, as a user runs it */
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "%s -a %s --tls-ca %s call Track "
	         "'{\"provider\":\"PROVIDER_BOSCOD\",\"orderId\":\"BOS123\"}' | grep -q DELIVERED",
	         cli_bin, url, ca);
	CHECK(sh(cmd));
	snprintf(cmd, sizeof(cmd), "%s -a %s call Health '{}' 2>&1 | grep -q 'needs --tls-ca'",
	         cli_bin, url);
	CHECK(sh(cmd));
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* ---- client certificates required */
	const char *const mtls[] = {"--set", scert, "--set", skey, "--set", sca, NULL};
	CHECK(start_tls(&gw, mtls, url, sizeof(url)));
	CHECK_INT(
	        health(url, &(shipgate_tls_opts){.ca_file = ca, .cert_file = cl, .key_file = clk}),
	        0);
	CHECK(health(url, &(shipgate_tls_opts){.ca_file = ca}) != 0);
	CHECK(health(url, &(shipgate_tls_opts){.ca_file = ca, .cert_file = st, .key_file = stk}) !=
	      0);
	CHECK(health(url, &(shipgate_tls_opts){.ca_file = ca, .cert_file = ex, .key_file = exk}) !=
	      0);
	CHECK_INT(health(url, &(shipgate_tls_opts){.ca_file = ca, .cert_file = cl}),
	          -100 + SHIPGATE_EINVAL); /* a certificate without its key */
	snprintf(cmd, sizeof(cmd),
	         "%s -a %s --tls-ca %s --tls-cert %s --tls-key %s call Health '{}' | grep -q "
	         "SERVING",
	         cli_bin, url, ca, cl, clk);
	CHECK(sh(cmd));
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* ---- optional: none is served, and so is one that does not verify (nng 1.5.2 tells a
	 * pipe only whether its peer verified, NNG_OPT_TLS_VERIFIED: such a caller counts as one
	 * without a certificate) */
	const char *const opt[] = {"--set", scert, "--set", skey,
	                           "--set", sca,   "--set", "tls.client_auth=optional",
	                           NULL};
	CHECK(start_tls(&gw, opt, url, sizeof(url)));
	CHECK_INT(health(url, &(shipgate_tls_opts){.ca_file = ca}), 0);
	CHECK_INT(
	        health(url, &(shipgate_tls_opts){.ca_file = ca, .cert_file = cl, .key_file = clk}),
	        0);
	CHECK_INT(
	        health(url, &(shipgate_tls_opts){.ca_file = ca, .cert_file = st, .key_file = stk}),
	        0);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* ---- set-up mistakes stop the start, saying why */
	snprintf(cmd, sizeof(cmd),
	         "%s --quiet -l tls+tcp://127.0.0.1:0 2>&1 | grep -q 'needs tls.cert_file'",
	         gw_bin);
	CHECK(sh(cmd));
	snprintf(cmd, sizeof(cmd),
	         "%s --quiet -l tls+tcp://127.0.0.1:0 --set %s --set tls.key_file=%s/none.key 2>&1 "
	         "| grep -q 'tls.key_file: %s/none.key'",
	         gw_bin, scert, dir, dir);
	CHECK(sh(cmd));
	snprintf(cmd, sizeof(cmd),
	         "%s --quiet -l tls+tcp://127.0.0.1:0 --set %s --set %s --set "
	         "tls.client_auth=always "
	         "2>&1 | grep -q 'tls.client_auth'",
	         gw_bin, scert, skey);
	CHECK(sh(cmd));
	test_identity(scert, skey, sca, ca, other, cl, clk, st, stk, pin, pink);
	fprintf(stderr, "  tls+tcp: served with the CA, refused with another CA or name; mTLS: the "
	                "CA's certificate served, none, a stranger's and an expired one refused; "
	                "callers named by their own listener's CA or pinned certificate\n");
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
	curl_global_cleanup();
	TEST_MAIN_END();
}
