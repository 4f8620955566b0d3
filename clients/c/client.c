/*
 * client.c - the shipgate client: sockets, the per-call state machine, retries.
 *
 * The shape is nng's demo/async one. Each call in flight is a `struct sgc_call` with an
 * nng_aio for I/O, one for sleeps, and one nng_ctx per endpoint; one callback switches on the
 * call's state:
 *
 *   start --> SEND --sent--> RECV --reply--> DONE
 *               |              |
 *               +--------------+--failure, retry allowed--> BACKOFF --slept--> start
 *   (a failure before anything could start goes FAIL --sleep(0)--> DONE, so that even local
 *    failures are reported from an nng thread)
 *
 * A keyed call (CreateOrder with an idempotency key) first learns the fleet behind the
 * connection it is about to use, once per connection: its SEND/RECV carry a Health request
 * (call->probing), then the same attempt sends the call itself. What the fleet allows (a retry
 * on another gateway of the same fleet after the connection broke) is the "fleet" section of
 * the client policy.
 *
 * Calls are pooled. A finished call goes back on the free list with its aio and contexts, and
 * only shipgate_client_free releases nng objects - never inside a callback, as nng requires.
 * One mutex per client guards the lists, the endpoints and every state change. nng operations
 * are started while holding it, so a cancellation cannot slip between "decide" and "start";
 * nng never runs a completion inline from those calls. The user's callback runs without it.
 */
#include "client_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include "core/bounded.h"
#include "core/file.h"

/* the defaults (SGC_DEFAULT_*), the reasons (SGC_REASON_*) and the retry rule
 * (sgc_policy_decide) come from proto/shipgate/v1/client_policy.json, through sgc_policy.h */

/* ------------------------------------------------------------------ types */

/* One gateway URL: a req0 socket with one dialer. */
typedef struct sgc_endpoint {
	shipgate_client *c; /* owner, for the pipe callbacks */
	size_t index;       /* position in c->eps */
	char *url;          /* as given; owned */
	nng_socket sock;    /* req0, resend off, RECVMAXSZ set */
	bool open;          /* sock was opened and must be closed */
	uint32_t pipe;      /* id of the newest pipe (from ADD_PRE), 0 when none */
	bool up;            /* that pipe joined the socket (ADD_POST) and has not left */
	uint64_t gen;       /* pipes added so far: a request sent under an older value went out
	                       on a pipe that is gone */
	uint64_t fleet_gen; /* the pipe generation whose fleet is known (0: none known) */
	char *fleet;        /* that pipe's fleet: Health's fleet_id with scope "fleet"; NULL for
	                       scope "node" or no answer; owned */
} sgc_endpoint;

typedef enum sgc_state {
	SGC_IDLE,    /* in the free pool */
	SGC_SEND,    /* nng_ctx_send running: waiting for a connection to take the request */
	SGC_RECV,    /* nng_ctx_recv running: the request is out */
	SGC_BACKOFF, /* nng_sleep_aio between attempts */
	SGC_FAIL,    /* nng_sleep_aio(0) carrying a failure found before any operation */
	SGC_DONE,    /* outcome known, being delivered */
} sgc_state;

struct sgc_call {
	shipgate_client *c;           /* owner */
	struct sgc_call *prev, *next; /* links in c->active or c->free */
	nng_aio *aio;                 /* sends and receives */
	nng_aio *timer;               /* sleeps (BACKOFF, FAIL): nng 1.5.2 keeps a slept aio's
	                                 "expiry is success" flag, so a later timeout on the same
	                                 aio would complete with 0 */
	nng_ctx *ctx;                 /* one context per endpoint (c->n_eps) */
	bool *ctx_open;               /* ctx[i] was opened */
	sgc_state state;              /* see the diagram above */
	/* ---- the request ---- */
	Shipgate__V1__RpcRequest env; /* the envelope; strings owned, payload if payload_owned */
	/* env.n_metadata entries, followed in the same block by env.metadata; owned */
	Shipgate__V1__RpcRequest__MetadataEntry *md;
	bool payload_owned;  /* env.payload.data is malloc'd and ours; else it is borrowed from a
	                        caller waiting for the outcome (shipgate_call_raw) */
	sgc_call_kind kind;  /* idempotent, keyed or other: what the retry rule sees */
	int64_t deadline;    /* end of the budget, nng_clock() milliseconds */
	int attempts;        /* attempts started */
	size_t ep;           /* endpoint of the current attempt */
	uint64_t gen;        /* that endpoint's gen when the request went out */
	int64_t attempt_end; /* end of the current attempt's wait, nng_clock() ms */
	int64_t attempt_ms;  /* length of that wait */
	bool cancelled;      /* cancel_all or free asked the call to end */
	bool conn_lost;      /* its wait was cancelled because the pipe went away */
	/* ---- keyed calls and fleets (client_policy.json, "fleet") ---- */
	bool probing;        /* the running SEND/RECV carries the Health probe, not the call */
	char *attempt_fleet; /* fleet of the connection the current attempt's request went out on
	                        (NULL: none); owned */
	char *need_fleet;    /* set once a request may have been sent and not answered: later
	                        attempts go only to this fleet; owned */
	bool maybe_sent;     /* a request went out and no answer came back (then need_fleet and
	                        lost_ep are set) */
	size_t lost_ep;      /* endpoint of that request */
	/* ---- the outcome ---- */
	shipgate_status st;            /* status so far (of the last attempt); its attempts and
	                                  request_id are set at hand-over (status_finish) */
	Shipgate__V1__RpcReply *reply; /* the OK reply, holding the payload; malloc'd */
	const ProtobufCMessageDescriptor *reply_desc; /* type of the payload; NULL: raw bytes */
	ProtobufCAllocator *allocator;                /* unpacks the payload; NULL: malloc */
	ProtobufCMessage *out; /* the decoded payload, for a synchronous caller */
	/* ---- delivery ---- */
	bool sync;           /* a thread waits in shipgate_call */
	bool done;           /* sync: the outcome is ready for that thread */
	shipgate_done_cb cb; /* async: the user's completion */
	void *arg;           /* async: its argument */
};

struct shipgate_client {
	nng_mtx *mtx;                /* guards everything below and every call's state */
	nng_cv *cv;                  /* a sync call finished, or n_active went down */
	sgc_endpoint *eps;           /* one per URL */
	size_t n_eps;                /* entries in eps */
	size_t rr;                   /* where the next round-robin pick starts */
	int64_t default_deadline_ms; /* budget of calls that give none */
	size_t max_reply;            /* largest RpcReply accepted */
	int64_t connect_timeout_ms;  /* longest wait for a connection per attempt */
	shipgate_retry_policy retry; /* with defaults filled in */
	struct sgc_call *active;     /* calls in flight */
	struct sgc_call *free;       /* idle calls, ready for reuse */
	size_t n_active;             /* length of active */
	bool closing;                /* shipgate_client_free has begun */
	nng_tls_config *tls;         /* tls+tcp:// dialers' config, or NULL */
};

static void call_cb(void *arg);

static int64_t
now_ms(void)
{
	return (int64_t)nng_clock();
}

/* ------------------------------------------------------------------ endpoints */

