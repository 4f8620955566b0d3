/*
 * server.c - the nng transport: one REP socket, a fixed pool of contexts, listeners, the ipc
 * watchdog, and the upstream engines the gateway sends through.
 *
 * Each context is one struct work and one state machine (nng's demo/async/server.c):
 *
 *   W_RECV --recv done--> W_CALL: the gateway has the call (gateway/gateway.h), on this
 *            thread and then on whichever thread ends it; it writes the reply into the
 *            request's message (work_reply_buf) and hands it back (work_send)
 *   W_CALL --work_send--> W_SEND: the reply is queued with nng_ctx_send (or, when it was
 *            dropped, straight back to W_RECV)
 *   W_SEND --send done--> the call ends (sg_call_end), the next receive is posted -> W_RECV
 *
 * Only receives and sends complete on the aio, so work_cb sees W_RECV and W_SEND alone; a
 * completion in any other state is nng's bug, logged and left alone. Nothing here blocks.
 */
#include "server.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include "admit.h"
#include "core/bounded.h"
#include "core/clock.h"
#include "core/file.h"
#include "gateway/gateway.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "upstream/engine.h"

/* Upper bound of upstream.threads. */
#define SG_MAX_ENGINES 16

/* ------------------------------------------------------------------ types */

enum work_state {
	W_INIT, /* not started, or stopped */
	W_RECV, /* a receive is posted */
	W_CALL, /* the gateway has the call: no aio operation is pending */
	W_SEND, /* a reply is being sent */
};

struct work {
	enum work_state state; /* see the diagram above */
	nng_aio *aio;          /* the context's one aio (recv, then send) */
	nng_ctx ctx;           /* REP context: one request/reply at a time */
	nng_msg *msg;          /* request message, reused for the reply */
	sg_call call;          /* the call, between receive and send */
	bool peer;             /* the gateway wants each call's peer (sg_gateway_wants_peer) */
};

/* The curl engines, as the gateway's upstream backend: transfers go round-robin, so that every
 * engine thread's connection cache and translation work stay 1/K of the load. */
struct engines {
	sg_engine *e[SG_MAX_ENGINES]; /* one thread and curl multi each */
	int n;                        /* engines in use */
	atomic_uint next;             /* round-robin */
};

struct sg_server {
	const sg_config *cfg;                         /* borrowed; outlives the server */
	nng_socket sock;                              /* the REP socket */
	bool sock_open;                               /* sock needs closing */
	nng_listener listeners[SG_CONFIG_MAX_LISTEN]; /* one per configured URL */
	size_t nlisteners;                            /* listeners started */
	char bound[SG_CONFIG_MAX_LISTEN][256];        /* listen URLs with tcp port 0 resolved */
	struct engines eng;                           /* upstream HTTP */
	sg_gateway *gw;                               /* the call pipeline */
	struct work *works;                           /* the context pool */
	int nworks;                                   /* entries in works[] */
	bool stopped;                                 /* sg_server_stop has run */
	bool close_stuck;                             /* nng_close never returned (see stop) */
	pthread_t watchdog;                           /* ipc listener watchdog thread */
	bool watchdog_running;                        /* watchdog was started and must be joined */
	pthread_mutex_t wd_mtx;                       /* guards wd_stop */
	pthread_cond_t wd_cv;                         /* wakes the watchdog to stop */
	bool wd_stop;                                 /* the watchdog must exit */
	sg_admit *admit;                              /* connections held, by peer */
	nng_tls_config *tls;                          /* tls+tcp listeners' config, or NULL */
	size_t max_connections;                       /* the cap in force (after the fd budget) */
	atomic_llong refuse_logged_ms;                /* when a refusal was last logged */
};

static sg_err
engines_submit(void *impl, const sg_http_req *req, int64_t deadline_ms, sg_upstream_cb cb,
               void *arg)
{
	struct engines *en = impl;
	sg_engine *e = en->e[atomic_fetch_add(&en->next, 1) % (unsigned)en->n];
	return sg_engine_submit(e, req, deadline_ms, cb, arg);
}

/* ------------------------------------------------------------------ the state machine */

/* Where w's request came from, for the access step: loopback, ipc and inproc are local; an
 * ipc peer's uid. */
