/*
 * test_tenants_e2e.c - tenants and the callers' quotas on idempotency keys, through the real
 * gateway and two sandboxes (each a provider account with its own credentials).
 *
 *   tenants: a tenant's calls go to its own account with its own token (and its own fetched
 *   OAuth token); its lookup cache entries never serve another tenant, nor the providers' own;
 *   the same idempotency key from two tenants makes two orders, and each replays its own;
 *   quotas: a caller at its most live keys gets RESOURCE_EXHAUSTED / IDEMPOTENCY_KEY_QUOTA for
 *   a new key while its existing keys replay and every other caller is served (the hostile
 *   row: a flood of distinct keys fills only its sender's share); a caller at its most
 *   CreateOrders running gets IDEMPOTENCY_KEYS_IN_FLIGHT;
 *   a fleet (two gateways on one Redis, for the cache and the store): a tenant's answers and
 *   keys are shared between its gateways and never with another tenant, and its quota is the
 *   fleet's.
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
static char sb_a[200], sb_b[200]; /* the providers' own account, and the tenant acme's */

#define SHOP_TOKEN    "shop-secret-0001"  /* caller shop: the providers' own credentials */
#define ACME_TOKEN    "acme-secret-0002"  /* caller acme-shop: tenant acme, max_keys 3 */
#define FLOOD_TOKEN   "flood-secret-0003" /* caller flood: max_keys 50 */
#define SLOW_TOKEN    "slow-secret-0004"  /* caller slow: max_keys_in_flight 1 */
#define ACME_UPSTREAM "acme-upstream-token"

static ProtobufCMessage *
json_msg(const char *json, const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = NULL;
	sgc_pbjson_error err;
	if (sgc_pbjson_decode(json, strlen(json), d, NULL, 0, &m, &err) != 0)
		return NULL;
	return m;
}

/* The document's CreateOrder with its formId replaced (the sandbox reads SLOW-<ms> there). */
static ProtobufCMessage *
create_req(const char *form_id)
{
	char body[sizeof(CREATE_JSON) + 64];
	const char *at = strstr(CREATE_JSON, "d9cc7807-36c2-4eb1-b910-ece18a1bbb6e");
	snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - CREATE_JSON), CREATE_JSON, form_id,
	         at + 36);
	return json_msg(body, &shipgate__v1__create_order_request__descriptor);
}

/* An OK CreateOrder reply: 1 made now, 2 replayed from its key; 0 anything else. */
static int
created(Shipgate__V1__RpcReply *r)
{
	int how = 0;
	Shipgate__V1__CreateOrderResponse *co =
	        (void *)hs_payload(r, &shipgate__v1__create_order_response__descriptor);
	if (co != NULL) {
		how = co->replayed ? 2 : 1;
		protobuf_c_message_free_unpacked(&co->base, NULL);
	}
	if (r)
		shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	return how;
}

static void
sha_set(char *out, size_t n, const char *caller, const char *token)
{
	char cmd[200], h[80] = "";
	snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum | cut -d' ' -f1", token);
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL && fgets(h, sizeof(h), p) != NULL);
	if (p)
		pclose(p);
	h[strcspn(h, "\n")] = '\0';
	snprintf(out, n, "caller.%s.token_sha256=%s", caller, h);
}

