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
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
	struct sg_server *srv; /* its server (the callers' own listeners) */
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
	struct ipc_wd *ipc;                           /* ipc listeners' hand-over state, or NULL */
	sg_admit *admit;                              /* connections held, by peer */
	nng_tls_config *tls;                          /* tls+tcp listeners' config, or NULL */
	/* callers' own TLS listeners (caller.<name>.tls_listen), each with its caller's CA */
	nng_listener clisteners[SG_MAX_CALLERS];
	nng_tls_config *ctls[SG_MAX_CALLERS];
	size_t ccaller[SG_MAX_CALLERS];   /* the caller's index in cfg->callers */
	char cbound[SG_MAX_CALLERS][256]; /* their URLs, a tcp port 0 resolved */
	size_t nclisteners;               /* started */
	size_t max_connections;           /* the cap in force (after the fd budget) */
	atomic_llong refuse_logged_ms;    /* when a refusal was last logged */
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
	w->call.peer_caller = 0;
	if (w->srv->nclisteners > 0) {
		/* a caller's own listener lets in only certificates its CA verified */
		nng_listener l = nng_pipe_listener(p);
		bool verified = false;
		for (size_t i = 0; i < w->srv->nclisteners; i++)
			if (nng_listener_id(l) == nng_listener_id(w->srv->clisteners[i]) &&
			    nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) == 0 && verified)
				w->call.peer_caller = (int)w->srv->ccaller[i] + 1;
	}
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
 * accepts again. Established connections keep working; new ones negotiate and then hang. nng's
 * own "address in use" check on ipc does exactly that connect-and-close, so a second process
 * started on the same path is enough to trigger it. One hang-up is enough, so nothing short of
 * a fixed nng keeps a listener alive: the watchdog finds a broken listener within
 * ipc_watchdog_ms plus a probe timeout, and replaces it without a gap (see listen_one).
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
 * A TLS server configuration: tls.cert_file and tls.key_file, tls.min_version, and with
 * ca_file the peers' certificates checked by it in auth mode `mode`. 0, or -1 with err.
 */
static int
tls_config_make(const sg_config *cfg, const char *ca_key, const char *ca_file,
                nng_tls_auth_mode mode, nng_tls_config **out, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL;
	nng_tls_config *tls;
	int rv;

	if ((rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_SERVER)) != 0) {
		snprintf(err, errlen, "tls: %s", nng_strerror(rv));
		return -1;
	}
	if ((cert = slurp("tls.cert_file", cfg->tls_cert_file, err, errlen)) == NULL ||
	    (key = slurp("tls.key_file", cfg->tls_key_file, err, errlen)) == NULL)
		goto fail;
	if ((rv = nng_tls_config_own_cert(tls, cert, key, NULL)) != 0) {
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
	if ((rv = nng_tls_config_version(tls, min, NNG_TLS_1_3)) != 0) {
		snprintf(err, errlen, "tls.min_version %s: %s (nng's TLS engine: %s)",
		         cfg->tls_min_version ? cfg->tls_min_version : "1.2", nng_strerror(rv),
		         nng_tls_engine_description());
		goto fail;
	}
	if (ca_file != NULL && (rv = nng_tls_config_ca_file(tls, ca_file)) != 0) {
		snprintf(err, errlen, "%s: %s: %s", ca_key, ca_file, nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_tls_config_auth_mode(tls, ca_file != NULL ? mode : NNG_TLS_AUTH_MODE_NONE)) !=
	    0) {
		snprintf(err, errlen, "tls.client_auth: %s", nng_strerror(rv));
		goto fail;
	}
	free(cert);
	free(key);
	*out = tls;
	return 0;
fail:
	free(cert);
	free(key);
	nng_tls_config_free(tls);
	return -1;
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

	if (s->tls != NULL)
		return 0;
	nng_tls_auth_mode mode =
	        cfg->tls_client_auth != NULL && strcmp(cfg->tls_client_auth, "optional") == 0
	                ? NNG_TLS_AUTH_MODE_OPTIONAL
	        : cfg->tls_client_auth != NULL && strcmp(cfg->tls_client_auth, "none") == 0
	                ? NNG_TLS_AUTH_MODE_NONE
	                : NNG_TLS_AUTH_MODE_REQUIRED;
	return tls_config_make(cfg, "tls.ca_file", cfg->tls_ca_file, mode, &s->tls, err, errlen);
}

