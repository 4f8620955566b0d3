/*
 * test_engine.c - the upstream engine against a tiny HTTP/1.1 server on loopback.
 *
 * The server (one thread, poll, raw sockets) answers from a declarative table: path -> status,
 * headers, body, delay, chunked or not, or close without a reply. It counts accepted connections
 * and requests per route, and records the last request it parsed, so tests can check what went
 * over the wire. Every wait is bounded; timing checks are only generous upper bounds.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "core/clock.h"
#include "testutil.h"
#include "upstream/engine.h"

/* ------------------------------------------------------------------ the canned replies */

struct route {
	const char *path;    /* exact request path, as sent (not normalised) */
	int status;          /* HTTP status of the reply */
	const char *headers; /* extra header lines "Name: value\r\n", or NULL */
	const char *body;    /* body text, or NULL (see fill) */
	size_t fill;         /* > 0: the body is this many 'x' bytes instead */
	size_t hdr_fill;     /* > 0: add an "X-Fill:" header of this many bytes */
	int delay_ms;        /* wait this long before replying */
	bool chunked;        /* Transfer-Encoding: chunked instead of Content-Length */
	bool drop;           /* close the connection without replying */
	bool early;          /* send a 103 Early Hints interim response first */
	bool drop_reused;    /* answer it as a connection's first request; on a reused
	                        connection, read it and close without replying */
};

static const struct route routes[] = {
        {.path = "/ok",
         .status = 200,
         .headers = "X-Test: yes\r\nRetry-After: 7\r\n",
         .body = "{\"ok\":true}"},
        {.path = "/missing",
         .status = 404,
         .headers = "Content-Type: application/json\r\n",
         .body = "{\"error\":\"no such order\"}"},
        {.path = "/echo", .status = 201, .body = "created"},
        {.path = "/a/../b", .status = 200, .body = "as-is"},
        {.path = "/slow", .status = 200, .body = "late", .delay_ms = 3000},
        {.path = "/hang", .status = 200, .body = "never", .delay_ms = 30000},
        {.path = "/delay", .status = 200, .body = "d", .delay_ms = 30},
        {.path = "/drop", .drop = true},
        {.path = "/big-cl", .status = 200, .fill = 4096},
        {.path = "/huge-cl", .status = 200, .fill = (1u << 20) + 4096},
        {.path = "/big-chunked", .status = 200, .fill = 4096, .chunked = true},
        {.path = "/exact", .status = 200, .fill = 1024},
        {.path = "/exact-chunked", .status = 200, .fill = 1024, .chunked = true},
        {.path = "/big-headers", .status = 200, .hdr_fill = 2048, .body = "h"},
        {.path = "/early", .status = 200, .headers = "X-Final: 1\r\n", .body = "e", .early = true},
        {.path = "/drop-reused", .status = 201, .body = "made", .drop_reused = true},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* ------------------------------------------------------------------ the test server */

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

#define SRV_MAX_REQ (64 * 1024) /* request bytes buffered per connection */

/* One accepted connection. */
struct conn {
	int fd;                      /* the socket */
	int side;                    /* which listener accepted it (0, 1) */
	char *in;                    /* received, not yet parsed bytes, NUL-terminated (owned) */
	size_t in_len;               /* bytes in in */
	const struct route *pending; /* parsed request waiting for its reply, or NULL */
	int64_t reply_at;            /* when to send pending's reply */
	int nreq;                    /* requests parsed on this connection */
	bool dead;                   /* to be closed at the end of the round */
};

static struct {
	int lfd[2];          /* listening sockets: two ports, so two upstream origins */
	int port[2];         /* their ports */
	int stop[2];         /* pipe: a byte stops the thread */
	pthread_t thr;       /* the server thread */
	pthread_mutex_t mtx; /* guards the counters and the record below */
	int accepts;         /* connections accepted */
	int hits[NROUTES];   /* requests per route */
	int busy[2];         /* requests read and not yet answered, per listener */
	int busy_max[2];     /* highest busy[] since srv_busy_reset */
	int busy_all_max;    /* highest busy[0] + busy[1] since srv_busy_reset */
	char method[16];     /* last request: method */
	char path[256];      /* last request: path */
	char headers[8192];  /* last request: header lines (NUL-terminated) */
	char body[8192];     /* last request: body */
	size_t body_len;     /* bytes in body */
} srv;

static const char *
find(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle), i;

	for (i = 0; m <= n && i <= n - m; i++) {
		if (memcmp(hay + i, needle, m) == 0) {
			return hay + i;
		}
	}
	return NULL;
}

