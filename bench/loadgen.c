/*
 * loadgen.c - load generator for shipgated (and for the raw nng echo baseline).
 *
 * Many nng req0 contexts over a few sockets (resend off: NNG_OPT_REQ_RESENDTIME infinite, see
 * STYLE.md: with resend on, thousands of contexts make nng 1.5.2's resend timer O(n^2)).
 *
 *   closed loop  each of --contexts N sends, waits for the reply, sends again; latency is
 *                measured from the actual send.
 *   open loop    --rate R: the i-th request is due at start + i/R whatever happened before;
 *                a free context sends it as soon as it is due (or as soon as one frees up), and
 *                latency is measured from the time it was DUE, not when it was sent, so a slow
 *                period is not hidden (no coordinated omission). Requests still unsent when the
 *                run ends are reported as "unsent" (the rate was not sustained).
 *
 * Bounded by --duration (after --warmup, which is not recorded) or by --requests (count; every
 * context starts at once, which is how the 10,000-in-flight scenario fires). Each reply is checked:
 * the RpcReply's status code (errors counted per code, with the first reason seen), and for Track
 * whether TrackResponse.cache.hit is set. --echo skips all decoding (the raw nng baseline).
 *
 * Output: a human summary on stderr; with --json, one JSON object on stdout.
 *
 * Threads: main (setup, open-loop dispatcher, waiting), nng's callback threads (replies and the
 * next send), the /proc sampler. Shared counters are atomics; the free list is under a mutex.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "hist.h"
#include "pbjson.h"
#include "procstat.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"

#define MAX_URLS    8
#define MAX_CODES   17 /* gRPC codes 0..16 */
#define MAX_NNG_ERR 64

/* ------------------------------------------------------------------ types */

enum lg_method { LG_TRACK, LG_CREATE, LG_HEALTH };

enum client_state {
	C_IDLE, /* nothing posted */
	C_SEND, /* nng_ctx_send posted */
	C_RECV, /* nng_ctx_recv posted */
};

struct lg;

/* One nng context and the request it has in flight. */
struct client {
	struct lg *lg;           /* owner */
	nng_ctx ctx;             /* req0 context on one of lg->socks */
	nng_aio *aio;            /* its one aio (send, then receive) */
	enum client_state state; /* what is posted */
	uint64_t t0;             /* latency origin: actual send (closed) or due time (open) */
	bool in_window;          /* sent after the warm-up: recorded */
	struct client *next;     /* free list (open loop) */
};

/* The whole run. */
struct lg {
	/* configuration */
	const char *urls[MAX_URLS]; /* gateway (or echo) URLs; sockets cycle through them */
	int nurls;                  /* entries in urls */
	int ncontexts;              /* contexts (calls in flight at most) */
	int nsockets;               /* req0 sockets (one TCP connection each) */
	double rate;                /* open loop: requests per second; 0: closed loop */
	double duration_s;          /* measured time (after warm-up) */
	double warmup_s;            /* unrecorded time before it */
	uint64_t requests;          /* count bound; 0: duration bound */
	int64_t deadline_ms;        /* RpcRequest.deadline_ms */
	bool echo;                  /* raw baseline: do not decode replies */
	enum lg_method method;      /* what is sent */
	const char *label;          /* free text in the output */
	const char *unique;         /* Track: ids <unique>-0, -1, ... (one per call), or NULL */
	nng_tls_config *tls;        /* tls+tcp:// URLs: verify the server with this, or NULL */
	int provider;               /* Track: the provider */
	int pid;                    /* process to sample in /proc, or 0 */
	/* the request */
	uint8_t *req;       /* encoded RpcRequest (Track, Health) */
	size_t req_len;     /* bytes in req */
	uint8_t *payload;   /* encoded CreateOrderRequest (CreateOrder) */
	size_t payload_len; /* bytes in payload */
	/* run state */
	nng_socket *socks;            /* nsockets sockets */
	struct client *clients;       /* ncontexts clients */
	uint64_t t_start;             /* ns: the run starts (warm-up included) */
	uint64_t t_window;            /* ns: recording starts */
	uint64_t t_end;               /* ns: no new request after this (duration bound) */
	uint64_t period_ns;           /* open loop: 1e9 / rate */
	atomic_bool stopping;         /* no more sends */
	atomic_uint_fast64_t sent;    /* requests sent */
	atomic_uint_fast64_t claimed; /* count bound: requests claimed by a client */
	atomic_uint_fast64_t keyseq;  /* idempotency key counter */
	atomic_int outstanding;       /* requests in flight (a client that finishes one and sends
	                                 the next keeps it up: it only drops when one goes idle) */
	pthread_mutex_t mtx;          /* guards free, issued, and the done condition */
	pthread_cond_t cv;            /* outstanding reached 0 */
	struct client *free;          /* open loop: idle clients */
	uint64_t issued;              /* open loop: requests taken so far (index of the next) */
	/* results */
	bh_hist *hist;                              /* latency of OK replies in the window */
	atomic_uint_fast64_t ok_window;             /* OK replies in the window */
	atomic_uint_fast64_t replies;               /* replies of any status */
	atomic_uint_fast64_t codes[MAX_CODES];      /* replies per status code */
	atomic_uint_fast64_t nng_errs[MAX_NNG_ERR]; /* transport failures per nng error */
	atomic_uint_fast64_t cache_hits;            /* Track replies with cache.hit */
	atomic_uint_fast64_t reply_bytes;           /* last reply size seen */
	atomic_uint_fast64_t t_last;                /* ns: last completion */
	atomic_uint_fast64_t backlog_max;           /* open loop: most requests due and unsent */
	char reasons[MAX_CODES][64];                /* first reason seen per code */
	atomic_bool reason_set[MAX_CODES];          /* reasons[i] is written */
};

