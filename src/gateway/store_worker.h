/*
 * store_worker.h - what a durable store backend shares: its operations, copied and queued to
 * one thread of the backend's own, which runs them in batches and answers them.
 *
 * A backend (store_sqlite.c, store_redis.c) gives a run function that takes a batch of
 * operations, runs them (one transaction, one pipeline) and answers each (sg_store_op_done);
 * and, optionally, a due function that says when it has work of its own (the Redis store's
 * polling of busy keys). The worker's thread is the only one to call either.
 */
#ifndef SG_STORE_WORKER_H
#define SG_STORE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/store.h"

typedef enum sg_store_op_kind { SG_OP_CLAIM, SG_OP_COMPLETE, SG_OP_RELEASE } sg_store_op_kind;

/* One queued operation; the key and the outcome's bytes are copied into it (one malloc). */
typedef struct sg_store_op {
	struct sg_store_op *next; /* the batch, or a backend's own list */
	sg_store_op_kind kind;    /* what to do */
	const char *key;          /* the backend's key: its prefix, then the caller's key */
	sg_flight_fp fp;          /* claim: the request's fingerprint */
	const char *provider;     /* claim: the call's provider (copied after the key) */
	const char *caller;       /* claim: whose key it is ("": not known; copied after it) */
	size_t max_keys;          /* claim: live keys that caller may hold; 0: no cap */
	int64_t ms;               /* claim: the lease; complete: the ttl */
	int64_t until;            /* claim: sg_now_ms() time its lease (the caller's wait) ends */
	int64_t next_at;          /* the backend's: when to run it again */
	const uint8_t *status;    /* complete: the packed Status */
	size_t status_len;
	const uint8_t *payload; /* complete: the packed response, or NULL */
	size_t payload_len;
	sg_store_claim_cb ccb; /* claim's callback */
	sg_store_done_cb dcb;  /* complete's or release's callback (may be NULL) */
	void *arg;             /* its argument */
	/* the backend's, for an answer it gives later (after its batch commits) */
	sg_claim res;        /* claim */
	sg_err err;          /* complete, release */
	uint8_t *found;      /* claim DONE: a malloc'd copy of the outcome (freed with the op) */
	sg_flight_outcome o; /* claim DONE: pointing into found */
} sg_store_op;

typedef struct sg_store_worker {
	/* set by the backend before sg_store_worker_start */
	const char *prefix; /* prepended to every key */
	/* runs and answers a batch (a list by next; may be empty when woken by due); stopping:
	 * the last runs, the backend answers what it still holds */
	void (*run)(void *impl, sg_store_op *batch, bool stopping);
	int64_t (*due)(void *impl); /* sg_now_ms() time of the backend's own next work, or -1 */
	void *impl;                 /* the backend */
	/* the worker's */
	pthread_t thr;            /* the thread */
	pthread_mutex_t mtx;      /* guards the queue and stop */
	pthread_cond_t cv;        /* wakes the thread */
	sg_store_op *head, *tail; /* queued operations */
	bool stop;                /* drain and exit */
} sg_store_worker;

/* Starts the thread. 0, or -1 when it cannot. */
int sg_store_worker_start(sg_store_worker *w);

/* Stops it once everything queued is answered (and the backend's own work, told stopping). */
void sg_store_worker_stop(sg_store_worker *w);

/* The store operations, queued (answered with an error at once when out of memory or
 * stopping). */
void sg_store_worker_claim(sg_store_worker *w, const char *key, sg_flight_fp fp,
                           const char *provider, const sg_store_quota *quota, int64_t lease_ms,
                           sg_store_claim_cb cb, void *arg);
void sg_store_worker_complete(sg_store_worker *w, const char *key, const sg_flight_outcome *o,
                              int64_t ttl_ms, sg_store_done_cb cb, void *arg);
void sg_store_worker_release(sg_store_worker *w, const char *key, sg_store_done_cb cb, void *arg);

/* Answers op and frees it (and op->found): a claim with res (o for DONE, borrowed for the
 * call), a complete or a release with err. */
void sg_store_op_done(sg_store_op *op, sg_claim res, const sg_flight_outcome *o, sg_err err);

#endif /* SG_STORE_WORKER_H */