static void
work_peer(struct work *w)
{
	nng_pipe p = nng_msg_get_pipe(w->msg);
	nng_sockaddr sa;
	uint64_t uid;

	w->call.peer_local = -1;
	w->call.peer_uid = -1;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return;
	switch (sa.s_family) {
	case NNG_AF_INET: w->call.peer_local = (ntohl(sa.s_in.sa_addr) >> 24) == 127; break;
	case NNG_AF_INET6: {
		static const uint8_t lo[16] = {[15] = 1};
		w->call.peer_local = memcmp(sa.s_in6.sa_addr, lo, 16) == 0;
		break;
	}
	case NNG_AF_IPC:
		w->call.peer_local = 1;
		if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0)
			w->call.peer_uid = (long)uid;
		break;
	case NNG_AF_INPROC: w->call.peer_local = 1; break;
	default: break;
	}
}

static void
work_recv(struct work *w)
{
	w->state = W_RECV;
	nng_ctx_recv(w->ctx, w->aio);
}

/* sg_transport.reply_buf: the request's message, reused and resized, for the reply. Runs
 * once the gateway no longer reads the request's bytes. */
static uint8_t *
work_reply_buf(sg_call *c, size_t len)
{
	struct work *w = c->transport;

	if (w->msg == NULL) {
		if (nng_msg_alloc(&w->msg, len) != 0)
			return NULL;
	} else {
		nng_msg_clear(w->msg);
		nng_msg_header_clear(w->msg);
		if (nng_msg_realloc(w->msg, len) != 0) {
			nng_msg_free(w->msg);
			w->msg = NULL;
			return NULL;
		}
	}
	return nng_msg_body(w->msg);
}

/* sg_transport.send: sends the reply in w->msg; without one (no memory), the call ends
 * unanswered (the caller's deadline fires) and the next request is taken. */
static void
work_send(sg_call *c)
{
	struct work *w = c->transport;

	if (w->msg == NULL) {
		sg_call_end(c);
		work_recv(w);
		return;
	}
	w->state = W_SEND;
	nng_aio_set_msg(w->aio, w->msg);
	w->msg = NULL; /* owned by the aio now; back to us only if the send fails */
	nng_ctx_send(w->ctx, w->aio);
}

static void
work_cb(void *arg)
{
	struct work *w = arg;
	int rv = nng_aio_result(w->aio);

	switch (w->state) {
	case W_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				w->state = W_INIT; /* shutting down */
				return;
			}
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		w->msg = nng_aio_get_msg(w->aio);
		nng_aio_set_msg(w->aio, NULL);
		w->state = W_CALL;
		if (w->peer)
			work_peer(w);
		sg_call_start(&w->call, nng_msg_body(w->msg), nng_msg_len(w->msg));
		return;
	case W_SEND:
		if (rv != 0) {
			/* A failed send leaves the message with us. */
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_set_msg(w->aio, NULL);
		}
		sg_call_end(&w->call);
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			w->state = W_INIT;
			return;
		}
		work_recv(w);
		return;
	case W_INIT:
	case W_CALL:
	default:
		/* no operation was pending (nng completed an aio twice): the call, if any, belongs
		 * to another thread, so leave it alone */
		fprintf(stderr, "shipgated: context completed in state %d (rv %d); ignored\n",
		        (int)w->state, rv);
		return;
	}
}

/* ------------------------------------------------------------------ ipc watchdog */

/*
 * nng 1.5.2 (#1518, fixed in 1.6.0): when a peer connects to an ipc listener and hangs up
 * before the SP handshake completes, the listener reads the error as its own closure and never
 * accepts again. Established connections keep working, new ones hang. nng's own "address in
 * use" check on ipc does exactly that connect-and-close, so a second process started on the
 * same path is enough to trigger it. The watchdog calls Health through each ipc listener now
 * and then, and re-creates a listener that stopped answering.
 */

/* A small PEM file as a string (malloc'd), or NULL with err naming what (the config key). */
static char *
slurp(const char *what, const char *path, char *err, size_t errlen)
{
	char *buf = sg_read_file(path, 1 << 20);
	if (buf == NULL)
		snprintf(err, errlen, "%s: %s: %s", what, path, strerror(errno));
	return buf;
}

/*
 * The tls+tcp listeners' configuration (made once, shared by all of them): the certificate and
 * key, the oldest version, and with tls.ca_file the callers' certificates checked (required
 * unless tls.client_auth says otherwise). 0, or -1 with err.
 */
