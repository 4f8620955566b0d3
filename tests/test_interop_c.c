/*
 * test_interop_c.c - the shared interop case list (tests/interop/cases.json), run with the C
 * client library against a live gateway and sandbox this test starts and stops.
 *
 * usage: test_interop_c SHIPGATED SANDBOX CASES_JSON
 *
 * The Python, Go and Node clients run the same list; tests/interop/README.md says how a case
 * reads.
 */
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <shipgate/client.h>

#include "harness.h"
#include "pbjson.h"
#include "testutil.h"

static char sandbox[256];
static char gateway_url[256];
static pid_t gateway_pid;

/* Waits (at most 5 s) until pid is stopped: its /proc state reads 'T'. */
static bool
wait_stopped(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 500; i++) {
		char buf[512];
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		const char *rp = strrchr(buf, ')'); /* the state follows the command's ")" */
		if (rp != NULL && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't'))
			return true;
		hs_sleep_ms(10);
	}
	return false;
}

/* ------------------------------------------------------------------ JSON paths */

/* The value at a dotted path of proto field names ("tracking.events.0.status"); "x.#" is the
 * length of array x. Returns a new reference or NULL when absent. */
static json_t *
lookup(json_t *j, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ".", &save); tok != NULL; tok = strtok_r(NULL, ".", &save)) {
		if (strcmp(tok, "#") == 0)
			return json_is_array(j) ? json_integer((json_int_t)json_array_size(j))
			                        : NULL;
		if (json_is_array(j))
			j = json_array_get(j, (size_t)strtoul(tok, NULL, 10));
		else
			j = json_object_get(j, tok);
		if (j == NULL)
			return NULL;
	}
	return json_incref(j);
}

/* Compares an actual value with an expected one: null means absent; numbers compare by value
 * (int64 arrive as strings in proto3 JSON). */
static bool
same(json_t *got, json_t *want)
{
	if (json_is_null(want))
		return got == NULL || json_is_null(got);
	if (got == NULL)
		return false;
	if (json_is_integer(want)) { /* exact: epoch seconds must not be off by one */
		long long w = (long long)json_integer_value(want), g;
		if (json_is_string(got))
			g = strtoll(json_string_value(got), NULL, 10);
		else if (json_is_integer(got))
			g = (long long)json_integer_value(got);
		else if (json_is_real(got) && json_real_value(got) == (double)w)
			return true;
		else
			return false;
		return g == w;
	}
	if (json_is_number(want)) {
		double w = json_number_value(want), g;
		if (json_is_string(got))
			g = strtod(json_string_value(got), NULL);
		else if (json_is_number(got))
			g = json_number_value(got);
		else
			return false;
		return g == w || fabs(g - w) <= 1e-12 * fabs(w);
	}
	return json_equal(got, want);
}

/* ------------------------------------------------------------------ sandbox */