/*
 * The callers' own listeners (caller.<name>.tls_listen): each verifies certificates with that
 * caller's CA alone (required), so that a connection it lets in is that caller's. nng 1.5.2
 * tells a pipe only whether its peer verified, not the certificate's subject, so the CA (or a
 * pinned self-signed certificate) is what names the caller. 0, or -1 with err.
 */
static int
caller_listeners_start(struct sg_server *s, char *err, size_t errlen)
{
	const sg_config *cfg = s->cfg;

	for (size_t i = 0; i < cfg->ncallers; i++) {
		const sg_caller *c = &cfg->callers[i];
		size_t k = s->nclisteners;
		char what[80];
		int rv, port;
		if (c->tls_listen == NULL)
			continue;
		snprintf(what, sizeof(what), "caller.%s.tls_ca_file", c->name);
		if (tls_config_make(cfg, what, c->tls_ca_file, NNG_TLS_AUTH_MODE_REQUIRED,
		                    &s->ctls[k], err, errlen) != 0)
			return -1;
		if ((rv = nng_listener_create(&s->clisteners[k], s->sock, c->tls_listen)) != 0 ||
		    (rv = nng_listener_set_ptr(s->clisteners[k], NNG_OPT_TLS_CONFIG, s->ctls[k])) !=
		            0 ||
		    (rv = nng_listener_start(s->clisteners[k], 0)) != 0) {
			snprintf(err, errlen, "caller.%s.tls_listen %s: %s", c->name, c->tls_listen,
			         nng_strerror(rv));
			nng_listener_close(s->clisteners[k]);
			nng_tls_config_free(s->ctls[k]);
			s->ctls[k] = NULL;
			return -1;
		}
		s->ccaller[k] = i;
		snprintf(s->cbound[k], sizeof(s->cbound[k]), "%s", c->tls_listen);
		const char *colon = strrchr(c->tls_listen, ':');
		if (colon != NULL && strcmp(colon, ":0") == 0 &&
		    nng_listener_get_int(s->clisteners[k], NNG_OPT_TCP_BOUND_PORT, &port) == 0)
			snprintf(s->cbound[k], sizeof(s->cbound[k]), "%.*s:%d",
			         (int)(colon - c->tls_listen), c->tls_listen, port);
		s->nclisteners++;
	}
	return 0;
}

/*
 * The hand-over (with the watchdog on). An ipc listener is never bound at its public path:
 * each one is bound at a sibling name of its own, "<path>.<pid>.<n>.new", gets its mode and
 * group there, and is then renamed over the path. rename(2) is atomic, so a connect finds the
 * old socket or the new one, never none, and never one wider than ipc.mode. Then the old
 * listener is closed, which closes its pipes: established callers redial (onto the new one),
 * and so do callers stuck in a broken listener. nng unlinks, at close, the name a listener was
 * bound at, which is gone by then, so the public path is removed by watchdog_stop once the
 * socket is closed (if it still holds the socket this server put there).
 *
 * nng 1.5.2 also keeps, for good, a broken listener's listening socket and every connection it
 * negotiated but never handed over (the probe that found it broken, callers that came in
 * before the hand-over): their fds stay open after the close, with a few KiB of memory each.
 * Nothing in nng uses those fds again, so the watchdog closes them itself once they have been
 * left alone for a while (ipc_reclaim); nng 1.6.0 and later leave nothing behind and are not
 * touched. The memory stays.
 */
#define SG_IPC_NAME_MAX   sizeof(((struct sockaddr_un *)0)->sun_path)
#define SG_IPC_GRAVES     64   /* closed listeners awaiting ipc_reclaim */
#define SG_IPC_RECLAIM_MS 1000 /* a closed listener's fds are counted after this, then again */

struct ipc_slot {
	bool on;                     /* this listener index is ipc and handed over */
	char bound[SG_IPC_NAME_MAX]; /* the name its current listener was bound at */
	dev_t dev;                   /* the socket renamed onto the public path ... */
	ino_t ino;                   /* ... which watchdog_stop removes if it is still there */
	unsigned long long replaced; /* hand-overs so far */
	int64_t logged_ms;           /* when one was last logged */
};