static bool
find_ci(const char *hay, const char *needle)
{
	size_t m = strlen(needle);

	for (; *hay != '\0'; hay++) {
		if (strncasecmp(hay, needle, m) == 0) {
			return true;
		}
	}
	return false;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Sends r's reply on c (replies are small enough to fit the socket buffer). */
static void
srv_reply(struct conn *c, const struct route *r)
{
	size_t blen = r->fill > 0 ? r->fill : r->body ? strlen(r->body) : 0;
	size_t cap = 1024 + r->hdr_fill + blen * 2, n, off;
	char *out, *body;

	if (r->drop) {
		c->dead = true;
		return;
	}
	out = malloc(cap);
	body = malloc(blen + 1);
	if (out == NULL || body == NULL) {
		abort();
	}
	if (r->fill > 0) {
		memset(body, 'x', blen);
	} else if (blen > 0) {
		memcpy(body, r->body, blen);
	}
	n = 0;
	if (r->early) {
		n = (size_t)snprintf(out, cap,
		                     "HTTP/1.1 103 Early Hints\r\nLink: </x.css>\r\n\r\n");
	}
	n += (size_t)snprintf(out + n, cap - n, "HTTP/1.1 %d %s\r\n%s", r->status,
	                      r->status == 200 ? "OK" : "Canned", r->headers ? r->headers : "");
	if (r->hdr_fill > 0) {
		n += (size_t)snprintf(out + n, cap - n, "X-Fill: ");
		memset(out + n, 'f', r->hdr_fill);
		n += r->hdr_fill;
		n += (size_t)snprintf(out + n, cap - n, "\r\n");
	}
	if (r->chunked) {
		n += (size_t)snprintf(out + n, cap - n, "Transfer-Encoding: chunked\r\n\r\n");
		for (off = 0; off < blen; off += 300) {
			size_t k = blen - off < 300 ? blen - off : 300;
			n += (size_t)snprintf(out + n, cap - n, "%zx\r\n", k);
			memcpy(out + n, body + off, k);
			n += k;
			n += (size_t)snprintf(out + n, cap - n, "\r\n");
		}
		n += (size_t)snprintf(out + n, cap - n, "0\r\n\r\n");
	} else {
		n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n\r\n", blen);
		memcpy(out + n, body, blen);
		n += blen;
	}
	if (send_all(c->fd, out, n) != 0) {
		c->dead = true;
	}
	free(out);
	free(body);
}

/* Parses one complete request off c->in, records it and arms its reply. False: incomplete. */
static bool
srv_parse(struct conn *c)
{
	const char *end = find(c->in, c->in_len, "\r\n\r\n"), *hdr, *p;
	size_t hlen, clen = 0, total, i;
	char method[16] = "", path[256] = "";
	const struct route *r = NULL;

	if (end == NULL) {
		if (c->in_len >= SRV_MAX_REQ) {
			c->dead = true;
		}
		return false;
	}
	hlen = (size_t)(end - c->in) + 4;
	for (p = c->in; p < end; p++) { /* the NUL at in_len bounds every compare */
		if (strncasecmp(p, "\r\nContent-Length:", 17) == 0) {
			clen = strtoul(p + 17, NULL, 10);
		}
	}
	total = hlen + clen;
	if (total > SRV_MAX_REQ) {
		c->dead = true;
		return false;
	}
	if (c->in_len < total) {
		return false;
	}
	if (sscanf(c->in, "%15s %255s", method, path) != 2) {
		c->dead = true;
		return false;
	}
	for (i = 0; i < NROUTES; i++) {
		if (strcmp(routes[i].path, path) == 0) {
			r = &routes[i];
		}
	}
	hdr = strstr(c->in, "\r\n") + 2;
	pthread_mutex_lock(&srv.mtx);
	snprintf(srv.method, sizeof(srv.method), "%s", method);
	snprintf(srv.path, sizeof(srv.path), "%s", path);
	snprintf(srv.headers, sizeof(srv.headers), "%.*s", (int)(end + 2 - hdr), hdr);
	srv.body_len = clen < sizeof(srv.body) ? clen : sizeof(srv.body);
	memcpy(srv.body, c->in + hlen, srv.body_len);
	if (r != NULL) {
		srv.hits[r - routes]++;
	}
	srv.busy[c->side]++;
	if (srv.busy[c->side] > srv.busy_max[c->side]) {
		srv.busy_max[c->side] = srv.busy[c->side];
	}
	if (srv.busy[0] + srv.busy[1] > srv.busy_all_max) {
		srv.busy_all_max = srv.busy[0] + srv.busy[1];
	}
	pthread_mutex_unlock(&srv.mtx);

	memmove(c->in, c->in + total, c->in_len - total);
	c->in_len -= total;
	c->in[c->in_len] = '\0';
	if (r == NULL) {
		static const struct route nf = {.path = "", .status = 404, .body = "no route"};
		r = &nf;
	}
	if (r->drop_reused && c->nreq > 0) {
		static const struct route gone = {.path = "", .drop = true};
		r = &gone;
	}
	c->nreq++;
	c->pending = r;
	c->reply_at = sg_now_ms() + r->delay_ms;
	return true;
}

/* The pending request of c is answered or abandoned. */
static void
srv_settle(struct conn *c)
{
	pthread_mutex_lock(&srv.mtx);
	srv.busy[c->side]--;
	pthread_mutex_unlock(&srv.mtx);
	c->pending = NULL;
}

/* Sends due replies and parses what is buffered, as often as that makes progress. */
static void
srv_progress(struct conn *c, int64_t now)
{
	while (!c->dead) {
		if (c->pending != NULL) {
			if (now < c->reply_at) {
				return;
			}
			srv_reply(c, c->pending);
			srv_settle(c);
		} else if (!srv_parse(c)) {
			return;
		}
	}
	if (c->pending != NULL) {
		srv_settle(c);
	}
}

static void *
srv_main(void *arg)
{
	struct conn **conns = NULL;
	struct pollfd *pfds = NULL;
	size_t nconns = 0, cap = 0, i;
	int side;

	for (;;) {
		int64_t now = sg_now_ms(), next = -1;
		int timeout;

		if (cap < nconns + 3) {
			cap = (nconns + 3) * 2;
			if ((pfds = realloc(pfds, cap * sizeof(*pfds))) == NULL ||
			    (conns = realloc(conns, cap * sizeof(*conns))) == NULL) {
				abort();
			}
		}
		pfds[0] = (struct pollfd){.fd = srv.stop[0], .events = POLLIN};
		pfds[1] = (struct pollfd){.fd = srv.lfd[0], .events = POLLIN};
		pfds[2] = (struct pollfd){.fd = srv.lfd[1], .events = POLLIN};
		for (i = 0; i < nconns; i++) {
			pfds[i + 3] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
			if (conns[i]->pending != NULL && (next < 0 || conns[i]->reply_at < next)) {
				next = conns[i]->reply_at;
			}
		}
		timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
		if (poll(pfds, nconns + 3, timeout) < 0 && errno != EINTR) {
			abort();
		}
		if (pfds[0].revents != 0) {
			break;
		}
		for (i = 0; i < nconns; i++) {
			struct conn *c = conns[i];
			if (pfds[i + 3].revents == 0) {
				continue;
			}
			if (c->in_len == SRV_MAX_REQ) {
				c->dead = true;
				continue;
			}
			ssize_t k = recv(c->fd, c->in + c->in_len, SRV_MAX_REQ - c->in_len,
			                 MSG_DONTWAIT);
			if (k > 0) {
				c->in_len += (size_t)k;
				c->in[c->in_len] = '\0';
			} else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				c->dead = true;
			}
		}
		for (side = 0; side < 2; side++) {
			int fd;
			struct conn *c;

			if (!(pfds[1 + side].revents & POLLIN) ||
			    (fd = accept(srv.lfd[side], NULL, NULL)) < 0) {
				continue;
			}
			if ((c = calloc(1, sizeof(*c))) == NULL ||
			    (c->in = malloc(SRV_MAX_REQ + 1)) == NULL) {
				abort();
			}
			c->fd = fd;
			c->side = side;
			conns[nconns++] = c;
			pthread_mutex_lock(&srv.mtx);
			srv.accepts++;
			pthread_mutex_unlock(&srv.mtx);
		}
		now = sg_now_ms();
		for (i = 0; i < nconns;) {
			struct conn *c = conns[i];
			srv_progress(c, now);
			if (c->dead) {
				close(c->fd);
				free(c->in);
				free(c);
				conns[i] = conns[--nconns];
			} else {
				i++;
			}
		}
	}
	for (i = 0; i < nconns; i++) {
		close(conns[i]->fd);
		free(conns[i]->in);
		free(conns[i]);
	}
	free(conns);
	free(pfds);
	return arg;
}