/* The name of status code c, from the contract's enum. */
static const char *
code_name(int c)
{
	const ProtobufCEnumValue *v =
	        protobuf_c_enum_descriptor_get_value(&shipgate__v1__code__descriptor, c);
	return v != NULL ? v->name : "?";
}

static void client_cb(void *arg);

/* ------------------------------------------------------------------ reply decoding (wire) */

/* Reads a varint at *p (< end). Returns 0, or -1 on truncation. */
static int
get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/*
 * Finds field `want` (length-delimited) in the message buf[0..len): stores its bytes and returns
 * 1; 0 when absent; -1 when the bytes are not a protobuf message. A varint field `want` is
 * returned in *vint with *data NULL. The last occurrence wins, as in protobuf.
 */
static int
wire_find(const uint8_t *buf, size_t len, uint32_t want, const uint8_t **data, size_t *dlen,
          uint64_t *vint)
{
	const uint8_t *p = buf, *end = buf + len;
	int found = 0;
	while (p < end) {
		uint64_t key, v;
		if (get_varint(&p, end, &key) != 0)
			return -1;
		uint32_t field = (uint32_t)(key >> 3), type = key & 7;
		switch (type) {
		case 0:
			if (get_varint(&p, end, &v) != 0)
				return -1;
			if (field == want) {
				*data = NULL;
				*vint = v;
				found = 1;
			}
			break;
		case 1:
			if (end - p < 8)
				return -1;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return -1;
			p += 4;
			break;
		case 2:
			if (get_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
				return -1;
			if (field == want) {
				*data = p;
				*dlen = (size_t)v;
				found = 1;
			}
			p += v;
			break;
		default: return -1;
		}
	}
	return found;
}

/*
 * Checks one RpcReply: its status code (and reason) and, for Track, TrackResponse.cache.hit.
 * Returns the code, or -1 when the reply is not an RpcReply.
 */
static int
check_reply(struct lg *lg, const uint8_t *buf, size_t len)
{
	const uint8_t *st = NULL, *pl = NULL, *d = NULL;
	size_t stlen = 0, pllen = 0, dlen = 0;
	uint64_t v = 0, code = 0;
	int r;

	if ((r = wire_find(buf, len, 2, &st, &stlen, &v)) < 0 || (r == 1 && st == NULL))
		return -1;
	if (r == 1 && (r = wire_find(st, stlen, 1, &d, &dlen, &code)) < 0)
		return -1;
	if (code >= MAX_CODES)
		code = 2; /* UNKNOWN */
	if (code != 0) {
		/* Status.detail (3) -> ErrorDetail.reason (1) */
		const uint8_t *det = NULL, *rs = NULL;
		size_t detlen = 0, rslen = 0;
		if (!atomic_load(&lg->reason_set[code]) &&
		    wire_find(st, stlen, 3, &det, &detlen, &v) == 1 && det != NULL &&
		    wire_find(det, detlen, 1, &rs, &rslen, &v) == 1 && rs != NULL) {
			bool expect = false;
			if (atomic_compare_exchange_strong(&lg->reason_set[code], &expect, true))
				snprintf(lg->reasons[code], sizeof(lg->reasons[code]), "%.*s",
				         (int)(rslen < 63 ? rslen : 63), (const char *)rs);
		}
		return (int)code;
	}
	if (wire_find(buf, len, 3, &pl, &pllen, &v) != 1 || pl == NULL)
		return lg->method == LG_HEALTH ? 0 : 2; /* OK without the payload: UNKNOWN */
	if (lg->method == LG_TRACK) {
		/* TrackResponse.cache (2) -> CacheInfo.hit (1) */
		const uint8_t *ci = NULL;
		size_t cilen = 0;
		uint64_t hit = 0;
		if (wire_find(pl, pllen, 2, &ci, &cilen, &v) == 1 && ci != NULL &&
		    wire_find(ci, cilen, 1, &d, &dlen, &hit) == 1 && d == NULL && hit)
			atomic_fetch_add_explicit(&lg->cache_hits, 1, memory_order_relaxed);
	}
	return 0;
}

/* ------------------------------------------------------------------ requests */

/* Packs an RpcRequest for method with payload into a new malloc'd buffer. */
static uint8_t *
pack_envelope(const char *method, int64_t deadline_ms, const char *key, const uint8_t *payload,
              size_t plen, size_t *len)
{
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	env.method = (char *)method;
	env.deadline_ms = deadline_ms;
	env.idempotency_key = (char *)(key ? key : "");
	env.payload.data = (uint8_t *)payload;
	env.payload.len = plen;
	*len = shipgate__v1__rpc_request__get_packed_size(&env);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (buf != NULL)
		shipgate__v1__rpc_request__pack(&env, buf);
	return buf;
}

/* The next request's message, or NULL when out of memory. Any thread. */
static nng_msg *
make_request(struct lg *lg, struct client *c)
{
	nng_msg *m;
	if (lg->method == LG_TRACK && lg->unique != NULL) {
		/* a fresh id per call: every call misses every cache */
		char id[128];
		uint8_t payload[256], buf[512];
		snprintf(id, sizeof(id), "%.64s-%" PRIuFAST64, lg->unique,
		         atomic_fetch_add_explicit(&lg->keyseq, 1, memory_order_relaxed));
		Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
		tr.provider = (Shipgate__V1__Provider)lg->provider;
		if (lg->provider == SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE)
			tr.tracking_number = id;
		else
			tr.order_id = id;
		Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
		env.method = "/shipgate.v1.Shipgate/Track";
		env.deadline_ms = lg->deadline_ms;
		env.payload.data = payload;
		env.payload.len = shipgate__v1__track_request__pack(&tr, payload);
		size_t n = shipgate__v1__rpc_request__pack(&env, buf);
		if (nng_msg_alloc(&m, n) != 0)
			return NULL;
		memcpy(nng_msg_body(m), buf, n);
		return m;
	}
	if (lg->method != LG_CREATE) {
		if (nng_msg_alloc(&m, lg->req_len) != 0)
			return NULL;
		memcpy(nng_msg_body(m), lg->req, lg->req_len);
		return m;
	}
	/* CreateOrder: a fresh idempotency key per call, so that each one goes upstream. */
	char key[64];
	snprintf(key, sizeof(key), "lg-%d-%" PRIuFAST64, (int)getpid(),
	         atomic_fetch_add_explicit(&lg->keyseq, 1, memory_order_relaxed));
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	env.method = "/shipgate.v1.Shipgate/CreateOrder";
	env.deadline_ms = lg->deadline_ms;
	env.idempotency_key = key;
	env.payload.data = lg->payload;
	env.payload.len = lg->payload_len;
	size_t n = shipgate__v1__rpc_request__get_packed_size(&env);
	if (nng_msg_alloc(&m, n) != 0)
		return NULL;
	shipgate__v1__rpc_request__pack(&env, nng_msg_body(m));
	(void)c;
	return m;
}

/* ------------------------------------------------------------------ the loop */

static uint64_t
due_count(const struct lg *lg, uint64_t now)
{
	if (now < lg->t_start)
		return 0;
	return (now - lg->t_start) / lg->period_ns + 1;
}

/*
 * Sends one request on c with latency origin t0. Any thread; c is idle. Returns true when the
 * send was posted: c then belongs to its callback, and the caller must not touch it again (the
 * reply may already be handled on another thread).
 */
static bool
client_send(struct client *c, uint64_t t0)
{
	struct lg *lg = c->lg;
	nng_msg *m = make_request(lg, c);
	if (m == NULL) {
		atomic_fetch_add(&lg->nng_errs[NNG_ENOMEM], 1);
		c->state = C_IDLE;
		return false;
	}
	c->t0 = t0;
	c->in_window = lg->requests > 0 || t0 >= lg->t_window;
	atomic_fetch_add_explicit(&lg->sent, 1, memory_order_relaxed);
	c->state = C_SEND;
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
	return true;
}

/* c has finished a request: send the next one, or go idle. Any thread. */
static void
client_next(struct client *c)
{
	struct lg *lg = c->lg;
	uint64_t now = bh_now_ns();

	if (lg->rate <= 0) {
		/* closed loop */
		bool more;
		if (lg->requests > 0)
			more = atomic_fetch_add(&lg->claimed, 1) < lg->requests;
		else
			more = !atomic_load(&lg->stopping) && now < lg->t_end;
		if (more && client_send(c, bh_now_ns()))
			return;
		c->state = C_IDLE;
	} else {
		/* open loop: take the oldest due request, if any */
		pthread_mutex_lock(&lg->mtx);
		bool go = !atomic_load(&lg->stopping) && lg->issued < due_count(lg, now) &&
		          (lg->t_start + lg->issued * lg->period_ns) < lg->t_end;
		uint64_t idx = lg->issued;
		if (go)
			lg->issued++;
		pthread_mutex_unlock(&lg->mtx);
		if (go && client_send(c, lg->t_start + idx * lg->period_ns))
			return;
		/* idle: the free list hands c to the dispatcher thread, so this is the last
		 * touch of c here */
		c->state = C_IDLE;
		pthread_mutex_lock(&lg->mtx);
		c->next = lg->free;
		lg->free = c;
		pthread_mutex_unlock(&lg->mtx);
	}
	if (atomic_fetch_sub(&lg->outstanding, 1) == 1) {
		pthread_mutex_lock(&lg->mtx);
		pthread_cond_broadcast(&lg->cv);
		pthread_mutex_unlock(&lg->mtx);
	}
}

static void
record_nng_err(struct lg *lg, int rv)
{
	atomic_fetch_add(&lg->nng_errs[rv > 0 && rv < MAX_NNG_ERR ? rv : 0], 1);
}

static void
client_cb(void *arg)
{
	struct client *c = arg;
	struct lg *lg = c->lg;
	int rv = nng_aio_result(c->aio);

	switch (c->state) {
	case C_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
			record_nng_err(lg, rv);
			break;
		}
		c->state = C_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	case C_RECV: {
		uint64_t now = bh_now_ns();
		if (rv != 0) {
			record_nng_err(lg, rv);
			break;
		}
		nng_msg *m = nng_aio_get_msg(c->aio);
		nng_aio_set_msg(c->aio, NULL);
		size_t len = nng_msg_len(m);
		int code = lg->echo ? 0 : check_reply(lg, nng_msg_body(m), len);
		nng_msg_free(m);
		atomic_store_explicit(&lg->reply_bytes, len, memory_order_relaxed);
		atomic_fetch_add_explicit(&lg->replies, 1, memory_order_relaxed);
		uint64_t last = atomic_load_explicit(&lg->t_last, memory_order_relaxed);
		while (now > last && !atomic_compare_exchange_weak(&lg->t_last, &last, now))
			;
		if (code < 0) {
			atomic_fetch_add(&lg->codes[2], 1);
			if (!atomic_exchange(&lg->reason_set[2], true))
				snprintf(lg->reasons[2], sizeof(lg->reasons[2]), "NOT_AN_RPCREPLY");
			break;
		}
		atomic_fetch_add_explicit(&lg->codes[code], 1, memory_order_relaxed);
		if (code == 0 && c->in_window) {
			bh_record(lg->hist, now - c->t0);
			atomic_fetch_add_explicit(&lg->ok_window, 1, memory_order_relaxed);
		}
		break;
	}
	default: return;
	}
	client_next(c);
}