static int
tls_server_config(struct sg_server *s, char *err, size_t errlen)
{
	const sg_config *cfg = s->cfg;
	char *cert = NULL, *key = NULL;
	int rv;

	if (s->tls != NULL)
		return 0;
	if ((rv = nng_tls_config_alloc(&s->tls, NNG_TLS_MODE_SERVER)) != 0) {
		snprintf(err, errlen, "tls: %s", nng_strerror(rv));
		return -1;
	}
	if ((cert = slurp("tls.cert_file", cfg->tls_cert_file, err, errlen)) == NULL ||
	    (key = slurp("tls.key_file", cfg->tls_key_file, err, errlen)) == NULL)
		goto fail;
	if ((rv = nng_tls_config_own_cert(s->tls, cert, key, NULL)) != 0) {
		snprintf(err, errlen,
		         "tls.cert_file/tls.key_file: %s (not a PEM certificate and its "
		         "key?)",
		         nng_strerror(rv));
		goto fail;
	}
	nng_tls_version min =
	        cfg->tls_min_version != NULL && strcmp(cfg->tls_min_version, "1.3") == 0
	                ? NNG_TLS_1_3
	                : NNG_TLS_1_2;
	if ((rv = nng_tls_config_version(s->tls, min, NNG_TLS_1_3)) != 0) {
		snprintf(err, errlen, "tls.min_version %s: %s (nng's TLS engine: %s)",
		         cfg->tls_min_version ? cfg->tls_min_version : "1.2", nng_strerror(rv),
		         nng_tls_engine_description());
		goto fail;
	}
	nng_tls_auth_mode mode = NNG_TLS_AUTH_MODE_NONE;
	if (cfg->tls_ca_file != NULL) {
		mode = cfg->tls_client_auth != NULL && strcmp(cfg->tls_client_auth, "optional") == 0
		               ? NNG_TLS_AUTH_MODE_OPTIONAL
		       : cfg->tls_client_auth != NULL && strcmp(cfg->tls_client_auth, "none") == 0
		               ? NNG_TLS_AUTH_MODE_NONE
		               : NNG_TLS_AUTH_MODE_REQUIRED;
		if ((rv = nng_tls_config_ca_file(s->tls, cfg->tls_ca_file)) != 0) {
			snprintf(err, errlen, "tls.ca_file: %s: %s", cfg->tls_ca_file,
			         nng_strerror(rv));
			goto fail;
		}
	}
	if ((rv = nng_tls_config_auth_mode(s->tls, mode)) != 0) {
		snprintf(err, errlen, "tls.client_auth: %s", nng_strerror(rv));
		goto fail;
	}
	free(cert);
	free(key);
	return 0;
fail:
	free(cert);
	free(key);
	nng_tls_config_free(s->tls);
	s->tls = NULL;
	return -1;
}

/*
 * Starts a listener on url. An ipc path gets the configured mode (ipc.mode, 0600 by default)
 * and group whatever the umask: the socket is made under a umask of 0177, so it is never wider
 * than the owner's for a moment, then nng sets the mode. A path that holds anything but a
 * socket is refused, never replaced (nng would unlink it). 0, or -1 with err.
 */
static int
listen_one(struct sg_server *s, const char *url, nng_listener *l, char *err, size_t errlen)
{
	const sg_config *cfg = s->cfg;
	bool ipc = strncmp(url, "ipc://", 6) == 0;
	const char *path = url + 6;
	struct stat st;
	gid_t gid = (gid_t)-1;
	int rv;

	if (ipc && lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
		         "listen %s: %s exists and is not a socket (%s); refusing to "
		         "replace it",
		         url, path,
		         S_ISREG(st.st_mode)   ? "a regular file"
		         : S_ISDIR(st.st_mode) ? "a directory"
		         : S_ISLNK(st.st_mode) ? "a symbolic link"
		                               : "not a socket");
		return -1;
	}
	if (ipc && cfg->ipc_group != NULL) {
		char *end;
		unsigned long n = strtoul(cfg->ipc_group, &end, 10);
		struct group *g;
		if (end != cfg->ipc_group && *end == '\0') {
			gid = (gid_t)n;
		} else if ((g = getgrnam(cfg->ipc_group)) != NULL) {
			gid = g->gr_gid;
		} else {
			snprintf(err, errlen, "ipc.group: %s: no such group", cfg->ipc_group);
			return -1;
		}
	}
	bool tls = strncmp(url, "tls+tcp://", 10) == 0;
	if (tls && tls_server_config(s, err, errlen) != 0)
		return -1;
	if ((rv = nng_listener_create(l, s->sock, url)) != 0 ||
	    (ipc && (rv = nng_listener_set_int(*l, NNG_OPT_IPC_PERMISSIONS, cfg->ipc_mode)) != 0) ||
	    (tls && (rv = nng_listener_set_ptr(*l, NNG_OPT_TLS_CONFIG, s->tls)) != 0)) {
		snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
		return -1;
	}
	/* (umask is the process's: the only files made meanwhile are other ipc sockets) */
	mode_t old = ipc ? umask(0177) : 0;
	rv = nng_listener_start(*l, 0);
	if (ipc)
		umask(old);
	if (rv != 0) {
		nng_listener_close(*l);
		snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
		return -1;
	}
	if (ipc && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) {
		snprintf(err, errlen, "listen %s: chown to group %s: %s", url, cfg->ipc_group,
		         strerror(errno));
		nng_listener_close(*l);
		return -1;
	}
	return 0;
}

