/*
 * test_access.c - the access step (src/gateway/access.c) through the pipeline and the fakes
 * of gwfake.h: who is calling and what they may do, decided before anything goes upstream.
 *
 * Callers: "reader" (a token; Track and GetOrder with BosCOD only), "writer" (a token;
 * CreateOrder too, every provider; tenant acme, with its own BosCOD account) and "ops" (ipc uid
 * 4242; everything). A call that came through a caller's own TLS listener is that caller's.
 * Anonymous callers follow access.anonymous (local by default, then none, then all).
 */
#include <stdio.h>
#include <string.h>

#include "gwfake.h"
#include "server/config.h"
#include "testutil.h"

/* the SHA-256 of "reader-token-1" and "writer-token-2", as sha256sum prints them */
static char reader_sha[65], writer_sha[65];

static void
configure(sg_config *c)
{
	char err[256];
	CHECK_INT(sg_config_set(c, "caller.reader.token_sha256", reader_sha, err, sizeof(err)), 0);
	CHECK_INT(sg_config_set(c, "caller.reader.providers", "boscod", err, sizeof(err)), 0);
	CHECK_INT(sg_config_set(c, "caller.writer.token_sha256", writer_sha, err, sizeof(err)), 0);
	CHECK_INT(sg_config_set(c, "caller.writer.methods", "Track,CreateOrder", err, sizeof(err)),
	          0);
	CHECK_INT(sg_config_set(c, "caller.writer.tenant", "acme", err, sizeof(err)), 0);
	CHECK_INT(sg_config_set(c, "tenant.acme.boscod.base_url", "http://acme.example/boscod", err,
	                        sizeof(err)),
	          0);
	CHECK_INT(sg_config_set(c, "tenant.acme.boscod.token", "acme-upstream", err, sizeof(err)),
	          0);
	CHECK_INT(sg_config_set(c, "caller.ops.uid", "4242", err, sizeof(err)), 0);
	CHECK_INT(sg_config_set(c, "caller.ops.methods", "*", err, sizeof(err)), 0);
}

/* Slot 0's Track as the caller set in gwfake_*, answered by the fake provider when it goes out
 * (a Fuuffy token fetch first, when one is asked for); its code, its reason into *why. */
static int
run_track(int provider, const char *id, const char *token, int peer_local, long uid,
          const char **why)
{
	gwfake_token = token;
	gwfake_peer_local = peer_local;
	gwfake_peer_uid = uid;
	int n0 = sent_count();
	track(0, provider, id, true, 5000);
	if (sent_count() > n0 && strstr(up.req[n0].url, "/auth/token") != NULL) {
		complete(n0, SG_OK, 200, TOKEN_OK);
		n0++;
	}
	if (sent_count() > n0)
		complete(n0, SG_OK, 200, provider == FUUFFY ? doc_fuuffy : doc_boscod);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	int c = code(r);
	*why = reason(r);
	static char keep[64];
	snprintf(keep, sizeof(keep), "%s", *why);
	*why = keep;
	slot_end(0);
	return c;
}