struct ipc_grave {
	char name[SG_IPC_NAME_MAX]; /* bound name of a closed listener: its fds' local address */
	int64_t due_ms;             /* when to count its fds (again) */
	int seen;                   /* fds the last count found; -1 before the first */
};

struct ipc_wd {
	struct ipc_slot slot[SG_CONFIG_MAX_LISTEN]; /* by listener index */
	struct ipc_grave grave[SG_IPC_GRAVES];      /* closed listeners whose fds may be left */
	int ngraves;                                /* entries in grave[] */
	bool reclaim;                 /* nng < 1.6.0: close the fds closed listeners left */
	unsigned long long reclaimed; /* fds closed so far */
	int64_t scanned_ms;           /* when /proc/self/fd was last scanned */
};

/* Sibling names are unique in the process (the pid makes them unique across processes). */
static atomic_uint ipc_seq;

/* s->ipc->slot[i], the state allocated on first use; NULL without memory. */
static struct ipc_slot *
ipc_slot(struct sg_server *s, size_t i)
{
	if (s->ipc == NULL) {
		int major = 0, minor = 0;
		if ((s->ipc = calloc(1, sizeof(*s->ipc))) == NULL)
			return NULL;
		s->ipc->reclaim = sscanf(nng_version(), "%d.%d", &major, &minor) == 2 &&
		                  (major < 1 || (major == 1 && minor < 6));
	}
	return &s->ipc->slot[i];
}

enum ipc_probe_res {
	IPC_ALIVE,   /* the listener took the connection */
	IPC_BROKEN,  /* it negotiated (or not) and never took it within the timeout */
	IPC_GONE,    /* nothing at the path, or nothing listening there */
	IPC_UNKNOWN, /* no answer either way (backlog full, no permission, no fd) */
};

/*
 * Does the listener at path take new connections? Connects, sends a req0 SP header and, right
 * behind it, an invalid frame (type 0), and waits up to timeout_ms for the connection to end:
 * a live listener hands the pipe to the REP socket, which reads the frame and closes the pipe
 * at once (no context, no call, no log line); a broken 1.5.2 listener negotiates but never
 * hands the pipe over, so nothing reads the frame. The handshake completes before anything
 * goes wrong, so the probe never trips #1518 itself, and it costs no REP context, so a busy
 * gateway still answers it. The connection is left in *fd (or -1) for the caller to close
 * after any hand-over: closing it mid-handshake on a slow listener would break that one.
 */
static enum ipc_probe_res
ipc_probe(const char *path, int timeout_ms, int *fd)
{
	static const uint8_t hello[17] = {0, 'S', 'P', 0, 0, 0x30, 0, 0,     /* req0 */
	                                  0, 0,   0,   0, 0, 0,    0, 0, 0}; /* frame type 0 */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t buf[64];

	*fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return IPC_UNKNOWN;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c < 0)
		return IPC_UNKNOWN;
	*fd = c;
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return errno == ENOENT || errno == ECONNREFUSED ? IPC_GONE : IPC_UNKNOWN;
	if (send(c, hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello))
		return errno == EPIPE || errno == ECONNRESET ? IPC_ALIVE : IPC_UNKNOWN;
	int64_t until = sg_now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = {c, POLLIN, 0};
		int64_t left = until - sg_now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return IPC_BROKEN;
		ssize_t n = recv(c, buf, sizeof(buf), 0); /* its SP header, then the end */
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return IPC_ALIVE;
	}
}

/* True when another server answers on path, as nng's bind would find (a stale socket, whose
 * server is gone, is replaced). Unlike nng's own check, this one completes the handshake, so
 * it does not break that server's listener. */
static bool
ipc_in_use(const char *path)
{
	struct stat st;
	int fd;
	if (lstat(path, &st) != 0)
		return false;
	enum ipc_probe_res r = ipc_probe(path, 500, &fd);
	if (fd >= 0)
		close(fd);
	return r != IPC_GONE;
}

/*
 * Closes the fds nng 1.5.2 left open for closed listeners: sockets whose local address is the
 * name a closed listener was bound at (its listening socket, and the connections it accepted,
 * which share that address). A closed listener's live pipes are freed by nng's reaper moments
 * after the close, so fds are counted first, and closed only once a second count, a second
 * later, finds the same number: what is left by then is what nng will never close. At most
 * one scan of /proc/self/fd a second. Watchdog thread.
 */