/* Tenants: accounts, tokens, the cache and idempotency keys kept apart. */
static void
test_tenants(nng_socket s)
{
	ProtobufCMessage *bos =
	        json_msg("{\"provider\":\"PROVIDER_BOSCOD\",\"orderId\":\"BOS123\"}",
	                 &shipgate__v1__track_request__descriptor);
	ProtobufCMessage *fu =
	        json_msg("{\"provider\":\"PROVIDER_FUUFFY\",\"orderId\":\"3550875\"}",
	                 &shipgate__v1__track_request__descriptor);
	CHECK(bos != NULL && fu != NULL);

	/* the providers' own account first, then the tenant's: not a hit of the first */
	expect(hs_call_as(s, "Track", bos, 5000, NULL, SHOP_TOKEN), 0, "", NULL);
	CHECK_INT(hs_sandbox_count(sb_a, "GET", "/boscod/", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_b, "GET", "/boscod/", NULL), 0);
	expect(hs_call_as(s, "Track", bos, 5000, NULL, ACME_TOKEN), 0, "", NULL);
	CHECK_INT(hs_sandbox_count(sb_b, "GET", "/boscod/", "Bearer " ACME_UPSTREAM), 1);
	/* each cached for itself, and anonymous callers share the providers' own entry */
	expect(hs_call_as(s, "Track", bos, 5000, NULL, ACME_TOKEN), 0, "", NULL);
	expect(hs_call_as(s, "Track", bos, 5000, NULL, SHOP_TOKEN), 0, "", NULL);
	expect(hs_call_as(s, "Track", bos, 5000, NULL, NULL), 0, "", NULL);
	CHECK_INT(hs_sandbox_count(sb_a, "GET", "/boscod/", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_b, "GET", "/boscod/", NULL), 1);

	/* OAuth (Fuuffy, with the tenant's own client secret): each account's token is fetched
	 * and cached for it alone */
	for (int i = 0; i < 2; i++) {
		expect(hs_call_as(s, "Track", fu, 5000, NULL, SHOP_TOKEN), 0, "", NULL);
		expect(hs_call_as(s, "Track", fu, 5000, NULL, ACME_TOKEN), 0, "", NULL);
	}
	CHECK_INT(hs_sandbox_count(sb_a, "POST", "/fuuffy/v1/auth/token", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_b, "POST", "/fuuffy/v1/auth/token", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_a, "GET", "/fuuffy/", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_b, "GET", "/fuuffy/", NULL), 1);

	/* one idempotency key, two tenants: two orders; each replays its own */
	ProtobufCMessage *co = create_req("d9cc7807-36c2-4eb1-b910-ece18a1bbb6e");
	CHECK(co != NULL);
	CHECK_INT(created(hs_call_as(s, "CreateOrder", co, 5000, "tenant-key-1", SHOP_TOKEN)), 1);
	CHECK_INT(created(hs_call_as(s, "CreateOrder", co, 5000, "tenant-key-1", ACME_TOKEN)), 1);
	CHECK_INT(hs_sandbox_count(sb_a, "POST", "/bosonline/order/", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_b, "POST", "/bosonline/order/", "Bearer " ACME_UPSTREAM), 1);
	CHECK_INT(created(hs_call_as(s, "CreateOrder", co, 5000, "tenant-key-1", ACME_TOKEN)), 2);
	CHECK_INT(created(hs_call_as(s, "CreateOrder", co, 5000, "tenant-key-1", SHOP_TOKEN)), 2);
	CHECK_INT(hs_sandbox_count(sb_a, "POST", "/bosonline/order/", NULL), 1);
	CHECK_INT(hs_sandbox_count(sb_b, "POST", "/bosonline/order/", NULL), 1);
	protobuf_c_message_free_unpacked(co, NULL);
	protobuf_c_message_free_unpacked(bos, NULL);
	protobuf_c_message_free_unpacked(fu, NULL);
}