/* How long a close may take: milliseconds when nng_close returns at all. */
#define SG_CLOSE_TIMEOUT_MS 2000

static void
close_sock(void *arg)
{
	nng_close(*(nng_socket *)arg);
}

static void
close_free_sock(void *arg)
{
	nng_close(*(nng_socket *)arg);
	free(arg);
}

/*
 * True when the listener at url answers a Health call within timeout_ms. A handshake alone is
 * not enough: a broken 1.5.2 ipc listener still accepts and negotiates, but never hands the new
 * pipe to the socket, so the request is never read.
 */
static bool
listener_probe(const char *url, int timeout_ms)
{
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	uint8_t buf[64];
	nng_socket p;
	nng_msg *m = NULL;
	bool ok = false;

	env.method = "/shipgate.v1.Shipgate/Health";
	env.request_id = "ipc-watchdog";
	env.deadline_ms = timeout_ms;
	size_t len = shipgate__v1__rpc_request__pack(&env, buf);
	if (nng_req0_open(&p) != 0)
		return true; /* no resources: not the listener's fault */
	nng_socket_set_ms(p, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(p, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(p, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_size(p, NNG_OPT_RECVMAXSZ, 65536);
	if (nng_dial(p, url, NULL, 0) == 0 && nng_send(p, buf, len, 0) == 0 &&
	    nng_recvmsg(p, &m, 0) == 0) {
		ok = true;
		nng_msg_free(m);
	}
	/* bounded, as the server's own close (nng 1.5.2 can hang there): a stuck probe socket is
	 * left behind, never the watchdog, which the stop joins */
	nng_socket *ps = malloc(sizeof(*ps));
	if (ps == NULL) {
		nng_close(p);
		return ok;
	}
	*ps = p;
	if (!sg_run_bounded(close_free_sock, ps, SG_CLOSE_TIMEOUT_MS))
		fprintf(stderr, "shipgated: warning: an ipc probe socket did not close within 2 s "
		                "(nng 1.5.2); left open\n");
	return ok;
}

static void *
ipc_watchdog(void *arg)
{
	struct sg_server *s = arg;
	int misses[SG_CONFIG_MAX_LISTEN] = {0};
	int64_t period = s->cfg->ipc_watchdog_ms;

	pthread_mutex_lock(&s->wd_mtx);
	while (!s->wd_stop) {
		int64_t until = sg_now_ms() + period;
		while (!s->wd_stop && sg_cond_wait_until(&s->wd_cv, &s->wd_mtx, until)) {
		}
		if (s->wd_stop)
			break;
		pthread_mutex_unlock(&s->wd_mtx);
		for (size_t i = 0; i < s->nlisteners; i++) {
			const char *url = s->cfg->listen[i];
			if (strncmp(url, "ipc://", 6) != 0)
				continue;
			if (listener_probe(url, 1000)) {
				misses[i] = 0;
				continue;
			}
			if (++misses[i] < 2)
				continue; /* one slow answer under load is not a dead listener */
			fprintf(stderr,
			        "shipgated: %s stopped accepting (nng #1518); re-listening\n", url);
			char why[300];
			nng_listener_close(s->listeners[i]);
			if (listen_one(s, url, &s->listeners[i], why, sizeof(why)) != 0)
				fprintf(stderr, "shipgated: re-listen: %s\n", why);
			misses[i] = 0;
		}
		pthread_mutex_lock(&s->wd_mtx);
	}
	pthread_mutex_unlock(&s->wd_mtx);
	return NULL;
}

static void
watchdog_stop(struct sg_server *s)
{
	if (!s->watchdog_running)
		return;
	pthread_mutex_lock(&s->wd_mtx);
	s->wd_stop = true;
	pthread_cond_signal(&s->wd_cv);
	pthread_mutex_unlock(&s->wd_mtx);
	pthread_join(s->watchdog, NULL);
	s->watchdog_running = false;
}

/* ------------------------------------------------------------------ connections */

/*
 * Every pipe passes the admission table as nng adds it (before any message is read from it): a
 * pipe over max_connections, or over max_connections_per_peer for its peer, is closed at once.
 * nng 1.5.2 allocates a message's whole announced size (up to recv_max_bytes) as soon as its
 * header arrives, so the cap also bounds what partial messages can hold: max_connections x
 * recv_max_bytes (256 MiB with the defaults).
 */
static void
pipe_peer(nng_pipe p, char *out, size_t n)
{
	nng_sockaddr sa;
	uint64_t uid;

	snprintf(out, n, "?");
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return;
	switch (sa.s_family) {
	case NNG_AF_INET: inet_ntop(AF_INET, &sa.s_in.sa_addr, out, (socklen_t)n); break;
	case NNG_AF_INET6: inet_ntop(AF_INET6, sa.s_in6.sa_addr, out, (socklen_t)n); break;
	case NNG_AF_IPC:
		if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0)
			snprintf(out, n, "uid:%llu", (unsigned long long)uid);
		else
			snprintf(out, n, "ipc");
		break;
	default: snprintf(out, n, "family:%d", (int)sa.s_family); break;
	}
}

static void
pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct sg_server *s = arg;
	char peer[64];

	if (ev == NNG_PIPE_EV_REM_POST) {
		sg_admit_remove(s->admit, (uint32_t)nng_pipe_id(p));
		return;
	}
	pipe_peer(p, peer, sizeof(peer));
	sg_admit_res res = sg_admit_add(s->admit, (uint32_t)nng_pipe_id(p), peer);
	if (res == SG_ADMIT_OK)
		return;
	nng_pipe_close(p);
	/* one line a second at most, with the count since the start */
	long long now = sg_now_ms(), last = atomic_load(&s->refuse_logged_ms);
	if (now - last >= 1000 && atomic_compare_exchange_strong(&s->refuse_logged_ms, &last, now))
		fprintf(stderr, "shipgated: connection from %s refused: %s (%llu refused so far)\n",
		        peer,
		        res == SG_ADMIT_FULL   ? "max_connections reached"
		        : res == SG_ADMIT_PEER ? "max_connections_per_peer reached for it"
		                               : "out of memory",
		        (unsigned long long)sg_admit_refused(s->admit));
}

/*
 * The fd budget: callers may hold max_connections fds, and upstream.fd_reserve stay for the
 * provider side (curl's connections), the stores and the rest, so that callers can never
 * starve the providers. A soft RLIMIT_NOFILE too small for both lowers max_connections; an
 * upstream connection cap larger than the reserve is lowered to fit it.
 */
static void
fd_budget(struct sg_server *s, sg_engine_conf *ec)
{
	struct rlimit rl;
	size_t nofile = 1024, reserve = s->cfg->fd_reserve; /* 1024: getrlimit failed */

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		nofile = rl.rlim_cur == RLIM_INFINITY ? (size_t)1 << 20 : (size_t)rl.rlim_cur;
	s->max_connections = s->cfg->max_connections;
	size_t room = nofile > reserve + 16 ? nofile - reserve : 16;
	if (s->max_connections > room) {
		fprintf(stderr,
		        "shipgated: max_connections lowered from %zu to %zu: RLIMIT_NOFILE is %zu, "
		        "and upstream.fd_reserve keeps %zu\n",
		        s->max_connections, room, nofile, reserve);
		s->max_connections = room;
	}
	long up = reserve > 128 ? (long)(reserve - 64) : 64; /* curl's share of the reserve */
	if (ec->max_total_conns == 0 || ec->max_total_conns > up)
		ec->max_total_conns = up;
}

/* ------------------------------------------------------------------ lifecycle */

sg_err
sg_server_new(sg_server **out, const sg_config *cfg, char *err, size_t errlen)
{
	struct sg_server *s = calloc(1, sizeof(*s));
	int rv;
	sg_err e;

	if (s == NULL)
		return SG_ENOMEM;
	s->cfg = cfg;
	atomic_init(&s->refuse_logged_ms, 0);
	pthread_mutex_init(&s->wd_mtx, NULL);
	sg_cond_init(&s->wd_cv);
	atomic_init(&s->eng.next, 0);
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		snprintf(err, errlen, "nng_rep0_open: %s", nng_strerror(rv));
		e = SG_EINTERNAL;
		goto fail;
	}
	s->sock_open = true;
	/* Before any listener: nng would otherwise allocate whatever length a peer announces. */
	if ((rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, cfg->recv_max_bytes)) != 0) {
		snprintf(err, errlen, "NNG_OPT_RECVMAXSZ: %s", nng_strerror(rv));
		e = SG_EINTERNAL;
		goto fail;
	}
	/* each engine gets its share of the connection caps, within the fd budget */
	sg_engine_conf ec = cfg->engine;
	fd_budget(s, &ec);
	if ((s->admit = sg_admit_new(s->max_connections, cfg->max_connections_per_peer)) == NULL) {
		e = SG_ENOMEM;
		goto fail;
	}
	/* before any listener: every pipe is admitted, or closed, as it is added */
	if ((rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, s)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_event, s)) != 0) {
		snprintf(err, errlen, "nng_pipe_notify: %s", nng_strerror(rv));
		e = SG_EINTERNAL;
		goto fail;
	}
	s->eng.n = cfg->engine_threads < 1 ? 1 : cfg->engine_threads;
	if (s->eng.n > SG_MAX_ENGINES)
		s->eng.n = SG_MAX_ENGINES;
	if (ec.max_host_conns > 0)
		ec.max_host_conns = (ec.max_host_conns + s->eng.n - 1) / s->eng.n;
	if (ec.max_total_conns > 0)
		ec.max_total_conns = (ec.max_total_conns + s->eng.n - 1) / s->eng.n;
	for (int i = 0; i < s->eng.n; i++) {
		if ((e = sg_engine_new(&s->eng.e[i], &ec)) != SG_OK) {
			snprintf(err, errlen, "upstream engine: %s", sg_strerror(e));
			goto fail;
		}
	}
	s->nworks = cfg->workers;
	const sg_upstream_backend backend = {engines_submit, &s->eng};
	const sg_transport tr = {work_reply_buf, work_send};
	if ((e = sg_gateway_new(&s->gw, cfg, &backend, &tr, s->nworks, err, errlen)) != SG_OK)
		goto fail;
	if ((s->works = calloc((size_t)s->nworks, sizeof(*s->works))) == NULL) {
		e = SG_ENOMEM;
		goto fail;
	}
	for (int i = 0; i < s->nworks; i++) {
		struct work *w = &s->works[i];
		w->state = W_INIT;
		sg_call_init(s->gw, &w->call, w);
		w->peer = sg_gateway_wants_peer(s->gw);
		if ((rv = nng_aio_alloc(&w->aio, work_cb, w)) != 0 ||
		    (rv = nng_ctx_open(&w->ctx, s->sock)) != 0) {
			snprintf(err, errlen, "context %d: %s", i, nng_strerror(rv));
			e = SG_ENOMEM;
			goto fail;
		}
	}
	*out = s;
	return SG_OK;
