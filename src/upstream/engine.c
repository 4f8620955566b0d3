/*
 * engine.c - the upstream HTTP engine: one libcurl multi handle on its own event thread.
 *
 * Shape (curl's docs/examples/multi-event.c, with epoll in place of libevent):
 *
 *   submitter threads                     engine thread
 *   -----------------                     -------------
 *   sg_engine_submit                      eng_main: loop {
 *     take an xfer from the free list       epoll_wait(curl's sockets + wake eventfd,
 *     curl_easy_reset + set options                    timeout = next curl or wait deadline)
 *     append to the queue (mutex) -----+    curl_multi_socket_action(fd) per ready fd
 *     write the wake eventfd           |    curl_multi_socket_action(TIMEOUT) when due
 *                                      |    complete what curl finished (cb), recycle
 *                                      |    time out transfers still waiting for a slot
 *                                      +--> take the whole queue: start or make wait
 *                                         }
 *
 * Why the multi_socket API and not curl_multi_poll + curl_multi_perform: in libcurl 7.88 both
 * of the latter walk every easy handle in the multi on every call (multi_getsock for the poll
 * set, multi_runsingle for perform), and poll() itself is O(fds): with 10,000 transfers that is
 * 10,000 steps per wakeup. curl_multi_socket_action touches only the transfers on a ready socket
 * or an expired timer, and epoll reports only ready sockets. The wakeup is an eventfd in the
 * same epoll set (curl_multi_wakeup only works with curl_multi_poll).
 *
 * Why the engine queues transfers itself (admission) instead of letting the multi's connection
 * caps do it: in 7.88 a transfer over CURLMOPT_MAX_HOST/TOTAL_CONNECTIONS goes on the multi's
 * pending list, and every curl_multi_remove_handle scans that whole list; with 10,000 queued
 * transfers that scan dominated the profile (throughput fell from ~20k/s to ~2.5k/s). So the
 * engine starts a transfer only when its host (scheme://authority) is under max_host_conns and
 * the total is under max_total_conns; the rest wait in a FIFO per host, and a min-heap on their
 * deadlines times them out while they wait. With HTTP/1.1 (pinned, below) one running transfer
 * is one connection, so transfer caps are connection caps. The multi keeps its own caps too, as
 * a backstop. Note that with no cap at all libcurl's connection lookup walks every connection
 * to the host for each new transfer; set max_host_conns for large concurrency.
 *
 * Per-transfer state (struct xfer) travels in CURLOPT_PRIVATE. Transfers, their easy handles and
 * buffers are pooled in a free list and reused with curl_easy_reset; the multi handle is the one
 * shared connection pool, so keep-alive connections are reused across transfers.
 *
 * Threads: sg_engine_submit and sg_engine_inflight may run on any thread. The multi handle, the
 * epoll set, the hosts, the wait heap, curl's callbacks and the completion callbacks belong to
 * the engine thread. e->mtx guards the submit queue, the free list and the stopping flag.
 * An xfer belongs to one party at a time: the free list (under e->mtx), the submitter that took
 * it (until queued), the queue (under e->mtx), then the engine thread until it is recycled. The
 * mutex hand-offs order every access to its easy handle.
 *
 * The process should ignore SIGPIPE (CURLOPT_NOSIGNAL is set, so libcurl does not do it).
 * Linux only (epoll, eventfd).
 */
#include "upstream/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "core/dheap.h"
#include "core/dynbuf.h"
#include "core/list.h"

/* ------------------------------------------------------------------ limits and defaults */

#define ENG_DEF_MAX_BODY    (8u << 20)  /* response body cap */
#define ENG_DEF_MAX_HEADERS (64u << 10) /* response header block cap */
#define ENG_DEF_CONNECT_MS  5000L       /* connect phase cap */
#define ENG_DEF_RECV_BUF    1024L       /* libcurl receive buffer (its minimum; 16 KiB default) */
#define ENG_DEF_TIMEOUT_MS  30000L      /* timeout when the caller gives no deadline */
#define ENG_MAX_IDLE        1024        /* idle xfers kept in the free list after a burst */
#define ENG_KEEP_BUF        (32u << 10) /* buffers up to this size stay with a pooled xfer */
#define ENG_BUF_MIN         256         /* first allocation of a growing buffer */
#define ENG_PRESIZE_MAX     (1u << 20)  /* a Content-Length up to this is allocated at once */
#define ENG_EPOLL_BATCH     256         /* events taken per epoll_wait; the rest come next round */
#define ENG_MAX_METHOD      16          /* longest accepted request method */
#define ENG_MAX_WAIT_MS     60000       /* longest single epoll_wait */

/* ------------------------------------------------------------------ types */

/* Where an xfer is; says which list its next/prev links belong to. */
enum xstate {
	X_IDLE,    /* free list, or held by a submitter (next: free list) */
	X_QUEUED,  /* submit queue (next) */
	X_WAITING, /* its host's wait FIFO (link) and the wait heap */
	X_RUNNING, /* in the multi; e->running (link) */
};

struct host;