static int
srv_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int one = 1, side;

	pthread_mutex_init(&srv.mtx, NULL);
	for (side = 0; side < 2; side++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = 0;
		if ((srv.lfd[side] = fd) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 512) != 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
			return -1;
		}
		srv.port[side] = ntohs(sa.sin_port);
	}
	if (pipe(srv.stop) != 0) {
		return -1;
	}
	return pthread_create(&srv.thr, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static void
srv_stop(void)
{
	(void)!write(srv.stop[1], "x", 1);
	pthread_join(srv.thr, NULL);
	close(srv.lfd[0]);
	close(srv.lfd[1]);
	close(srv.stop[0]);
	close(srv.stop[1]);
	pthread_mutex_destroy(&srv.mtx);
}

static int
srv_accepts(void)
{
	int n;

	pthread_mutex_lock(&srv.mtx);
	n = srv.accepts;
	pthread_mutex_unlock(&srv.mtx);
	return n;
}

static int
srv_hits(const char *path)
{
	size_t i;
	int n = 0;

	pthread_mutex_lock(&srv.mtx);
	for (i = 0; i < NROUTES; i++) {
		if (strcmp(routes[i].path, path) == 0) {
			n = srv.hits[i];
		}
	}
	pthread_mutex_unlock(&srv.mtx);
	return n;
}

static void
srv_busy_reset(void)
{
	pthread_mutex_lock(&srv.mtx);
	srv.busy_max[0] = srv.busy_max[1] = srv.busy_all_max = 0;
	pthread_mutex_unlock(&srv.mtx);
}

/* A port nothing listens on: bound once, then closed. */
static int
closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
		port = ntohs(sa.sin_port);
	}
	if (fd >= 0) {
		close(fd);
	}
	return port;
}

/* ------------------------------------------------------------------ completions */

/* A set of transfers the test waits on. */
struct batch {
	pthread_mutex_t mtx; /* guards done and every rec of the batch */
	pthread_cond_t cv;   /* signalled on each completion */
	int done;            /* callbacks run */
};

/* What one transfer's callback saw. */
struct rec {
	struct batch *b;                 /* the batch it belongs to */
	int calls;                       /* times the callback ran (must end at 1) */
	sg_err err;                      /* its err */
	int status;                      /* resp->status */
	char body[8192];                 /* resp->body, NUL-terminated copy (truncated) */
	size_t body_len;                 /* resp->body_len (not truncated) */
	char hdrs[8192];                 /* resp->headers copy */
	bool hdrs_null;                  /* resp->headers was NULL */
	char error[256];                 /* a failure's resp->error (libcurl's words), or "" */
	sg_engine *resubmit_e;           /* non-NULL: submit again from the callback... */
	const sg_http_req *resubmit_req; /* ...this request */
	sg_err resubmit;                 /* ...and what that submit returned */
	int chain;                       /* > 0: resubmit (normally) until this many calls */
};

static void
batch_init(struct batch *b)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&b->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	b->done = 0;
}