/* Fails, before nng can resend them, the calls whose request went out on ep's pipe of
 * generation gen (UINT64_MAX: any). Lock held. */
static void
lose_calls(shipgate_client *c, sgc_endpoint *ep, uint64_t gen)
{
	for (struct sgc_call *call = c->active; call != NULL; call = call->next) {
		if (call->state != SGC_RECV || call->ep != ep->index)
			continue;
		if (gen != UINT64_MAX && call->gen != gen)
			continue;
		call->conn_lost = true;
		nng_aio_cancel(call->aio);
	}
}

/*
 * Pipe events of one endpoint. A dialer has at most one pipe, so when a new one is about to
 * join (ADD_PRE), every request still waiting on this socket went out on an older pipe that is
 * gone. nng 1.5.2 with resend off fails such waits itself (NNG_ECONNRESET), but nng builds
 * that requeue them would send them again on the new pipe as soon as it starts; cancelling the
 * wait first resets the context, which takes the request off that queue. REM_POST does the
 * same as soon as the old pipe is gone.
 */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	sgc_endpoint *ep = arg;
	shipgate_client *c = ep->c;
	uint32_t id = (uint32_t)nng_pipe_id(p);

	nng_mtx_lock(c->mtx);
	switch (ev) {
	case NNG_PIPE_EV_ADD_PRE:
		lose_calls(c, ep, UINT64_MAX);
		ep->gen++;
		ep->pipe = id;
		ep->up = false;
		break;
	case NNG_PIPE_EV_ADD_POST:
		if (id == ep->pipe)
			ep->up = true;
		break;
	case NNG_PIPE_EV_REM_POST:
		if (id == ep->pipe) {
			ep->up = false;
			ep->pipe = 0;
			lose_calls(c, ep, ep->gen);
		}
		break;
	default: break;
	}
	nng_mtx_unlock(c->mtx);
}

/* Round robin over the endpoints, preferring connected ones. Lock held. */
static size_t
pick_endpoint(shipgate_client *c)
{
	size_t i;

	for (size_t k = 0; k < c->n_eps; k++) {
		i = (c->rr + k) % c->n_eps;
		if (c->eps[i].up) {
			c->rr = i + 1;
			return i;
		}
	}
	i = c->rr % c->n_eps;
	c->rr = i + 1;
	return i;
}

static int
endpoint_open(shipgate_client *c, sgc_endpoint *ep, const char *url)
{
	int rv;

	ep->c = c;
	if ((ep->url = sgc_strdup(url)) == NULL)
		return SHIPGATE_ENOMEM;
	if ((rv = nng_req0_open(&ep->sock)) != 0)
		return rv == NNG_ENOMEM ? SHIPGATE_ENOMEM : SHIPGATE_ENNG;
	ep->open = true;
	/* all before dialing: contexts copy the resend time (when opened, which is later, per
	 * call), dialers the size limit */
	if (nng_socket_set_ms(ep->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0 ||
	    nng_socket_set_size(ep->sock, NNG_OPT_RECVMAXSZ, c->max_reply) != 0 ||
	    nng_socket_set_ms(ep->sock, NNG_OPT_RECONNMINT, SGC_DEFAULT_RECONNECT_MIN_MS) != 0 ||
	    nng_socket_set_ms(ep->sock, NNG_OPT_RECONNMAXT, SGC_DEFAULT_RECONNECT_MAX_MS) != 0 ||
	    nng_pipe_notify(ep->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, ep) != 0 ||
	    nng_pipe_notify(ep->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, ep) != 0 ||
	    nng_pipe_notify(ep->sock, NNG_PIPE_EV_REM_POST, pipe_cb, ep) != 0)
		return SHIPGATE_ENNG;
	if (strncmp(url, "tls+tcp://", 10) == 0) {
		nng_dialer d;
		if (c->tls == NULL)
			return SHIPGATE_EINVAL; /* no CA to verify the gateway with */
		if ((rv = nng_dialer_create(&d, ep->sock, url)) != 0)
			return rv == NNG_ENOMEM ? SHIPGATE_ENOMEM : SHIPGATE_EADDR;
		if (nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c->tls) != 0)
			return SHIPGATE_ENNG;
		return nng_dialer_start(d, NNG_FLAG_NONBLOCK) == 0 ? SHIPGATE_OK : SHIPGATE_ENNG;
	}
	switch (nng_dial(ep->sock, url, NULL, NNG_FLAG_NONBLOCK)) {
	case 0: return SHIPGATE_OK;
	case NNG_ENOMEM: return SHIPGATE_ENOMEM;
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
	case NNG_EINVAL: return SHIPGATE_EADDR;
	default: return SHIPGATE_ENNG;
	}
}

/* ------------------------------------------------------------------ client */

/* A small PEM file as a string (malloc'd), or NULL. */
static char *
read_pem(const char *path)
{
	return sg_read_file(path, 1 << 20);
}

/*
 * The dialers' TLS config: the CA the gateways' certificates must chain to (verification is
 * required), the name to check (else each URL's host), and an optional client certificate.
 * SHIPGATE_OK, SHIPGATE_EINVAL for files that do not load.
 */
static int
tls_client_config(shipgate_client *c, const shipgate_tls_opts *t)
{
	char *cert = NULL, *key = NULL;
	int rv = SHIPGATE_EINVAL;

	if (nng_tls_config_alloc(&c->tls, NNG_TLS_MODE_CLIENT) != 0)
		return SHIPGATE_ENOMEM;
	if (nng_tls_config_ca_file(c->tls, t->ca_file) != 0 ||
	    nng_tls_config_auth_mode(c->tls, NNG_TLS_AUTH_MODE_REQUIRED) != 0 ||
	    (t->server_name != NULL && nng_tls_config_server_name(c->tls, t->server_name) != 0))
		goto done;
	if (t->cert_file != NULL || t->key_file != NULL) {
		if (t->cert_file == NULL || t->key_file == NULL ||
		    (cert = read_pem(t->cert_file)) == NULL ||
		    (key = read_pem(t->key_file)) == NULL ||
		    nng_tls_config_own_cert(c->tls, cert, key, NULL) != 0)
			goto done;
	}
	rv = SHIPGATE_OK;
done:
	free(cert);
	free(key);
	return rv;
}