static int
sandbox_count(const char *prefix)
{
	char url[300], *body = NULL;
	snprintf(url, sizeof(url), "%s/__sandbox/requests", sandbox);
	if (hs_http("GET", url, &body) != 200) {
		free(body);
		return -1;
	}
	json_t *rec = json_loads(body, 0, NULL);
	free(body);
	int n = 0;
	size_t i;
	json_t *e;
	json_array_foreach(rec, i, e)
	{
		const char *p = json_string_value(json_object_get(e, "path"));
		if (p != NULL && strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	}
	json_decref(rec);
	return n;
}

/* ------------------------------------------------------------------ one case */

static void
run_case(shipgate_client *c, json_t *cs)
{
	const char *name = json_string_value(json_object_get(cs, "name"));
	const char *method = json_string_value(json_object_get(cs, "method"));
	const char *raw = json_string_value(json_object_get(cs, "raw_method"));
	json_t *expect = json_object_get(cs, "expect");
	const ProtobufCMethodDescriptor *m = shipgate_method_lookup(method, NULL, 0);
	int failed_before = tu_failed;

	CHECK(m != NULL);
	if (m == NULL)
		return;
	if (json_is_true(json_object_get(cs, "sandbox_reset"))) {
		char url[300];
		snprintf(url, sizeof(url), "%s/__sandbox/reset", sandbox);
		CHECK_INT(hs_http("POST", url, NULL), 200);
	}
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error perr;
	if (sgc_pbjson_to_message(json_object_get(cs, "request"), m->input, NULL, 0, &req, &perr) !=
	    0) {
		fprintf(stderr, "case \"%s\": bad request: %s %s\n", name, perr.path, perr.text);
		CHECK(0);
		return;
	}
	shipgate_call_opts opts = {0};
	json_t *d = json_object_get(cs, "deadline_ms");
	opts.deadline_ms = d ? json_integer_value(d) : 5000;
	opts.idempotency_key = json_string_value(json_object_get(cs, "idempotency_key"));
	/* client options of the case: a client of its own */
	shipgate_client *own = NULL;
	json_t *ma = json_object_get(cs, "max_attempts"),
	       *at = json_object_get(cs, "attempt_timeout_ms");
	if (ma != NULL || at != NULL) {
		const char *urls[] = {gateway_url};
		shipgate_client_opts o = {.urls = urls, .n_urls = 1};
		o.retry.max_attempts = (int)json_integer_value(ma);
		o.retry.attempt_timeout_ms = (int)json_integer_value(at);
		CHECK_INT(shipgate_client_new(&own, &o), 0);
		for (int i = 0; own != NULL && i < 300 && shipgate_client_connected(own) < 1; i++)
			hs_sleep_ms(10);
		if (own != NULL)
			c = own;
	}
	bool paused = json_is_true(json_object_get(cs, "gateway_paused"));
	if (paused) {
		CHECK_INT(kill(gateway_pid, SIGSTOP), 0);
		CHECK(wait_stopped(gateway_pid)); /* kill() returns before the stop takes */
	}
	ProtobufCMessage *reply = NULL;
	shipgate_status st = SHIPGATE_STATUS_INIT;
	int code = shipgate_call(c, raw ? raw : method, req, m->output, &opts, &reply, &st);
	if (paused)
		CHECK_INT(kill(gateway_pid, SIGCONT), 0);
	shipgate_client_free(own);
	protobuf_c_message_free_unpacked(req, NULL);

	const char *want_code = json_string_value(json_object_get(expect, "code"));
	CHECK_STR(shipgate_code_name(code), want_code);
	const char *reason = json_string_value(json_object_get(expect, "reason"));
	if (reason != NULL)
		CHECK_STR(st.reason, reason);
	json_t *v;
	if ((v = json_object_get(expect, "retryable")) != NULL)
		CHECK_INT(st.retryable, json_is_true(v));
	if ((v = json_object_get(expect, "upstream_http_status")) != NULL)
		CHECK_INT(st.upstream_http_status, json_integer_value(v));
	if ((v = json_object_get(expect, "retry_after_ms")) != NULL)
		CHECK_INT(st.retry_after_ms, json_integer_value(v));
	if ((v = json_object_get(expect, "provider")) != NULL)
		CHECK_STR(st.provider, json_string_value(v));
	if ((v = json_object_get(expect, "attempts")) != NULL)
		CHECK_INT(st.attempts, json_integer_value(v));
	if ((v = json_object_get(expect, "local")) != NULL)
		CHECK_INT(st.local, json_is_true(v));
	if ((v = json_object_get(expect, "violations")) != NULL) {
		size_t i;
		json_t *f;
		json_array_foreach(v, i, f)
		{
			bool found = false;
			for (size_t k = 0; k < st.n_violations; k++)
				found |= strcmp(st.violations[k].field, json_string_value(f)) == 0;
			CHECK(found);
		}
	}
	json_t *fields = json_object_get(expect, "fields");
	if (fields != NULL) {
		json_t *got = reply ? sgc_pbjson_from_message(reply,
		                                              SGC_PBJSON_ORIG_NAMES |
		                                                      SGC_PBJSON_EMIT_DEFAULTS,
		                                              &perr)
		                    : NULL;
		const char *path;
		json_t *want;
		json_object_foreach(fields, path, want)
		{
			json_t *g = lookup(got, path);
			if (!same(g, want)) {
				char *gs = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
				char *ws = json_dumps(want, JSON_ENCODE_ANY);
				fprintf(stderr, "case \"%s\": %s is %s, want %s\n", name, path,
				        gs ? gs : "absent", ws);
				free(gs);
				free(ws);
				CHECK(0);
			} else {
				CHECK(1);
			}
			json_decref(g);
		}
		json_decref(got);
	}
	json_t *sr = json_object_get(expect, "sandbox_requests");
	if (sr != NULL)
		CHECK_INT(sandbox_count(json_string_value(json_object_get(sr, "path"))),
		          json_integer_value(json_object_get(sr, "count")));
	if (tu_failed != failed_before)
		fprintf(stderr, "case \"%s\" failed: got %s %s %s\n", name,
		        shipgate_code_name(code), st.reason ? st.reason : "",
		        st.message ? st.message : "");
	if (reply != NULL)
		protobuf_c_message_free_unpacked(reply, NULL);
	shipgate_status_fini(&st);
}

/* ------------------------------------------------------------------ kill -9 mid-CreateOrder */

/* The document's CreateOrder (from the case list) with form id SLOW-1500: the sandbox holds
 * the POST 1.5 s. Set by main. */
static char *slow_create_json;

/* Two gateways on the one sandbox; their URLs into u1 and u2. Returns 0 or -1. */
static int
two_gateways_with(const char *bin, const char *const *extra, hs_proc *g1, hs_proc *g2, char *u1,
                  char *u2, size_t n)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};

	if (hs_gateway_start(g1, bin, sandbox, listen, extra) != 0)
		return -1;
	if (hs_gateway_start(g2, bin, sandbox, listen, extra) != 0) {
		hs_proc_stop(g1, SIGTERM);
		return -1;
	}
	if (hs_gateway_url(g1, 0, u1, n) != 0 || hs_gateway_url(g2, 0, u2, n) != 0) {
		hs_proc_stop(g1, SIGTERM);
		hs_proc_stop(g2, SIGTERM);
		return -1;
	}
	return 0;
}