fail:
	sg_server_free(s);
	return e;
}

sg_err
sg_server_start(sg_server *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->cfg->nlisten; i++) {
		const char *url = s->cfg->listen[i];
		if (listen_one(s, url, &s->listeners[i], err, errlen) != 0)
			return SG_EINTERNAL;
		s->nlisteners++;
		snprintf(s->bound[i], sizeof(s->bound[i]), "%s", url);
		int port;
		const char *colon = strrchr(url, ':');
		if ((strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tls+tcp://", 10) == 0) &&
		    colon != NULL && strcmp(colon, ":0") == 0 &&
		    nng_listener_get_int(s->listeners[i], NNG_OPT_TCP_BOUND_PORT, &port) == 0)
			snprintf(s->bound[i], sizeof(s->bound[i]), "%.*s:%d", (int)(colon - url),
			         url, port);
	}
	for (int i = 0; i < s->nworks; i++)
		work_recv(&s->works[i]);
	bool has_ipc = false;
	for (size_t i = 0; i < s->nlisteners; i++)
		has_ipc |= strncmp(s->cfg->listen[i], "ipc://", 6) == 0;
	if (has_ipc && s->cfg->ipc_watchdog_ms > 0) {
		if (pthread_create(&s->watchdog, NULL, ipc_watchdog, s) != 0) {
			snprintf(err, errlen, "ipc watchdog: cannot start thread");
			return SG_EINTERNAL;
		}
		s->watchdog_running = true;
	}
	return SG_OK;
}