/* One transfer: an easy handle plus everything that lives as long as the request. */
struct xfer {
	struct xfer *next; /* free list (X_IDLE) or submit queue (X_QUEUED), singly linked */
	sg_list_node link; /* its host's wait FIFO (X_WAITING) or e->running (X_RUNNING) */
	enum xstate state; /* which list */
	sg_engine *e;      /* owner */
	CURL *easy;        /* owned; kept across reuse, reset per transfer */
	sg_engine_cb cb;   /* completion callback */
	void *arg;         /* its argument */
	sg_dheap_node dl;  /* dl.deadline: absolute sg_now_ms() deadline (never 0 once
	                      submitted); in e->wait_heap while X_WAITING */
	const char *hkey;  /* "scheme://authority" prefix of the URL (borrowed from req) */
	size_t hkeylen;    /* its length */
	struct host *host; /* engine thread: the host it counts against */
	bool fresh;        /* engine thread: started with CURLOPT_FRESH_CONNECT */
	bool sent;         /* a request that is not idempotent has been sent once (see
	                      xfer_prereq_cb) */
	sg_err err;        /* failure detected in a curl callback (TOOBIG, NOMEM), else SG_OK */
	sg_dynbuf body;    /* response body (final response), capped at max_body */
	sg_dynbuf hdrs;    /* header block of the final response, "Name: value\r\n" lines,
	                      capped at max_headers */
	/* CURLOPT_HTTPHEADER list built in place: the caller's lines (borrowed, see
	 * xfer_setup) plus "Expect:". No allocation per request. */
	struct curl_slist hlist[SG_HTTP_MAX_HEADERS + 1];
	char errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER: a failure in libcurl's words */
};

/* One upstream origin: its running count and the transfers waiting for a slot. Created on
 * first use and kept until sg_engine_free: the origins are the configured providers, a few
 * (an upstream that put tenants in subdomains would grow this list). */
struct host {
	struct host *next;  /* e->hosts */
	struct host *rnext; /* e->ready FIFO link */
	bool in_ready;      /* on e->ready */
	size_t active;      /* its transfers in the multi */
	size_t conns;       /* connections curl opened to it (an estimate: closes by the
	                       server are seen only as failed transfers) */
	sg_list wait;       /* waiting transfers (xfer.link), oldest first */
	size_t keylen;      /* bytes in key */
	char key[];         /* "scheme://authority", not NUL-terminated */
};

struct sg_engine {
	sg_engine_conf conf;    /* resolved configuration; read-only after sg_engine_new */
	atomic_size_t inflight; /* transfers submitted and not yet completed */
	int epfd;               /* epoll set: curl's sockets and wakefd */
	int wakefd;             /* eventfd; written by submitters and sg_engine_free */
	pthread_t thr;          /* the engine thread */
	bool thr_started;       /* thr is joinable */

	/* engine thread only */
	CURLM *multi;            /* the multi handle */
	int64_t timer_at;        /* when curl wants a timeout action; -1 none */
	size_t host_cap;         /* running transfers per host; 0 unlimited */
	size_t total_cap;        /* running transfers in all; 0 unlimited */
	size_t active;           /* transfers in the multi */
	sg_list running;         /* transfers in the multi (xfer.link; for shutdown) */
	struct host *hosts;      /* every host seen */
	struct host *ready_head; /* hosts with waiters held back only by total_cap (FIFO, */
	struct host *ready_tail; /*   checked lazily: entries may have gone stale) */
	sg_dheap wait_heap;      /* waiting transfers on their deadline (struct xfer.dl) */

	pthread_mutex_t mtx; /* guards everything below */
	struct xfer *q_head; /* submitted, not yet taken by the engine thread (FIFO) */
	struct xfer *q_tail; /* last queued, for O(1) append */
	struct xfer *free;   /* idle xfers for reuse */
	size_t nfree;        /* entries in free */
	bool stopping;       /* sg_engine_free has begun; submit refuses */
	bool wake_pending;   /* wakefd written and the queue not yet taken */
};

/* ------------------------------------------------------------------ curl data callbacks */

/* CURLOPT_WRITEFUNCTION: collects the body, failing the transfer past max_body. The cap is here
 * because CURLOPT_MAXFILESIZE does not stop a chunked body. Engine thread. */
static size_t
xfer_body_cb(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (len == 0) {
		return 0;
	}
	if (x->body.len == 0) {
		/* first bytes: size the buffer from Content-Length when the server sent one (the
		 * doubling would leave up to half of it unused while the transfer lives); a large
		 * announcement still grows with the bytes that actually come */
		curl_off_t cl = -1;
		if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
		            CURLE_OK &&
		    cl >= (curl_off_t)len && cl <= (curl_off_t)ENG_PRESIZE_MAX &&
		    (uint64_t)cl <= x->e->conf.max_body &&
		    sg_dynbuf_reserve(&x->body, (size_t)cl, true) != 0) {
			x->err = SG_ENOMEM;
			return 0;
		}
	}
	if (sg_dynbuf_add(&x->body, p, len) != 0) {
		x->err = errno == ENOMEM ? SG_ENOMEM : SG_EUP_TOOBIG;
		return 0; /* != len: curl aborts with CURLE_WRITE_ERROR */
	}
	return len;
}

/* CURLOPT_HEADERFUNCTION: keeps the header lines of the final response only. Each status line
 * starts a new block (so 1xx interim headers are dropped); the status line and the blank line
 * are not kept; line ends are normalised to CRLF. Engine thread. */