int
shipgate_client_new(shipgate_client **cp, const shipgate_client_opts *opts)
{
	static const char *const default_urls[] = {SHIPGATE_DEFAULT_URL};
	shipgate_client_opts o = {0};
	shipgate_client *c;
	int rv;

	if (cp == NULL)
		return SHIPGATE_EINVAL;
	*cp = NULL;
	if (opts != NULL)
		o = *opts;
	if (o.n_urls == 0) {
		o.urls = default_urls;
		o.n_urls = 1;
	}
	if (o.urls == NULL || o.default_deadline_ms < 0 || o.connect_timeout_ms < 0 ||
	    o.retry.max_attempts < 0 || o.retry.backoff_base_ms < 0 || o.retry.backoff_cap_ms < 0 ||
	    o.retry.attempt_timeout_ms < 0)
		return SHIPGATE_EINVAL;
	for (size_t i = 0; i < o.n_urls; i++)
		if (o.urls[i] == NULL)
			return SHIPGATE_EINVAL;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SHIPGATE_ENOMEM;
	c->default_deadline_ms =
	        o.default_deadline_ms ? o.default_deadline_ms : SGC_DEFAULT_DEADLINE_MS;
	c->max_reply = o.max_reply_size ? o.max_reply_size : (size_t)SGC_DEFAULT_MAX_REPLY_SIZE;
	c->connect_timeout_ms =
	        o.connect_timeout_ms ? o.connect_timeout_ms : SGC_DEFAULT_CONNECT_TIMEOUT_MS;
	c->retry = o.retry;
	if (c->retry.max_attempts == 0)
		c->retry.max_attempts = SGC_DEFAULT_MAX_ATTEMPTS;
	if (c->retry.backoff_base_ms == 0)
		c->retry.backoff_base_ms = SGC_DEFAULT_BACKOFF_BASE_MS;
	if (c->retry.backoff_cap_ms == 0)
		c->retry.backoff_cap_ms = SGC_DEFAULT_BACKOFF_CAP_MS;
	if (c->retry.attempt_timeout_ms == 0)
		c->retry.attempt_timeout_ms = SGC_DEFAULT_ATTEMPT_TIMEOUT_MS;
	if (c->retry.backoff_cap_ms < c->retry.backoff_base_ms)
		c->retry.backoff_cap_ms = c->retry.backoff_base_ms;

	rv = SHIPGATE_ENOMEM;
	if (nng_mtx_alloc(&c->mtx) != 0 || nng_cv_alloc(&c->cv, c->mtx) != 0)
		goto fail;
	if ((c->eps = calloc(o.n_urls, sizeof(*c->eps))) == NULL)
		goto fail;
	c->n_eps = o.n_urls;
	if (o.tls.ca_file != NULL && (rv = tls_client_config(c, &o.tls)) != SHIPGATE_OK)
		goto fail;
	rv = SHIPGATE_ENOMEM;
	for (size_t i = 0; i < c->n_eps; i++) {
		c->eps[i].index = i;
		if ((rv = endpoint_open(c, &c->eps[i], o.urls[i])) != SHIPGATE_OK)
			goto fail;
	}
	*cp = c;
	return SHIPGATE_OK;
fail:
	shipgate_client_free(c);
	return rv;
}

size_t
shipgate_client_connected(shipgate_client *c)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	nng_mtx_lock(c->mtx);
	for (size_t i = 0; i < c->n_eps; i++)
		n += c->eps[i].up;
	nng_mtx_unlock(c->mtx);
	return n;
}

/* Marks every call in flight cancelled and interrupts what it waits on. Lock held. */
static void
cancel_locked(shipgate_client *c)
{
	for (struct sgc_call *call = c->active; call != NULL; call = call->next) {
		if (call->state == SGC_DONE || call->state == SGC_IDLE)
			continue;
		call->cancelled = true;
		nng_aio_cancel(call->aio);
		nng_aio_cancel(call->timer);
	}
}

void
shipgate_client_cancel_all(shipgate_client *c)
{
	if (c == NULL)
		return;
	nng_mtx_lock(c->mtx);
	cancel_locked(c);
	nng_mtx_unlock(c->mtx);
}

void
shipgate_client_wait_all(shipgate_client *c)
{
	if (c == NULL)
		return;
	nng_mtx_lock(c->mtx);
	while (c->n_active > 0)
		nng_cv_wait(c->cv);
	nng_mtx_unlock(c->mtx);
}

/* How long a free waits for one socket's nng_close (milliseconds when it returns at all). */
#define CLOSE_TIMEOUT_MS 2000

static void
close_sock(void *arg)
{
	nng_close(*(nng_socket *)arg);
}

void
shipgate_client_free(shipgate_client *c)
{
	struct sgc_call *call;

	if (c == NULL)
		return;
	if (c->mtx != NULL && c->cv != NULL) {
		nng_mtx_lock(c->mtx);
		c->closing = true;
		cancel_locked(c);
		while (c->n_active > 0)
			nng_cv_wait(c->cv);
		nng_mtx_unlock(c->mtx);
	}
	/* nng's order: close the sockets, then stop (in nng_aio_free) each aio, then free.
	 * nng 1.5.2's close can wait forever on a socket whose peer stalled (nanomsg/nng #1543):
	 * each close is bounded, and a client with a socket that did not close is left allocated
	 * (nng may still use its aios), a leak of a few KiB instead of a caller that hangs. */
	bool stuck = false;
	for (size_t i = 0; i < c->n_eps; i++)
		if (c->eps[i].open &&
		    !sg_run_bounded(close_sock, &c->eps[i].sock, CLOSE_TIMEOUT_MS))
			stuck = true;
	if (stuck)
		return;
	while ((call = c->free) != NULL) {
		c->free = call->next;
		nng_aio_free(call->aio);
		nng_aio_free(call->timer);
		free(call->ctx);
		free(call->ctx_open);
		free(call);
	}
	for (size_t i = 0; i < c->n_eps; i++) {
		free(c->eps[i].url);
		free(c->eps[i].fleet);
	}
	free(c->eps);
	if (c->tls != NULL)
		nng_tls_config_free(c->tls);
	if (c->cv != NULL)
		nng_cv_free(c->cv);
	if (c->mtx != NULL)
		nng_mtx_free(c->mtx);
	free(c);
}

/* ------------------------------------------------------------------ call pool */

static void
list_remove(struct sgc_call **head, struct sgc_call *call)
{
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		*head = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
}

static void
list_push(struct sgc_call **head, struct sgc_call *call)
{
	call->prev = NULL;
	call->next = *head;
	if (*head != NULL)
		(*head)->prev = call;
	*head = call;
}

/* A call from the pool (or a new one), on the active list. NULL when out of memory. */
static struct sgc_call *
call_get(shipgate_client *c)
{
	struct sgc_call *call;

	nng_mtx_lock(c->mtx);
	if ((call = c->free) != NULL) {
		list_remove(&c->free, call);
	} else {
		nng_mtx_unlock(c->mtx);
		if ((call = calloc(1, sizeof(*call))) == NULL)
			return NULL;
		call->c = c;
		call->ctx = calloc(c->n_eps, sizeof(*call->ctx));
		call->ctx_open = calloc(c->n_eps, sizeof(*call->ctx_open));
		if (call->ctx == NULL || call->ctx_open == NULL ||
		    nng_aio_alloc(&call->aio, call_cb, call) != 0 ||
		    nng_aio_alloc(&call->timer, call_cb, call) != 0) {
			if (call->aio != NULL)
				nng_aio_free(call->aio);
			free(call->ctx);
			free(call->ctx_open);
			free(call);
			return NULL;
		}
		nng_mtx_lock(c->mtx);
	}
	list_push(&c->active, call);
	c->n_active++;
	nng_mtx_unlock(c->mtx);
	return call;
}

/* Releases what the call owns and puts it back in the pool; its contexts stay open for the
 * next call. Must be the caller's last touch of the call. Lock held. */
