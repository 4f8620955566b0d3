/*
 * server.h - the sandbox's HTTP/1.1 listener (libmicrohttpd).
 *
 * One listener; one path prefix per provider (/boscod, /bosonline, /biteship, /fuuffy) and the
 * test hooks under /__sandbox/. MHD runs its own epoll threads; slow answers never sleep on
 * them: the connection is suspended and a timer thread resumes it.
 */
#ifndef SBX_SERVER_H
#define SBX_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "reply.h"

typedef struct sbx_server sbx_server;

/* What sbx_server_start needs. */
typedef struct sbx_server_opts {
	struct sockaddr_storage addr; /* address to listen on (port 0: any free port) */
	unsigned max_conns;           /* concurrent connection cap */
	unsigned threads;             /* MHD polling threads (1 = no pool) */
	sbx_conf conf;                /* copied; its strings must outlive the server */
	const char *tls_cert;         /* PEM certificate chain: serve https (NULL: http) */
	const char *tls_key;          /* PEM private key, with tls_cert */
} sbx_server_opts;

/*
 * Starts listening. Returns 0 with *out set (caller owns it: sbx_server_stop), or -1 with a
 * reason in err. Call from the main thread, with SIGINT/SIGTERM blocked so MHD's threads
 * inherit the mask.
 */
int sbx_server_start(sbx_server **out, const sbx_server_opts *o, char *err, size_t cap);

/* The port actually bound. */
unsigned sbx_server_port(const sbx_server *s);

/*
 * Stops: answers every held (slow) request at once, stops MHD (closing all connections),
 * and frees everything. NULL is a no-op. Not from an MHD or timer thread.
 */
void sbx_server_stop(sbx_server *s);

#endif /* SBX_SERVER_H */