static size_t
xfer_header_cb(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n, l = len;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		sg_dynbuf_reset(&x->hdrs, SIZE_MAX); /* a new block; the memory stays */
		return len;
	}
	while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n')) {
		l--;
	}
	if (l == 0) {
		return len;
	}
	if (sg_dynbuf_reserve(&x->hdrs, l + 2, false) != 0) {
		x->err = errno == ENOMEM ? SG_ENOMEM : SG_EUP_TOOBIG;
		return 0;
	}
	(void)sg_dynbuf_add(&x->hdrs, p, l); /* cannot fail: reserved */
	(void)sg_dynbuf_add(&x->hdrs, "\r\n", 2);
	return len;
}

/* ------------------------------------------------------------------ the xfer pool */

static void
xfer_destroy(struct xfer *x)
{
	if (x == NULL) {
		return;
	}
	curl_easy_cleanup(x->easy);
	sg_dynbuf_free(&x->body);
	sg_dynbuf_free(&x->hdrs);
	free(x);
}

/* A new xfer with its easy handle, or NULL. Any thread. */
static struct xfer *
xfer_new(sg_engine *e)
{
	struct xfer *x;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		return NULL;
	}
	x->e = e;
	sg_dynbuf_init(&x->body, e->conf.max_body, ENG_BUF_MIN);
	sg_dynbuf_init(&x->hdrs, e->conf.max_headers, ENG_BUF_MIN);
	if ((x->easy = curl_easy_init()) == NULL) {
		free(x);
		return NULL;
	}
	return x;
}

/* An idle xfer from the free list, or a new one; NULL when out of memory. The caller owns it.
 * Any thread; takes e->mtx. */
static struct xfer *
xfer_get(sg_engine *e)
{
	struct xfer *x;

	pthread_mutex_lock(&e->mtx);
	if ((x = e->free) != NULL) {
		e->free = x->next;
		e->nfree--;
	}
	pthread_mutex_unlock(&e->mtx);
	if (x == NULL) {
		x = xfer_new(e);
	}
	return x;
}

/* Takes x back (the caller owned it; it is in no multi and no list): to the free list, or
 * freed past ENG_MAX_IDLE. Drops the borrowed request pointers. Any thread; takes e->mtx. */
static void
xfer_put(sg_engine *e, struct xfer *x)
{
	x->cb = NULL;
	x->arg = NULL;
	x->hkey = NULL;
	x->host = NULL;
	x->err = SG_OK;
	x->state = X_IDLE;
	x->next = NULL;
	sg_dynbuf_reset(&x->body, ENG_KEEP_BUF);
	sg_dynbuf_reset(&x->hdrs, ENG_KEEP_BUF);
	pthread_mutex_lock(&e->mtx);
	if (e->nfree < ENG_MAX_IDLE) {
		x->next = e->free;
		e->free = x;
		e->nfree++;
		x = NULL;
	}
	pthread_mutex_unlock(&e->mtx);
	xfer_destroy(x);
}

/* ------------------------------------------------------------------ request checks and setup */

/* True when s is non-empty and has no control byte (CR, LF, NUL...) or DEL; tab is allowed,
 * as in header values. */
static bool
str_clean(const char *s)
{
	if (s == NULL || *s == '\0') {
		return false;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return false;
		}
	}
	return true;
}

/*
 * Defence in depth: the translations validate every identifier, but a CR or LF in a header
 * line or URL would still let a request smuggle headers (libcurl passes them through).
 * Method: upper-case letters only. URL: http(s) only, no controls or spaces. Header lines: no
 * controls but tab. On success *hkeylen is the length of the URL's "scheme://authority".
 */
static sg_err
req_check(const sg_http_req *req, size_t *hkeylen)
{
	size_t i, skip;
	const char *s;

	if (req == NULL || req->method == NULL || req->url == NULL ||
	    req->nheaders > SG_HTTP_MAX_HEADERS || (req->body == NULL && req->body_len != 0)) {
		return SG_EINTERNAL;
	}
	for (s = req->method; *s != '\0'; s++) {
		if (*s < 'A' || *s > 'Z' || s - req->method >= ENG_MAX_METHOD) {
			return SG_EINTERNAL;
		}
	}
	if (s == req->method) {
		return SG_EINTERNAL;
	}
	if (strncasecmp(req->url, "http://", 7) == 0) {
		skip = 7;
	} else if (strncasecmp(req->url, "https://", 8) == 0) {
		skip = 8;
	} else {
		return SG_EINTERNAL;
	}
	for (s = req->url; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
			return SG_EINTERNAL;
		}
	}
	for (i = 0; i < req->nheaders; i++) {
		if (!str_clean(req->headers[i])) {
			return SG_EINTERNAL;
		}
	}
	*hkeylen = skip + strcspn(req->url + skip, "/?#");
	return SG_OK;
}

/* curl_easy_setopt that jumps to `fail` on error (the only goto hidden in a macro here). */
/*
 * True for the methods RFC 9110 section 9.2.2 calls idempotent: a second copy of the request
 * has the same effect as one. libcurl may re-send those on a new connection when a reused one
 * turns out dead; everything else (POST, PATCH, unknown verbs) goes out at most once.
 */