static void
call_put(struct sgc_call *call)
{
	shipgate_client *c = call->c;

	free(call->env.method);
	free(call->env.request_id);
	free(call->env.idempotency_key);
	if (call->payload_owned)
		free(call->env.payload.data);
	for (size_t i = 0; i < call->env.n_metadata; i++) {
		free(call->md[i].key);
		free(call->md[i].value);
	}
	free(call->md);
	free(call->attempt_fleet);
	free(call->need_fleet);
	call->attempt_fleet = call->need_fleet = NULL;
	call->probing = call->maybe_sent = false;
	if (call->reply != NULL)
		shipgate__v1__rpc_reply__free_unpacked(call->reply, NULL);
	shipgate_status_fini(&call->st);
	memset(&call->env, 0, sizeof(call->env));
	call->payload_owned = false;
	call->md = NULL;
	call->reply = NULL;
	call->out = NULL;
	call->state = SGC_IDLE;
	call->cb = NULL;
	call->arg = NULL;
	list_remove(&c->active, call);
	list_push(&c->free, call);
	c->n_active--;
	nng_cv_wake(c->cv);
}

/* ------------------------------------------------------------------ the state machine */

/* Backoff before retry number n (1-based): exponential, capped, jittered to [d/2, d]. */
static int64_t
backoff_ms(const shipgate_retry_policy *r, int n)
{
	int64_t d = r->backoff_base_ms;

	for (int i = 1; i < n && d < r->backoff_cap_ms; i++)
		d *= 2;
	if (d > r->backoff_cap_ms)
		d = r->backoff_cap_ms;
	return d / 2 + (int64_t)(nng_random() % (uint32_t)(d / 2 + 1));
}

/*
 * Encodes and sends what the current attempt carries: the call's envelope, or with
 * call->probing a Health request (same request id, empty payload) that learns the fleet behind
 * the connection. The envelope's deadline_ms is what is left of the attempt's wait. Returns
 * false when the send is under way, true when the call is over (the status says why). Lock
 * held.
 */
static bool
send_attempt(struct sgc_call *call)
{
	shipgate_client *c = call->c;
	Shipgate__V1__RpcRequest probe = SHIPGATE__V1__RPC_REQUEST__INIT;
	const Shipgate__V1__RpcRequest *env = &call->env;
	int64_t wait = call->attempt_end - now_ms(), send_wait;
	nng_msg *m;
	size_t n;

	if (wait < 1)
		wait = 1;
	if (call->probing) {
		probe.method = (char *)SHIPGATE_METHOD_HEALTH;
		probe.request_id = call->env.request_id;
		probe.deadline_ms = sgc_policy_sent_deadline(wait);
		env = &probe;
	} else {
		/* the gateway is told a little less than the attempt waits, so that its own answer
		 * (its DEADLINE_EXCEEDED says what happened upstream) comes before this attempt's
		 * timer */
		call->env.deadline_ms = sgc_policy_sent_deadline(wait);
	}
	n = shipgate__v1__rpc_request__get_packed_size(env);
	if (nng_msg_alloc(&m, n) != 0) {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
		               SGC_REASON_CLIENT_OUT_OF_MEMORY, false,
		               "out of memory encoding the request");
		return true;
	}
	shipgate__v1__rpc_request__pack(env, nng_msg_body(m));
	call->conn_lost = false;
	send_wait = wait < c->connect_timeout_ms ? wait : c->connect_timeout_ms;
	nng_aio_set_timeout(call->aio, (nng_duration)send_wait);
	nng_aio_set_msg(call->aio, m);
	call->state = SGC_SEND;
	nng_ctx_send(call->ctx[call->ep], call->aio);
	return false;
}

/* Whether the fleet behind endpoint ep's current connection is known. Lock held. */
static bool
fleet_known(const sgc_endpoint *ep)
{
	return ep->fleet_gen != 0 && ep->fleet_gen == ep->gen && ep->up;
}

/*
 * A keyed call whose request may have reached a gateway of fleet need_fleet is about to go to
 * endpoint ep, whose fleet is known: when ep is not of that fleet, ends the call UNKNOWN /
 * OUTCOME_UNKNOWN and returns true. Lock held.
 */
static bool
fleet_mismatch(struct sgc_call *call, const sgc_endpoint *ep, const char *fleet)
{
	shipgate_client *c = call->c;

	if (!call->maybe_sent ||
	    (call->need_fleet != NULL && fleet != NULL && strcmp(fleet, call->need_fleet) == 0))
		return false;
	sgc_status_set(&call->st, SHIPGATE__V1__CODE__UNKNOWN, SGC_REASON_OUTCOME_UNKNOWN, false,
	               "%s went out to %s (fleet %.200s) and no answer came back; %s is %s%.200s, "
	               "so the call is not sent there: the first gateway may have acted on it "
	               "(check with the provider before trying again)",
	               call->env.method, c->eps[call->lost_ep].url,
	               call->need_fleet != NULL ? call->need_fleet : "none", ep->url,
	               fleet != NULL ? "of fleet " : "of no fleet (its keys are its own)",
	               fleet != NULL ? fleet : "");
	return true;
}

/*
 * Starts the next attempt: picks an endpoint, then sends the envelope with the budget left (a
 * keyed call first asks Health on a connection whose fleet it does not know). Returns false
 * when the attempt is under way, true when the call is over (the status says why). Lock held.
 */
static bool
start_attempt(struct sgc_call *call)
{
	shipgate_client *c = call->c;
	int64_t now = now_ms(), remaining = call->deadline - now, budget;
	sgc_endpoint *ep;
	int rv;

	if (call->cancelled || c->closing) {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__CANCELLED,
		               SGC_REASON_CLIENT_CANCELLED, false, "call cancelled by the client");
		return true;
	}
	if (remaining <= 0) {
		if (call->attempts == 0)
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__DEADLINE_EXCEEDED,
			               SGC_REASON_CLIENT_DEADLINE_EXPIRED, false,
			               "deadline expired before the request was sent");
		else if (call->st.reason == NULL) /* else the last attempt's failure stands */
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__DEADLINE_EXCEEDED,
			               SGC_REASON_TRANSPORT_TIMEOUT, false,
			               "deadline expired after %d attempts", call->attempts);
		return true;
	}
	call->ep = pick_endpoint(c);
	ep = &c->eps[call->ep];
	if (!call->ctx_open[call->ep]) {
		/* the context takes the socket's resend time (off), set in endpoint_open */
		if ((rv = nng_ctx_open(&call->ctx[call->ep], ep->sock)) != 0) {
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__UNAVAILABLE,
			               SGC_REASON_TRANSPORT_ERROR, false,
			               "%s: cannot open a context: %s", ep->url, nng_strerror(rv));
			return true;
		}
		call->ctx_open[call->ep] = true;
	}

	budget = remaining;
	if (c->retry.attempt_timeout_ms > 0 && c->retry.attempt_timeout_ms < budget)
		budget = c->retry.attempt_timeout_ms;
	if (budget > INT32_MAX)
		budget = INT32_MAX;
	call->attempt_end = now + budget;
	call->attempt_ms = budget;
	call->attempts++;
	call->probing = call->kind == SGC_KIND_KEYED && !fleet_known(ep);
	if (!call->probing && call->kind == SGC_KIND_KEYED && fleet_mismatch(call, ep, ep->fleet))
		return true;
	return send_attempt(call);
}

/*
 * The Health probe of a keyed call answered (rep, status in st; rep NULL when unusable):
 * records the fleet of the connection it went out on, then sends the call itself in the same
 * attempt, unless that connection is of another fleet than the call needs. Returns true when
 * the call is over. Lock held.
 */