static int
two_gateways(const char *bin, hs_proc *g1, hs_proc *g2, char *u1, char *u2, size_t n)
{
	return two_gateways_with(bin, NULL, g1, g2, u1, u2, n);
}

/* Waits until the sandbox has count POSTs under /bosonline/order/ (5 s at most). */
static int
wait_posts(int count)
{
	int n = -1;
	for (int i = 0; i < 500 && (n = sandbox_count("/bosonline/order/")) < count; i++)
		hs_sleep_ms(10);
	return n;
}

/* The slow CreateOrder (slow_create_json) as a message to send, or NULL (a CHECK failed). */
static ProtobufCMessage *
slow_create_request(void)
{
	ProtobufCMessage *req = NULL;
	sgc_pbjson_error perr;
	json_t *j = json_loads(slow_create_json, 0, NULL);

	CHECK(j != NULL);
	CHECK_INT(sgc_pbjson_to_message(j, &shipgate__v1__create_order_request__descriptor, NULL, 0,
	                                &req, &perr),
	          0);
	json_decref(j);
	return req;
}

typedef struct kill9_rec {
	shipgate_status st; /* the outcome, copied */
	int done;           /* the callback ran */
} kill9_rec;

static void
kill9_cb(void *arg, const shipgate_status *st, ProtobufCMessage *reply)
{
	kill9_rec *r = arg;
	shipgate_status_copy(&r->st, st);
	if (reply != NULL)
		protobuf_c_message_free_unpacked(reply, NULL);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
}