static void
ipc_reclaim(struct ipc_wd *wd, int64_t now)
{
	int count[SG_IPC_GRAVES] = {0};
	bool ripe = false, close_pass = false;

	for (int g = 0; g < wd->ngraves; g++)
		ripe |= now >= wd->grave[g].due_ms;
	if (!ripe || now - wd->scanned_ms < 1000)
		return;
	wd->scanned_ms = now;
	for (int pass = 0; pass < 2; pass++) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;
		if (d == NULL)
			return;
		while ((e = readdir(d)) != NULL) {
			int fd = atoi(e->d_name);
			struct sockaddr_un sa;
			socklen_t len = sizeof(sa);
			struct stat st;
			if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 ||
			    !S_ISSOCK(st.st_mode) ||
			    getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
			    sa.sun_family != AF_UNIX ||
			    len <= offsetof(struct sockaddr_un, sun_path) || len > sizeof(sa))
				continue;
			size_t n = len - offsetof(struct sockaddr_un, sun_path);
			for (int g = 0; g < wd->ngraves; g++) {
				struct ipc_grave *gr = &wd->grave[g];
				if (now < gr->due_ms ||
				    strnlen(sa.sun_path, n) != strlen(gr->name) ||
				    strncmp(sa.sun_path, gr->name, n) != 0)
					continue;
				if (pass == 0) {
					count[g]++;
				} else if (gr->seen == count[g]) {
					close(fd);
					wd->reclaimed++;
				}
				break;
			}
		}
		closedir(d);
		if (pass == 1)
			break;
		for (int g = 0; g < wd->ngraves; g++)
			close_pass |= now >= wd->grave[g].due_ms && count[g] > 0 &&
			              count[g] == wd->grave[g].seen;
		if (!close_pass)
			break;
	}
	/* a grave is done once empty or reclaimed; others are counted again a second later */
	int k = 0;
	for (int g = 0; g < wd->ngraves; g++) {
		struct ipc_grave *gr = &wd->grave[g];
		if (now >= gr->due_ms) {
			if (count[g] == 0 || count[g] == gr->seen)
				continue;
			gr->seen = count[g];
			gr->due_ms = now + SG_IPC_RECLAIM_MS;
		}
		wd->grave[k++] = *gr;
	}
	wd->ngraves = k;
}

/* Closes the listener that was bound at name, and (nng < 1.6.0) keeps name for ipc_reclaim. */
static void
ipc_retire(struct ipc_wd *wd, nng_listener l, const char *name)
{
	nng_listener_close(l);
	if (!wd->reclaim)
		return;
	if (wd->ngraves == SG_IPC_GRAVES) /* full: the oldest goes uncounted */
		memmove(&wd->grave[0], &wd->grave[1], sizeof(wd->grave[0]) * (SG_IPC_GRAVES - 1));
	struct ipc_grave *gr =
	        &wd->grave[wd->ngraves < SG_IPC_GRAVES ? wd->ngraves++ : wd->ngraves - 1];
	snprintf(gr->name, sizeof(gr->name), "%s", name);
	gr->due_ms = sg_now_ms() + SG_IPC_RECLAIM_MS;
	gr->seen = -1;
}

/*
 * Starts a listener on url, or (the watchdog, on an ipc listener) replaces the one in *l
 * without a gap. l is s->listeners[i]. An ipc path gets the configured mode (ipc.mode, 0600 by
 * default) and group whatever the umask: the socket is made under a umask of 0177, so it is
 * never wider than the owner's for a moment, then nng sets the mode (and with the watchdog on,
 * this happens at the sibling name, before the rename shows it at the path). A path that holds
 * anything but a socket is refused, never replaced; a socket another server answers on is
 * "address in use"; a stale one is replaced. 0, or -1 with err (*l is then unchanged).
 */