/* Quotas on stored keys: a full share refuses only its owner's new keys. */
static void
test_key_quota(nng_socket s)
{
	ProtobufCMessage *co = create_req("d9cc7807-36c2-4eb1-b910-ece18a1bbb6e");
	CHECK(co != NULL);
	/* acme-shop holds tenant-key-1 already; two more fill its 3 */
	expect(hs_call_as(s, "CreateOrder", co, 5000, "acme-q1", ACME_TOKEN), 0, "", NULL);
	expect(hs_call_as(s, "CreateOrder", co, 5000, "acme-q2", ACME_TOKEN), 0, "", NULL);
	int posts = hs_sandbox_count(sb_b, "POST", "/bosonline/order/", NULL);
	expect(hs_call_as(s, "CreateOrder", co, 5000, "acme-q3", ACME_TOKEN), 8,
	       "IDEMPOTENCY_KEY_QUOTA", "acme-shop holds 3 live idempotency keys");
	CHECK_INT(hs_sandbox_count(sb_b, "POST", "/bosonline/order/", NULL), posts); /* not sent */
	/* its existing keys still replay */
	expect(hs_call_as(s, "CreateOrder", co, 5000, "acme-q1", ACME_TOKEN), 0, "", NULL);
	CHECK_INT(hs_sandbox_count(sb_b, "POST", "/bosonline/order/", NULL), posts);

	/* the hostile row: 1,000 distinct keys from one caller fill its 50, and no one else's */
	int ok = 0, quota = 0, other = 0;
	for (int i = 0; i < 1000; i++) {
		char key[64];
		snprintf(key, sizeof(key), "flood-%d", i);
		Shipgate__V1__RpcReply *r =
		        hs_call_as(s, "CreateOrder", co, 5000, key, FLOOD_TOKEN);
		if (hs_code(r) == 0)
			ok++;
		else if (strcmp(hs_reason(r), "IDEMPOTENCY_KEY_QUOTA") == 0)
			quota++;
		else
			other++;
		if (r)
			shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	}
	CHECK_INT(ok, 50);
	CHECK_INT(quota, 950);
	CHECK_INT(other, 0);
	expect(hs_call_as(s, "CreateOrder", co, 5000, "shop-after-flood", SHOP_TOKEN), 0, "", NULL);
	expect(hs_call_as(s, "CreateOrder", co, 5000, "anon-after-flood", NULL), 0, "", NULL);
	protobuf_c_message_free_unpacked(co, NULL);
}

/* Quotas on keys running: one more than its share is refused at once, and retrying works. */
static void
test_in_flight(nng_socket s, const char *url)
{
	nng_socket s2;
	CHECK_INT(hs_dial(&s2, url), 0);
	ProtobufCMessage *slow = create_req("SLOW-1500"), *co = create_req("fast-1");
	CHECK(slow != NULL && co != NULL);
	size_t len;
	uint8_t *buf = hs_request_pack("CreateOrder", slow, 5000, "slow-1", SLOW_TOKEN, &len);
	CHECK_INT(nng_send(s2, buf, len, 0), 0);
	free(buf);
	hs_sleep_ms(300); /* it is upstream now, for 1.5 s */
	expect(hs_call_as(s, "CreateOrder", co, 5000, "slow-2", SLOW_TOKEN), 8,
	       "IDEMPOTENCY_KEYS_IN_FLIGHT", "slow has 1 CreateOrder calls running");
	/* another caller is not held back */
	expect(hs_call_as(s, "CreateOrder", co, 5000, "shop-during-slow", SHOP_TOKEN), 0, "", NULL);
	Shipgate__V1__RpcReply *r = hs_recv_reply(s2);
	expect(r, 0, "", NULL);
	expect(hs_call_as(s, "CreateOrder", co, 5000, "slow-2", SLOW_TOKEN), 0, "", NULL);
	nng_close(s2);
	protobuf_c_message_free_unpacked(slow, NULL);
	protobuf_c_message_free_unpacked(co, NULL);
}

/* The fleet (Redis): a tenant's answers and keys are shared by its gateways, never with another
 * tenant, and its quota counts across the fleet. */
