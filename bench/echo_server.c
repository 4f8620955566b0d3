/*
 * echo_server.c - the limit: a raw nng REQ/REP server with a context pool like shipgated's
 * (src/server/server.c: one struct work per context, one callback switching on its state),
 * that answers every request with fixed bytes and does nothing else.
 *
 * The bytes are a real RpcReply captured from the gateway (loadgen --dump-reply), so the reply
 * has exactly the size of the gateway's Track reply; --reply-bytes N sends N zero bytes instead.
 *
 *   echo_server --listen URL [--listen URL2] [--workers N] (--reply-file F | --reply-bytes N)
 *               [--tls-cert F --tls-key F]   (for tls+tcp:// listeners, as shipgated's)
 *
 * Prints "echo_server ready on URL..." on stdout when listening; SIGINT/SIGTERM stop it.
 * Threads: main (waits for the signal), nng's callback threads.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/protocol/reqrep0/rep.h>

#include "core/file.h"

enum work_state {
	W_INIT, /* not started */
	W_RECV, /* a receive is posted */
	W_SEND, /* the reply is being sent */
};

struct work {
	enum work_state state; /* see above */
	nng_aio *aio;          /* the context's one aio */
	nng_ctx ctx;           /* REP context */
};

static const void *reply_buf; /* the reply, shared read-only by every context */
static size_t reply_len;      /* its bytes */

static void
work_cb(void *arg)
{
	struct work *w = arg;
	int rv = nng_aio_result(w->aio);
	nng_msg *m;

	switch (w->state) {
	case W_INIT:
	case W_SEND:
		if (w->state == W_SEND && rv != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_set_msg(w->aio, NULL);
			if (rv == NNG_ECLOSED)
				return;
		}
		w->state = W_RECV;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	case W_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		/* reuse the request message for the reply, as the gateway does */
		m = nng_aio_get_msg(w->aio);
		nng_msg_clear(m);
		if (nng_msg_append(m, reply_buf, reply_len) != 0) {
			nng_msg_free(m);
			nng_aio_set_msg(w->aio, NULL);
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		w->state = W_SEND;
		nng_ctx_send(w->ctx, w->aio);
		return;
	}
}

/* A small PEM file as a string (malloc'd), or NULL. */
static char *
slurp(const char *path)
{
	return path != NULL ? sg_read_file(path, 1 << 20) : NULL;
}

int
main(int argc, char **argv)
{
	const char *urls[8];
	int nurls = 0, nworks = 1024, rv;
	const char *reply_file = NULL, *tls_cert = NULL, *tls_key = NULL;
	long reply_bytes = -1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL) {
			fprintf(stderr, "echo_server: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--listen") == 0 && nurls < 8)
			urls[nurls++] = v;
		else if (strcmp(a, "--workers") == 0)
			nworks = atoi(v);
		else if (strcmp(a, "--reply-file") == 0)
			reply_file = v;
		else if (strcmp(a, "--reply-bytes") == 0)
			reply_bytes = atol(v);
		else if (strcmp(a, "--tls-cert") == 0)
			tls_cert = v;
		else if (strcmp(a, "--tls-key") == 0)
			tls_key = v;
		else {
			fprintf(stderr, "usage: echo_server --listen URL [--workers N] "
			                "(--reply-file F | --reply-bytes N)\n");
			return 2;
		}
	}
	if (nurls == 0)
		urls[nurls++] = "tcp://127.0.0.1:7500";
	if (nworks < 1)
		nworks = 1;
	if (reply_file != NULL) {
		FILE *f = fopen(reply_file, "rb");
		static char buf[1 << 20];
		if (f == NULL) {
			perror(reply_file);
			return 1;
		}
		reply_len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		reply_buf = buf;
	} else {
		reply_len = reply_bytes > 0 ? (size_t)reply_bytes : 0;
		reply_buf = calloc(1, reply_len + 1);
	}

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by nng's threads */

	nng_socket sock;
	if ((rv = nng_rep0_open(&sock)) != 0 ||
	    (rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 4u << 20)) != 0) {
		fprintf(stderr, "echo_server: %s\n", nng_strerror(rv));
		return 1;
	}
	struct work *works = calloc((size_t)nworks, sizeof(*works));
	for (int i = 0; i < nworks; i++) {
		if ((rv = nng_aio_alloc(&works[i].aio, work_cb, &works[i])) != 0 ||
		    (rv = nng_ctx_open(&works[i].ctx, sock)) != 0) {
			fprintf(stderr, "echo_server: context %d: %s\n", i, nng_strerror(rv));
			return 1;
		}
	}
	char bound[8][256];
	for (int i = 0; i < nurls; i++) {
		nng_listener l;
		int port;
		bool tls = strncmp(urls[i], "tls+tcp://", 10) == 0;
		nng_tls_config *tc = NULL;
		char *cert = tls ? slurp(tls_cert) : NULL, *key = tls ? slurp(tls_key) : NULL;
		if (tls && (cert == NULL || key == NULL ||
		            (rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_SERVER)) != 0 ||
		            (rv = nng_tls_config_own_cert(tc, cert, key, NULL)) != 0)) {
			fprintf(stderr, "echo_server: %s needs --tls-cert and --tls-key (PEM)\n",
			        urls[i]);
			return 1;
		}
		if ((rv = nng_listener_create(&l, sock, urls[i])) != 0 ||
		    (tls && (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc)) != 0) ||
		    (rv = nng_listener_start(l, 0)) != 0) {
			fprintf(stderr, "echo_server: listen %s: %s\n", urls[i], nng_strerror(rv));
			return 1;
		}
		free(cert);
		free(key);
		/* tcp://HOST:0 picks a free port: print the one bound, as shipgated does */
		const char *colon = strrchr(urls[i], ':');
		snprintf(bound[i], sizeof(bound[i]), "%s", urls[i]);
		if ((strncmp(urls[i], "tcp://", 6) == 0 ||
		     strncmp(urls[i], "tls+tcp://", 10) == 0) &&
		    colon != NULL && strcmp(colon, ":0") == 0 &&
		    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
			snprintf(bound[i], sizeof(bound[i]), "%.*s:%d", (int)(colon - urls[i]),
			         urls[i], port);
	}
	for (int i = 0; i < nworks; i++)
		work_cb(&works[i]); /* W_INIT: post the first receive */
	printf("echo_server ready on");
	for (int i = 0; i < nurls; i++)
		printf(" %s", bound[i]);
	printf(" (%d contexts, reply %zu bytes)\n", nworks, reply_len);
	fflush(stdout);

	int sig;
	sigwait(&sigs, &sig);
	nng_close(sock);
	for (int i = 0; i < nworks; i++)
		nng_aio_stop(works[i].aio);
	for (int i = 0; i < nworks; i++)
		nng_aio_free(works[i].aio);
	free(works);
	return 0;
}