static bool
on_probe(struct sgc_call *call, Shipgate__V1__RpcReply *rep, const shipgate_status *st)
{
	sgc_endpoint *ep = &call->c->eps[call->ep];
	Shipgate__V1__HealthResponse *h = NULL;
	char *fleet = NULL;

	if (rep != NULL && st->code == SHIPGATE__V1__CODE__OK)
		h = shipgate__v1__health_response__unpack(NULL, rep->payload.len,
		                                          rep->payload.data);
	if (h != NULL && strcmp(h->idempotency_scope, "fleet") == 0 && h->fleet_id[0] != '\0')
		fleet = sgc_strdup(h->fleet_id); /* out of memory: none, the safe side */
	if (h != NULL)
		shipgate__v1__health_response__free_unpacked(h, NULL);
	if (ep->gen != call->gen) {
		free(fleet); /* a newer connection took its place: ask that one */
		return send_attempt(call);
	}
	free(ep->fleet);
	ep->fleet = fleet;
	ep->fleet_gen = call->gen;
	call->probing = false;
	if (fleet_mismatch(call, ep, fleet))
		return true;
	return send_attempt(call);
}

/*
 * Reports a transport failure of a call that is not idempotent, after its request went out, as
 * UNKNOWN / OUTCOME_UNKNOWN: the gateway may be working on it still. Lock held.
 */
static void
outcome_unknown(struct sgc_call *call)
{
	char was[320];

	snprintf(was, sizeof(was), "%s (%s)", call->st.message != NULL ? call->st.message : "",
	         call->st.reason != NULL ? call->st.reason : "-");
	sgc_status_set(&call->st, SHIPGATE__V1__CODE__UNKNOWN, SGC_REASON_OUTCOME_UNKNOWN, false,
	               "%s went out and no answer came back: %s; the gateway may have acted on "
	               "it, so it is not retried (check with the provider before trying again)",
	               call->env.method, was);
}

/*
 * After a failed attempt (status in call->st): applies the policy's retry rule
 * (sgc_policy_decide), then sleeps and tries again when it says so and attempts and budget are
 * left; returns true when the call is over. never_sent: the request provably did not leave the
 * client. Lock held.
 */
static bool
maybe_retry(struct sgc_call *call, bool never_sent)
{
	shipgate_client *c = call->c;
	const shipgate_status *st = &call->st;
	int64_t delay;

	if (call->cancelled || c->closing) {
		if (st->code != SHIPGATE__V1__CODE__CANCELLED)
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__CANCELLED,
			               SGC_REASON_CLIENT_CANCELLED, false,
			               "call cancelled by the client");
		return true;
	}
	switch (sgc_policy_decide(call->kind, !never_sent, st->local, st->code, st->reason,
	                          !never_sent && call->attempt_fleet != NULL)) {
	case SGC_RETRY: break;
	case SGC_OUTCOME_UNKNOWN: outcome_unknown(call); return true;
	default: return true;
	}
	if (call->attempts >= c->retry.max_attempts)
		return true;
	delay = backoff_ms(&c->retry, call->attempts);
	if (st->retry_after_ms > delay)
		delay = st->retry_after_ms;
	if (delay >= call->deadline - now_ms())
		return true; /* no budget left for another attempt: report this one */
	call->state = SGC_BACKOFF;
	nng_sleep_aio((nng_duration)delay, call->timer);
	return false;
}

/* The send finished (rv). Returns true when the call is over. Lock held. */
static bool
on_sent(struct sgc_call *call, int rv)
{
	shipgate_client *c = call->c;
	sgc_endpoint *ep = &c->eps[call->ep];
	int64_t now = now_ms(), wait;

	if (rv == 0) {
		call->gen = ep->gen;
		if (!call->probing && call->kind == SGC_KIND_KEYED) {
			/* the fleet of the connection it went out on, if that one was asked */
			free(call->attempt_fleet);
			call->attempt_fleet = ep->fleet != NULL && ep->fleet_gen == ep->gen
			                              ? sgc_strdup(ep->fleet)
			                              : NULL;
		}
		wait = call->attempt_end - now;
		if (wait < 1)
			wait = 1; /* still go through nng, which resets the context */
		call->state = SGC_RECV;
		nng_aio_set_timeout(call->aio, (nng_duration)wait);
		nng_ctx_recv(call->ctx[call->ep], call->aio);
		if (call->cancelled)
			nng_aio_cancel(call->aio);
		return false;
	}
	/* the request never left: a failed send leaves the message with us */
	nng_msg_free(nng_aio_get_msg(call->aio));
	nng_aio_set_msg(call->aio, NULL);
	switch (rv) {
	case NNG_ETIMEDOUT:
		if (call->deadline - now <= 0)
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__DEADLINE_EXCEEDED,
			               SGC_REASON_TRANSPORT_NOT_CONNECTED, false,
			               "no connection to %s within the deadline", ep->url);
		else
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__UNAVAILABLE,
			               SGC_REASON_TRANSPORT_NOT_CONNECTED, true,
			               "no connection to %s within %" PRId64 " ms", ep->url,
			               c->connect_timeout_ms);
		break;
	case NNG_ECANCELED:
	case NNG_ECLOSED:
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__CANCELLED,
		               SGC_REASON_CLIENT_CANCELLED, false, "call cancelled by the client");
		break;
	default:
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__UNAVAILABLE,
		               SGC_REASON_TRANSPORT_ERROR, true, "sending to %s: %s", ep->url,
		               nng_strerror(rv));
	}
	return maybe_retry(call, true);
}

/*
 * Decodes a received envelope outside the lock. Returns the reply with st holding its status,
 * or NULL with st saying why it is unusable (too large, malformed, answering another request).
 * Consumes msg. st is empty on entry.
 */
static Shipgate__V1__RpcReply *
decode_reply(struct sgc_call *call, nng_msg *msg, shipgate_status *st)
{
	shipgate_client *c = call->c;
	const char *url = c->eps[call->ep].url;
	size_t len = nng_msg_len(msg);
	Shipgate__V1__RpcReply *rep;

	if (len > c->max_reply) {
		nng_msg_free(msg);
		sgc_status_set(st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
		               SGC_REASON_TRANSPORT_REPLY_TOO_LARGE, false,
		               "reply of %zu bytes from %s exceeds max_reply_size %zu", len, url,
		               c->max_reply);
		return NULL;
	}
	rep = shipgate__v1__rpc_reply__unpack(NULL, len, nng_msg_body(msg));
	nng_msg_free(msg);
	if (rep == NULL || rep->status == NULL) {
		sgc_status_set(st, SHIPGATE__V1__CODE__INTERNAL, SGC_REASON_CLIENT_BAD_REPLY, false,
		               "reply from %s is not a shipgate.v1.RpcReply with a status", url);
	} else if (rep->request_id[0] != '\0' &&
	           strcmp(rep->request_id, call->env.request_id) != 0) {
		sgc_status_set(st, SHIPGATE__V1__CODE__INTERNAL, SGC_REASON_CLIENT_BAD_REPLY, false,
		               "reply from %s answers request %.64s, not %s", url, rep->request_id,
		               call->env.request_id);
	} else if (sgc_status_from_wire(st, rep->status) == 0) {
		return rep;
	}
	if (rep != NULL)
		shipgate__v1__rpc_reply__free_unpacked(rep, NULL);
	return NULL;
}