static void
batch_fini(struct batch *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mtx);
}

/* Waits until n callbacks have run, at most timeout_ms. */
static bool
batch_wait(struct batch *b, int n, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mtx);
	while (b->done < n) {
		if (pthread_cond_timedwait(&b->cv, &b->mtx, &ts) != 0) {
			break;
		}
	}
	ok = b->done >= n;
	pthread_mutex_unlock(&b->mtx);
	return ok;
}

static void
rec_cb(void *arg, sg_err err, const sg_http_resp *resp)
{
	struct rec *r = arg;
	sg_err rs = SG_OK;
	bool again = false;

	if (r->resubmit_e != NULL) {
		rs = sg_engine_submit(r->resubmit_e, r->resubmit_req, 0, rec_cb, r);
	}
	pthread_mutex_lock(&r->b->mtx);
	r->calls++;
	r->err = err;
	r->resubmit = rs;
	if (r->resubmit_e != NULL && r->chain > 0 && r->calls < r->chain && rs == SG_OK) {
		again = true; /* the chain goes on: not done yet */
	}
	if (r->resubmit_e != NULL && r->chain > 0 && r->calls + 1 >= r->chain) {
		r->resubmit_e = NULL; /* the submit just made is the last one */
	}
	r->error[0] = '\0';
	if (resp != NULL && err != SG_OK) { /* a failure: only libcurl's words for it */
		snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
	} else if (resp != NULL) {
		size_t n =
		        resp->body_len < sizeof(r->body) - 1 ? resp->body_len : sizeof(r->body) - 1;
		r->status = resp->status;
		memcpy(r->body, resp->body, n);
		r->body[n] = '\0';
		r->body_len = resp->body_len;
		r->hdrs_null = resp->headers == NULL;
		n = resp->headers_len < sizeof(r->hdrs) - 1 ? resp->headers_len
		                                            : sizeof(r->hdrs) - 1;
		if (resp->headers != NULL) {
			memcpy(r->hdrs, resp->headers, n);
		}
		r->hdrs[n] = '\0';
	}
	if (!again) {
		r->b->done++;
	}
	pthread_cond_broadcast(&r->b->cv);
	pthread_mutex_unlock(&r->b->mtx);
}

static void
url_of(char *buf, size_t n, const char *path)
{
	snprintf(buf, n, "http://127.0.0.1:%d%s", srv.port[0], path);
}

/* One synchronous transfer: submits req to e and waits for the callback into *r. */
static sg_err
run(sg_engine *e, const sg_http_req *req, int64_t deadline, struct rec *r)
{
	struct batch b;
	sg_err rv;

	batch_init(&b);
	memset(r, 0, sizeof(*r));
	r->b = &b;
	if ((rv = sg_engine_submit(e, req, deadline, rec_cb, r)) == SG_OK) {
		CHECK(batch_wait(&b, 1, 20000));
		CHECK_INT(r->calls, 1);
	}
	batch_fini(&b);
	r->b = NULL;
	return rv;
}

/* GET path synchronously. */
static sg_err
get(sg_engine *e, const char *path, int64_t deadline, struct rec *r)
{
	char url[300];
	sg_http_req req = {.method = "GET", .url = url};

	url_of(url, sizeof(url), path);
	return run(e, &req, deadline, r);
}

/* ------------------------------------------------------------------ the tests */

static struct rec R; /* scratch for the synchronous tests */