/*
 * The library: a client with both gateways sends the CreateOrder, the first gateway takes it
 * and POSTs (held by the sandbox), and is killed. The call ends UNKNOWN / OUTCOME_UNKNOWN
 * after one attempt, and the sandbox sees one POST, also once the held one is answered.
 */
static void
kill9_library(const char *bin)
{
	hs_proc g1, g2;
	char u1[256], u2[256];
	kill9_rec rec = {SHIPGATE_STATUS_INIT, 0};
	ProtobufCMessage *req = slow_create_request();
	if (req == NULL || two_gateways(bin, &g1, &g2, u1, u2, sizeof(u1)) != 0) {
		CHECK(0);
		protobuf_c_message_free_unpacked(req, NULL);
		return;
	}
	const char *urls[] = {u1, u2};
	shipgate_client_opts o = {.urls = urls, .n_urls = 2};
	shipgate_client *c = NULL;
	CHECK_INT(shipgate_client_new(&c, &o), 0);
	for (int i = 0; i < 300 && shipgate_client_connected(c) < 2; i++)
		hs_sleep_ms(10);
	CHECK_INT(shipgate_client_connected(c), 2);

	char url[300];
	snprintf(url, sizeof(url), "%s/__sandbox/reset", sandbox);
	CHECK_INT(hs_http("POST", url, NULL), 200);
	shipgate_call_opts co = {.deadline_ms = 5000, .idempotency_key = "interop-kill9-lib"};
	CHECK_INT(shipgate_call_async(c, SHIPGATE_METHOD_CREATE_ORDER, req,
	                              &shipgate__v1__create_order_response__descriptor, &co,
	                              kill9_cb, &rec),
	          0);
	CHECK_INT(wait_posts(1), 1); /* the first gateway holds the POST now */
	CHECK_INT(WTERMSIG(hs_proc_stop(&g1, SIGKILL)), SIGKILL);
	for (int i = 0; i < 500 && !__atomic_load_n(&rec.done, __ATOMIC_ACQUIRE); i++)
		hs_sleep_ms(10);
	CHECK(rec.done);
	CHECK_STR(shipgate_code_name(rec.st.code), "UNKNOWN");
	CHECK_STR(rec.st.reason, "OUTCOME_UNKNOWN");
	CHECK(rec.st.local && !rec.st.retryable);
	CHECK_INT(rec.st.attempts, 1);
	hs_sleep_ms(1700); /* past the sandbox's hold: a retry elsewhere would have POSTed by now */
	CHECK_INT(sandbox_count("/bosonline/order/"), 1);
	if (rec.st.reason == NULL || strcmp(rec.st.reason, "OUTCOME_UNKNOWN") != 0)
		fprintf(stderr, "kill -9 (library): got %s %s %s\n",
		        shipgate_code_name(rec.st.code), rec.st.reason ? rec.st.reason : "",
		        rec.st.message ? rec.st.message : "");
	shipgate_status_fini(&rec.st);
	shipgate_client_free(c);
	protobuf_c_message_free_unpacked(req, NULL);
	CHECK_INT(hs_proc_stop(&g2, SIGTERM), 0);
}

typedef struct replay_rec {
	shipgate_status st; /* the outcome, copied */
	bool replayed;      /* the CreateOrderResponse said so */
	int done;           /* the callback ran */
} replay_rec;