const char *
sg_server_url(const sg_server *s, size_t i)
{
	return i < s->nlisteners ? s->bound[i] : NULL;
}

bool
sg_server_stop(sg_server *s)
{
	if (s == NULL || s->stopped)
		return s == NULL || !s->close_stuck;
	s->stopped = true;
	watchdog_stop(s);
	/* 1. New calls are refused; upstream calls may finish, up to the drain timeout. */
	sg_gateway_drain(s->gw);
	(void)sg_gateway_wait_upstream(s->gw, sg_now_ms() + s->cfg->drain_timeout_ms);
	/* 2. The rest complete with SG_ESHUTDOWN and are answered UNAVAILABLE. The engines stay
	 * allocated (sg_server_free frees them): a continuation on another thread may still
	 * submit, and gets SG_ESHUTDOWN. */
	for (int i = 0; i < s->eng.n; i++)
		sg_engine_stop(s->eng.e[i]);
	/* 3. Wait for every reply to be handed to its pipe. nng 1.5.2 has no linger for REP
	 * pipes: a reply handed over just now may still sit in the pipe's queue, and closing the
	 * socket drops it, so its pipe gets a moment to write it. */
	(void)sg_gateway_wait_idle(s->gw, sg_now_ms() + 2000);
	struct timespec linger = {0, 50 * 1000000L};
	nanosleep(&linger, NULL);
	/* 4. No call is parked any more (their owners finished in 2): stop the deadlines. */
	sg_gateway_stop(s->gw);
	/* 5. Close, then stop each aio (never from a callback), then free. nng 1.5.2's close can
	 * wait forever after a stalled peer (nanomsg/nng #1543): every call is answered and the
	 * store is quiet by now, so the wait is bounded, and a close that never returns leaves
	 * the socket, its aios and the calls they use alone for the process's exit. */
	if (s->sock_open) {
		s->sock_open = false;
		if (!sg_run_bounded(close_sock, &s->sock, SG_CLOSE_TIMEOUT_MS)) {
			s->close_stuck = true;
			return false;
		}
	}
	for (int i = 0; i < s->nworks; i++)
		if (s->works[i].aio != NULL)
			nng_aio_stop(s->works[i].aio);
	return true;
}