static bool
method_idempotent(const char *m)
{
	static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};

	for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++) {
		if (strcmp(m, idem[i]) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * CURLOPT_PREREQFUNCTION: runs each time libcurl is about to send the request on a connection.
 * When a reused keep-alive connection dies under a request before any answer, libcurl 7.88
 * re-sends the request on a new connection, whatever the method. For a request that is not
 * idempotent the first copy may already have reached the provider (a CreateOrder POST may have
 * created an order), so the second send is refused here: the transfer fails with SG_EUP_BROKEN
 * ("sent, no answer"), which callers treat as an unknown outcome. Keeping reuse on (instead of
 * CURLOPT_FRESH_CONNECT for every POST) keeps the POST off a new TCP and TLS handshake.
 * Engine thread.
 */
static int
xfer_prereq_cb(void *clientp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
               int conn_local_port)
{
	struct xfer *x = clientp;

	if (x->sent) {
		x->err = SG_EUP_BROKEN;
		return CURL_PREREQFUNC_ABORT;
	}
	x->sent = true;
	return CURL_PREREQFUNC_OK;
}

#define XSET(h, opt, val)                                                                          \
	do {                                                                                       \
		if ((cc = curl_easy_setopt((h), (opt), (val))) != CURLE_OK) {                      \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)

/*
 * Resets x's easy handle and sets it up for req. Runs on the submitting thread while it owns x.
 * req and its strings are borrowed until the completion (libcurl copies the URL and method but
 * only points to the body and the header strings). CURLOPT_TIMEOUT_MS is set when the transfer
 * starts (xfer_start), so time spent queued comes off the budget.
 */
static sg_err
xfer_setup(struct xfer *x, const sg_http_req *req)
{
	const sg_engine_conf *c = &x->e->conf;
	CURL *h = x->easy;
	CURLcode cc;
	size_t i, nh = 0;

	curl_easy_reset(h);

	/* the request line and body */
	XSET(h, CURLOPT_URL, req->url);
	if (strcmp(req->method, "GET") == 0 && req->body == NULL) {
		XSET(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(req->method, "HEAD") == 0) {
		XSET(h, CURLOPT_NOBODY, 1L);
	} else {
		/* POSTFIELDS makes curl send the body with a Content-Length; CUSTOMREQUEST
		 * only swaps the verb, so PUT/PATCH/DELETE bodies go the same way. */
		if (req->body != NULL || strcmp(req->method, "POST") == 0) {
			XSET(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
			XSET(h, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
		}
		if (strcmp(req->method, "POST") != 0) {
			XSET(h, CURLOPT_CUSTOMREQUEST, req->method);
		}
	}

	/* headers: the caller's lines, then "Expect:" (no 100-continue round trip). curl only
	 * reads slist data, so pointing it at the caller's const strings is safe. */
	for (i = 0; i < req->nheaders; i++) {
		x->hlist[nh].data = (char *)req->headers[i];
		x->hlist[nh].next = &x->hlist[nh + 1];
		nh++;
	}
	x->hlist[nh].data = (char *)"Expect:";
	x->hlist[nh].next = NULL;
	XSET(h, CURLOPT_HTTPHEADER, &x->hlist[0]);

	/* transport policy */
	XSET(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* 1 transfer = 1 conn */
	XSET(h, CURLOPT_NOSIGNAL, 1L);
	XSET(h, CURLOPT_TCP_NODELAY, 1L);
	XSET(h, CURLOPT_TCP_KEEPALIVE, 1L);
	XSET(h, CURLOPT_PROTOCOLS_STR, "http,https");
	XSET(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	XSET(h, CURLOPT_FOLLOWLOCATION, 0L);
	XSET(h, CURLOPT_PATH_AS_IS, 1L); /* send the path exactly as built: no ".." folding */
	/* TLS: verification always on; the provider's CA bundle, client certificate and minimum
	 * version when configured. A proxy only when configured: "" disables proxies, the
	 * environment's included. */
	const sg_tls_conf *tls = req->tls;
	XSET(h, CURLOPT_SSL_VERIFYPEER, 1L);
	XSET(h, CURLOPT_SSL_VERIFYHOST, 2L);
	XSET(h, CURLOPT_SSLVERSION,
	     tls != NULL && tls->min_version >= 13 ? (long)CURL_SSLVERSION_TLSv1_3
	                                           : (long)CURL_SSLVERSION_TLSv1_2);
	if (tls != NULL && tls->ca_file != NULL)
		XSET(h, CURLOPT_CAINFO, tls->ca_file);
	if (tls != NULL && tls->client_cert != NULL) {
		XSET(h, CURLOPT_SSLCERT, tls->client_cert);
		XSET(h, CURLOPT_SSLKEY, tls->client_key);
	}
	XSET(h, CURLOPT_PROXY, tls != NULL && tls->proxy != NULL ? tls->proxy : "");
	XSET(h, CURLOPT_NOPROXY, tls != NULL && tls->proxy != NULL ? "" : "*");
	x->errbuf[0] = '\0';
	XSET(h, CURLOPT_ERRORBUFFER, x->errbuf);
	XSET(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	/* libcurl holds this buffer for every running transfer, idle ones waiting for an answer
	 * included: 16 KiB by default, 1 KiB here. Provider answers are a few KiB, read in a
	 * few more recv calls within one wake-up (measured: no change in CPU per call); at
	 * 10,000 transfers in flight that is 150 MiB less than curl's default. */
	XSET(h, CURLOPT_BUFFERSIZE, c->recv_buffer);
	/* rejects an announced Content-Length over the cap before any byte; chunked bodies are
	 * capped in xfer_body_cb */
	XSET(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);

	/* the response */
	XSET(h, CURLOPT_WRITEFUNCTION, xfer_body_cb);
	XSET(h, CURLOPT_WRITEDATA, x);
	XSET(h, CURLOPT_HEADERFUNCTION, xfer_header_cb);
	XSET(h, CURLOPT_HEADERDATA, x);
	XSET(h, CURLOPT_PRIVATE, x);
	x->sent = false;
	if (!method_idempotent(req->method)) {
		XSET(h, CURLOPT_PREREQFUNCTION, xfer_prereq_cb);
		XSET(h, CURLOPT_PREREQDATA, x);
	}
	return SG_OK;

fail:
	return cc == CURLE_OUT_OF_MEMORY ? SG_ENOMEM : SG_EINTERNAL;
}

#undef XSET

/* ------------------------------------------------------------------ completion */

/* CURLcode -> sg_err for a transfer that ended inside libcurl. */
static sg_err
curl_to_err(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK: return SG_OK;
	case CURLE_OPERATION_TIMEDOUT: return SG_EUP_TIMEOUT;
	case CURLE_FILESIZE_EXCEEDED: return SG_EUP_TOOBIG;
	case CURLE_OUT_OF_MEMORY: return SG_ENOMEM;
	/* could not reach the upstream: nothing was sent */
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT: return SG_EUP_CONNECT;
	/* the certificate did not verify, or the handshake failed: nothing was sent either, but
	 * another try meets the same certificate */
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED: return SG_EUP_TLS;
	/* the exchange broke or was garbled after the request (maybe) left: outcome unknown */
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL: /* scheme checked at submit: this is an HTTP/0.9 reply */
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_AGAIN: return SG_EUP_BROKEN;
	/* a bad URL, option or internal state: our bug */
	default: return SG_EINTERNAL;
	}
}

/* Runs x's callback once and recycles x. x is in no multi and no list. Engine thread. */
static void
xfer_complete(sg_engine *e, struct xfer *x, sg_err err, const sg_http_resp *resp)
{
	sg_engine_cb cb = x->cb;
	void *arg = x->arg;

	atomic_fetch_sub(&e->inflight, 1);
	cb(arg, err, resp);
	xfer_put(e, x);
}

/* A transfer curl reported done (and that is out of the multi): maps the outcome and completes
 * it. Engine thread. */
static void
xfer_finish(sg_engine *e, struct xfer *x, CURLcode cc)
{
	sg_http_resp resp;
	sg_err err;
	long code = 0;

	err = x->err != SG_OK ? x->err : curl_to_err(cc);
	if (err != SG_OK) {
		/* libcurl's words for it (the verify error of a certificate, say) */
		memset(&resp, 0, sizeof(resp));
		resp.error = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(cc);
		xfer_complete(e, x, err, x->err == SG_OK ? &resp : NULL);
		return;
	}
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	memset(&resp, 0, sizeof(resp));
	resp.status = (int)code;
	resp.body = x->body.data != NULL ? x->body.data : "";
	resp.body_len = x->body.len;
	resp.headers = x->hdrs.len > 0 ? x->hdrs.data : NULL;
	resp.headers_len = x->hdrs.len;
	xfer_complete(e, x, SG_OK, &resp);
}

/* ------------------------------------------------------------------ lists */

/* The xfer whose list node n is, or NULL. */
static struct xfer *
xfer_of_link(sg_list_node *n)
{
	return n != NULL ? SG_CONTAINER_OF(n, struct xfer, link) : NULL;
}

/* The xfer whose deadline node n is. */
static struct xfer *
xfer_of_dl(sg_dheap_node *n)
{
	return (struct xfer *)(void *)((char *)n - offsetof(struct xfer, dl));
}

/* ------------------------------------------------------------------ hosts and admission */

/* The host for key, created on first use; NULL when out of memory. A list, not a table: the
 * hosts are the configured providers, a handful, so this is O(hosts), never O(transfers). */
static struct host *
host_get(sg_engine *e, const char *key, size_t len)
{
	struct host *h;

	for (h = e->hosts; h != NULL; h = h->next) {
		if (h->keylen == len && memcmp(h->key, key, len) == 0) {
			return h;
		}
	}
	if ((h = calloc(1, sizeof(*h) + len)) == NULL) {
		return NULL;
	}
	memcpy(h->key, key, len);
	h->keylen = len;
	sg_list_init(&h->wait);
	h->next = e->hosts;
	e->hosts = h;
	return h;
}

static bool
host_room(const sg_engine *e, const struct host *h)
{
	return e->host_cap == 0 || h->active < e->host_cap;
}

static bool
total_room(const sg_engine *e)
{
	return e->total_cap == 0 || e->active < e->total_cap;
}

/* Puts h on the ready FIFO if it has waiters and room of its own (so only the total cap holds
 * them back). */
static void
ready_offer(sg_engine *e, struct host *h)
{
	if (h->in_ready || sg_list_empty(&h->wait) || !host_room(e, h)) {
		return;
	}
	h->in_ready = true;
	h->rnext = NULL;
	if (e->ready_tail != NULL) {
		e->ready_tail->rnext = h;
	} else {
		e->ready_head = h;
	}
	e->ready_tail = h;
}

static struct host *
ready_pop(sg_engine *e)
{
	struct host *h = e->ready_head;

	if (h != NULL) {
		e->ready_head = h->rnext;
		if (e->ready_head == NULL) {
			e->ready_tail = NULL;
		}
		h->rnext = NULL;
		h->in_ready = false;
	}
	return h;
}

/* Hands x to the multi, with what is left of its deadline as CURLOPT_TIMEOUT_MS. A transfer
 * whose deadline has passed completes with SG_EUP_TIMEOUT instead. */
static void
xfer_start(sg_engine *e, struct xfer *x)
{
	int64_t left = x->dl.deadline - sg_now_ms();
	CURLMcode mc;

	if (left <= 0) {
		xfer_complete(e, x, SG_EUP_TIMEOUT, NULL);
		return;
	}
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)left);
	/*
	 * When every connection to the host is busy, skip curl's search of its connection cache:
	 * in 7.88 that search walks every connection to the host, so a burst of N new transfers
	 * cost O(N^2). The estimate only errs towards searching (it never counts a close it
	 * missed), which is what curl would have done anyway.
	 */
	x->fresh = x->host->conns <= x->host->active;
	curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, x->fresh ? 1L : 0L);
	if (x->fresh)
		x->host->conns++; /* counted now, so that the next start sees it */
	if ((mc = curl_multi_add_handle(e->multi, x->easy)) != CURLM_OK) {
		xfer_complete(e, x, mc == CURLM_OUT_OF_MEMORY ? SG_ENOMEM : SG_EINTERNAL, NULL);
		return;
	}
	x->state = X_RUNNING;
	sg_list_push_back(&e->running, &x->link);
	x->host->active++;
	e->active++;
}

/* Makes x wait for a slot of its host. */
static void
wait_add(sg_engine *e, struct xfer *x)
{
	struct host *h = x->host;

	if (sg_dheap_push(&e->wait_heap, &x->dl) != 0) {
		xfer_complete(e, x, SG_ENOMEM, NULL);
		return;
	}
	x->state = X_WAITING;
	sg_list_push_back(&h->wait, &x->link);
	ready_offer(e, h);
}

/* Takes a waiting x off its host's FIFO and the heap. */
static void
wait_del(sg_engine *e, struct xfer *x)
{
	sg_dheap_del(&e->wait_heap, &x->dl);
	sg_list_remove(&x->link);
	x->state = X_IDLE;
}

/* Starts waiting transfers while the total cap allows: one per ready host in turn (round
 * robin), so one busy host cannot starve the others of the shared slots. */
static void
eng_pump(sg_engine *e)
{
	struct host *h;

	while (e->ready_head != NULL && total_room(e)) {
		struct xfer *x;

		h = ready_pop(e);
		if (sg_list_empty(&h->wait) || !host_room(e, h)) {
			continue; /* stale entry */
		}
		x = xfer_of_link(sg_list_first(&h->wait));
		wait_del(e, x);
		xfer_start(e, x);
		ready_offer(e, h); /* back of the line if it has more */
	}
}

/* Routes a newly taken transfer: starts it, or makes it wait behind its host's queue. */
static void
eng_admit(sg_engine *e, struct xfer *x)
{
	struct host *h;

	if ((h = host_get(e, x->hkey, x->hkeylen)) == NULL) {
		xfer_complete(e, x, SG_ENOMEM, NULL);
		return;
	}
	x->host = h;
	if (sg_list_empty(&h->wait) && host_room(e, h) && total_room(e)) {
		xfer_start(e, x);
	} else {
		wait_add(e, x);
	}
}

/* Times out waiting transfers whose deadline has passed. */
static void
eng_expire(sg_engine *e, int64_t now)
{
	sg_dheap_node *n;

	while ((n = sg_dheap_top(&e->wait_heap)) != NULL && n->deadline <= now) {
		struct xfer *x = xfer_of_dl(n);
		wait_del(e, x);
		xfer_complete(e, x, SG_EUP_TIMEOUT, NULL);
	}
}

/* ------------------------------------------------------------------ curl multi callbacks */

/* CURLMOPT_SOCKETFUNCTION: mirrors curl's interest in a socket into the epoll set. */
static int
eng_socket_cb(CURL *easy, curl_socket_t s, int what, void *ud, void *sockp)
{
	sg_engine *e = ud;
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE) {
		/* may already be closed; epoll forgets closed fds by itself */
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	ev.data.fd = s;
	if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, s, &ev) != 0) {
		if (errno != ENOENT || epoll_ctl(e->epfd, EPOLL_CTL_ADD, s, &ev) != 0) {
			return -1; /* curl fails the transfers on this socket */
		}
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one one-shot timer; curl re-arms it after each timeout action. */
static int
eng_timer_cb(CURLM *multi, long timeout_ms, void *ud)
{
	sg_engine *e = ud;

	e->timer_at = timeout_ms < 0 ? -1 : sg_now_ms() + timeout_ms;
	return 0;
}

/* ------------------------------------------------------------------ the engine thread */

/* Completes every transfer curl has finished, then fills the freed slots. */
static void
eng_harvest(sg_engine *e)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
		struct xfer *x;
		char *priv = NULL;
		CURL *h = m->easy_handle;
		CURLcode cc = m->data.result; /* m dies with remove_handle */

		if (m->msg != CURLMSG_DONE) {
			continue;
		}
		curl_easy_getinfo(h, CURLINFO_PRIVATE, &priv);
		x = (struct xfer *)(void *)priv;
		long opened = 0;
		if (!x->fresh) /* a search that found no idle connection opened one */
			curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &opened);
		x->host->conns += (size_t)opened;
		if (cc != CURLE_OK && x->host->conns > 0)
			x->host->conns--; /* a failed transfer most likely lost its connection */
		curl_multi_remove_handle(e->multi, h);
		sg_list_remove(&x->link);
		x->state = X_IDLE;
		x->host->active--;
		e->active--;
		ready_offer(e, x->host);
		xfer_finish(e, x, cc);
	}
	eng_pump(e);
}

/* Takes the submit queue and admits it. Returns false once stopping (the queue is left for
 * eng_shutdown). */
static bool
eng_intake(sg_engine *e)
{
	struct xfer *q = NULL, *x;
	bool stopping;

	pthread_mutex_lock(&e->mtx);
	stopping = e->stopping;
	if (!stopping) {
		q = e->q_head;
		e->q_head = e->q_tail = NULL;
	}
	e->wake_pending = false;
	pthread_mutex_unlock(&e->mtx);
	if (stopping) {
		return false;
	}
	while ((x = q) != NULL) {
		q = x->next;
		x->next = NULL;
		x->state = X_IDLE;
		eng_admit(e, x);
	}
	eng_pump(e); /* a no-op unless a slot is free while someone waits (should not happen) */
	return true;
}

/* Completes everything queued, waiting or running with SG_ESHUTDOWN. stopping is set, so nothing
 * new can be queued (callbacks that submit get SG_ESHUTDOWN). */
static void
eng_shutdown(sg_engine *e)
{
	struct xfer *q, *x;
	struct host *h;

	pthread_mutex_lock(&e->mtx);
	q = e->q_head;
	e->q_head = e->q_tail = NULL;
	pthread_mutex_unlock(&e->mtx);
	while ((x = q) != NULL) {
		q = x->next;
		x->next = NULL;
		xfer_complete(e, x, SG_ESHUTDOWN, NULL);
	}
	for (h = e->hosts; h != NULL; h = h->next) {
		while ((x = xfer_of_link(sg_list_first(&h->wait))) != NULL) {
			wait_del(e, x);
			xfer_complete(e, x, SG_ESHUTDOWN, NULL);
		}
	}
	while ((x = xfer_of_link(sg_list_first(&e->running))) != NULL) {
		curl_multi_remove_handle(e->multi, x->easy);
		sg_list_remove(&x->link);
		x->host->active--;
		e->active--;
		xfer_complete(e, x, SG_ESHUTDOWN, NULL);
	}
}

/* How long epoll_wait may sleep: until curl's timer or the first waiting deadline. */
static int
eng_wait_ms(const sg_engine *e)
{
	const sg_dheap_node *n = sg_dheap_top(&e->wait_heap);
	int64_t at = e->timer_at, d;

	if (n != NULL && (at < 0 || n->deadline < at)) {
		at = n->deadline;
	}
	if (at < 0) {
		return -1;
	}
	d = at - sg_now_ms();
	return d <= 0 ? 0 : d > ENG_MAX_WAIT_MS ? ENG_MAX_WAIT_MS : (int)d;
}

static void *
eng_main(void *arg)
{
	sg_engine *e = arg;
	struct epoll_event evs[ENG_EPOLL_BATCH];
	int running;

	for (;;) {
		int i, n = epoll_wait(e->epfd, evs, ENG_EPOLL_BATCH, eng_wait_ms(e));
		int64_t now;

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			/* cannot happen with a valid epoll fd; stop rather than spin */
			pthread_mutex_lock(&e->mtx);
			e->stopping = true;
			pthread_mutex_unlock(&e->mtx);
			break;
		}
		for (i = 0; i < n; i++) {
			uint32_t ev = evs[i].events;
			int act = 0;

			if (evs[i].data.fd == e->wakefd) {
				uint64_t v; /* one read takes the whole counter */
				(void)!read(e->wakefd, &v, sizeof(v));
				continue;
			}
			/* as libevent does: an error or hang-up wakes both directions, and curl
			 * finds the cause when it reads or writes */
			if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				act |= CURL_CSELECT_IN;
			}
			if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
				act |= CURL_CSELECT_OUT;
			}
			curl_multi_socket_action(e->multi, evs[i].data.fd, act, &running);
		}
		now = sg_now_ms();
		if (e->timer_at >= 0 && now >= e->timer_at) {
			e->timer_at = -1; /* one-shot: curl calls eng_timer_cb again */
			curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		eng_harvest(e);
		eng_expire(e, now);
		if (!eng_intake(e)) {
			break;
		}
	}
	eng_shutdown(e);
	return NULL;
}