/* The receive finished (rv; when 0, rep from decode_reply and call->st its status). Returns
 * true when the call is over. Lock held. */
static bool
on_reply(struct sgc_call *call, int rv, Shipgate__V1__RpcReply *rep)
{
	shipgate_client *c = call->c;
	const char *url = c->eps[call->ep].url;
	bool over;

	if (rv != 0) {
		if (rv == NNG_ETIMEDOUT)
			sgc_status_set(
			        &call->st, SHIPGATE__V1__CODE__DEADLINE_EXCEEDED,
			        SGC_REASON_TRANSPORT_TIMEOUT, false,
			        "no reply from %s within %" PRId64 " ms%s", url, call->attempt_ms,
			        call->probing ? " to Health, asked before the call itself" : "");
		else if ((rv == NNG_ECANCELED && call->conn_lost && !call->cancelled) ||
		         rv == NNG_ECONNRESET)
			sgc_status_set(
			        &call->st, SHIPGATE__V1__CODE__UNAVAILABLE,
			        SGC_REASON_TRANSPORT_CONNECTION_LOST, true,
			        "connection to %s lost while waiting for the reply (peer closed "
			        "it, or the reply exceeded max_reply_size)",
			        url);
		else if (rv == NNG_ECANCELED || rv == NNG_ECLOSED)
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__CANCELLED,
			               SGC_REASON_CLIENT_CANCELLED, false,
			               "call cancelled by the client");
		else
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__UNAVAILABLE,
			               SGC_REASON_TRANSPORT_ERROR, true, "receiving from %s: %s",
			               url, nng_strerror(rv));
		if (call->probing) /* only the Health probe went out: the call itself did not */
			return maybe_retry(call, true);
		if (call->kind == SGC_KIND_KEYED && !call->maybe_sent) {
			/* from here on every attempt must reach the same fleet, and whatever does
			 * not settle the key is reported as OUTCOME_UNKNOWN (sgc_policy_unsettled)
			 */
			call->maybe_sent = true;
			call->lost_ep = call->ep;
			call->need_fleet = sgc_strdup(call->attempt_fleet);
		}
		return maybe_retry(call, false);
	}
	if (call->probing) {
		over = on_probe(call, rep, &call->st);
		if (rep != NULL)
			shipgate__v1__rpc_reply__free_unpacked(rep, NULL);
		return over;
	}
	if (rep == NULL)
		return true; /* a reply we cannot use; st says why; not retried */
	if (call->st.code == SHIPGATE__V1__CODE__OK) {
		call->reply = rep;
		return true;
	}
	shipgate__v1__rpc_reply__free_unpacked(rep, NULL);
	return maybe_retry(call, false);
}

/*
 * A keyed call one of whose requests went out unanswered ends: unless the gateway's last
 * answer settles the key (sgc_policy_unsettled), the outcome is UNKNOWN / OUTCOME_UNKNOWN, as
 * the first request may have created the order. Lock held.
 */
static void
settle(struct sgc_call *call)
{
	shipgate_status *st = &call->st;
	char was[320];

	if (!call->maybe_sent || st->code == SHIPGATE__V1__CODE__OK ||
	    (st->reason != NULL && strcmp(st->reason, SGC_REASON_OUTCOME_UNKNOWN) == 0) ||
	    !sgc_policy_unsettled(st->local, st->code))
		return;
	snprintf(was, sizeof(was), "%s %s (%s)", shipgate_code_name(st->code),
	         st->message != NULL ? st->message : "", st->reason != NULL ? st->reason : "-");
	sgc_status_set(st, SHIPGATE__V1__CODE__UNKNOWN, SGC_REASON_OUTCOME_UNKNOWN, false,
	               "%s went out to %s and no answer came back; the retry ended %s: the first "
	               "gateway may have acted on it (check with the provider before trying again)",
	               call->env.method, call->c->eps[call->lost_ep].url, was);
}

/* Completes the status with what belongs to the whole call rather than to one attempt: the
 * attempts made and the request id (moved from the envelope, which is not sent again). Runs
 * once, when the status is handed to the caller, after which nothing sets it again. */
static void
status_finish(struct sgc_call *call)
{
	call->st.attempts = call->attempts;
	call->st.request_id = call->env.request_id;
	call->env.request_id = NULL;
}

/* Hands the outcome over: to the waiting thread, or to the user's callback (then releases the
 * call). Runs on an nng thread, without the lock. */
static void
deliver(struct sgc_call *call)
{
	shipgate_client *c = call->c;
	ProtobufCMessage *out = NULL;

	if (call->st.code == SHIPGATE__V1__CODE__OK && call->reply != NULL &&
	    call->reply_desc != NULL) {
		out = protobuf_c_message_unpack(call->reply_desc, call->allocator,
		                                call->reply->payload.len,
		                                call->reply->payload.data);
		if (out == NULL)
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__INTERNAL,
			               SGC_REASON_CLIENT_BAD_REPLY, false,
			               "reply payload is not a %s", call->reply_desc->name);
	}
	if (call->sync) {
		nng_mtx_lock(c->mtx);
		call->out = out;
		call->done = true;
		nng_cv_wake(c->cv);
		nng_mtx_unlock(c->mtx); /* the waiting thread owns the call from here */
		return;
	}
	status_finish(call);
	call->cb(call->arg, &call->st, out);
	nng_mtx_lock(c->mtx);
	call_put(call);
	nng_mtx_unlock(c->mtx);
}

static void
call_cb(void *arg)
{
	struct sgc_call *call = arg;
	shipgate_client *c = call->c;
	bool slept = call->state == SGC_BACKOFF || call->state == SGC_FAIL;
	int rv = nng_aio_result(slept ? call->timer : call->aio);
	Shipgate__V1__RpcReply *rep = NULL;
	shipgate_status got = SHIPGATE_STATUS_INIT;
	bool over = true;

	/* only this callback changes the state while an operation runs, so it may be read here;
	 * decoding happens outside the lock */
	if (call->state == SGC_RECV && rv == 0) {
		rep = decode_reply(call, nng_aio_get_msg(call->aio), &got);
		nng_aio_set_msg(call->aio, NULL);
	}

	nng_mtx_lock(c->mtx);
	switch (call->state) {
	case SGC_SEND: over = on_sent(call, rv); break;
	case SGC_RECV:
		if (rv == 0) {
			/* the reply's status (or why it is unusable) replaces the last attempt's */
			shipgate_status_fini(&call->st);
			call->st = got;
		}
		over = on_reply(call, rv, rep);
		break;
	case SGC_BACKOFF: over = start_attempt(call); break;
	default: over = true; break; /* SGC_FAIL: the status is already set */
	}
	if (over) {
		settle(call);
		call->state = SGC_DONE;
	}
	nng_mtx_unlock(c->mtx);
	if (over)
		deliver(call);
}

/* ------------------------------------------------------------------ starting calls */

