/*
 * test_access_e2e.c - who may call: caller tokens (hashed in the config) and ipc uids, the access
 * table's methods and providers, and anonymous callers, through the real gateway.
 *
 *   no token where the gateway needs one, a token no caller has: UNAUTHENTICATED /
 *   CALLER_UNAUTHENTICATED; a known caller outside its methods or providers:
 *   PERMISSION_DENIED / CALLER_PERMISSION_DENIED, before any cache or provider; the checkout
 *   caller's CreateOrder served; Health always answered; an ipc peer known by its uid;
 *   anonymous callers on loopback served by default (access.anonymous = local).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "create_order.h"
#include "harness.h"
#include "pbjson.h"
#include "testutil.h"

#define expect(...) CHECK(hs_expect(__VA_ARGS__))

static const char *gw_bin, *sb_bin;
static char sandbox[256];

/* the callers' tokens (the gateway is given their sha256, as sha256sum prints it) */
#define CHECKOUT_TOKEN "checkout-secret-1"
#define READER_TOKEN   "reader-secret-22"

/* The document's CreateOrder request, decoded. */
static ProtobufCMessage *
create_order_request(void)
{
	ProtobufCMessage *m = NULL;
	sgc_pbjson_error err;
	if (sgc_pbjson_decode(CREATE_JSON, strlen(CREATE_JSON),
	                      &shipgate__v1__create_order_request__descriptor, NULL, 0, &m,
	                      &err) != 0)
		return NULL;
	return m;
}

/* A call with an optional caller token; the reply (free with free_unpacked) or NULL. */
static Shipgate__V1__RpcReply *
call(nng_socket s, const char *method, const ProtobufCMessage *req, const char *token,
     const char *key)
{
	return hs_call_as(s, method, req, 5000, key, token);
}

static Shipgate__V1__TrackRequest
track_req(int provider, const char *id)
{
	Shipgate__V1__TrackRequest t = SHIPGATE__V1__TRACK_REQUEST__INIT;
	t.provider = (Shipgate__V1__Provider)provider;
	if (provider == SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE)
		t.tracking_number = (char *)id;
	else
		t.order_id = (char *)id;
	return t;
}