int
main(void)
{
	FILE *p = popen("printf %s reader-token-1 | sha256sum", "r");
	CHECK(p != NULL && fgets(reader_sha, sizeof(reader_sha), p) != NULL);
	if (p)
		pclose(p);
	p = popen("printf %s writer-token-2 | sha256sum", "r");
	CHECK(p != NULL && fgets(writer_sha, sizeof(writer_sha), p) != NULL);
	if (p)
		pclose(p);
	gwfake_configure = configure;
	if (!gwfake_start())
		TEST_MAIN_END();
	const char *why;
	int n0;

	/* known callers, by token */
	CHECK_INT(run_track(BOSCOD, "BOS123", "reader-token-1", 0, -1, &why), 0);
	n0 = sent_count();
	CHECK_INT(run_track(FUUFFY, "3550875", "reader-token-1", 0, -1, &why), 7);
	CHECK_STR(why, "CALLER_PERMISSION_DENIED");
	CHECK_INT(sent_count(), n0); /* refused before the provider */
	CHECK_INT(run_track(FUUFFY, "3550875", "writer-token-2", 0, -1, &why), 0);
	/* a token no caller has, from anywhere: refused, nothing sent */
	n0 = sent_count();
	CHECK_INT(run_track(BOSCOD, "BOS123", "nobody-token", 1, -1, &why), 16);
	CHECK_STR(why, "CALLER_UNAUTHENTICATED");
	CHECK_INT(sent_count(), n0);
	/* CreateOrder: granted to writer, not to reader (nothing sent, the key untouched) */
	gwfake_token = "reader-token-1";
	create(0, "access-1", "00", 5000);
	CHECK_INT(sent_count(), n0);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 7);
	slot_end(0);
	gwfake_token = "writer-token-2";
	create(0, "access-1", "00", 5000);
	CHECK_INT(sent_count(), n0 + 1);
	complete(n0, SG_OK, 200, doc_create);
	r = wait_reply(0);
	CHECK_INT(code(r), 0);
	slot_end(0);
	/* the writer's tenant: its own BosCOD account and token (run_track bypasses the cache;
	 * test_tenants_e2e has the cache kept apart) */
	n0 = sent_count();
	CHECK_INT(run_track(BOSCOD, "BOS123", "writer-token-2", 0, -1, &why), 0);
	CHECK_INT(run_track(BOSCOD, "BOS123", "reader-token-1", 0, -1, &why), 0);
	CHECK_INT(sent_count(), n0 + 2);
	CHECK(strncmp(up.req[n0].url, "http://acme.example/boscod/", 27) == 0);
	CHECK_STR(up.req[n0].auth, "Bearer acme-upstream");
	CHECK(strncmp(up.req[n0 + 1].url, "http://acme.example/", 20) != 0);
	CHECK_STR(up.req[n0 + 1].auth, "Bearer sandbox-token");
	/* a caller's own TLS listener names it (reader is caller 1): no token needed, from
	 * another host, and its access table applies; another caller's token there is refused */
	gwfake_peer_caller = 1;
	CHECK_INT(run_track(BOSCOD, "BOS123", NULL, 0, -1, &why), 0);
	CHECK_INT(run_track(FUUFFY, "3550875", NULL, 0, -1, &why), 7);
	CHECK_STR(why, "CALLER_PERMISSION_DENIED");
	CHECK_INT(run_track(BOSCOD, "BOS123", "reader-token-1", 0, -1, &why), 0);
	CHECK_INT(run_track(BOSCOD, "BOS123", "writer-token-2", 0, -1, &why), 16);
	CHECK_STR(why, "CALLER_UNAUTHENTICATED");
	gwfake_peer_caller = 0;
	/* the ipc uid: ops, everything, without a token */
	CHECK_INT(run_track(FUUFFY, "3550875", NULL, 1, 4242, &why), 0);
	/* anonymous: local by default; another host refused */
	CHECK_INT(run_track(BOSCOD, "BOS123", NULL, 1, -1, &why), 0);
	n0 = sent_count();
	CHECK_INT(run_track(BOSCOD, "BOS123", NULL, 0, -1, &why), 16);
	CHECK_INT(run_track(BOSCOD, "BOS123", NULL, -1, -1, &why),
	          16); /* unknown peer: not local */
	CHECK_INT(sent_count(), n0);
	/* Health is answered to anyone without a token, from another host too */
	gwfake_token = NULL;
	gwfake_peer_local = 0;
	Shipgate__V1__HealthRequest hq = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	start(0, "Health", &hq.base, 5000, NULL);
	r = wait_reply(0);
	CHECK_INT(code(r), 0);
	slot_end(0);
	/* access.anonymous = none, then all (read per call) */
	cfg.access_anonymous = "none";
	CHECK_INT(run_track(BOSCOD, "BOS123", NULL, 1, -1, &why), 16);
	cfg.access_anonymous = "all";
	CHECK_INT(run_track(BOSCOD, "BOS123", NULL, 0, -1, &why), 0);
	gwfake_stop();
	TEST_MAIN_END();
}
