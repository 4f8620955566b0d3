/*
 * harness.h - what integration tests share: starting and stopping the sandbox and the gateway
 * as real processes on loopback, raw RPC calls over nng, and reading the sandbox's record.
 *
 * Every process a test starts is stopped by the test (hs_proc_stop), and every wait is bounded.
 * Single-threaded use.
 */
#ifndef SG_HARNESS_H
#define SG_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nng/nng.h>

#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"

typedef struct hs_proc {
	pid_t pid;           /* child, or 0 */
	int out_fd;          /* read end of the child's stdout */
	char line[512];      /* its readiness line */
	char state_dir[128]; /* a gateway's own fresh state directory (removed at stop), or "" */
} hs_proc;

/*
 * Starts argv[0] with argv, waits up to 10 s for a stdout line starting with `ready_prefix`,
 * stores it in p->line. Returns 0 or -1 (the child is stopped on failure).
 */
int hs_proc_start(hs_proc *p, char *const argv[], const char *ready_prefix);

/* Sends sig, waits up to 10 s (then SIGKILL). Returns the exit status as from waitpid, or -1. */
int hs_proc_stop(hs_proc *p, int sig);

/* Starts the sandbox on 127.0.0.1:0; base URL "http://127.0.0.1:PORT" into base[n]. */
int hs_sandbox_start(hs_proc *p, const char *bin, char *base, size_t n);

/* The same, serving https with a PEM certificate and key (files): base is https://... */
int hs_sandbox_start_tls(hs_proc *p, const char *bin, const char *cert, const char *key, char *base,
                         size_t n);

/*
 * Starts shipgated with every provider pointed at sandbox_base (may be NULL to keep defaults),
 * listening on the URLs in `listen` (NULL-terminated), plus extra "--set k=v" style args
 * (NULL-terminated, may be NULL). The bound URLs are in p->line after "shipgated ready on ".
 */
/* (A gateway gets a fresh state directory of its own, so that no keys persist from an earlier
 * run or another test; extra that names state_dir or idempotency.path overrides it.) */
int hs_gateway_start(hs_proc *p, const char *bin, const char *sandbox_base,
                     const char *const *listen, const char *const *extra);

/* A redis-server of the test's own on 127.0.0.1 (no persistence), started and waited for (10 s
 * at most), on *port, or on a free port set in *port when it is 0. Returns 0 or -1. Stop it
 * with hs_proc_stop. */
int hs_redis_start(hs_proc *p, int *port);

/*
 * A TCP proxy of the test's own, in a child process: it listens on 127.0.0.1 (its port into
 * *port) and forwards every connection to 127.0.0.1:target. hs_proxy_cut closes the
 * connections it holds (each peer sees its connection drop, as in a network cut), and it goes
 * on accepting new ones. Stop it with hs_proc_stop. Returns 0 or -1.
 */
int hs_proxy_start(hs_proc *p, int target, int *port);
/* Cuts every connection through the proxy; returns once it has (5 s at most): 0 or -1. */
int hs_proxy_cut(hs_proc *p);

/* The i-th URL of the gateway's ready line into buf, or -1. */
int hs_gateway_url(const hs_proc *p, int i, char *buf, size_t n);

/* The start of a test that runs the real binaries: argv[1..need] must be there (else the usage
 * line, "usage: PROG <usage>", goes to stderr and the test exits 2); SIGPIPE is ignored and
 * libcurl initialised. */
void hs_test_start(int argc, char **argv, int need, const char *usage);

/* Sleeps ms milliseconds. */
void hs_sleep_ms(long ms);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t hs_now_ms(void);

/* HTTP GET/POST on loopback; body (malloc'd, NUL-terminated) into *out. Returns HTTP status. */
int hs_http(const char *method, const char *url, char **out);

/* A req0 socket dialed to url with resend off and a 10 s receive timeout. */
int hs_dial(nng_socket *s, const char *url);

/* Sends raw bytes, receives raw reply (malloc(3)ed into out and outlen). Returns 0 or nng error. */
int hs_roundtrip_raw(nng_socket s, const void *data, size_t len, void **out, size_t *outlen);

/*
 * One RPC call: packs req into an RpcRequest for method ("Track" → "/shipgate.v1.Shipgate/Track"
 * unless it starts with '/'), sends it, decodes the RpcReply (caller frees with
 * shipgate__v1__rpc_reply__free_unpacked). Returns NULL on transport failure.
 */
Shipgate__V1__RpcReply *hs_call(nng_socket s, const char *method, const ProtobufCMessage *req,
                                int64_t deadline_ms, const char *idempotency_key);

/* Whether r has this code and reason (and, with text, a message that has it); says what came
 * when not, and frees r. Tests wrap it: CHECK(hs_expect(...)). */
bool hs_expect(Shipgate__V1__RpcReply *r, int code, const char *reason, const char *text);

/* Requests the sandbox at base recorded with this method and path prefix (and, with auth, that
 * Authorization header), or -1 when its record cannot be read. */
int hs_sandbox_count(const char *base, const char *method, const char *prefix, const char *auth);

/* hs_call with a caller token (metadata authorization: Bearer TOKEN; NULL: none). */
Shipgate__V1__RpcReply *hs_call_as(nng_socket s, const char *method, const ProtobufCMessage *req,
                                   int64_t deadline_ms, const char *idempotency_key,
                                   const char *token);

/* The packed RpcRequest hs_call_as sends (malloc(3)ed, *len bytes), for a caller that sends it
 * itself (nng_send, then hs_recv_reply). */
uint8_t *hs_request_pack(const char *method, const ProtobufCMessage *req, int64_t deadline_ms,
                         const char *idempotency_key, const char *token, size_t *len);

/* Receives one reply on s (its receive timeout applies) and decodes it, or NULL. */
Shipgate__V1__RpcReply *hs_recv_reply(nng_socket s);

/*
 * Sends the same envelope on n contexts of s at once (all sent before any reply is read) and
 * collects the n replies into replies[] (NULL where none came within 15 s). Returns how many
 * came. The caller frees each with shipgate__v1__rpc_reply__free_unpacked.
 */
int hs_fanout(nng_socket s, const Shipgate__V1__RpcRequest *env, int n,
              Shipgate__V1__RpcReply **replies);

/* Decodes an OK reply's payload as desc (free with protobuf_c_message_free_unpacked). */
ProtobufCMessage *hs_payload(const Shipgate__V1__RpcReply *r, const ProtobufCMessageDescriptor *d);

/* Reply status code, or -1 when r or its status is missing. */
int hs_code(const Shipgate__V1__RpcReply *r);

/* Reason of a non-OK reply, or "". */
const char *hs_reason(const Shipgate__V1__RpcReply *r);

#endif /* SG_HARNESS_H */