/* Metadata keys: lower-case ASCII, as rpc.proto asks. */
static bool
valid_key(const char *k)
{
	if (k == NULL || !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (; *k != '\0'; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '.' ||
		      *k == '-' || *k == '_'))
			return false;
	return true;
}

/*
 * Fills the call's envelope from the arguments. payload (may be NULL when len is 0) goes into
 * the envelope: when owned, it is malloc'd and the call frees it (even when setup fails); else
 * it is borrowed from a caller that waits for the outcome. Returns 0, or -1 with call->st set.
 * req_desc is the request's type when known (typed calls), for checking.
 */
static int
call_setup(struct sgc_call *call, const char *method, const ProtobufCMessageDescriptor *req_desc,
           void *payload, size_t len, bool owned, const ProtobufCMessageDescriptor *reply_desc,
           const shipgate_call_opts *opts)
{
	static const shipgate_call_opts none = {0};
	shipgate_client *c = call->c;
	const ProtobufCMethodDescriptor *md;
	char full[256], rid[32];
	int64_t budget;

	if (opts == NULL)
		opts = &none;
	shipgate__v1__rpc_request__init(&call->env);
	call->env.payload.data = payload;
	call->env.payload.len = len;
	call->payload_owned = owned;
	call->reply_desc = reply_desc;
	call->allocator = opts->allocator;
	call->attempts = 0;
	call->cancelled = call->conn_lost = call->done = false;
	call->gen = 0;
	/* strings point at the static empty string until replaced, so call_put must not free
	 * them: keep them NULL in the envelope's owned slots until set */
	call->env.method = call->env.request_id = call->env.idempotency_key = NULL;

	budget = opts->deadline_ms != 0 ? opts->deadline_ms : c->default_deadline_ms;
	if (budget > INT32_MAX)
		budget = INT32_MAX;
	call->deadline = now_ms() + budget;

	if (opts->request_id != NULL && opts->request_id[0] != '\0') {
		call->env.request_id = sgc_strdup(opts->request_id);
	} else {
		snprintf(rid, sizeof(rid), "%08" PRIx32 "%08" PRIx32, nng_random(), nng_random());
		call->env.request_id = sgc_strdup(rid);
	}
	if (call->env.request_id == NULL)
		goto nomem;

	if (method == NULL || method[0] == '\0') {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
		               SGC_REASON_CLIENT_INVALID_ARGUMENT, false, "no method given");
		return -1;
	}
	if ((md = shipgate_method_lookup(method, full, sizeof(full))) != NULL) {
		if ((req_desc != NULL && req_desc != md->input) ||
		    (reply_desc != NULL && reply_desc != md->output)) {
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
			               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
			               "%s takes %s and returns %s, not %s / %s", full,
			               md->input->name, md->output->name,
			               req_desc != NULL ? req_desc->name : "-",
			               reply_desc != NULL ? reply_desc->name : "-");
			return -1;
		}
		call->env.method = sgc_strdup(full);
	} else if (method[0] == '/' && strchr(method + 1, '/') != NULL &&
	           strchr(method + 1, '/') != method + 1 && method[strlen(method) - 1] != '/') {
		call->env.method = sgc_strdup(method); /* a method this client does not know */
	} else {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
		               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
		               "unknown method \"%.100s\"", method);
		return -1;
	}
	if (call->env.method == NULL)
		goto nomem;
	call->kind = md != NULL && sgc_method_idempotent(md) ? SGC_KIND_IDEMPOTENT : SGC_KIND_OTHER;

	if (opts->idempotency_key != NULL && opts->idempotency_key[0] != '\0') {
		if ((call->env.idempotency_key = sgc_strdup(opts->idempotency_key)) == NULL)
			goto nomem;
		if (call->kind == SGC_KIND_OTHER)
			call->kind = SGC_KIND_KEYED; /* the gateway deduplicates by the key */
	}

	if (opts->n_metadata > 0) {
		if (opts->metadata == NULL) {
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
			               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
			               "n_metadata without metadata");
			return -1;
		}
		/* the entries, then the pointers to them that env wants, in one block: the
		 * pointers start at a multiple of the entries' size, so they are aligned */
		_Static_assert(_Alignof(Shipgate__V1__RpcRequest__MetadataEntry) >=
		                       _Alignof(Shipgate__V1__RpcRequest__MetadataEntry *),
		               "metadata pointers follow the entries");
		call->md =
		        calloc(opts->n_metadata, sizeof(*call->md) + sizeof(*call->env.metadata));
		if (call->md == NULL)
			goto nomem;
		call->env.metadata = (void *)(call->md + opts->n_metadata);
		for (size_t i = 0; i < opts->n_metadata; i++) {
			const shipgate_metadata *e = &opts->metadata[i];
			if (!valid_key(e->key)) {
				sgc_status_set(
				        &call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
				        SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
				        "metadata key \"%.60s\" is not lower-case [a-z0-9._-]",
				        e->key != NULL ? e->key : "(null)");
				return -1;
			}
			shipgate__v1__rpc_request__metadata_entry__init(&call->md[i]);
			call->md[i].key = sgc_strdup(e->key);
			call->md[i].value = sgc_strdup(e->value != NULL ? e->value : "");
			call->env.metadata[i] = &call->md[i];
			call->env.n_metadata = i + 1;
			if (call->md[i].key == NULL || call->md[i].value == NULL)
				goto nomem;
		}
	}
	return 0;
nomem:
	sgc_status_set(&call->st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
	               SGC_REASON_CLIENT_OUT_OF_MEMORY, false, "out of memory preparing the call");
	return -1;
}

/* Starts a prepared call, or schedules the report of its setup failure. */
static void
call_submit(struct sgc_call *call, bool setup_failed)
{
	shipgate_client *c = call->c;

	nng_mtx_lock(c->mtx);
	if (setup_failed || start_attempt(call)) {
		call->state = SGC_FAIL;
		nng_sleep_aio(0, call->timer);
	}
	nng_mtx_unlock(c->mtx);
}

/* The encoded request message, malloc'd (NULL with *len 0 for an empty message). */
static int
pack_request(const ProtobufCMessage *req, void **buf, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(req);
	*buf = NULL;
	if (*len == 0)
		return 0;
	if ((*buf = malloc(*len)) == NULL)
		return -1;
	protobuf_c_message_pack(req, *buf);
	return 0;
}

/*
 * The synchronous core: starts the call and waits. payload is malloc'd and freed here, except
 * with raw: then it is the caller's, borrowed (this waits for the outcome, so it outlives
 * every attempt). On OK gives either the decoded message (reply_desc set) or the payload
 * bytes (raw, raw_out set).
 */