static void
test_fleet(nng_socket s2, nng_socket s3)
{
	ProtobufCMessage *bos =
	        json_msg("{\"provider\":\"PROVIDER_BOSCOD\",\"orderId\":\"BOS123\"}",
	                 &shipgate__v1__track_request__descriptor);
	ProtobufCMessage *co = create_req("d9cc7807-36c2-4eb1-b910-ece18a1bbb6e");
	CHECK(bos != NULL && co != NULL);
	int ga = hs_sandbox_count(sb_a, "GET", "/boscod/", NULL),
	    gb = hs_sandbox_count(sb_b, "GET", "/boscod/", NULL);
	/* acme's answer fetched at one gateway is the other's; the providers' own is fetched */
	expect(hs_call_as(s2, "Track", bos, 5000, NULL, ACME_TOKEN), 0, "", NULL);
	expect(hs_call_as(s3, "Track", bos, 5000, NULL, ACME_TOKEN), 0, "", NULL);
	CHECK_INT(hs_sandbox_count(sb_b, "GET", "/boscod/", NULL), gb + 1);
	expect(hs_call_as(s3, "Track", bos, 5000, NULL, SHOP_TOKEN), 0, "", NULL);
	CHECK_INT(hs_sandbox_count(sb_a, "GET", "/boscod/", NULL), ga + 1);
	/* a key across the fleet: one order per tenant, replayed at the other gateway */
	int pa = hs_sandbox_count(sb_a, "POST", "/bosonline/order/", NULL),
	    pb = hs_sandbox_count(sb_b, "POST", "/bosonline/order/", NULL);
	CHECK_INT(created(hs_call_as(s2, "CreateOrder", co, 5000, "fleet-key", ACME_TOKEN)), 1);
	CHECK_INT(created(hs_call_as(s3, "CreateOrder", co, 5000, "fleet-key", ACME_TOKEN)), 2);
	CHECK_INT(created(hs_call_as(s3, "CreateOrder", co, 5000, "fleet-key", SHOP_TOKEN)), 1);
	CHECK_INT(created(hs_call_as(s2, "CreateOrder", co, 5000, "fleet-key", SHOP_TOKEN)), 2);
	CHECK_INT(hs_sandbox_count(sb_a, "POST", "/bosonline/order/", NULL), pa + 1);
	CHECK_INT(hs_sandbox_count(sb_b, "POST", "/bosonline/order/", NULL), pb + 1);
	/* acme-shop's 3 keys count for the fleet: two more at g2, and g3 refuses a fourth */
	expect(hs_call_as(s2, "CreateOrder", co, 5000, "fleet-q1", ACME_TOKEN), 0, "", NULL);
	expect(hs_call_as(s2, "CreateOrder", co, 5000, "fleet-q2", ACME_TOKEN), 0, "", NULL);
	expect(hs_call_as(s3, "CreateOrder", co, 5000, "fleet-q3", ACME_TOKEN), 8,
	       "IDEMPOTENCY_KEY_QUOTA", NULL);
	expect(hs_call_as(s3, "CreateOrder", co, 5000, "fleet-q1", ACME_TOKEN), 0, "", NULL);
	protobuf_c_message_free_unpacked(co, NULL);
	protobuf_c_message_free_unpacked(bos, NULL);
}

