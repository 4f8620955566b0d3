/*
 * store_worker.c - a durable store's operations, queued to its own thread and run in batches.
 */
#include "gateway/store_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

static void *
worker_main(void *arg)
{
	sg_store_worker *w = arg;

	pthread_mutex_lock(&w->mtx);
	for (;;) {
		/* sleep until an operation comes, or the backend's own work is due */
		while (w->head == NULL && !w->stop) {
			int64_t due = w->due != NULL ? w->due(w->impl) : -1;
			if (due < 0)
				pthread_cond_wait(&w->cv, &w->mtx);
			else if (!sg_cond_wait_until(&w->cv, &w->mtx, due))
				break;
		}
		sg_store_op *batch = w->head;
		w->head = w->tail = NULL;
		bool stop = w->stop;
		pthread_mutex_unlock(&w->mtx);
		w->run(w->impl, batch, stop);
		pthread_mutex_lock(&w->mtx);
		if (stop && w->head == NULL && (w->due == NULL || w->due(w->impl) < 0))
			break;
	}
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}

int
sg_store_worker_start(sg_store_worker *w)
{
	w->head = w->tail = NULL;
	w->stop = false;
	pthread_mutex_init(&w->mtx, NULL);
	sg_cond_init(&w->cv);
	if (pthread_create(&w->thr, NULL, worker_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mtx);
		return -1;
	}
	return 0;
}

void
sg_store_worker_stop(sg_store_worker *w)
{
	pthread_mutex_lock(&w->mtx);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	pthread_join(w->thr, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mtx);
}

void
sg_store_op_done(sg_store_op *op, sg_claim res, const sg_flight_outcome *o, sg_err err)
{
	if (op->kind == SG_OP_CLAIM)
		op->ccb(op->arg, res, res == SG_CLAIM_DONE ? o : NULL);
	else if (op->dcb != NULL)
		op->dcb(op->arg, err);
	free(op->found);
	free(op);
}

/* Queues op; false when stopping (op is not queued). */
static bool
worker_queue(sg_store_worker *w, sg_store_op *op)
{
	pthread_mutex_lock(&w->mtx);
	bool ok = !w->stop;
	if (ok) {
		op->next = NULL;
		if (w->tail != NULL)
			w->tail->next = op;
		else
			w->head = op;
		w->tail = op;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mtx);
	return ok;
}

/* An op for key with room for n more bytes after it; NULL when out of memory. */
static sg_store_op *
op_new(sg_store_worker *w, sg_store_op_kind kind, const char *key, size_t n)
{
	size_t klen = strlen(w->prefix) + strlen(key) + 1;
	sg_store_op *op = malloc(sizeof(*op) + klen + n);
	if (op == NULL)
		return NULL;
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	snprintf((char *)(op + 1), klen, "%s%s", w->prefix, key);
	op->key = (const char *)(op + 1);
	return op;
}

/* Queues op, or answers it with the failure when the worker is stopping. */
static void
worker_submit(sg_store_worker *w, sg_store_op *op)
{
	if (!worker_queue(w, op))
		sg_store_op_done(op, SG_CLAIM_ERROR, NULL, SG_ESTORE);
}

void
sg_store_worker_claim(sg_store_worker *w, const char *key, sg_flight_fp fp, const char *provider,
                      const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb,
                      void *arg)
{
	size_t plen = strlen(provider) + 1, clen = strlen(quota->caller) + 1;
	sg_store_op *op = op_new(w, SG_OP_CLAIM, key, plen + clen);
	if (op == NULL) {
		cb(arg, SG_CLAIM_ERROR, NULL);
		return;
	}
	op->provider = memcpy((char *)op->key + strlen(op->key) + 1, provider, plen);
	op->caller = memcpy((char *)op->provider + plen, quota->caller, clen);
	op->max_keys = quota->max_keys;
	op->fp = fp;
	op->ms = lease_ms;
	op->until = sg_now_ms() + lease_ms;
	op->ccb = cb;
	op->arg = arg;
	worker_submit(w, op);
}

void
sg_store_worker_complete(sg_store_worker *w, const char *key, const sg_flight_outcome *o,
                         int64_t ttl_ms, sg_store_done_cb cb, void *arg)
{
	sg_store_op *op = op_new(w, SG_OP_COMPLETE, key, o->status_len + o->payload_len);
	if (op == NULL) {
		if (cb != NULL)
			cb(arg, SG_ENOMEM);
		return;
	}
	uint8_t *p = (uint8_t *)op->key + strlen(op->key) + 1;
	if (o->status_len)
		memcpy(p, o->status, o->status_len);
	op->status = p;
	op->status_len = o->status_len;
	if (o->payload != NULL) {
		if (o->payload_len)
			memcpy(p + o->status_len, o->payload, o->payload_len);
		op->payload = p + o->status_len;
		op->payload_len = o->payload_len;
	}
	op->ms = ttl_ms;
	op->dcb = cb;
	op->arg = arg;
	worker_submit(w, op);
}

void
sg_store_worker_release(sg_store_worker *w, const char *key, sg_store_done_cb cb, void *arg)
{
	sg_store_op *op = op_new(w, SG_OP_RELEASE, key, 0);
	if (op == NULL) {
		if (cb != NULL)
			cb(arg, SG_ENOMEM);
		return;
	}
	op->dcb = cb;
	op->arg = arg;
	worker_submit(w, op);
}