static int
call_wait(shipgate_client *c, const char *method, const ProtobufCMessageDescriptor *req_desc,
          void *payload, size_t len, bool pack_failed, bool raw,
          const ProtobufCMessageDescriptor *reply_desc, const shipgate_call_opts *opts,
          ProtobufCMessage **reply, void **raw_out, size_t *raw_len, shipgate_status *st)
{
	struct sgc_call *call;
	bool failed;
	int code;

	if (reply != NULL)
		*reply = NULL;
	if (raw_out != NULL)
		*raw_out = NULL;
	if (raw_len != NULL)
		*raw_len = 0;
	if (c == NULL || (call = call_get(c)) == NULL) {
		if (!raw)
			free(payload);
		if (st != NULL) {
			shipgate_status_fini(st);
			if (c == NULL)
				sgc_status_set(st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
				               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
				               "no client");
			else
				sgc_status_set(st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
				               SGC_REASON_CLIENT_OUT_OF_MEMORY, false,
				               "out of memory");
		}
		return c == NULL ? SHIPGATE__V1__CODE__INVALID_ARGUMENT
		                 : SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED;
	}
	call->sync = true;
	failed = call_setup(call, method, req_desc, payload, len, !raw, reply_desc, opts) != 0;
	if (!failed && pack_failed) {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
		               SGC_REASON_CLIENT_OUT_OF_MEMORY, false,
		               "out of memory encoding the request");
		failed = true;
	}
	if (!failed && !raw && reply_desc == NULL) {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
		               SGC_REASON_CLIENT_INVALID_ARGUMENT, false, "no reply type given");
		failed = true;
	}
	call_submit(call, failed);

	nng_mtx_lock(c->mtx);
	while (!call->done)
		nng_cv_wait(c->cv);
	if (call->st.code == SHIPGATE__V1__CODE__OK && raw && raw_out != NULL &&
	    call->reply != NULL) {
		ProtobufCBinaryData *p = &call->reply->payload;
		if (p->len > 0) {
			/* decode_reply unpacked with the NULL allocator, so the bytes are malloc'd:
			 * hand them over (free_unpacked skips a NULL payload) */
			*raw_out = p->data;
			if (raw_len != NULL)
				*raw_len = p->len;
			p->data = NULL;
			p->len = 0;
		} else if ((*raw_out = malloc(1)) == NULL) { /* non-NULL even when empty */
			sgc_status_set(&call->st, SHIPGATE__V1__CODE__RESOURCE_EXHAUSTED,
			               SGC_REASON_CLIENT_OUT_OF_MEMORY, false,
			               "out of memory copying the reply");
		}
	}
	if (reply != NULL)
		*reply = call->out;
	else if (call->out != NULL)
		protobuf_c_message_free_unpacked(call->out, call->allocator);
	status_finish(call);
	code = call->st.code;
	if (st != NULL) {
		shipgate_status_fini(st);
		*st = call->st; /* moved: the call forgets it */
		memset(&call->st, 0, sizeof(call->st));
	}
	call->out = NULL;
	call->sync = false;
	call_put(call);
	nng_mtx_unlock(c->mtx);
	return code;
}

int
shipgate_call(shipgate_client *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *reply_desc, const shipgate_call_opts *opts,
              ProtobufCMessage **reply, shipgate_status *st)
{
	void *buf = NULL;
	size_t len = 0;
	bool pack_failed = false;

	if (req == NULL) {
		if (reply != NULL)
			*reply = NULL;
		if (st != NULL) {
			shipgate_status_fini(st);
			sgc_status_set(st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
			               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
			               "no request message");
		}
		return SHIPGATE__V1__CODE__INVALID_ARGUMENT;
	}
	pack_failed = pack_request(req, &buf, &len) != 0;
	return call_wait(c, method, req->descriptor, buf, len, pack_failed, false, reply_desc, opts,
	                 reply, NULL, NULL, st);
}

int
shipgate_call_raw(shipgate_client *c, const char *method, const void *payload, size_t len,
                  const shipgate_call_opts *opts, void **reply, size_t *reply_len,
                  shipgate_status *st)
{
	if (len > 0 && payload == NULL) {
		if (reply != NULL)
			*reply = NULL;
		if (st != NULL) {
			shipgate_status_fini(st);
			sgc_status_set(st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
			               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
			               "cannot take the payload");
		}
		return SHIPGATE__V1__CODE__INVALID_ARGUMENT;
	}
	/* borrowed, not copied: call_wait returns only when no attempt can read it any more.
	 * ProtobufCBinaryData has no const, but packing the envelope only reads the bytes. */
	return call_wait(c, method, NULL, len > 0 ? (void *)payload : NULL, len, false, true, NULL,
	                 opts, NULL, reply, reply_len, st);
}

void
shipgate_buf_free(void *buf)
{
	free(buf);
}

int
shipgate_call_async(shipgate_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *reply_desc, const shipgate_call_opts *opts,
                    shipgate_done_cb cb, void *arg)
{
	struct sgc_call *call;
	void *buf = NULL;
	size_t len = 0;
	bool failed;

	if (c == NULL || cb == NULL)
		return SHIPGATE_EINVAL;
	if (req != NULL && pack_request(req, &buf, &len) != 0)
		return SHIPGATE_ENOMEM;
	if ((call = call_get(c)) == NULL) {
		free(buf);
		return SHIPGATE_ENOMEM;
	}
	call->sync = false;
	call->cb = cb;
	call->arg = arg;
	failed = call_setup(call, method, req != NULL ? req->descriptor : NULL, buf, len, true,
	                    reply_desc, opts) != 0;
	if (!failed && (req == NULL || reply_desc == NULL)) {
		sgc_status_set(&call->st, SHIPGATE__V1__CODE__INVALID_ARGUMENT,
		               SGC_REASON_CLIENT_INVALID_ARGUMENT, false,
		               req == NULL ? "no request message" : "no reply type given");
		failed = true;
	}
	call_submit(call, failed);
	return SHIPGATE_OK;
}

/* ------------------------------------------------------------------ typed calls */

int
shipgate_track(shipgate_client *c, const Shipgate__V1__TrackRequest *req,
               const shipgate_call_opts *opts, Shipgate__V1__TrackResponse **reply,
               shipgate_status *st)
{
	return shipgate_call(c, SHIPGATE_METHOD_TRACK, (const ProtobufCMessage *)req,
	                     &shipgate__v1__track_response__descriptor, opts,
	                     (ProtobufCMessage **)reply, st);
}

int
shipgate_get_order(shipgate_client *c, const Shipgate__V1__GetOrderRequest *req,
                   const shipgate_call_opts *opts, Shipgate__V1__GetOrderResponse **reply,
                   shipgate_status *st)
{
	return shipgate_call(c, SHIPGATE_METHOD_GET_ORDER, (const ProtobufCMessage *)req,
	                     &shipgate__v1__get_order_response__descriptor, opts,
	                     (ProtobufCMessage **)reply, st);
}

int
shipgate_create_order(shipgate_client *c, const Shipgate__V1__CreateOrderRequest *req,
                      const shipgate_call_opts *opts, Shipgate__V1__CreateOrderResponse **reply,
                      shipgate_status *st)
{
	return shipgate_call(c, SHIPGATE_METHOD_CREATE_ORDER, (const ProtobufCMessage *)req,
	                     &shipgate__v1__create_order_response__descriptor, opts,
	                     (ProtobufCMessage **)reply, st);
}

int
shipgate_health(shipgate_client *c, const Shipgate__V1__HealthRequest *req,
                const shipgate_call_opts *opts, Shipgate__V1__HealthResponse **reply,
                shipgate_status *st)
{
	return shipgate_call(c, SHIPGATE_METHOD_HEALTH, (const ProtobufCMessage *)req,
	                     &shipgate__v1__health_response__descriptor, opts,
	                     (ProtobufCMessage **)reply, st);
}