static int
listen_one(struct sg_server *s, const char *url, nng_listener *l, char *err, size_t errlen)
{
	const sg_config *cfg = s->cfg;
	bool ipc = strncmp(url, "ipc://", 6) == 0;
	const char *path = url + 6;
	struct ipc_slot *slot = NULL;
	char name[SG_IPC_NAME_MAX], nurl[SG_IPC_NAME_MAX + 8];
	nng_listener nl;
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
	if (ipc && cfg->ipc_watchdog_ms > 0) {
		if ((slot = ipc_slot(s, (size_t)(l - s->listeners))) == NULL) {
			snprintf(err, errlen, "listen %s: out of memory", url);
			return -1;
		}
		if (!slot->on && ipc_in_use(path)) {
			snprintf(err, errlen, "listen %s: %s", url, nng_strerror(NNG_EADDRINUSE));
			return -1;
		}
		int n = snprintf(name, sizeof(name), "%s.%ld.%u.new", path, (long)getpid(),
		                 atomic_fetch_add(&ipc_seq, 1));
		if (n < 0 || (size_t)n >= sizeof(name)) {
			snprintf(
			        err, errlen,
			        "listen %s: the path is too long for the ipc watchdog's hand-over, "
			        "which binds at \"%s.PID.N.new\" first (at most %zu bytes): use a "
			        "shorter path, or ipc_watchdog_ms=0",
			        url, path, SG_IPC_NAME_MAX - 1);
			return -1;
		}
		snprintf(nurl, sizeof(nurl), "ipc://%s", name);
	}
	const char *lurl = slot != NULL ? nurl : url;
	const char *lpath = slot != NULL ? name : path;
	bool tls = strncmp(url, "tls+tcp://", 10) == 0;
	if (tls && tls_server_config(s, err, errlen) != 0)
		return -1;
	if ((rv = nng_listener_create(&nl, s->sock, lurl)) != 0) {
		snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
		return -1;
	}
	if ((ipc && (rv = nng_listener_set_int(nl, NNG_OPT_IPC_PERMISSIONS, cfg->ipc_mode)) != 0) ||
	    (tls && (rv = nng_listener_set_ptr(nl, NNG_OPT_TLS_CONFIG, s->tls)) != 0))
		goto fail_nng;
	/* (umask is the process's: the only files made meanwhile are other ipc sockets) */
	mode_t old = ipc ? umask(0177) : 0;
	rv = nng_listener_start(nl, 0);
	if (ipc)
		umask(old);
	if (rv != 0)
		goto fail_nng;
	if (ipc && gid != (gid_t)-1 && chown(lpath, (uid_t)-1, gid) != 0) {
		snprintf(err, errlen, "listen %s: chown to group %s: %s", url, cfg->ipc_group,
		         strerror(errno));
		nng_listener_close(nl);
		return -1;
	}
	if (slot != NULL) {
		/* the path again, just before the rename: never replace what is not a socket */
		if ((lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) || rename(name, path) != 0) {
			snprintf(err, errlen, "listen %s: rename %s over it: %s", url, name,
			         errno != 0 ? strerror(errno) : "not a socket");
			nng_listener_close(nl); /* nng unlinks name */
			return -1;
		}
		if (stat(path, &st) == 0) {
			slot->dev = st.st_dev;
			slot->ino = st.st_ino;
		}
		if (slot->on)
			ipc_retire(s->ipc, *l, slot->bound);
		slot->on = true;
		snprintf(slot->bound, sizeof(slot->bound), "%s", name);
	}
	*l = nl;
	return 0;
fail_nng:
	snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
	nng_listener_close(nl);
	return -1;
}

/* How long a close may take: milliseconds when nng_close returns at all. */
#define SG_CLOSE_TIMEOUT_MS 2000

static void
close_sock(void *arg)
{
	nng_close(*(nng_socket *)arg);
}

/* How long a probe waits for a listener to take its connection: a live one takes it within
 * microseconds; the wait is also what a broken one costs callers, on top of the period. */
static int
ipc_probe_timeout_ms(int64_t period_ms)
{
	return period_ms < 20 ? 20 : period_ms > 1000 ? 1000 : (int)period_ms;
}

/* One hand-over line a second at most per listener, with the counts so far. */
static void
ipc_log(struct sg_server *s, const char *url, struct ipc_slot *slot, enum ipc_probe_res why,
        const char *failed)
{
	int64_t now = sg_now_ms();
	if (s->cfg->verbose < 1 || (slot->logged_ms != 0 && now - slot->logged_ms < 1000))
		return;
	slot->logged_ms = now;
	if (failed != NULL) {
		fprintf(stderr, "shipgated: %s: replacing the listener failed: %s\n", url, failed);
		return;
	}
	fprintf(stderr,
	        "shipgated: %s: listener replaced %llu times so far (%s); %llu fds nng 1.5.2 "
	        "left reclaimed\n",
	        url, slot->replaced,
	        why == IPC_GONE ? "the socket file was missing"
	                        : "it stopped taking connections: nng #1518, a peer hung up "
	                          "mid-handshake",
	        s->ipc->reclaimed);
}