/* ------------------------------------------------------------------ setup */

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: loadgen [options]\n"
	        "  --url URL            gateway or echo server (repeatable; default "
	        "tcp://127.0.0.1:7400)\n"
	        "  --contexts N         req contexts = requests in flight at most (1)\n"
	        "  --sockets N          req0 sockets, one connection each (ceil(contexts/1000))\n"
	        "  --rate R             open loop at R requests/s (default: closed loop)\n"
	        "  --duration S         measured seconds (5)\n"
	        "  --warmup S           unrecorded seconds first (1)\n"
	        "  --requests N         count bound instead: N requests, all contexts start at "
	        "once\n"
	        "  --method M           track | create | health (track)\n"
	        "  --provider P         boscod | bosonline | biteship | fuuffy (bosonline)\n"
	        "  --id ID              the provider's tracking id (IDE987651421)\n"
	        "  --bypass-cache       TrackRequest.bypass_cache = true\n"
	        "  --unique-ids PREFIX  Track: the id PREFIX-<n>, a new n per call (0, 1, ...)\n"
	        "  --tls-ca FILE        tls+tcp:// URLs: the PEM CA the server must chain to\n"
	        "  --create-json FILE   CreateOrderRequest as proto3 JSON (--method create)\n"
	        "  --deadline-ms MS     RpcRequest.deadline_ms (10000)\n"
	        "  --echo               raw nng baseline: replies are counted, not decoded\n"
	        "  --pid PID            sample /proc/PID (RSS, threads, CPU) during the run\n"
	        "  --label TEXT         name of the run in the output\n"
	        "  --json               print one JSON object on stdout\n"
	        "  --dump-reply FILE    send one request, write the RpcReply bytes, exit\n"
	        "  --dump-payload FILE  send one request, write RpcReply.payload bytes, exit\n");
}