int
main(int argc, char **argv)
{
	hs_test_start(argc, argv, 2, "SHIPGATED SANDBOX");
	gw_bin = argv[1];
	sb_bin = argv[2];
	hs_proc sb, gw;
	CHECK_INT(hs_sandbox_start(&sb, sb_bin, sandbox, sizeof(sandbox)), 0);
	char ipc[128], ipc_url[160], url[256], uidset[64], sha_checkout[128], sha_reader[128];
	snprintf(ipc, sizeof(ipc), "/tmp/shipgate-access-%d.ipc", (int)getpid());
	snprintf(ipc_url, sizeof(ipc_url), "ipc://%s", ipc);
	snprintf(uidset, sizeof(uidset), "caller.local-ops.uid=%d", (int)getuid());
	/* the hashes, as an operator makes them */
	FILE *p = popen("printf %s " CHECKOUT_TOKEN " | sha256sum | cut -d' ' -f1", "r");
	char h1[80] = "", h2[80] = "";
	CHECK(p != NULL && fgets(h1, sizeof(h1), p) != NULL);
	if (p)
		pclose(p);
	p = popen("printf %s " READER_TOKEN " | sha256sum | cut -d' ' -f1", "r");
	CHECK(p != NULL && fgets(h2, sizeof(h2), p) != NULL);
	if (p)
		pclose(p);
	h1[strcspn(h1, "\n")] = h2[strcspn(h2, "\n")] = '\0';
	snprintf(sha_checkout, sizeof(sha_checkout), "caller.checkout.token_sha256=%s", h1);
	snprintf(sha_reader, sizeof(sha_reader), "caller.reader.token_sha256=%s", h2);
	const char *const listen[] = {"tcp://127.0.0.1:0", ipc_url, NULL};
	const char *const extra[] = {"--set", sha_checkout,
	                             "--set", "caller.checkout.methods=Track,CreateOrder",
	                             "--set", sha_reader,
	                             "--set", "caller.reader.providers=boscod, biteship",
	                             "--set", uidset,
	                             "--set", "caller.local-ops.methods=*",
	                             "--set", "access.anonymous=none",
	                             NULL};
	CHECK_INT(hs_gateway_start(&gw, gw_bin, sandbox, listen, extra), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	nng_socket s, si;
	CHECK_INT(hs_dial(&s, url), 0);
	CHECK_INT(hs_dial(&si, ipc_url), 0);

	Shipgate__V1__TrackRequest bos = track_req(SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD,
	                                           "BOS123"),
	                           bon = track_req(SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE,
	                                           "IDE987651421");
	Shipgate__V1__HealthRequest hq = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	/* unknown callers */
	expect(call(s, "Track", &bos.base, NULL, NULL), 16, "CALLER_UNAUTHENTICATED",
	       "needs a caller token");
	expect(call(s, "Track", &bos.base, "not-a-caller-token", NULL), 16,
	       "CALLER_UNAUTHENTICATED", "not one of this gateway's callers");
	expect(call(s, "Health", &hq.base, NULL, NULL), 0, "", NULL); /* always */
	/* the reader: Track and GetOrder with BosCOD and Biteship only */
	expect(call(s, "Track", &bos.base, READER_TOKEN, NULL), 0, "", NULL);
	expect(call(s, "Track", &bos.base, READER_TOKEN, NULL), 0, "", NULL); /* cached: still ok */
	expect(call(s, "Track", &bon.base, READER_TOKEN, NULL), 7, "CALLER_PERMISSION_DENIED",
	       "may not use provider bosonline");
	/* CreateOrder: the reader may not (before any store or provider); checkout may */
	ProtobufCMessage *co = create_order_request();
	CHECK(co != NULL);
	expect(call(s, "CreateOrder", co, READER_TOKEN, "access-key-1"), 7,
	       "CALLER_PERMISSION_DENIED", "may not call CreateOrder");
	expect(call(s, "CreateOrder", co, CHECKOUT_TOKEN, "access-key-1"), 0, "", NULL);
	/* checkout may not GetOrder (not granted) */
	Shipgate__V1__GetOrderRequest go = SHIPGATE__V1__GET_ORDER_REQUEST__INIT;
	go.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BITESHIP;
	go.order_id = "5dd599ebdefcd4158eb8470b";
	expect(call(s, "GetOrder", &go.base, CHECKOUT_TOKEN, NULL), 7, "CALLER_PERMISSION_DENIED",
	       "may not call GetOrder");
	expect(call(s, "GetOrder", &go.base, READER_TOKEN, NULL), 0, "", NULL);
	/* ipc: this process's uid is local-ops, which may do everything, without a token */
	expect(call(si, "Track", &bon.base, NULL, NULL), 0, "", NULL);
	/* a token over ipc still decides: an unknown one is refused */
	expect(call(si, "Track", &bon.base, "not-a-caller-token", NULL), 16,
	       "CALLER_UNAUTHENTICATED", NULL);
	nng_close(s);
	nng_close(si);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* the default: anonymous callers on loopback are served, a token no caller has is not */
	const char *const dflt[] = {"--set", sha_reader, NULL};
	CHECK_INT(hs_gateway_start(&gw, gw_bin, sandbox, listen, dflt), 0);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	expect(call(s, "Track", &bon.base, NULL, NULL), 0, "", NULL);
	expect(call(s, "Track", &bon.base, "not-a-caller-token", NULL), 16,
	       "CALLER_UNAUTHENTICATED", NULL);
	/* a caller named with only its token: Track and GetOrder, every provider, no CreateOrder */
	expect(call(s, "Track", &bon.base, READER_TOKEN, NULL), 0, "", NULL);
	expect(call(s, "CreateOrder", co, READER_TOKEN, "access-key-2"), 7,
	       "CALLER_PERMISSION_DENIED", NULL);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	protobuf_c_message_free_unpacked(co, NULL);
	fprintf(stderr, "  access: tokens and an ipc uid known, unknown callers refused, methods "
	                "and providers kept apart, Health always answered\n");
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	unlink(ipc);
	curl_global_cleanup();
	TEST_MAIN_END();
}