static void
test_ok(sg_engine *e)
{
	CHECK_INT(get(e, "/ok", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.status, 200);
	CHECK_STR(R.body, "{\"ok\":true}");
	CHECK_INT(R.body_len, 11);
	CHECK(!R.hdrs_null);
	CHECK(strstr(R.hdrs, "X-Test: yes\r\n") != NULL);
	CHECK(strstr(R.hdrs, "Retry-After: 7\r\n") != NULL);
	CHECK(strstr(R.hdrs, "Content-Length: 11\r\n") != NULL);
	CHECK(strstr(R.hdrs, "HTTP/1.1") == NULL); /* no status line */
	CHECK(strstr(R.hdrs, "\r\n\r\n") == NULL); /* no blank line */
	CHECK(strncmp(R.hdrs, "X-Test", 6) == 0);
	CHECK_INT(sg_engine_inflight(e), 0);
}

/* Only the final response's headers are kept. */
static void
test_interim(sg_engine *e)
{
	CHECK_INT(get(e, "/early", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.status, 200);
	CHECK_STR(R.body, "e");
	CHECK(strncmp(R.hdrs, "X-Final: 1\r\n", 12) == 0);
	CHECK(strstr(R.hdrs, "Link:") == NULL);
}

static void
test_404(sg_engine *e)
{
	CHECK_INT(get(e, "/missing", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.status, 404);
	CHECK_STR(R.body, "{\"error\":\"no such order\"}");
	CHECK(strstr(R.hdrs, "Content-Type: application/json\r\n") != NULL);
}

static void
test_keepalive(void)
{
	sg_engine *e = NULL;
	int before, i, ok = 0;

	CHECK_INT(sg_engine_new(&e, NULL), SG_OK);
	before = srv_accepts();
	for (i = 0; i < 20; i++) {
		if (get(e, "/ok", 0, &R) == SG_OK && R.err == SG_OK && R.status == 200) {
			ok++;
		}
	}
	CHECK_INT(ok, 20);
	CHECK_INT(srv_accepts() - before, 1);
	sg_engine_free(e);
}

static void
test_post(sg_engine *e)
{
	static const char body[] = "{\"weight\":1200,\"note\":\"a\0b\xff\"}";
	char url[300];
	sg_http_req req = {.method = "POST",
	                   .url = url,
	                   .headers = {"Content-Type: application/json", "X-Api-Key: k-123",
	                               "Idempotency-Key: 7f3a\tb"},
	                   .nheaders = 3,
	                   .body = body,
	                   .body_len = sizeof(body) - 1};

	url_of(url, sizeof(url), "/echo");
	CHECK_INT(run(e, &req, sg_now_ms() + 10000, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.status, 201);
	CHECK_STR(R.body, "created");
	pthread_mutex_lock(&srv.mtx);
	CHECK_STR(srv.method, "POST");
	CHECK_STR(srv.path, "/echo");
	CHECK_INT(srv.body_len, sizeof(body) - 1);
	CHECK(memcmp(srv.body, body, sizeof(body) - 1) == 0);
	CHECK(strstr(srv.headers, "\r\nContent-Type: application/json\r\n") != NULL);
	CHECK(strstr(srv.headers, "\r\nX-Api-Key: k-123\r\n") != NULL);
	CHECK(strstr(srv.headers, "\r\nIdempotency-Key: 7f3a\tb\r\n") != NULL);
	snprintf(url, sizeof(url), "\r\nContent-Length: %zu\r\n", sizeof(body) - 1);
	CHECK(strstr(srv.headers, url) != NULL);
	url_of(url, sizeof(url), "/echo");
	CHECK(!find_ci(srv.headers, "expect:"));
	pthread_mutex_unlock(&srv.mtx);

	/* other methods carry their body and verb */
	req.method = "PATCH";
	req.nheaders = 0;
	CHECK_INT(run(e, &req, 0, &R), SG_OK);
	CHECK_INT(R.status, 201);
	pthread_mutex_lock(&srv.mtx);
	CHECK_STR(srv.method, "PATCH");
	CHECK_INT(srv.body_len, sizeof(body) - 1);
	CHECK(memcmp(srv.body, body, sizeof(body) - 1) == 0);
	pthread_mutex_unlock(&srv.mtx);

	req.method = "DELETE";
	req.body = NULL;
	req.body_len = 0;
	CHECK_INT(run(e, &req, 0, &R), SG_OK);
	CHECK_INT(R.status, 201);
	pthread_mutex_lock(&srv.mtx);
	CHECK_STR(srv.method, "DELETE");
	CHECK_INT(srv.body_len, 0);
	pthread_mutex_unlock(&srv.mtx);

	/* a POST without a body is still a POST, with Content-Length: 0 */
	req.method = "POST";
	CHECK_INT(run(e, &req, 0, &R), SG_OK);
	CHECK_INT(R.status, 201);
	pthread_mutex_lock(&srv.mtx);
	CHECK_STR(srv.method, "POST");
	CHECK(strstr(srv.headers, "Content-Length: 0\r\n") != NULL);
	pthread_mutex_unlock(&srv.mtx);
}

/*
 * A provider that drops a reused keep-alive connection after reading the request. libcurl
 * re-sends a request on a new connection when a reused one turns out dead, whatever the method;
 * for a POST that can be a second order. A GET may be re-sent (it is idempotent); a POST must
 * not: its bytes may have reached the provider, so the outcome is unknown (SG_EUP_BROKEN) and
 * the provider sees it once.
 */
static void
test_no_resend_post(void)
{
	sg_engine *e = NULL;
	char url[300];
	sg_http_req req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};

	url_of(url, sizeof(url), "/drop-reused");
	for (int round = 0; round < 5; round++) {
		CHECK_INT(sg_engine_new(&e, NULL), SG_OK);
		if (e == NULL)
			return;
		/* the GET opens a keep-alive connection; the POST reuses it, and is dropped */
		CHECK_INT(get(e, "/ok", 0, &R), SG_OK);
		CHECK_INT(R.status, 200);
		int before = srv_hits("/drop-reused");
		CHECK_INT(run(e, &req, sg_now_ms() + 10000, &R), SG_OK);
		CHECK_INT(R.err, SG_EUP_BROKEN);
		CHECK_INT(srv_hits("/drop-reused") - before, 1);
		/* a POST on a connection of its own is answered as usual */
		CHECK_INT(run(e, &req, sg_now_ms() + 10000, &R), SG_OK);
		CHECK_INT(R.err, SG_OK);
		CHECK_INT(R.status, 201);
		sg_engine_free(e);
	}

	/* the same drop under a GET: re-sent on a new connection, and answered */
	CHECK_INT(sg_engine_new(&e, NULL), SG_OK);
	if (e == NULL)
		return;
	CHECK_INT(get(e, "/ok", 0, &R), SG_OK);
	int before = srv_hits("/drop-reused");
	CHECK_INT(get(e, "/drop-reused", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.status, 201);
	CHECK_INT(srv_hits("/drop-reused") - before, 2);
	sg_engine_free(e);
}

static void
test_path_as_is(sg_engine *e)
{
	CHECK_INT(get(e, "/a/../b", 0, &R), SG_OK);
	CHECK_INT(R.status, 200);
	CHECK_STR(R.body, "as-is");
	pthread_mutex_lock(&srv.mtx);
	CHECK_STR(srv.path, "/a/../b");
	pthread_mutex_unlock(&srv.mtx);
}

static void
test_reject(sg_engine *e)
{
	char url[300];
	sg_http_req req = {.method = "GET", .url = url, .nheaders = 1};
	static const char *const bad_headers[] = {"X-A: 1\r\nX-Injected: 1", "X-A: 1\nX-B: 2",
	                                          "X-A: 1\r", "X-A: \x01", ""};
	size_t i;

	url_of(url, sizeof(url), "/ok");
	memset(&R, 0, sizeof(R));
	for (i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
		req.headers[0] = bad_headers[i];
		CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	}
	req.headers[0] = "X-Ok: 1";
	req.nheaders = SG_HTTP_MAX_HEADERS + 1;
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	req.nheaders = 0;
	req.method = "GE T";
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	req.method = "get\r\n";
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	req.method = "GET";
	req.url = "http://127.0.0.1:1/a b";
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	req.url = "http://127.0.0.1:1/a\r\nX: y";
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	req.url = "ftp://127.0.0.1:1/a";
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	req.url = url;
	req.body_len = 3; /* with a NULL body */
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_EINTERNAL);
	CHECK_INT(sg_engine_submit(e, NULL, 0, rec_cb, &R), SG_EINTERNAL);
	req.body_len = 0;
	CHECK_INT(sg_engine_submit(e, &req, 0, NULL, &R), SG_EINTERNAL);
	CHECK_INT(sg_engine_inflight(e), 0);
	CHECK_INT(R.calls, 0);
}

static void
test_deadline(sg_engine *e)
{
	char url[300];
	sg_http_req req = {.method = "GET", .url = url};

	url_of(url, sizeof(url), "/ok");
	memset(&R, 0, sizeof(R));
	CHECK_INT(sg_engine_submit(e, &req, sg_now_ms() - 1, rec_cb, &R), SG_EDEADLINE);
	CHECK_INT(sg_engine_submit(e, &req, 1, rec_cb, &R), SG_EDEADLINE);
	CHECK_INT(sg_engine_inflight(e), 0);
	sleep_ms(50);
	CHECK_INT(R.calls, 0);
}

static void
test_timeout(sg_engine *e)
{
	sg_engine *es = NULL;
	sg_engine_conf c = {.default_timeout_ms = 300};
	int64_t t0 = sg_now_ms();

	/* the caller's deadline */
	CHECK_INT(get(e, "/slow", sg_now_ms() + 300, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_TIMEOUT);
	CHECK(sg_now_ms() - t0 < 2500);
	CHECK_INT(sg_engine_inflight(e), 0);

	/* the engine's default when the caller gives none */
	CHECK_INT(sg_engine_new(&es, &c), SG_OK);
	t0 = sg_now_ms();
	CHECK_INT(get(es, "/slow", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_TIMEOUT);
	CHECK(sg_now_ms() - t0 < 2500);
	sg_engine_free(es);
}

static void
test_connect(sg_engine *e)
{
	char url[300];
	sg_http_req req = {.method = "GET", .url = url};
	int port = closed_port();

	CHECK(port > 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
	CHECK_INT(run(e, &req, sg_now_ms() + 10000, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_CONNECT);
	CHECK(strstr(R.error, "onnect") != NULL); /* libcurl's words: "Failed to connect ..." */

	/* accepted, then closed without a reply: the request left, the outcome is unknown */
	CHECK_INT(get(e, "/drop", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_BROKEN);

	/* the engine carries on */
	CHECK_INT(get(e, "/ok", 0, &R), SG_OK);
	CHECK_INT(R.status, 200);
}

static void
test_toobig(void)
{
	sg_engine *e = NULL;
	sg_engine_conf c = {.max_body = 1024, .max_headers = 1024};

	CHECK_INT(sg_engine_new(&e, &c), SG_OK);
	CHECK_INT(get(e, "/big-cl", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_TOOBIG);
	CHECK_INT(get(e, "/big-chunked", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_TOOBIG);
	CHECK_INT(get(e, "/big-headers", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_EUP_TOOBIG);
	/* exactly at the cap is fine */
	CHECK_INT(get(e, "/exact", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.body_len, 1024);
	CHECK_INT(get(e, "/exact-chunked", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.body_len, 1024);
	CHECK(strspn(R.body, "x") == 1024);
	CHECK(find_ci(R.hdrs, "Transfer-Encoding: chunked\r\n"));
	CHECK_INT(get(e, "/ok", 0, &R), SG_OK);
	CHECK_INT(R.status, 200);
	sg_engine_free(e);
}

/* Bodies larger than libcurl's receive buffer arrive whole, with Content-Length (the body
 * buffer is sized from it) and chunked (it grows), also on a reused easy handle whose buffer
 * is already big enough or too small. */
static void
test_small_recv_buffer(void)
{
	sg_engine *e = NULL;
	sg_engine_conf c = {.recv_buffer = 1024};
	static const char *const paths[] = {"/exact", "/big-cl", "/ok", "/big-chunked", "/big-cl"};
	static const size_t lens[] = {1024, 4096, 0, 4096, 4096};

	CHECK_INT(sg_engine_new(&e, &c), SG_OK);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		CHECK_INT(get(e, paths[i], 0, &R), SG_OK);
		CHECK_INT(R.err, SG_OK);
		CHECK_INT(R.status, 200);
		if (lens[i] > 0) {
			CHECK_INT(R.body_len, lens[i]);
			CHECK(strspn(R.body, "x") == lens[i]);
		}
	}
	/* a Content-Length over 1 MiB is not allocated up front; the body still arrives whole */
	CHECK_INT(get(e, "/huge-cl", 0, &R), SG_OK);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.body_len, (1u << 20) + 4096);
	sg_engine_free(e);
}

/* n transfers of path at once on e; all must complete exactly once with 200. */
static void
concurrent(sg_engine *e, const char *path, int n)
{
	struct batch b;
	struct rec *recs = calloc((size_t)n, sizeof(*recs));
	char url[300];
	sg_http_req req = {.method = "GET", .url = url};
	int i, submitted = 0, once = 0, good = 0;

	if (recs == NULL) {
		abort();
	}
	url_of(url, sizeof(url), path);
	batch_init(&b);
	for (i = 0; i < n; i++) {
		recs[i].b = &b;
		if (sg_engine_submit(e, &req, sg_now_ms() + 30000, rec_cb, &recs[i]) == SG_OK) {
			submitted++;
		}
	}
	CHECK_INT(submitted, n);
	CHECK(sg_engine_inflight(e) <= (size_t)n);
	CHECK(batch_wait(&b, n, 40000));
	pthread_mutex_lock(&b.mtx);
	for (i = 0; i < n; i++) {
		once += recs[i].calls == 1;
		good += recs[i].err == SG_OK && recs[i].status == 200 && recs[i].body[0] == 'd';
	}
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(once, n);
	CHECK_INT(good, n);
	CHECK_INT(sg_engine_inflight(e), 0);
	batch_fini(&b);
	free(recs);
}

static void
test_concurrent(sg_engine *e)
{
	sg_engine *ec = NULL;
	sg_engine_conf c = {.max_host_conns = 4};
	int before;

	concurrent(e, "/delay", 200);

	/* a per-host cap queues transfers inside curl instead of opening connections */
	CHECK_INT(sg_engine_new(&ec, &c), SG_OK);
	before = srv_accepts();
	concurrent(ec, "/delay", 50);
	CHECK(srv_accepts() - before <= 4);
	sg_engine_free(ec);
}

/* The engine's own queueing: per-host and total caps hold over two origins, and a transfer
 * waiting for a slot times out on its deadline and is cancelled by shutdown. */
static void
test_admission(void)
{
	enum { PER = 20 };
	sg_engine *e = NULL;
	sg_engine_conf c = {.max_host_conns = 2, .max_total_conns = 3};
	struct batch b;
	struct rec *recs = calloc(2 * PER + 3, sizeof(*recs));
	char url[2][300];
	sg_http_req req[2] = {{.method = "GET", .url = url[0]}, {.method = "GET", .url = url[1]}};
	int i, good = 0, ok_hits;
	int64_t t0;

	if (recs == NULL) {
		abort();
	}
	for (i = 0; i < 2; i++) {
		snprintf(url[i], sizeof(url[i]), "http://127.0.0.1:%d/delay", srv.port[i]);
	}
	batch_init(&b);
	CHECK_INT(sg_engine_new(&e, &c), SG_OK);
	srv_busy_reset();
	for (i = 0; i < 2 * PER; i++) {
		recs[i].b = &b;
		CHECK_INT(sg_engine_submit(e, &req[i % 2], sg_now_ms() + 30000, rec_cb, &recs[i]),
		          SG_OK);
	}
	CHECK(batch_wait(&b, 2 * PER, 40000));
	pthread_mutex_lock(&b.mtx);
	for (i = 0; i < 2 * PER; i++) {
		good += recs[i].calls == 1 && recs[i].err == SG_OK && recs[i].status == 200;
	}
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(good, 2 * PER);
	pthread_mutex_lock(&srv.mtx);
	CHECK(srv.busy_max[0] <= 2);
	CHECK(srv.busy_max[1] <= 2);
	CHECK(srv.busy_all_max <= 3);
	CHECK(srv.busy_all_max >= 2); /* they did overlap */
	pthread_mutex_unlock(&srv.mtx);
	sg_engine_free(e);

	/* one slot: a slow transfer holds it, the next one waits and times out unsent */
	c = (sg_engine_conf){.max_host_conns = 1};
	CHECK_INT(sg_engine_new(&e, &c), SG_OK);
	url_of(url[0], sizeof(url[0]), "/slow");
	url_of(url[1], sizeof(url[1]), "/ok");
	i = srv_hits("/slow");
	recs[2 * PER].b = recs[2 * PER + 1].b = recs[2 * PER + 2].b = &b;
	pthread_mutex_lock(&b.mtx);
	b.done = 0;
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(sg_engine_submit(e, &req[0], sg_now_ms() + 20000, rec_cb, &recs[2 * PER]), SG_OK);
	t0 = sg_now_ms();
	while (srv_hits("/slow") == i && sg_now_ms() - t0 < 10000) {
		sleep_ms(5);
	}
	ok_hits = srv_hits("/ok");
	t0 = sg_now_ms();
	CHECK_INT(sg_engine_submit(e, &req[1], t0 + 200, rec_cb, &recs[2 * PER + 1]), SG_OK);
	CHECK(batch_wait(&b, 1, 10000));
	CHECK(sg_now_ms() - t0 < 2000);
	pthread_mutex_lock(&b.mtx);
	CHECK_INT(recs[2 * PER + 1].calls, 1);
	CHECK_INT(recs[2 * PER + 1].err, SG_EUP_TIMEOUT);
	CHECK_INT(recs[2 * PER].calls, 0); /* the slow one still runs */
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(srv_hits("/ok"), ok_hits); /* never sent */
	CHECK_INT(sg_engine_inflight(e), 1);
	/* a third one waits with a long deadline; shutdown ends both */
	CHECK_INT(sg_engine_submit(e, &req[1], 0, rec_cb, &recs[2 * PER + 2]), SG_OK);
	CHECK_INT(sg_engine_inflight(e), 2);
	sg_engine_free(e);
	CHECK(batch_wait(&b, 3, 1000));
	pthread_mutex_lock(&b.mtx);
	CHECK_INT(recs[2 * PER].calls, 1);
	CHECK_INT(recs[2 * PER].err, SG_ESHUTDOWN);
	CHECK_INT(recs[2 * PER + 2].calls, 1);
	CHECK_INT(recs[2 * PER + 2].err, SG_ESHUTDOWN);
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(srv_hits("/ok"), ok_hits);
	batch_fini(&b);
	free(recs);
}

/* Callbacks may submit: a chain of 5 transfers, each submitted by the previous callback. */
static void
test_chain(sg_engine *e)
{
	struct batch b;
	char url[300];
	sg_http_req req = {.method = "GET", .url = url};

	url_of(url, sizeof(url), "/ok");
	batch_init(&b);
	memset(&R, 0, sizeof(R));
	R.b = &b;
	R.resubmit_e = e;
	R.resubmit_req = &req;
	R.chain = 5;
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &R), SG_OK);
	CHECK(batch_wait(&b, 1, 20000));
	sleep_ms(50); /* a stray extra completion would show up here */
	pthread_mutex_lock(&b.mtx);
	CHECK_INT(R.calls, 5);
	CHECK_INT(R.err, SG_OK);
	CHECK_INT(R.status, 200);
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(sg_engine_inflight(e), 0);
	batch_fini(&b);
	R.b = NULL;
}

/* Freeing the engine with transfers running and queued: each completes once with
 * SG_ESHUTDOWN, and a submit from such a callback is refused. */
static void
test_shutdown(void)
{
	enum { N_RUN = 30, N_MORE = 20, N = N_RUN + N_MORE };
	sg_engine *e = NULL;
	struct batch b;
	struct rec *recs = calloc(N, sizeof(*recs));
	char url[300];
	sg_http_req req = {.method = "GET", .url = url};
	int i, hits0 = srv_hits("/hang"), ok = 0, once = 0, down = 0, refused = 0;
	int64_t t0;

	if (recs == NULL) {
		abort();
	}
	url_of(url, sizeof(url), "/hang");
	batch_init(&b);
	CHECK_INT(sg_engine_new(&e, NULL), SG_OK);
	for (i = 0; i < N; i++) {
		recs[i].b = &b;
		recs[i].resubmit_e = e;
		recs[i].resubmit_req = &req;
	}
	for (i = 0; i < N_RUN; i++) {
		ok += sg_engine_submit(e, &req, 0, rec_cb, &recs[i]) == SG_OK;
	}
	/* wait until the server holds them all */
	t0 = sg_now_ms();
	while (srv_hits("/hang") - hits0 < N_RUN && sg_now_ms() - t0 < 10000) {
		sleep_ms(5);
	}
	CHECK_INT(srv_hits("/hang") - hits0, N_RUN);
	CHECK_INT(sg_engine_inflight(e), N_RUN);
	for (; i < N; i++) {
		ok += sg_engine_submit(e, &req, 0, rec_cb, &recs[i]) == SG_OK;
	}
	CHECK_INT(ok, N);
	t0 = sg_now_ms();
	sg_engine_stop(e);
	CHECK(sg_now_ms() - t0 < 5000);
	CHECK(batch_wait(&b, N, 1000)); /* all done before stop returned */
	/* stopped, not freed: a late submit is refused cleanly */
	struct rec late = {.b = &b};
	CHECK_INT(sg_engine_submit(e, &req, 0, rec_cb, &late), SG_ESHUTDOWN);
	sg_engine_stop(e); /* idempotent */
	sg_engine_free(e);
	CHECK_INT(late.calls, 0);
	pthread_mutex_lock(&b.mtx);
	for (i = 0; i < N; i++) {
		once += recs[i].calls == 1;
		down += recs[i].err == SG_ESHUTDOWN;
		refused += recs[i].resubmit == SG_ESHUTDOWN;
	}
	pthread_mutex_unlock(&b.mtx);
	CHECK_INT(once, N);
	CHECK_INT(down, N);
	CHECK_INT(refused, N);
	batch_fini(&b);
	free(recs);
}

int
main(void)
{
	sg_engine *e = NULL;

	if (srv_start() != 0) {
		fprintf(stderr, "test server: %s\n", strerror(errno));
		return 1;
	}
	sg_engine_free(NULL);
	CHECK_INT(sg_engine_inflight(NULL), 0);
	CHECK_INT(sg_engine_new(&e, NULL), SG_OK);
	if (e != NULL) {
		test_ok(e);
		test_404(e);
		test_interim(e);
		test_post(e);
		test_path_as_is(e);
		test_reject(e);
		test_deadline(e);
		test_timeout(e);
		test_connect(e);
		test_chain(e);
		test_concurrent(e);
		sg_engine_free(e);
	}
	test_keepalive();
	test_no_resend_post();
	test_toobig();
	test_small_recv_buffer();
	test_admission();
	test_shutdown();
	srv_stop();
	TEST_MAIN_END();
}