static void
replay_cb(void *arg, const shipgate_status *st, ProtobufCMessage *reply)
{
	replay_rec *r = arg;
	shipgate_status_copy(&r->st, st);
	if (reply != NULL) {
		r->replayed = ((Shipgate__V1__CreateOrderResponse *)reply)->replayed;
		protobuf_c_message_free_unpacked(reply, NULL);
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
}

/*
 * A fleet: two gateways on one redis-server, and the library given both addresses. Each
 * reports scope "fleet" with the same id, so a CreateOrder whose first gateway goes silent or
 * dies may move to the other, which shares the key:
 * - the first is killed while it holds the POST: the call ends UNKNOWN / OUTCOME_UNKNOWN (the
 *   second waits for the dead owner's key until the budget is spent), after 2 attempts;
 * - the client is cut off from the first (a proxy drops the connection) while the first
 *   holds the POST: the second waits for the first one's outcome and replays it, so the
 *   caller gets the order, replayed;
 * one POST each time.
 */
static void
fleet_library(const char *bin)
{
	hs_proc rd, g1, g2;
	int port = 0;
	char u1[256], u2[256], rurl[96], url[300];
	kill9_rec rec = {SHIPGATE_STATUS_INIT, 0};
	replay_rec rr = {SHIPGATE_STATUS_INIT, false, 0};
	ProtobufCMessage *req = slow_create_request();
	if (req == NULL || hs_redis_start(&rd, &port) != 0) {
		CHECK(0);
		protobuf_c_message_free_unpacked(req, NULL);
		return;
	}
	snprintf(rurl, sizeof(rurl), "idempotency.redis_url=redis://127.0.0.1:%d", port);
	const char *const extra[] = {"--set", "idempotency.store=redis", "--set", rurl, NULL};
	if (two_gateways_with(bin, extra, &g1, &g2, u1, u2, sizeof(u1)) != 0) {
		CHECK(0);
		hs_proc_stop(&rd, SIGTERM);
		protobuf_c_message_free_unpacked(req, NULL);
		return;
	}

	/* killed while it holds the POST */
	const char *urls[] = {u1, u2};
	shipgate_client_opts o = {.urls = urls, .n_urls = 2};
	shipgate_client *c = NULL;
	CHECK_INT(shipgate_client_new(&c, &o), 0);
	for (int i = 0; i < 300 && shipgate_client_connected(c) < 2; i++)
		hs_sleep_ms(10);
	CHECK_INT(shipgate_client_connected(c), 2);
	snprintf(url, sizeof(url), "%s/__sandbox/reset", sandbox);
	CHECK_INT(hs_http("POST", url, NULL), 200);
	shipgate_call_opts co = {.deadline_ms = 4000, .idempotency_key = "interop-fleet-kill"};
	CHECK_INT(shipgate_call_async(c, SHIPGATE_METHOD_CREATE_ORDER, req,
	                              &shipgate__v1__create_order_response__descriptor, &co,
	                              kill9_cb, &rec),
	          0);
	CHECK_INT(wait_posts(1), 1); /* the first gateway (the client's first pick) has it */
	CHECK_INT(WTERMSIG(hs_proc_stop(&g1, SIGKILL)), SIGKILL);
	for (int i = 0; i < 600 && !__atomic_load_n(&rec.done, __ATOMIC_ACQUIRE); i++)
		hs_sleep_ms(10);
	CHECK(rec.done);
	CHECK_STR(shipgate_code_name(rec.st.code), "UNKNOWN");
	CHECK_STR(rec.st.reason, "OUTCOME_UNKNOWN");
	CHECK_INT(rec.st.attempts, 2); /* it did move to the second gateway */
	if (rec.st.reason == NULL || strcmp(rec.st.reason, "OUTCOME_UNKNOWN") != 0 ||
	    rec.st.attempts != 2)
		fprintf(stderr, "fleet kill -9: got %s %s %s (%d attempts)\n",
		        shipgate_code_name(rec.st.code), rec.st.reason ? rec.st.reason : "",
		        rec.st.message ? rec.st.message : "", rec.st.attempts);
	hs_sleep_ms(300); /* past the sandbox's hold */
	CHECK_INT(sandbox_count("/bosonline/order/"), 1);
	shipgate_status_fini(&rec.st);
	shipgate_client_free(c);

	/* cut off: the connection to the first gateway drops while it holds the POST (a proxy
	 * between them), and the first gateway lives on; the second waits for its outcome and
	 * replays it */
	const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	hs_proc px;
	int g1_port = 0, px_port = 0;
	char pxu[64];
	if (hs_gateway_start(&g1, bin, sandbox, listen, extra) != 0 ||
	    hs_gateway_url(&g1, 0, u1, sizeof(u1)) != 0 || strrchr(u1, ':') == NULL ||
	    (g1_port = atoi(strrchr(u1, ':') + 1)) <= 0 ||
	    hs_proxy_start(&px, g1_port, &px_port) != 0) {
		CHECK(0);
	} else {
		snprintf(pxu, sizeof(pxu), "tcp://127.0.0.1:%d", px_port);
		const char *purls[] = {pxu, u2};
		o.urls = purls;
		CHECK_INT(shipgate_client_new(&c, &o), 0);
		for (int i = 0; i < 300 && shipgate_client_connected(c) < 2; i++)
			hs_sleep_ms(10);
		CHECK_INT(shipgate_client_connected(c), 2);
		CHECK_INT(hs_http("POST", url, NULL), 200);
		co.deadline_ms = 5000;
		co.idempotency_key = "interop-fleet-cut";
		CHECK_INT(shipgate_call_async(c, SHIPGATE_METHOD_CREATE_ORDER, req,
		                              &shipgate__v1__create_order_response__descriptor, &co,
		                              replay_cb, &rr),
		          0);
		CHECK_INT(wait_posts(1), 1); /* the first gateway, through the proxy, has it */
		CHECK_INT(hs_proxy_cut(&px), 0);
		for (int i = 0; i < 600 && !__atomic_load_n(&rr.done, __ATOMIC_ACQUIRE); i++)
			hs_sleep_ms(10);
		CHECK(rr.done);
		CHECK_STR(shipgate_code_name(rr.st.code), "OK");
		CHECK(rr.replayed);
		CHECK_INT(rr.st.attempts, 2);
		if (rr.st.code != 0)
			fprintf(stderr, "fleet cut: got %s %s %s (%d attempts)\n",
			        shipgate_code_name(rr.st.code), rr.st.reason ? rr.st.reason : "",
			        rr.st.message ? rr.st.message : "", rr.st.attempts);
		CHECK_INT(sandbox_count("/bosonline/order/"), 1);
		fprintf(stderr,
		        "  fleet: kill -9 -> OUTCOME_UNKNOWN; cut off -> %s, replayed %d, %d "
		        "attempts; one POST each\n",
		        shipgate_code_name(rr.st.code), rr.replayed, rr.st.attempts);
		shipgate_status_fini(&rr.st);
		shipgate_client_free(c);
		hs_proc_stop(&px, SIGTERM);
		CHECK_INT(hs_proc_stop(&g1, SIGTERM), 0);
	}
	CHECK_INT(hs_proc_stop(&g2, SIGTERM), 0);
	hs_proc_stop(&rd, SIGTERM);
	protobuf_c_message_free_unpacked(req, NULL);
}

/*
 * The same with the shipped CLI given both addresses (the scenario as reported): exit status
 * 12 (UNKNOWN), one POST.
 */
static void
kill9_cli(const char *bin, const char *cli)
{
	hs_proc g1, g2;
	char u1[256], u2[256], url[300];
	pid_t pid;
	int status = 0;

	if (two_gateways(bin, &g1, &g2, u1, u2, sizeof(u1)) != 0) {
		CHECK(0);
		return;
	}
	snprintf(url, sizeof(url), "%s/__sandbox/reset", sandbox);
	CHECK_INT(hs_http("POST", url, NULL), 200);
	hs_sleep_ms(200); /* let the gateways settle; the CLI connects to both at start */
	if ((pid = fork()) == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execl(cli, cli, "-a", u1, "-a", u2, "-d", "5000", "-k", "interop-kill9-cli", "call",
		      "CreateOrder", slow_create_json, (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0);
	CHECK_INT(wait_posts(1), 1);
	/* the CLI's first attempt goes to the first gateway unless only the second was connected
	 * yet: kill the first, and when the CLI still waits after that, the second too */
	CHECK_INT(WTERMSIG(hs_proc_stop(&g1, SIGKILL)), SIGKILL);
	hs_sleep_ms(300);
	pid_t r = waitpid(pid, &status, WNOHANG);
	if (r == 0) {
		CHECK_INT(WTERMSIG(hs_proc_stop(&g2, SIGKILL)), SIGKILL);
		g2.pid = 0;
		/* bounded: a CLI that hangs is a failure to see, not a test that never ends */
		for (int i = 0; i < 1500 && (r = waitpid(pid, &status, WNOHANG)) == 0; i++)
			hs_sleep_ms(10);
		if (r == 0) {
			fprintf(stderr, "kill -9 (CLI): the CLI did not exit within 15 s\n");
			kill(pid, SIGKILL);
			r = waitpid(pid, &status, 0);
			CHECK(0);
		}
	}
	CHECK_INT(r, pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 12); /* 10 + UNKNOWN */
	hs_sleep_ms(1700);
	CHECK_INT(sandbox_count("/bosonline/order/"), 1);
	if (g2.pid != 0)
		CHECK_INT(hs_proc_stop(&g2, SIGTERM), 0);
}

int
main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s SHIPGATED SANDBOX CASES_JSON\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	json_error_t jerr;
	json_t *doc = json_load_file(argv[3], JSON_REJECT_DUPLICATES, &jerr);
	json_t *cases = json_object_get(doc, "cases");
	CHECK(json_array_size(cases) > 0);

	hs_proc sb, gw;
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	char url[256];
	if (hs_sandbox_start(&sb, argv[2], sandbox, sizeof(sandbox)) != 0 ||
	    hs_gateway_start(&gw, argv[1], sandbox, listen, NULL) != 0 ||
	    hs_gateway_url(&gw, 0, url, sizeof(url)) != 0) {
		CHECK(0);
		hs_proc_stop(&sb, SIGTERM);
		TEST_MAIN_END();
	}
	snprintf(gateway_url, sizeof(gateway_url), "%s", url);
	gateway_pid = gw.pid;
	const char *urls[] = {url};
	shipgate_client_opts o = {.urls = urls, .n_urls = 1};
	shipgate_client *c = NULL;
	CHECK_INT(shipgate_client_new(&c, &o), 0);
	size_t i;
	json_t *cs;
	json_array_foreach(cases, i, cs) run_case(c, cs);
	fprintf(stderr, "  %zu interop cases run\n", json_array_size(cases));
	shipgate_client_free(c);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* kill -9 of the gateway that holds a CreateOrder, with the library and with the CLI */
	json_array_foreach(cases, i, cs)
	{
		const char *n = json_string_value(json_object_get(cs, "name"));
		if (n != NULL && strcmp(n, "create order: the document's example") == 0) {
			json_t *r = json_deep_copy(json_object_get(cs, "request"));
			json_object_set_new(r, "formId", json_string("SLOW-1500"));
			slow_create_json = json_dumps(r, JSON_COMPACT);
			json_decref(r);
		}
	}
	CHECK(slow_create_json != NULL);
	if (slow_create_json != NULL) {
		kill9_library(argv[1]);
		fleet_library(argv[1]);
	}
	char dir[1024], cli[1100];
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(cli, sizeof(cli), "%s/shipgate", dirname(dir)); /* next to shipgated */
	if (slow_create_json != NULL && access(cli, X_OK) == 0)
		kill9_cli(argv[1], cli);
	else
		fprintf(stderr, "  no CLI at %s: its kill -9 case not run\n", cli);
	free(slow_create_json);

	json_decref(doc);
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	curl_global_cleanup();
	TEST_MAIN_END();
}