static int
provider_of(const char *name)
{
	static const char *const names[] = {"", "boscod", "bosonline", "biteship", "fuuffy"};
	for (int i = 1; i < 5; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t r;
	while (buf != NULL && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

static int
write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return -1;
	size_t w = fwrite(buf, 1, len, f);
	return fclose(f) == 0 && w == len ? 0 : -1;
}

static nng_tls_config *tls_conf; /* --tls-ca: for tls+tcp:// URLs */

static int
open_socket(nng_socket *s, const char *url)
{
	int rv;
	if ((rv = nng_req0_open(s)) != 0)
		return rv;
	/* resend off: the benchmark retries nothing, and resend is O(n^2) with many contexts */
	if ((rv = nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 16u << 20)) != 0)
		return rv;
	/* synchronous dial, retried for 3 s (the server may still be starting) */
	for (int i = 0; i < 60; i++) {
		if (strncmp(url, "tls+tcp://", 10) == 0) {
			nng_dialer d;
			if (tls_conf == NULL)
				return NNG_EINVAL; /* --tls-ca FILE */
			if ((rv = nng_dialer_create(&d, *s, url)) == 0 &&
			    (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls_conf)) == 0 &&
			    (rv = nng_dialer_start(d, 0)) == 0)
				return 0;
			if (rv != 0)
				nng_dialer_close(d);
		} else if ((rv = nng_dial(*s, url, NULL, 0)) == 0) {
			return 0;
		}
		nng_msleep(50);
	}
	return rv;
}

