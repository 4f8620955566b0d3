/*
 * gwfake.h - a fake transport and a fake upstream for the pipeline's unit tests
 * (test_pipeline, test_cache, test_idem, test_tokens): no sockets, no nng, no curl.
 *
 * The fake upstream records every request the pipeline sends and completes it only when the
 * test says so (complete), with a canned HTTP answer (the sandbox's documents) or an engine
 * error, so a test can hold a call at the provider while others arrive and count exactly what
 * went out. The fake transport decodes each reply the pipeline sends (wait_reply).
 */
#ifndef SG_GWFAKE_H
#define SG_GWFAKE_H

#include <pthread.h>
#include <stdbool.h>

#include "gateway/gateway.h"
#include "shipgate/v1/rpc.pb-c.h"
#include "shipgate/v1/shipgate.pb-c.h"

#define MAX_REQ 64
#define NCALLS  16

#define BOSCOD    SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD
#define FUUFFY    SHIPGATE__V1__PROVIDER__PROVIDER_FUUFFY
#define TOKEN_OK  "{\"access_token\":\"tok-1\",\"token_type\":\"Bearer\",\"expires_in\":3600}"
#define TOKEN_OK2 "{\"access_token\":\"tok-2\",\"token_type\":\"Bearer\",\"expires_in\":3600}"

/* One request the pipeline sent. */
struct sent {
	char method[8];    /* HTTP method */
	char url[512];     /* URL */
	char auth[256];    /* Authorization header value, or "" */
	sg_upstream_cb cb; /* its completion */
	void *arg;         /* and argument */
	bool done;         /* completed already */
};

/* The fake upstream's record. */
struct fake_up {
	pthread_mutex_t mtx; /* guards everything below */
	pthread_cond_t cv;   /* signalled on every submit and every reply */
	struct sent req[MAX_REQ];
	int nreq;      /* requests sent so far */
	sg_err refuse; /* != SG_OK: submit fails with it */
};
extern struct fake_up up;

/* One call slot: what the transport would keep per context. */
struct slot {
	sg_call call;
	uint8_t *buf;                  /* the reply buffer handed out */
	size_t len;                    /* its size */
	bool sent;                     /* send ran */
	int doubled;                   /* sends after the first (must stay 0) */
	Shipgate__V1__RpcReply *reply; /* decoded once sent */
};

extern struct slot slots[NCALLS];

extern sg_gateway *gw;                             /* the gateway under test */
extern sg_config cfg;                              /* its config (the defaults) */
extern char *doc_boscod, *doc_fuuffy, *doc_create; /* the sandbox's documents */
extern ProtobufCMessage *create_req;               /* the document's CreateOrder */

/* The caller each start() plays: a caller token sent as "authorization: Bearer" metadata (NULL:
 * none), where it comes from (1 local, 0 another host) and its ipc uid (-1: none). */
extern const char *gwfake_token;
extern int gwfake_peer_local;
extern long gwfake_peer_uid;
extern int gwfake_peer_caller; /* i + 1: the call came through caller i's own TLS listener */
/* Called on the config after the defaults and before it is validated (NULL: nothing). */
extern void (*gwfake_configure)(sg_config *cfg);

/* Starts the gateway over the fakes (false on failure), and stops and frees it. */
bool gwfake_start(void);
void gwfake_stop(void);

/* Requests sent so far. */
int sent_count(void);
/* Completes request i as the backend thread would: an HTTP answer (err SG_OK) or an error. */
void complete(int i, sg_err err, int status, const char *body);
/* Waits (bounded) until slot i's reply was sent; returns it (NULL on timeout). */
Shipgate__V1__RpcReply *wait_reply(int i);
/* Whether slot i's reply was sent. */
bool is_sent(int i);
/* Frees slot i's reply and ends its call. */
void slot_end(int i);
/* Starts slot i's call: method, payload message, deadline and key. */
void start(int i, const char *method, const ProtobufCMessage *payload, int64_t deadline_ms,
           const char *key);
/* Slot i's Track; a Fuuffy id is a tracking number, others an order id. */
void track(int i, int provider, const char *id, bool bypass, int64_t deadline_ms);
/* Slot i's CreateOrder under key; service_code varies the request under one key. */
void create(int i, const char *key, const char *service_code, int64_t deadline_ms);
/* A reply's code, reason, and payload decoded as d. */
int code(const Shipgate__V1__RpcReply *r);
const char *reason(const Shipgate__V1__RpcReply *r);
ProtobufCMessage *payload(const Shipgate__V1__RpcReply *r, const ProtobufCMessageDescriptor *d);

#endif /* SG_GWFAKE_H */