/* ------------------------------------------------------------------ public API */

/* Frees everything; the thread is joined (or never ran) and no transfer is left. */
static void
eng_destroy(sg_engine *e)
{
	struct xfer *x;
	struct host *h;

	if (e->multi != NULL) {
		curl_multi_cleanup(e->multi);
	}
	while ((x = e->free) != NULL) {
		e->free = x->next;
		xfer_destroy(x);
	}
	while ((h = e->hosts) != NULL) {
		e->hosts = h->next;
		free(h);
	}
	sg_dheap_fini(&e->wait_heap);
	if (e->epfd >= 0) {
		close(e->epfd);
	}
	if (e->wakefd >= 0) {
		close(e->wakefd);
	}
	pthread_mutex_destroy(&e->mtx);
	curl_global_cleanup();
	free(e);
}

sg_err
sg_engine_new(sg_engine **out, const sg_engine_conf *conf)
{
	sg_engine *e;
	struct epoll_event ev;
	sg_err rv = SG_EINTERNAL;

	*out = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		return SG_ENOMEM;
	}
	e->epfd = e->wakefd = -1;
	e->timer_at = -1;
	sg_list_init(&e->running);
	atomic_init(&e->inflight, 0);
	if (conf != NULL) {
		e->conf = *conf;
	}
	if (e->conf.max_body == 0) {
		e->conf.max_body = ENG_DEF_MAX_BODY;
	}
	if (e->conf.max_headers == 0) {
		e->conf.max_headers = ENG_DEF_MAX_HEADERS;
	}
	if (e->conf.recv_buffer <= 0) {
		e->conf.recv_buffer = ENG_DEF_RECV_BUF;
	}
	if (e->conf.connect_timeout_ms <= 0) {
		e->conf.connect_timeout_ms = ENG_DEF_CONNECT_MS;
	}
	if (e->conf.default_timeout_ms <= 0) {
		e->conf.default_timeout_ms = ENG_DEF_TIMEOUT_MS;
	}
	e->host_cap = e->conf.max_host_conns > 0 ? (size_t)e->conf.max_host_conns : 0;
	e->total_cap = e->conf.max_total_conns > 0 ? (size_t)e->conf.max_total_conns : 0;
	if (pthread_mutex_init(&e->mtx, NULL) != 0) {
		free(e);
		return SG_ENOMEM;
	}
	/* refcounted by libcurl; balanced in eng_destroy */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		pthread_mutex_destroy(&e->mtx);
		free(e);
		return SG_EINTERNAL;
	}
	if ((e->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		goto fail;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = e->wakefd;
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) != 0) {
		goto fail;
	}
	if ((e->multi = curl_multi_init()) == NULL) {
		rv = SG_ENOMEM;
		goto fail;
	}
	/* the caps are enforced by admission (eng_admit); the multi's own are a backstop */
	if (curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, eng_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e) != CURLM_OK ||
	    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, eng_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e) != CURLM_OK ||
	    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, e->conf.max_host_conns) !=
	            CURLM_OK ||
	    curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, e->conf.max_total_conns) !=
	            CURLM_OK) {
		goto fail;
	}
	if (e->conf.max_conns_cache > 0 && curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS,
	                                                     e->conf.max_conns_cache) != CURLM_OK) {
		goto fail;
	}
	if (pthread_create(&e->thr, NULL, eng_main, e) != 0) {
		goto fail;
	}
	e->thr_started = true;
	*out = e;
	return SG_OK;