int
main(int argc, char **argv)
{
	hs_test_start(argc, argv, 2, "SHIPGATED SANDBOX");
	gw_bin = argv[1];
	sb_bin = argv[2];
	hs_proc sa, sb, gw;
	CHECK_INT(hs_sandbox_start(&sa, sb_bin, sb_a, sizeof(sb_a)), 0);
	char *bargv[] = {(char *)sb_bin, "--listen", "127.0.0.1:0", "--token", ACME_UPSTREAM, NULL};
	CHECK_INT(hs_proc_start(&sb, bargv, "listening on "), 0);
	snprintf(sb_b, sizeof(sb_b), "%.199s", sb.line + strlen("listening on "));

	char shop[128], acme[128], flood[128], slow[128], turl[6][300];
	sha_set(shop, sizeof(shop), "shop", SHOP_TOKEN);
	sha_set(acme, sizeof(acme), "acme-shop", ACME_TOKEN);
	sha_set(flood, sizeof(flood), "flood", FLOOD_TOKEN);
	sha_set(slow, sizeof(slow), "slow", SLOW_TOKEN);
	const char *names[] = {"boscod", "bosonline", "fuuffy"};
	for (int i = 0; i < 3; i++)
		snprintf(turl[i], sizeof(turl[i]), "tenant.acme.%s.base_url=%s/%s", names[i], sb_b,
		         names[i]);
	snprintf(turl[3], sizeof(turl[3]), "tenant.acme.boscod.token=%s", ACME_UPSTREAM);
	snprintf(turl[4], sizeof(turl[4]), "tenant.acme.bosonline.token=%s", ACME_UPSTREAM);
	/* (the sandbox's Fuuffy client secret is its --token) */
	snprintf(turl[5], sizeof(turl[5]), "tenant.acme.fuuffy.client_secret=%s", ACME_UPSTREAM);
	const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	const char *extra[] = {"--set", shop,
	                       "--set", "caller.shop.methods=*",
	                       "--set", acme,
	                       "--set", "caller.acme-shop.methods=*",
	                       "--set", "caller.acme-shop.tenant=acme",
	                       "--set", "caller.acme-shop.max_keys=3",
	                       "--set", flood,
	                       "--set", "caller.flood.methods=*",
	                       "--set", "caller.flood.max_keys=50",
	                       "--set", slow,
	                       "--set", "caller.slow.methods=*",
	                       "--set", "caller.slow.max_keys_in_flight=1",
	                       "--set", turl[0],
	                       "--set", turl[1],
	                       "--set", turl[2],
	                       "--set", turl[3],
	                       "--set", turl[4],
	                       "--set", turl[5],
	                       NULL,    NULL,
	                       NULL,    NULL,
	                       NULL,    NULL,
	                       NULL,    NULL,
	                       NULL};
	CHECK_INT(hs_gateway_start(&gw, gw_bin, sb_a, listen, extra), 0);
	char url[256];
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	nng_socket s;
	CHECK_INT(hs_dial(&s, url), 0);

	test_tenants(s);
	test_key_quota(s);
	test_in_flight(s, url);
	fprintf(stderr, "  tenants: accounts, tokens, cache entries and keys kept apart; quotas: "
	                "a full share refuses only its owner\n");

	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* a fleet: two gateways sharing Redis for the lookup cache and the idempotency store */
	hs_proc rd, g2, g3;
	int port = 0;
	if (hs_redis_start(&rd, &port) != 0) {
		fprintf(stderr, "  redis-server did not start (.ci/deps installs it)\n");
		CHECK(0);
	} else {
		char rurl[128], curl_[128], u2[256], u3[256];
		snprintf(rurl, sizeof(rurl), "idempotency.redis_url=redis://127.0.0.1:%d", port);
		snprintf(curl_, sizeof(curl_), "cache.redis_url=redis://127.0.0.1:%d", port);
		size_t n = 0;
		while (extra[n] != NULL)
			n++;
		const char *fleet[] = {"--set", "idempotency.store=redis", "--set", rurl,
		                       "--set", "cache.backend=redis",     "--set", curl_};
		for (size_t i = 0; i < 8; i++)
			extra[n + i] = fleet[i];
		CHECK_INT(hs_gateway_start(&g2, gw_bin, sb_a, listen, extra), 0);
		CHECK_INT(hs_gateway_start(&g3, gw_bin, sb_a, listen, extra), 0);
		CHECK_INT(hs_gateway_url(&g2, 0, u2, sizeof(u2)), 0);
		CHECK_INT(hs_gateway_url(&g3, 0, u3, sizeof(u3)), 0);
		nng_socket s2, s3;
		CHECK_INT(hs_dial(&s2, u2), 0);
		CHECK_INT(hs_dial(&s3, u3), 0);
		test_fleet(s2, s3);
		nng_close(s2);
		nng_close(s3);
		CHECK_INT(hs_proc_stop(&g2, SIGTERM), 0);
		CHECK_INT(hs_proc_stop(&g3, SIGTERM), 0);
		CHECK_INT(hs_proc_stop(&rd, SIGTERM), 0);
	}
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	CHECK_INT(hs_proc_stop(&sa, SIGTERM), 0);
	curl_global_cleanup();
	TEST_MAIN_END();
}