void
sg_server_free(sg_server *s)
{
	if (s == NULL || s->close_stuck)
		return; /* nng may still use all of it: left for the process's exit */
	if (!s->stopped && s->nlisteners > 0) {
		sg_server_stop(s);
	} else {
		if (s->sock_open)
			nng_close(s->sock);
		s->sock_open = false;
		for (int i = 0; s->works != NULL && i < s->nworks; i++)
			if (s->works[i].aio != NULL)
				nng_aio_stop(s->works[i].aio);
	}
	for (int i = 0; i < s->eng.n; i++) {
		sg_engine_free(s->eng.e[i]);
		s->eng.e[i] = NULL;
	}
	sg_gateway_stop(s->gw); /* before the calls its deadline callbacks use */
	for (int i = 0; s->works != NULL && i < s->nworks; i++) {
		struct work *w = &s->works[i];
		if (w->aio != NULL) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_free(w->aio);
		}
		nng_msg_free(w->msg);
		if (w->call.gw != NULL) /* initialised */
			sg_call_fini(&w->call);
	}
	free(s->works);
	sg_gateway_free(s->gw);
	watchdog_stop(s);
	pthread_mutex_destroy(&s->wd_mtx);
	pthread_cond_destroy(&s->wd_cv);
	sg_admit_free(s->admit); /* after the socket: no pipe event comes any more */
	if (s->tls != NULL)
		nng_tls_config_free(s->tls);
	free(s);
}