/* --dump-reply / --dump-payload: one synchronous call. Returns an exit code. */
static int
dump_one(struct lg *lg, const char *reply_path, const char *payload_path)
{
	nng_socket s;
	nng_msg *m = NULL;
	int rv;
	if ((rv = open_socket(&s, lg->urls[0])) != 0) {
		fprintf(stderr, "loadgen: %s: %s\n", lg->urls[0], nng_strerror(rv));
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)lg->deadline_ms + 2000);
	if ((m = make_request(lg, NULL)) == NULL || (rv = nng_sendmsg(s, m, 0)) != 0 ||
	    (rv = nng_recvmsg(s, &m, 0)) != 0) {
		fprintf(stderr, "loadgen: dump: %s\n", nng_strerror(rv));
		nng_close(s);
		return 1;
	}
	const uint8_t *body = nng_msg_body(m), *pl = NULL;
	size_t len = nng_msg_len(m), pllen = 0;
	uint64_t v;
	int code = check_reply(lg, body, len);
	int rc = 0;
	if (code != 0) {
		fprintf(stderr, "loadgen: dump: status %s (%s)\n",
		        code > 0 ? code_name(code) : "not an RpcReply",
		        code > 0 ? lg->reasons[code] : "");
		rc = 1;
	} else if (reply_path != NULL && write_file(reply_path, body, len) != 0) {
		rc = 1;
	} else if (payload_path != NULL &&
	           (wire_find(body, len, 3, &pl, &pllen, &v) != 1 || pl == NULL ||
	            write_file(payload_path, pl, pllen) != 0)) {
		rc = 1;
	}
	if (rc == 0)
		fprintf(stderr, "loadgen: dump: reply %zu bytes, payload %zu bytes\n", len, pllen);
	nng_msg_free(m);
	nng_close(s);
	return rc;
}

/* ------------------------------------------------------------------ main */

