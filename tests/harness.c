/*
 * harness.c - processes, raw nng calls and HTTP for the integration tests.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <nng/protocol/reqrep0/req.h>

extern char **environ;

/* ------------------------------------------------------------------ processes */

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
hs_test_start(int argc, char **argv, int need, const char *usage)
{
	if (argc <= need) {
		fprintf(stderr, "usage: %s %s\n", argv[0], usage);
		exit(2);
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t
hs_now_ms(void)
{
	return now_ms();
}

void
hs_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int
hs_proc_start(hs_proc *p, char *const argv[], const char *ready_prefix)
{
	int fds[2];
	posix_spawn_file_actions_t fa;

	memset(p, 0, sizeof(*p));
	p->out_fd = -1;
	if (pipe(fds) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	int rv = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (rv != 0) {
		close(fds[0]);
		p->pid = 0;
		fprintf(stderr, "harness: spawn %s: %s\n", argv[0], strerror(rv));
		return -1;
	}
	p->out_fd = fds[0];
	/* Read the first line, bounded by 10 s. */
	size_t n = 0;
	int64_t until = now_ms() + 10000;
	while (n < sizeof(p->line) - 1) {
		struct pollfd pfd = {p->out_fd, POLLIN, 0};
		int64_t left = until - now_ms();
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		ssize_t r = read(p->out_fd, p->line + n, 1);
		if (r <= 0)
			break;
		if (p->line[n] == '\n') {
			p->line[n] = '\0';
			if (strncmp(p->line, ready_prefix, strlen(ready_prefix)) == 0)
				return 0;
			n = 0; /* not the readiness line: keep reading */
			continue;
		}
		n++;
	}
	p->line[n] = '\0';
	fprintf(stderr, "harness: %s did not become ready (got \"%s\")\n", argv[0], p->line);
	hs_proc_stop(p, SIGKILL);
	return -1;
}

int
hs_proc_stop(hs_proc *p, int sig)
{
	int status = -1;
	if (p->pid <= 0)
		return -1;
	kill(p->pid, sig);
	int64_t until = now_ms() + 10000;
	for (;;) {
		pid_t r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid)
			break;
		if (r < 0) {
			status = -1;
			break;
		}
		if (now_ms() > until) {
			fprintf(stderr, "harness: pid %d ignored signal %d; killing\n", (int)p->pid,
			        sig);
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			status = -1;
			break;
		}
		hs_sleep_ms(10);
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->out_fd = -1;
	p->pid = 0;
	if (p->state_dir[0] != '\0') {
		static const char *const files[] = {"idempotency.db", "idempotency.db-wal",
		                                    "idempotency.db-shm"};
		char f[256];
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(f, sizeof(f), "%s/%s", p->state_dir, files[i]);
			unlink(f);
		}
		rmdir(p->state_dir);
		p->state_dir[0] = '\0';
	}
	return status;
}

int
hs_sandbox_start(hs_proc *p, const char *bin, char *base, size_t n)
{
	char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", NULL};
	if (hs_proc_start(p, argv, "listening on ") != 0)
		return -1;
	snprintf(base, n, "%s", p->line + strlen("listening on "));
	return 0;
}

int
hs_sandbox_start_tls(hs_proc *p, const char *bin, const char *cert, const char *key, char *base,
                     size_t n)
{
	char *argv[] = {(char *)bin,  "--listen",  "127.0.0.1:0", "--tls-cert",
	                (char *)cert, "--tls-key", (char *)key,   NULL};
	if (hs_proc_start(p, argv, "listening on ") != 0)
		return -1;
	snprintf(base, n, "%s", p->line + strlen("listening on "));
	return 0;
}

int
hs_gateway_start(hs_proc *p, const char *bin, const char *sandbox_base, const char *const *listen,
                 const char *const *extra)
{
	static const char *const names[] = {"boscod", "bosonline", "biteship", "fuuffy"};
	char *argv[64];
	char sets[4][300];
	int n = 0;

	argv[n++] = (char *)bin;
	argv[n++] = "--quiet";
	for (int i = 0; listen != NULL && listen[i] != NULL && n < 40; i++) {
		argv[n++] = "--listen";
		argv[n++] = (char *)listen[i];
	}
	for (int i = 0; sandbox_base != NULL && i < 4; i++) {
		snprintf(sets[i], sizeof(sets[i]), "%s.base_url=%s/%s", names[i], sandbox_base,
		         names[i]);
		argv[n++] = "--set";
		argv[n++] = sets[i];
	}
	/* a fresh state directory (the SQLite idempotency store), before extra so it can win */
	char state[160];
	snprintf(p->state_dir, sizeof(p->state_dir), "/tmp/shipgate-hs-XXXXXX");
	if (mkdtemp(p->state_dir) == NULL)
		p->state_dir[0] = '\0';
	snprintf(state, sizeof(state), "state_dir=%s", p->state_dir);
	if (p->state_dir[0] != '\0') {
		argv[n++] = "--set";
		argv[n++] = state;
	}
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	char dir[sizeof(p->state_dir)];
	memcpy(dir, p->state_dir, sizeof(dir));
	int rv = hs_proc_start(p, argv, "shipgated ready on ");
	memcpy(p->state_dir, dir, sizeof(dir)); /* hs_proc_start resets p */
	return rv;
}

/* ---- the proxy (a child process; SIGUSR1 cuts, SIGTERM stops) */

#define HS_PROXY_MAX 32

static volatile sig_atomic_t proxy_cut_asked, proxy_stop_asked;

static void
proxy_on_signal(int sig)
{
	if (sig == SIGUSR1)
		proxy_cut_asked = 1;
	else
		proxy_stop_asked = 1;
}

/* Forwards from fd a to fd b what is readable; -1 when a is done. */
static int
proxy_pump(int a, int b)
{
	char buf[16384];
	ssize_t n = read(a, buf, sizeof(buf));

	if (n <= 0)
		return -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(b, buf + off, (size_t)(n - off));
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

static void
proxy_loop(int lfd, int target, int report)
{
	int pairs[HS_PROXY_MAX][2];
	size_t n = 0;
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target)};

	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (!proxy_stop_asked) {
		struct pollfd pf[1 + 2 * HS_PROXY_MAX];
		if (proxy_cut_asked) {
			for (size_t i = 0; i < n; i++) {
				/* a reset, not a FIN: both sides see the connection break at once
				 */
				struct linger lg = {1, 0};
				setsockopt(pairs[i][0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				setsockopt(pairs[i][1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(pairs[i][0]);
				close(pairs[i][1]);
			}
			n = 0;
			proxy_cut_asked = 0;
			if (write(report, "c", 1) != 1)
				return;
		}
		pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (size_t i = 0; i < n; i++) {
			pf[1 + 2 * i] = (struct pollfd){.fd = pairs[i][0], .events = POLLIN};
			pf[2 + 2 * i] = (struct pollfd){.fd = pairs[i][1], .events = POLLIN};
		}
		if (poll(pf, 1 + 2 * n, 50) <= 0)
			continue;
		for (size_t i = n; i-- > 0;) {
			bool gone = ((pf[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			             proxy_pump(pairs[i][0], pairs[i][1]) != 0) ||
			            ((pf[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			             proxy_pump(pairs[i][1], pairs[i][0]) != 0);
			if (gone) {
				close(pairs[i][0]);
				close(pairs[i][1]);
				pairs[i][0] = pairs[n - 1][0];
				pairs[i][1] = pairs[n - 1][1];
				n--;
			}
		}
		if (pf[0].revents & POLLIN) {
			int c = accept(lfd, NULL, NULL), u;
			if (c < 0)
				continue;
			u = socket(AF_INET, SOCK_STREAM, 0);
			if (n == HS_PROXY_MAX || u < 0 ||
			    connect(u, (struct sockaddr *)&to, sizeof(to)) != 0) {
				close(c);
				if (u >= 0)
					close(u);
				continue;
			}
			pairs[n][0] = c;
			pairs[n][1] = u;
			n++;
		}
	}
}

int
hs_proxy_start(hs_proc *p, int target, int *port)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0), pipefd[2];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->out_fd = -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0 || listen(lfd, 16) != 0 ||
	    pipe(pipefd) != 0) {
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	fflush(NULL);
	if ((p->pid = fork()) == 0) {
		signal(SIGUSR1, proxy_on_signal);
		signal(SIGTERM, proxy_on_signal);
		signal(SIGPIPE, SIG_IGN);
		close(pipefd[0]);
		proxy_loop(lfd, target, pipefd[1]);
		_exit(0);
	}
	close(lfd);
	close(pipefd[1]);
	if (p->pid < 0) {
		close(pipefd[0]);
		p->pid = 0;
		return -1;
	}
	p->out_fd = pipefd[0]; /* 'c' for each cut done */
	return 0;
}

int
hs_proxy_cut(hs_proc *p)
{
	struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
	char ch;

	if (p->pid <= 0 || kill(p->pid, SIGUSR1) != 0)
		return -1;
	if (poll(&pf, 1, 5000) != 1 || read(p->out_fd, &ch, 1) != 1)
		return -1;
	return 0;
}

int
hs_redis_start(hs_proc *p, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char ports[16];

	memset(p, 0, sizeof(*p));
	p->out_fd = -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (*port == 0 && fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		*port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	if (*port == 0)
		return -1;
	snprintf(ports, sizeof(ports), "%d", *port);
	char *argv[] = {"redis-server", "--port", ports,          "--bind", "127.0.0.1",
	                "--save",       "",       "--appendonly", "no",     NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	int rv = posix_spawnp(&p->pid, "redis-server", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		p->pid = 0;
		return -1;
	}
	for (int i = 0; i < 500; i++) { /* ready once it accepts */
		int c = socket(AF_INET, SOCK_STREAM, 0);
		sa.sin_port = htons((uint16_t)*port);
		bool up = c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (c >= 0)
			close(c);
		if (up)
			return 0;
		hs_sleep_ms(20);
	}
	hs_proc_stop(p, SIGKILL);
	return -1;
}

int
hs_gateway_url(const hs_proc *p, int i, char *buf, size_t n)
{
	const char *s = p->line + strlen("shipgated ready on ");
	for (;;) {
		const char *e = strchr(s, ' ');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (i-- == 0) {
			if (len == 0 || len >= n)
				return -1;
			memcpy(buf, s, len);
			buf[len] = '\0';
			return 0;
		}
		if (e == NULL)
			return -1;
		s = e + 1;
	}
}

/* ------------------------------------------------------------------ HTTP */

struct hs_buf {
	char *data; /* malloc'd */
	size_t len; /* bytes used */
};

static size_t
hs_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct hs_buf *b = ud;
	size_t n = size * nmemb;
	char *d = realloc(b->data, b->len + n + 1);
	if (d == NULL)
		return 0;
	memcpy(d + b->len, ptr, n);
	b->data = d;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

int
hs_http(const char *method, const char *url, char **out)
{
	struct hs_buf b = {calloc(1, 1), 0};
	long status = -1;
	CURL *c = curl_easy_init();
	if (c == NULL)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hs_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (out != NULL)
		*out = b.data;
	else
		free(b.data);
	return (int)status;
}

/* ------------------------------------------------------------------ nng */

int
hs_dial(nng_socket *s, const char *url)
{
	int rv;
	if ((rv = nng_req0_open(s)) != 0)
		return rv;
	nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 10000);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 16u << 20);
	if ((rv = nng_dial(*s, url, NULL, 0)) != 0)
		nng_close(*s);
	return rv;
}

int
hs_roundtrip_raw(nng_socket s, const void *data, size_t len, void **out, size_t *outlen)
{
	int rv;
	void *copy = nng_alloc(len ? len : 1);
	if (copy == NULL)
		return NNG_ENOMEM;
	memcpy(copy, data, len);
	if ((rv = nng_send(s, copy, len, NNG_FLAG_ALLOC)) != 0) {
		nng_free(copy, len);
		return rv;
	}
	char *buf = NULL;
	size_t n = 0;
	if ((rv = nng_recv(s, &buf, &n, NNG_FLAG_ALLOC)) != 0)
		return rv;
	*out = malloc(n ? n : 1);
	memcpy(*out, buf, n);
	*outlen = n;
	nng_free(buf, n);
	return 0;
}

bool
hs_expect(Shipgate__V1__RpcReply *r, int code, const char *reason, const char *text)
{
	const char *msg = r != NULL && r->status != NULL ? r->status->message : "";
	bool ok = hs_code(r) == code && strcmp(hs_reason(r), reason) == 0 &&
	          (text == NULL || strstr(msg, text) != NULL);
	if (!ok)
		fprintf(stderr, "  want %d %s%s%s: got %d %s \"%s\"\n", code, reason,
		        text ? " with " : "", text ? text : "", hs_code(r), hs_reason(r), msg);
	if (r)
		shipgate__v1__rpc_reply__free_unpacked(r, NULL);
	return ok;
}

int
hs_sandbox_count(const char *base, const char *method, const char *prefix, const char *auth)
{
	char url[300], *body = NULL;
	snprintf(url, sizeof(url), "%s/__sandbox/requests", base);
	if (hs_http("GET", url, &body) != 200) {
		free(body);
		return -1;
	}
	json_t *rec = body != NULL ? json_loads(body, 0, NULL) : NULL;
	free(body);
	int n = rec != NULL ? 0 : -1;
	size_t i;
	json_t *e;
	json_array_foreach(rec, i, e)
	{
		const char *m = json_string_value(json_object_get(e, "method"));
		const char *p = json_string_value(json_object_get(e, "path"));
		const char *a = json_string_value(json_object_get(e, "authorization"));
		if (m && p && strcmp(m, method) == 0 && strncmp(p, prefix, strlen(prefix)) == 0 &&
		    (auth == NULL || (a != NULL && strcmp(a, auth) == 0)))
			n++;
	}
	json_decref(rec);
	return n;
}

uint8_t *
hs_request_pack(const char *method, const ProtobufCMessage *req, int64_t deadline_ms,
                const char *idempotency_key, const char *token, size_t *len)
{
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	Shipgate__V1__RpcRequest__MetadataEntry md =
	        SHIPGATE__V1__RPC_REQUEST__METADATA_ENTRY__INIT;
	Shipgate__V1__RpcRequest__MetadataEntry *mds[] = {&md};
	char name[128], bearer[300];
	if (method[0] == '/')
		snprintf(name, sizeof(name), "%s", method);
	else
		snprintf(name, sizeof(name), "/shipgate.v1.Shipgate/%s", method);
	env.method = name;
	env.request_id = "test-1";
	env.deadline_ms = deadline_ms;
	env.idempotency_key = (char *)(idempotency_key ? idempotency_key : "");
	if (token != NULL) {
		snprintf(bearer, sizeof(bearer), "Bearer %s", token);
		md.key = "authorization";
		md.value = bearer;
		env.metadata = mds;
		env.n_metadata = 1;
	}
	size_t plen = req ? protobuf_c_message_get_packed_size(req) : 0;
	uint8_t *payload = malloc(plen ? plen : 1);
	if (req)
		protobuf_c_message_pack(req, payload);
	env.payload.data = payload;
	env.payload.len = plen;
	*len = shipgate__v1__rpc_request__get_packed_size(&env);
	uint8_t *buf = malloc(*len ? *len : 1);
	shipgate__v1__rpc_request__pack(&env, buf);
	free(payload);
	return buf;
}

Shipgate__V1__RpcReply *
hs_recv_reply(nng_socket s)
{
	void *out = NULL;
	size_t outlen = 0;
	if (nng_recv(s, &out, &outlen, NNG_FLAG_ALLOC) != 0)
		return NULL;
	Shipgate__V1__RpcReply *r = shipgate__v1__rpc_reply__unpack(NULL, outlen, out);
	nng_free(out, outlen);
	return r;
}

Shipgate__V1__RpcReply *
hs_call_as(nng_socket s, const char *method, const ProtobufCMessage *req, int64_t deadline_ms,
           const char *idempotency_key, const char *token)
{
	size_t len;
	uint8_t *buf = hs_request_pack(method, req, deadline_ms, idempotency_key, token, &len);
	void *out = NULL;
	size_t outlen = 0;
	int rv = hs_roundtrip_raw(s, buf, len, &out, &outlen);
	free(buf);
	if (rv != 0)
		return NULL;
	Shipgate__V1__RpcReply *r = shipgate__v1__rpc_reply__unpack(NULL, outlen, out);
	free(out);
	return r;
}

Shipgate__V1__RpcReply *
hs_call(nng_socket s, const char *method, const ProtobufCMessage *req, int64_t deadline_ms,
        const char *idempotency_key)
{
	return hs_call_as(s, method, req, deadline_ms, idempotency_key, NULL);
}

int
hs_fanout(nng_socket s, const Shipgate__V1__RpcRequest *env, int n,
          Shipgate__V1__RpcReply **replies)
{
	nng_ctx *ctx = calloc((size_t)n, sizeof(*ctx));
	nng_aio **aio = calloc((size_t)n, sizeof(*aio));
	size_t len = shipgate__v1__rpc_request__get_packed_size(env);
	int got = 0;

	for (int i = 0; i < n; i++) {
		nng_msg *msg;
		replies[i] = NULL;
		nng_msg_alloc(&msg, len);
		shipgate__v1__rpc_request__pack(env, nng_msg_body(msg));
		nng_ctx_open(&ctx[i], s);
		nng_aio_alloc(&aio[i], NULL, NULL);
		nng_aio_set_timeout(aio[i], 15000);
		nng_aio_set_msg(aio[i], msg);
		nng_ctx_send(ctx[i], aio[i]);
	}
	for (int i = 0; i < n; i++) {
		nng_aio_wait(aio[i]);
		if (nng_aio_result(aio[i]) != 0)
			nng_msg_free(nng_aio_get_msg(aio[i])); /* a failed send leaves it with us */
		nng_ctx_recv(ctx[i], aio[i]);
	}
	for (int i = 0; i < n; i++) {
		nng_aio_wait(aio[i]);
		if (nng_aio_result(aio[i]) == 0) {
			nng_msg *msg = nng_aio_get_msg(aio[i]);
			replies[i] = shipgate__v1__rpc_reply__unpack(NULL, nng_msg_len(msg),
			                                             nng_msg_body(msg));
			got += replies[i] != NULL;
			nng_msg_free(msg);
		}
		nng_aio_free(aio[i]);
		nng_ctx_close(ctx[i]);
	}
	free(ctx);
	free(aio);
	return got;
}

ProtobufCMessage *
hs_payload(const Shipgate__V1__RpcReply *r, const ProtobufCMessageDescriptor *d)
{
	if (r == NULL)
		return NULL;
	return protobuf_c_message_unpack(d, NULL, r->payload.len, r->payload.data);
}

int
hs_code(const Shipgate__V1__RpcReply *r)
{
	return r != NULL && r->status != NULL ? (int)r->status->code : -1;
}

const char *
hs_reason(const Shipgate__V1__RpcReply *r)
{
	if (r == NULL || r->status == NULL || r->status->detail == NULL)
		return "";
	return r->status->detail->reason;
}
