/*
 * test_pipeline.c - the call pipeline (src/gateway/gateway.c) through the fakes of gwfake.h:
 * Health, a backend that refuses, and the drain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "gwfake.h"
#include "testutil.h"

static void
test_health(void)
{
	Shipgate__V1__HealthRequest h = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	int before = sent_count();
	start(0, "Health", &h.base, 1000, NULL);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 0);
	CHECK_STR(r ? r->request_id : NULL, "gw-test");
	Shipgate__V1__HealthResponse *hr =
	        (void *)payload(r, &shipgate__v1__health_response__descriptor);
	CHECK(hr != NULL && hr->n_providers == 4 && hr->in_flight == 1 &&
	      hr->status == SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING);
	/* the store the clients need to know of before they fail a CreateOrder over */
	CHECK(hr != NULL && strcmp(hr->idempotency_store, "memory") == 0 &&
	      strcmp(hr->idempotency_scope, "node") == 0 && hr->fleet_id[0] == '\0');
	if (hr)
		protobuf_c_message_free_unpacked(&hr->base, NULL);
	CHECK_INT(sent_count(), before); /* never upstream */
	slot_end(0);
}

/* A backend that refuses at once: the call is answered, and nothing stays in flight. */
static void
test_refused_submit(void)
{
	pthread_mutex_lock(&up.mtx);
	up.refuse = SG_ESHUTDOWN;
	pthread_mutex_unlock(&up.mtx);
	track(0, BOSCOD, "BOS-REFUSED", false, 5000);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 14);
	CHECK_STR(reason(r), "SHUTTING_DOWN");
	slot_end(0);
	pthread_mutex_lock(&up.mtx);
	up.refuse = SG_OK;
	pthread_mutex_unlock(&up.mtx);
	CHECK(sg_gateway_wait_upstream(gw, sg_now_ms()));
}

/* Draining: Health says NOT_SERVING, other calls are refused; the idle wait sees every call
 * ended. */
static void
test_drain(void)
{
	CHECK(sg_gateway_wait_upstream(gw, sg_now_ms() + 1000));
	CHECK(sg_gateway_wait_idle(gw, sg_now_ms() + 1000));
	sg_gateway_drain(gw);
	track(0, BOSCOD, "BOS123", false, 5000);
	Shipgate__V1__RpcReply *r = wait_reply(0);
	CHECK_INT(code(r), 14);
	CHECK_STR(reason(r), "SHUTTING_DOWN");
	slot_end(0);
	Shipgate__V1__HealthRequest h = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	start(1, "Health", &h.base, 1000, NULL);
	r = wait_reply(1);
	Shipgate__V1__HealthResponse *hr =
	        (void *)payload(r, &shipgate__v1__health_response__descriptor);
	CHECK(hr != NULL &&
	      hr->status ==
	              SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING);
	if (hr)
		protobuf_c_message_free_unpacked(&hr->base, NULL);
	slot_end(1);
	CHECK(sg_gateway_wait_idle(gw, sg_now_ms()));
}

/* One log line per call at verbose 2, whatever answered it: its own outcome, a cache hit, a
 * replay; an internal error is logged at verbose 1 too. */
static void
test_log(void)
{
	char path[] = "/tmp/shipgate-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	CHECK(fd >= 0 && saved >= 0);
	if (fd < 0 || saved < 0)
		return;
	fflush(stderr);
	dup2(fd, 2);
	cfg.verbose = 2;
	int n0 = sent_count();
	track(0, BOSCOD, "BOS-LOG", false, 5000);
	complete(n0, SG_OK, 200, doc_boscod);
	CHECK_INT(code(wait_reply(0)), 0);
	slot_end(0);
	track(0, BOSCOD, "BOS-LOG", false, 5000); /* a hit */
	CHECK_INT(code(wait_reply(0)), 0);
	slot_end(0);
	create(1, "log-key", "00", 5000);
	complete(n0 + 1, SG_OK, 200, doc_create);
	CHECK_INT(code(wait_reply(1)), 0);
	slot_end(1);
	create(1, "log-key", "00", 5000); /* a replay */
	CHECK_INT(code(wait_reply(1)), 0);
	slot_end(1);
	cfg.verbose = 1; /* only internal errors now: nothing of these */
	track(0, BOSCOD, "BOS-LOG", false, 5000);
	CHECK_INT(code(wait_reply(0)), 0);
	slot_end(0);
	cfg.verbose = 0;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char buf[4096];
	ssize_t k = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	buf[k > 0 ? k : 0] = '\0';
	int lines = 0;
	for (char *p = buf; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	CHECK_INT(lines, 4);
	CHECK(strstr(buf, "shipgated: Track  gw-test") != NULL);
	CHECK(strstr(buf, "(cache hit)") != NULL);
	CHECK(strstr(buf, "shipgated: CreateOrder  gw-test") != NULL);
	CHECK(strstr(buf, "(replayed)") != NULL);
}

int
main(void)
{
	if (!gwfake_start())
		TEST_MAIN_END();
	test_health();
	test_refused_submit();
	test_log();
	test_drain();
	gwfake_stop();
	TEST_MAIN_END();
}