int
main(int argc, char **argv)
{
	static struct lg lgs;
	struct lg *lg = &lgs;
	const char *provider = "bosonline", *id = "IDE987651421", *create_json = NULL;
	const char *dump_reply = NULL, *dump_payload = NULL;
	bool bypass = false, json = false;
	int rc = 1, rv;

	lg->ncontexts = 1;
	lg->duration_s = 5;
	lg->warmup_s = 1;
	lg->deadline_ms = 10000;
	lg->label = "";
	enum {
		O_URL = 256,
		O_CONTEXTS,
		O_SOCKETS,
		O_RATE,
		O_DURATION,
		O_WARMUP,
		O_REQUESTS,
		O_METHOD,
		O_PROVIDER,
		O_ID,
		O_BYPASS,
		O_UNIQUE,
		O_TLS_CA,
		O_CREATE,
		O_DEADLINE,
		O_ECHO,
		O_PID,
		O_LABEL,
		O_JSON,
		O_DUMP_REPLY,
		O_DUMP_PAYLOAD,
		O_HELP
	};
	static const struct option opts[] = {
	        {"url", required_argument, NULL, O_URL},
	        {"contexts", required_argument, NULL, O_CONTEXTS},
	        {"sockets", required_argument, NULL, O_SOCKETS},
	        {"rate", required_argument, NULL, O_RATE},
	        {"duration", required_argument, NULL, O_DURATION},
	        {"warmup", required_argument, NULL, O_WARMUP},
	        {"requests", required_argument, NULL, O_REQUESTS},
	        {"method", required_argument, NULL, O_METHOD},
	        {"provider", required_argument, NULL, O_PROVIDER},
	        {"id", required_argument, NULL, O_ID},
	        {"bypass-cache", no_argument, NULL, O_BYPASS},
	        {"unique-ids", required_argument, NULL, O_UNIQUE},
	        {"tls-ca", required_argument, NULL, O_TLS_CA},
	        {"create-json", required_argument, NULL, O_CREATE},
	        {"deadline-ms", required_argument, NULL, O_DEADLINE},
	        {"echo", no_argument, NULL, O_ECHO},
	        {"pid", required_argument, NULL, O_PID},
	        {"label", required_argument, NULL, O_LABEL},
	        {"json", no_argument, NULL, O_JSON},
	        {"dump-reply", required_argument, NULL, O_DUMP_REPLY},
	        {"dump-payload", required_argument, NULL, O_DUMP_PAYLOAD},
	        {"help", no_argument, NULL, O_HELP},
	        {NULL, 0, NULL, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_URL:
			if (lg->nurls == MAX_URLS) {
				fprintf(stderr, "loadgen: at most %d --url\n", MAX_URLS);
				return 2;
			}
			lg->urls[lg->nurls++] = optarg;
			break;
		case O_CONTEXTS: lg->ncontexts = atoi(optarg); break;
		case O_SOCKETS: lg->nsockets = atoi(optarg); break;
		case O_RATE: lg->rate = atof(optarg); break;
		case O_DURATION: lg->duration_s = atof(optarg); break;
		case O_WARMUP: lg->warmup_s = atof(optarg); break;
		case O_REQUESTS: lg->requests = strtoull(optarg, NULL, 10); break;
		case O_METHOD:
			lg->method = strcmp(optarg, "create") == 0   ? LG_CREATE
			             : strcmp(optarg, "health") == 0 ? LG_HEALTH
			                                             : LG_TRACK;
			if (lg->method == LG_TRACK && strcmp(optarg, "track") != 0) {
				fprintf(stderr, "loadgen: unknown method %s\n", optarg);
				return 2;
			}
			break;
		case O_PROVIDER: provider = optarg; break;
		case O_ID: id = optarg; break;
		case O_BYPASS: bypass = true; break;
		case O_UNIQUE: lg->unique = optarg; break;
		case O_TLS_CA:
			if (nng_tls_config_alloc(&tls_conf, NNG_TLS_MODE_CLIENT) != 0 ||
			    nng_tls_config_ca_file(tls_conf, optarg) != 0 ||
			    nng_tls_config_auth_mode(tls_conf, NNG_TLS_AUTH_MODE_REQUIRED) != 0) {
				fprintf(stderr, "loadgen: --tls-ca %s: not a PEM CA file\n",
				        optarg);
				return 2;
			}
			break;
		case O_CREATE: create_json = optarg; break;
		case O_DEADLINE: lg->deadline_ms = atoll(optarg); break;
		case O_ECHO: lg->echo = true; break;
		case O_PID: lg->pid = atoi(optarg); break;
		case O_LABEL: lg->label = optarg; break;
		case O_JSON: json = true; break;
		case O_DUMP_REPLY: dump_reply = optarg; break;
		case O_DUMP_PAYLOAD: dump_payload = optarg; break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || lg->ncontexts < 1 || lg->ncontexts > 100000 || lg->rate < 0 ||
	    lg->duration_s <= 0 || lg->warmup_s < 0) {
		usage(stderr);
		return 2;
	}
	if (lg->nurls == 0)
		lg->urls[lg->nurls++] = "tcp://127.0.0.1:7400";
	if (lg->nsockets <= 0)
		lg->nsockets = (lg->ncontexts + 999) / 1000;
	if (lg->nsockets > lg->ncontexts)
		lg->nsockets = lg->ncontexts;

	/* ---- the request */
	int prov = provider_of(provider);
	if (prov < 0) {
		fprintf(stderr, "loadgen: unknown provider %s\n", provider);
		return 2;
	}
	lg->provider = prov;
	if (lg->method == LG_TRACK) {
		Shipgate__V1__TrackRequest tr = SHIPGATE__V1__TRACK_REQUEST__INIT;
		tr.provider = (Shipgate__V1__Provider)prov;
		if (prov == SHIPGATE__V1__PROVIDER__PROVIDER_BOSONLINE)
			tr.tracking_number = (char *)id;
		else
			tr.order_id = (char *)id;
		tr.bypass_cache = bypass;
		size_t n = shipgate__v1__track_request__get_packed_size(&tr);
		uint8_t *p = malloc(n ? n : 1);
		shipgate__v1__track_request__pack(&tr, p);
		lg->req = pack_envelope("/shipgate.v1.Shipgate/Track", lg->deadline_ms, NULL, p, n,
		                        &lg->req_len);
		free(p);
	} else if (lg->method == LG_HEALTH) {
		lg->req = pack_envelope("/shipgate.v1.Shipgate/Health", lg->deadline_ms, NULL, NULL,
		                        0, &lg->req_len);
	} else {
		size_t tlen;
		char *text = create_json ? read_file(create_json, &tlen) : NULL;
		ProtobufCMessage *msg = NULL;
		sgc_pbjson_error perr;
		if (text == NULL) {
			fprintf(stderr, "loadgen: --method create needs --create-json FILE\n");
			return 2;
		}
		if (sgc_pbjson_decode(text, tlen, &shipgate__v1__create_order_request__descriptor,
		                      NULL, 0, &msg, &perr) != 0) {
			fprintf(stderr, "loadgen: %s: %s: %s\n", create_json, perr.path, perr.text);
			free(text);
			return 2;
		}
		free(text);
		lg->payload_len = protobuf_c_message_get_packed_size(msg);
		lg->payload = malloc(lg->payload_len ? lg->payload_len : 1);
		protobuf_c_message_pack(msg, lg->payload);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	if (dump_reply != NULL || dump_payload != NULL)
		return dump_one(lg, dump_reply, dump_payload);

	/* ---- sockets and contexts */
	lg->hist = bh_new();
	pthread_mutex_init(&lg->mtx, NULL);
	pthread_cond_init(&lg->cv, NULL);
	lg->socks = calloc((size_t)lg->nsockets, sizeof(*lg->socks));
	lg->clients = calloc((size_t)lg->ncontexts, sizeof(*lg->clients));
	if (lg->hist == NULL || lg->socks == NULL || lg->clients == NULL) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	for (int i = 0; i < lg->nsockets; i++) {
		const char *url = lg->urls[i % lg->nurls];
		if ((rv = open_socket(&lg->socks[i], url)) != 0) {
			fprintf(stderr, "loadgen: dial %s: %s\n", url, nng_strerror(rv));
			return 1;
		}
	}
	/* how long a reply may take: the deadline, plus slack for the gateway to answer it */
	nng_duration recv_to = (nng_duration)(lg->deadline_ms > 0 ? lg->deadline_ms : 30000) + 5000;
	for (int i = 0; i < lg->ncontexts; i++) {
		struct client *c = &lg->clients[i];
		c->lg = lg;
		if ((rv = nng_aio_alloc(&c->aio, client_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->ctx, lg->socks[i % lg->nsockets])) != 0) {
			fprintf(stderr, "loadgen: context %d: %s\n", i, nng_strerror(rv));
			return 1;
		}
		nng_aio_set_timeout(c->aio, recv_to);
	}

	/* ---- run */
	ps_sampler ps;
	if (ps_start(&ps, lg->pid, 10) != 0)
		fprintf(stderr, "loadgen: cannot read /proc/%d\n", lg->pid);
	double cpu0 = ps_self_cpu_s();
	lg->t_start = bh_now_ns();
	if (lg->requests > 0) {
		lg->t_window = lg->t_start;
		lg->t_end = UINT64_MAX;
	} else {
		lg->t_window = lg->t_start + (uint64_t)(lg->warmup_s * 1e9);
		lg->t_end = lg->t_window + (uint64_t)(lg->duration_s * 1e9);
	}
	if (lg->rate <= 0) {
		int n = lg->ncontexts;
		if (lg->requests > 0 && (uint64_t)n > lg->requests)
			n = (int)lg->requests;
		atomic_store(&lg->outstanding, n);
		atomic_store(&lg->claimed, (uint64_t)n);
		for (int i = 0; i < n; i++)
			if (!client_send(&lg->clients[i], bh_now_ns()))
				client_next(&lg->clients[i]);
	} else {
		/* open loop: every client starts idle; this thread hands out due requests */
		lg->period_ns = (uint64_t)(1e9 / lg->rate);
		if (lg->period_ns == 0)
			lg->period_ns = 1;
		for (int i = lg->ncontexts - 1; i >= 0; i--) {
			lg->clients[i].next = lg->free;
			lg->free = &lg->clients[i];
		}
		/* requests due before t_end; after t_end the ones still unsent are sent as
		 * soon as a context frees up (2 s at most), so that the end of the window does not
		 * drop them */
		uint64_t due_total = (lg->t_end - lg->t_start + lg->period_ns - 1) / lg->period_ns;
		for (;;) {
			uint64_t now = bh_now_ns();
			if (now >= lg->t_end) {
				pthread_mutex_lock(&lg->mtx);
				bool all = lg->issued >= due_total;
				pthread_mutex_unlock(&lg->mtx);
				if (all || now >= lg->t_end + 2000000000ull)
					break;
			}
			for (;;) {
				pthread_mutex_lock(&lg->mtx);
				uint64_t due = due_count(lg, now);
				struct client *c = NULL;
				uint64_t idx = lg->issued;
				if (lg->issued < due) {
					uint64_t backlog = due - lg->issued;
					if (backlog > atomic_load(&lg->backlog_max))
						atomic_store(&lg->backlog_max, backlog);
					if ((c = lg->free) != NULL) {
						lg->free = c->next;
						lg->issued++;
					}
				}
				pthread_mutex_unlock(&lg->mtx);
				if (c == NULL)
					break;
				atomic_fetch_add(&lg->outstanding, 1);
				if (!client_send(c, lg->t_start + idx * lg->period_ns)) {
					pthread_mutex_lock(&lg->mtx);
					c->next = lg->free;
					lg->free = c;
					pthread_mutex_unlock(&lg->mtx);
					atomic_fetch_sub(&lg->outstanding, 1);
					break;
				}
			}
			/* sleep until the next request is due (at most 1 ms) */
			pthread_mutex_lock(&lg->mtx);
			uint64_t next = lg->t_start + lg->issued * lg->period_ns;
			pthread_mutex_unlock(&lg->mtx);
			now = bh_now_ns();
			uint64_t wait = next > now ? next - now : 20000;
			if (wait > 1000000)
				wait = 1000000;
			struct timespec ts = {0, (long)wait};
			nanosleep(&ts, NULL);
		}
		atomic_store(&lg->stopping, true);
	}
	/* wait for every request in flight (each is bounded by recv_to) */
	if (lg->rate <= 0 && lg->requests == 0) {
		while (bh_now_ns() < lg->t_end)
			nng_msleep(10);
		atomic_store(&lg->stopping, true);
	}
	pthread_mutex_lock(&lg->mtx);
	while (atomic_load(&lg->outstanding) > 0)
		pthread_cond_wait(&lg->cv, &lg->mtx);
	pthread_mutex_unlock(&lg->mtx);
	uint64_t t_done = bh_now_ns();
	double cpu1 = ps_self_cpu_s();
	if (lg->pid > 0)
		nng_msleep(100); /* let the server settle before the "after" reading */
	ps_stop(&ps);

	/* ---- results */
	uint64_t last = atomic_load(&lg->t_last);
	double wall_s = (double)((last > lg->t_start ? last : t_done) - lg->t_start) / 1e9;
	double window_s = lg->requests > 0 ? wall_s : lg->duration_s;
	uint64_t ok = atomic_load(&lg->codes[0]);
	uint64_t okw = atomic_load(&lg->ok_window);
	double tput = window_s > 0 ? (double)okw / window_s : 0;
	uint64_t unsent = 0;
	if (lg->rate > 0) {
		uint64_t due = (lg->t_end - lg->t_start + lg->period_ns - 1) / lg->period_ns;
		unsent = due > lg->issued ? due - lg->issued : 0;
	}
	uint64_t errors = 0;
	for (int i = 1; i < MAX_CODES; i++)
		errors += atomic_load(&lg->codes[i]);
	for (int i = 0; i < MAX_NNG_ERR; i++)
		errors += atomic_load(&lg->nng_errs[i]);

	fprintf(stderr,
	        "loadgen %s: %s loop, %d contexts on %d sockets%s%s, %.2f s: ok %" PRIu64
	        " errors %" PRIu64 ", %.0f ok/s, cache hits %" PRIuFAST64 ", reply %" PRIuFAST64
	        " bytes\n",
	        lg->label, lg->rate > 0 ? "open" : "closed", lg->ncontexts, lg->nsockets,
	        lg->echo ? ", echo" : "", bypass ? ", bypass_cache" : "", wall_s, ok, errors, tput,
	        atomic_load(&lg->cache_hits), atomic_load(&lg->reply_bytes));
	bh_print(lg->hist, "  latency", stderr);
	for (int i = 1; i < MAX_CODES; i++)
		if (atomic_load(&lg->codes[i]))
			fprintf(stderr, "  status %s: %" PRIuFAST64 " (%s)\n", code_name(i),
			        atomic_load(&lg->codes[i]), lg->reasons[i]);
	for (int i = 0; i < MAX_NNG_ERR; i++)
		if (atomic_load(&lg->nng_errs[i]))
			fprintf(stderr, "  transport %s: %" PRIuFAST64 "\n", nng_strerror(i),
			        atomic_load(&lg->nng_errs[i]));
	if (unsent)
		fprintf(stderr,
		        "  open loop: %" PRIu64
		        " requests due were never sent (backlog max %" PRIuFAST64 ")\n",
		        unsent, atomic_load(&lg->backlog_max));
	if (lg->pid > 0)
		fprintf(stderr,
		        "  pid %d: rss %ld -> max %ld KiB (hwm %ld), threads %ld / %ld..%ld / %ld, "
		        "cpu %.2f s\n",
		        lg->pid, ps.before.rss_kib, ps.rss_max_kib, ps.after.hwm_kib,
		        ps.before.threads, ps.threads_min, ps.threads_max, ps.after.threads,
		        ps.after.cpu_s - ps.before.cpu_s);

	if (json) {
		FILE *f = stdout;
		fprintf(f, "{\"tool\": \"loadgen\", \"label\": \"%s\", \"mode\": \"%s\", ",
		        lg->label, lg->rate > 0 ? "open" : "closed");
		fprintf(f,
		        "\"echo\": %s, \"method\": \"%s\", \"bypass_cache\": %s, \"url\": \"%s\", "
		        "\"contexts\": %d, \"sockets\": %d, \"rate\": %.1f, \"requests\": %" PRIu64
		        ", \"window_s\": %.4f, \"wall_s\": %.4f, \"ok\": %" PRIu64
		        ", \"errors\": %" PRIu64
		        ", \"throughput_rps\": %.1f, \"cache_hits\": %" PRIuFAST64
		        ", \"reply_bytes\": %" PRIuFAST64 ", \"unsent\": %" PRIu64
		        ", \"client_cpu_s\": %.3f, ",
		        lg->echo ? "true" : "false",
		        lg->method == LG_CREATE   ? "CreateOrder"
		        : lg->method == LG_HEALTH ? "Health"
		                                  : "Track",
		        bypass ? "true" : "false", lg->urls[0], lg->ncontexts, lg->nsockets,
		        lg->rate, lg->requests, window_s, wall_s, ok, errors, tput,
		        atomic_load(&lg->cache_hits), atomic_load(&lg->reply_bytes), unsent,
		        cpu1 - cpu0);
		fprintf(f, "\"status\": {");
		bool first = true;
		for (int i = 0; i < MAX_CODES; i++)
			if (atomic_load(&lg->codes[i])) {
				fprintf(f, "%s\"%s\": %" PRIuFAST64, first ? "" : ", ",
				        code_name(i), atomic_load(&lg->codes[i]));
				first = false;
			}
		fprintf(f, "}, \"reasons\": {");
		first = true;
		for (int i = 1; i < MAX_CODES; i++)
			if (atomic_load(&lg->reason_set[i])) {
				fprintf(f, "%s\"%s\": \"%s\"", first ? "" : ", ", code_name(i),
				        lg->reasons[i]);
				first = false;
			}
		fprintf(f, "}, \"transport\": {");
		first = true;
		for (int i = 0; i < MAX_NNG_ERR; i++)
			if (atomic_load(&lg->nng_errs[i])) {
				fprintf(f, "%s\"%s\": %" PRIuFAST64, first ? "" : ", ",
				        nng_strerror(i), atomic_load(&lg->nng_errs[i]));
				first = false;
			}
		fprintf(f, "}, \"lat\": {");
		bh_json(lg->hist, f);
		fprintf(f, "}, ");
		ps_json(&ps, f);
		fprintf(f, "}\n");
		fflush(f);
	}
	rc = errors == 0 && ok > 0 ? 0 : 3;

	/* ---- shutdown: close the sockets (fails what is posted), then stop and free */
	for (int i = 0; i < lg->nsockets; i++)
		nng_close(lg->socks[i]);
	for (int i = 0; i < lg->ncontexts; i++)
		nng_aio_stop(lg->clients[i].aio);
	for (int i = 0; i < lg->ncontexts; i++)
		nng_aio_free(lg->clients[i].aio);
	free(lg->clients);
	free(lg->socks);
	free(lg->req);
	free(lg->payload);
	bh_free(lg->hist);
	return rc;
}