fail:
	eng_destroy(e);
	return rv;
}

void
sg_engine_stop(sg_engine *e)
{
	uint64_t one = 1;

	if (e == NULL) {
		return;
	}
	pthread_mutex_lock(&e->mtx);
	e->stopping = true;
	pthread_mutex_unlock(&e->mtx);
	if (e->thr_started) {
		/* an eventfd write fails only when the counter would overflow: awake anyway */
		(void)!write(e->wakefd, &one, sizeof(one));
		pthread_join(e->thr, NULL);
		e->thr_started = false;
	}
}

void
sg_engine_free(sg_engine *e)
{
	if (e == NULL) {
		return;
	}
	sg_engine_stop(e);
	eng_destroy(e);
}

sg_err
sg_engine_submit(sg_engine *e, const sg_http_req *req, int64_t deadline_ms, sg_engine_cb cb,
                 void *arg)
{
	struct xfer *x;
	int64_t now;
	size_t hkeylen = 0;
	sg_err rv;
	bool wake;
	uint64_t one = 1;

	if (e == NULL || cb == NULL) {
		return SG_EINTERNAL;
	}
	if ((rv = req_check(req, &hkeylen)) != SG_OK) {
		return rv;
	}
	now = sg_now_ms();
	if (deadline_ms == 0) {
		deadline_ms = now + e->conf.default_timeout_ms;
	} else if (deadline_ms <= now) {
		return SG_EDEADLINE;
	}

	/* stopping is decided under the lock that guards the queue, below */
	if ((x = xfer_get(e)) == NULL) {
		return SG_ENOMEM;
	}
	x->cb = cb;
	x->arg = arg;
	x->dl.deadline = deadline_ms;
	x->hkey = req->url;
	x->hkeylen = hkeylen;
	x->err = SG_OK;
	if ((rv = xfer_setup(x, req)) != SG_OK) {
		xfer_put(e, x);
		return rv;
	}

	pthread_mutex_lock(&e->mtx);
	if (e->stopping) {
		pthread_mutex_unlock(&e->mtx);
		xfer_put(e, x);
		return SG_ESHUTDOWN;
	}
	atomic_fetch_add(&e->inflight, 1);
	x->state = X_QUEUED;
	x->next = NULL;
	if (e->q_tail != NULL) {
		e->q_tail->next = x;
	} else {
		e->q_head = x;
	}
	e->q_tail = x;
	wake = !e->wake_pending;
	e->wake_pending = true;
	pthread_mutex_unlock(&e->mtx);
	if (wake) {
		(void)!write(e->wakefd, &one, sizeof(one));
	}
	return SG_OK;
}

size_t
sg_engine_inflight(sg_engine *e)
{
	return e != NULL ? atomic_load(&e->inflight) : 0;
}