/*
 * Every ipc_watchdog_ms, probes each ipc listener (ipc_probe) and replaces one that did not
 * take the probe (listen_one), at the first miss: the hand-over has no gap, so a false alarm
 * costs only the old listener's established pipes, which redial. Then closes what nng 1.5.2
 * left of closed listeners (ipc_reclaim). Every wait is bounded (the probe's timeout), so
 * watchdog_stop joins within one probe.
 */
static void *
ipc_watchdog(void *arg)
{
	struct sg_server *s = arg;
	int64_t period = s->cfg->ipc_watchdog_ms;
	int timeout = ipc_probe_timeout_ms(period);
	int64_t next = sg_now_ms();

	prctl(PR_SET_NAME, "sg-ipcwd", 0, 0, 0); /* so that bench/ipchangup finds its CPU */
	pthread_mutex_lock(&s->wd_mtx);
	while (!s->wd_stop) {
		int64_t now = sg_now_ms();
		next = next + period > now ? next + period : now + period;
		while (!s->wd_stop && sg_cond_wait_until(&s->wd_cv, &s->wd_mtx, next)) {
		}
		if (s->wd_stop)
			break;
		pthread_mutex_unlock(&s->wd_mtx);
		for (size_t i = 0; i < s->nlisteners && s->ipc != NULL; i++) {
			struct ipc_slot *slot = &s->ipc->slot[i];
			const char *url = s->cfg->listen[i];
			int fd;
			if (!slot->on)
				continue;
			enum ipc_probe_res r = ipc_probe(url + 6, timeout, &fd);
			if (r == IPC_BROKEN || r == IPC_GONE) {
				char why[300];
				if (listen_one(s, url, &s->listeners[i], why, sizeof(why)) != 0) {
					ipc_log(s, url, slot, r, why);
				} else {
					slot->replaced++;
					ipc_log(s, url, slot, r, NULL);
				}
			}
			if (fd >= 0)
				close(fd); /* after the old listener closed: see ipc_probe */
		}
		if (s->ipc != NULL)
			ipc_reclaim(s->ipc, sg_now_ms());
		pthread_mutex_lock(&s->wd_mtx);
	}
	pthread_mutex_unlock(&s->wd_mtx);
	return NULL;
}

/*
 * Stops the watchdog (sg_server_stop, sg_server_free). Once the socket is closed (the call
 * from sg_server_free), no listener serves the public ipc paths any more: each is removed if
 * it still holds the socket this server renamed there, and the hand-over state is freed.
 */
static void
watchdog_stop(struct sg_server *s)
{
	if (s->watchdog_running) {
		pthread_mutex_lock(&s->wd_mtx);
		s->wd_stop = true;
		pthread_cond_signal(&s->wd_cv);
		pthread_mutex_unlock(&s->wd_mtx);
		pthread_join(s->watchdog, NULL);
		s->watchdog_running = false;
	}
	if (s->ipc == NULL || s->sock_open)
		return;
	for (size_t i = 0; i < SG_CONFIG_MAX_LISTEN && i < s->cfg->nlisten; i++) {
		const char *path = s->cfg->listen[i] + 6;
		struct stat st;
		if (s->ipc->slot[i].on && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    st.st_dev == s->ipc->slot[i].dev && st.st_ino == s->ipc->slot[i].ino)
			unlink(path);
	}
	free(s->ipc);
	s->ipc = NULL;
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
		w->srv = s;
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
	if (caller_listeners_start(s, err, errlen) != 0)
		return SG_EINTERNAL;
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
	if (i < s->nlisteners)
		return s->bound[i];
	i -= s->nlisteners;
	return i < s->nclisteners ? s->cbound[i] : NULL;
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
	for (size_t i = 0; i < s->nclisteners; i++)
		nng_tls_config_free(s->ctls[i]);
	free(s);
}
