/*
 * store_sqlite.c - the idempotency store in one SQLite file: claims survive a crash, a restart
 * and a power loss; several gateways on one host may share the file.
 *
 * One thread owns the database: every operation is queued to it and answered through its
 * callback from there, so no nng or engine thread ever waits on the disk. The operations run in
 * transactions (BEGIN IMMEDIATE: each read and its write under one lock).
 *
 * Durability: WAL with synchronous=FULL. A claim must be on disk before the POST leaves: with
 * synchronous=NORMAL a power loss can drop the last commits, the claim among them, and a retry
 * after the reboot would send the POST again. FULL syncs the WAL on every commit. The thread
 * runs whatever has queued up as one transaction (group commit), so that many calls in flight
 * share one fsync; an operation is answered only after its batch is committed (measured in
 * BENCHMARKS.md).
 *
 * A row is a key's state: in_progress (claimed by `owner` until `lease_until`) or completed
 * (its outcome, until `expires_at`). An in_progress row whose lease has run out belongs to an
 * owner that is gone without an outcome: it is answered UNKNOWN, never claimed again, until an
 * operator reconciles it. Times are wall-clock milliseconds (they outlive the process).
 */
#include "gateway/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "gateway/store_worker.h"

/*
 * Per-caller counts of live keys (claimed, unknown, or kept and unexpired), for the callers'
 * quotas, kept by the thread so that a claim below its caller's cap costs nothing more: read
 * from the file at start (one GROUP BY), one more for each row it adds, one less for each it
 * releases. Expired rows are not taken off as they expire, and rows other gateways on the file
 * add are not seen, so a count is approximate: when a caller reaches its cap, its live rows are
 * counted again in the file (as q->rows is at max_entries). So that
 * a caller sitting at its cap does not cost a count of its rows on every claim, the count is
 * not made again before it can find fewer: before the caller's first kept outcome expires (a
 * complete moves that earlier), or QUOTA_RECOUNT_MS (other gateways' and an operator's
 * releases). Callers are configured (at most 64 named, and ""); past QUOTA_CALLERS distinct
 * ones, or a longer name, a caller is counted in the file on each claim its cap applies to.
 */
#define QUOTA_CALLERS    128
#define QUOTA_RECOUNT_MS 1000
struct sq_count {
	char caller[40];    /* the caller's name ("" for callers that are not known) */
	int64_t n;          /* its live keys (approximate: see above) */
	int64_t recount_at; /* clock ms from which a count in the file may find fewer */
};

struct sq {
	sqlite3 *db; /* owned by the thread once it runs */
	sqlite3_stmt *get, *put, *done, *del, *sweep, *count;
	sqlite3_stmt *ccount, *cnext,
	        *cof;           /* a caller's live rows, its next expiry, a key's caller */
	char owner[96];         /* this process's claims: host, pid and a random part */
	size_t max_entries;     /* rows at most */
	int64_t rows;           /* rows in the table (the thread keeps it) */
	int64_t (*clock)(void); /* wall-clock ms */
	sg_store_worker w;      /* the database thread and its queue */
	struct sq_count counts[QUOTA_CALLERS]; /* the thread's, per caller */
	size_t ncounts;                        /* entries used */
};

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ the operations */

static bool
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Deletes completed rows past their expiry. */
static void
sweep(struct sq *q, int64_t now)
{
	sqlite3_bind_int64(q->sweep, 1, now);
	if (sqlite3_step(q->sweep) == SQLITE_DONE)
		q->rows -= sqlite3_changes(q->db);
	sqlite3_reset(q->sweep);
}

/* Caller's rows that are live at now (claimed, or kept and unexpired), counted in the file;
 * -1 when it cannot be read. */
static int64_t
count_caller(struct sq *q, const char *caller, int64_t now)
{
	int64_t n = -1;
	sqlite3_bind_text(q->ccount, 1, caller, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q->ccount, 2, now);
	if (sqlite3_step(q->ccount) == SQLITE_ROW)
		n = sqlite3_column_int64(q->ccount, 0);
	sqlite3_reset(q->ccount);
	return n;
}

/* When a count of caller's rows in the file, made at now, may next find fewer. */
static int64_t
recount_at(struct sq *q, const char *caller, int64_t now)
{
	int64_t at = now + QUOTA_RECOUNT_MS;
	sqlite3_bind_text(q->cnext, 1, caller, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q->cnext, 2, now);
	if (sqlite3_step(q->cnext) == SQLITE_ROW &&
	    sqlite3_column_type(q->cnext, 0) != SQLITE_NULL &&
	    sqlite3_column_int64(q->cnext, 0) < at)
		at = sqlite3_column_int64(q->cnext, 0);
	sqlite3_reset(q->cnext);
	return at;
}

/* The count of caller, or NULL when it has none. */
static struct sq_count *
count_find(struct sq *q, const char *caller)
{
	for (size_t i = 0; i < q->ncounts; i++)
		if (strcmp(q->counts[i].caller, caller) == 0)
			return &q->counts[i];
	return NULL;
}

/* A new count for caller with n keys (recount at recount), or NULL when the table of counts is
 * full or the name too long (such a caller is counted in the file on each claim). */
static struct sq_count *
count_add(struct sq *q, const char *caller, int64_t n, int64_t recount)
{
	if (q->ncounts == QUOTA_CALLERS || strlen(caller) >= sizeof(q->counts[0].caller))
		return NULL;
	struct sq_count *c = &q->counts[q->ncounts++];
	snprintf(c->caller, sizeof(c->caller), "%s", caller);
	c->n = n;
	c->recount_at = recount;
	return c;
}

/* The count of caller, made from the file when missing (NULL: see count_add, or the file
 * cannot be read). */
static struct sq_count *
count_of(struct sq *q, const char *caller, int64_t now)
{
	struct sq_count *c = count_find(q, caller);
	if (c != NULL || q->ncounts == QUOTA_CALLERS ||
	    strlen(caller) >= sizeof(q->counts[0].caller))
		return c;
	int64_t n = count_caller(q, caller, now);
	return n >= 0 ? count_add(q, caller, n, recount_at(q, caller, now)) : NULL;
}

/* Whether op's caller (c: its count, or NULL) may hold one more key: its cap is op->max_keys,
 * 0 for none. */
static bool
quota_room(struct sq *q, struct sq_count *c, const sg_store_op *op, int64_t now)
{
	int64_t max = (int64_t)op->max_keys;
	if (max <= 0)
		return true;
	if (c == NULL) {
		int64_t n = count_caller(q, op->caller, now);
		return n >= 0 && n < max;
	}
	if (c->n < max)
		return true;
	if (now >= c->recount_at) { /* at its cap: count it again (expired rows do not count) */
		int64_t n = count_caller(q, op->caller, now);
		if (n >= 0) {
			c->n = n;
			c->recount_at = recount_at(q, op->caller, now);
		}
	}
	return c->n < max;
}

/* The claim, inside BEGIN IMMEDIATE. o is set for DONE (its bytes live until the statement is
 * reset, which the caller does after the callback). */
static sg_claim
claim_tx(struct sq *q, sg_store_op *op, sg_flight_outcome *o, int64_t now)
{
	sqlite3_stmt *g = q->get;
	sqlite3_bind_text(g, 1, op->key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(g);
	if (rc == SQLITE_ROW) {
		int64_t fa = sqlite3_column_int64(g, 0), fb = sqlite3_column_int64(g, 1);
		int state = sqlite3_column_int(g, 2);
		int64_t lease_until = sqlite3_column_int64(g, 3),
		        expires = sqlite3_column_int64(g, 4);
		bool same = (uint64_t)fa == op->fp.a && (uint64_t)fb == op->fp.b;
		if (state == 1 && expires > now) {
			if (!same)
				return SG_CLAIM_CONFLICT;
			o->status = sqlite3_column_blob(g, 5);
			o->status_len = (size_t)sqlite3_column_bytes(g, 5);
			o->payload = sqlite3_column_int(g, 7) ? sqlite3_column_blob(g, 6) : NULL;
			o->payload_len = (size_t)sqlite3_column_bytes(g, 6);
			if (o->payload == NULL && sqlite3_column_int(g, 7))
				o->payload = (const uint8_t *)""; /* an empty payload */
			return SG_CLAIM_DONE;
		}
		if (state == 0) {
			if (!same)
				return SG_CLAIM_CONFLICT;
			return lease_until > now ? SG_CLAIM_BUSY : SG_CLAIM_UNKNOWN;
		}
		/* a completed row past its expiry: as if the key were new */
	} else if (rc != SQLITE_DONE) {
		return SG_CLAIM_ERROR;
	}
	bool existed = rc == SQLITE_ROW;
	sqlite3_reset(g);
	/* a new key: its caller's cap */
	struct sq_count *c = count_of(q, op->caller, now);
	if (!quota_room(q, c, op, now))
		return SG_CLAIM_QUOTA;
	if (!existed && (size_t)q->rows >= q->max_entries) {
		/* at the limit: drop what expired, and count again (other gateways on the file,
		 * or an operator's release, change it too) */
		sweep(q, now);
		if (sqlite3_step(q->count) == SQLITE_ROW)
			q->rows = sqlite3_column_int64(q->count, 0);
		sqlite3_reset(q->count);
		if ((size_t)q->rows >= q->max_entries)
			return SG_CLAIM_FULL;
	}
	sqlite3_stmt *p = q->put;
	sqlite3_bind_text(p, 1, op->key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(p, 2, (int64_t)op->fp.a);
	sqlite3_bind_int64(p, 3, (int64_t)op->fp.b);
	sqlite3_bind_text(p, 4, q->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(p, 5, now + (op->ms > 0 ? op->ms : 1));
	sqlite3_bind_int64(p, 6, now);
	sqlite3_bind_text(p, 7, op->provider != NULL ? op->provider : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(p, 8, op->caller, -1, SQLITE_STATIC);
	rc = sqlite3_step(p);
	sqlite3_reset(p);
	if (rc != SQLITE_DONE)
		return SG_CLAIM_ERROR;
	if (!existed)
		q->rows++;
	/* (an expired row replaced here stays in its old caller's count until a recount) */
	if (c != NULL)
		c->n++;
	return SG_CLAIM_OWNER;
}

/* A claim, inside the batch's transaction. A stored outcome is copied out: the row's bytes
 * die with the statement's reset, and the answer waits for the commit. */
static void
do_claim(struct sq *q, sg_store_op *op, int64_t now)
{
	sg_flight_outcome o = {NULL, 0, NULL, 0};

	op->res = claim_tx(q, op, &o, now);
	if (op->res == SG_CLAIM_DONE) {
		if ((op->found = malloc(o.status_len + o.payload_len + 1)) == NULL) {
			op->res = SG_CLAIM_ERROR;
		} else {
			memcpy(op->found, o.status ? o.status : (const uint8_t *)"", o.status_len);
			if (o.payload_len)
				memcpy(op->found + o.status_len, o.payload, o.payload_len);
			op->o.status = op->found;
			op->o.status_len = o.status_len;
			op->o.payload = o.payload != NULL ? op->found + o.status_len : NULL;
			op->o.payload_len = o.payload_len;
		}
	}
	sqlite3_reset(q->get);
}

static void
do_complete(struct sq *q, sg_store_op *op, int64_t now)
{
	sqlite3_stmt *s = q->done;
	sg_err err = SG_OK;

	sqlite3_bind_blob(s, 1, op->status_len ? op->status : (const uint8_t *)"",
	                  (int)op->status_len, SQLITE_STATIC);
	if (op->payload != NULL)
		sqlite3_bind_blob(s, 2, op->payload_len ? op->payload : (const uint8_t *)"",
		                  (int)op->payload_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_int(s, 3, op->payload != NULL);
	sqlite3_bind_int64(s, 4, now + op->ms);
	sqlite3_bind_text(s, 5, op->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, q->owner, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		err = SG_ESTORE;
	} else if (sqlite3_changes(q->db) != 1) {
		err = SG_EINTERNAL; /* the claim is not ours any more (fence) */
	} else {
		/* the row's caller may find fewer rows once it expires (every count is told: a
		 * look-up of the row's caller would cost more than these compares) */
		for (size_t i = 0; i < q->ncounts; i++)
			if (q->counts[i].recount_at > now + op->ms)
				q->counts[i].recount_at = now + op->ms;
	}
	sqlite3_reset(s);
	op->err = err;
}

static void
do_release(struct sq *q, sg_store_op *op)
{
	sqlite3_stmt *s = q->del;
	sg_err err = SG_OK;
	char caller[sizeof(q->counts[0].caller)] = "";
	bool named = false;

	/* whose row it is, for its caller's count (a caller not counted need not be known) */
	sqlite3_bind_text(q->cof, 1, op->key, -1, SQLITE_STATIC);
	if (sqlite3_step(q->cof) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(q->cof, 0);
		named = c != NULL && strlen(c) < sizeof(caller);
		if (named)
			memcpy(caller, c, strlen(c) + 1);
	}
	sqlite3_reset(q->cof);
	sqlite3_bind_text(s, 1, op->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, q->owner, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		err = SG_ESTORE;
	} else {
		int n = sqlite3_changes(q->db);
		q->rows -= n;
		if (n != 1) {
			err = SG_EINTERNAL; /* the claim is not ours any more (fence) */
		} else if (named) {
			struct sq_count *c = count_find(q, caller);
			if (c != NULL && c->n > 0)
				c->n--;
		}
	}
	sqlite3_reset(s);
	op->err = err;
}

/*
 * Runs a batch of operations in one transaction and answers them once it is committed (group
 * commit: one fsync for all the claims and outcomes that queued up meanwhile, instead of one
 * each). A failed commit answers every operation of the batch with the failure: nothing of it
 * is on disk.
 */
static void
run_batch(struct sq *q, sg_store_op *batch)
{
	int64_t now = q->clock();
	int64_t rows = q->rows;
	struct sq_count counts[QUOTA_CALLERS];
	size_t ncounts = q->ncounts;
	memcpy(counts, q->counts, ncounts * sizeof(counts[0]));
	bool ok = exec(q->db, "BEGIN IMMEDIATE");

	for (sg_store_op *op = batch; ok && op != NULL; op = op->next) {
		switch (op->kind) {
		case SG_OP_CLAIM: do_claim(q, op, now); break;
		case SG_OP_COMPLETE: do_complete(q, op, now); break;
		case SG_OP_RELEASE: do_release(q, op); break;
		}
	}
	/* the claims are on disk only once this returns */
	if (ok && !exec(q->db, "COMMIT")) {
		exec(q->db, "ROLLBACK");
		ok = false;
	}
	if (!ok) { /* nothing of the batch is in the file */
		q->rows = rows;
		q->ncounts = ncounts;
		memcpy(q->counts, counts, ncounts * sizeof(counts[0]));
	}
	while (batch != NULL) {
		sg_store_op *op = batch;
		batch = op->next;
		sg_store_op_done(op, ok ? op->res : SG_CLAIM_ERROR, &op->o,
		                 ok ? op->err : SG_ESTORE);
	}
}

static void
sq_run(void *impl, sg_store_op *batch, bool stopping)
{
	(void)stopping;
	if (batch != NULL)
		run_batch(impl, batch);
}

static void
sq_claim(void *impl, const char *key, sg_flight_fp fp, const char *provider,
         const sg_store_quota *quota, int64_t lease_ms, sg_store_claim_cb cb, void *arg)
{
	sg_store_worker_claim(&((struct sq *)impl)->w, key, fp, provider, quota, lease_ms, cb, arg);
}

static void
sq_complete(void *impl, const char *key, const sg_flight_outcome *o, int64_t ttl_ms,
            sg_store_done_cb cb, void *arg)
{
	sg_store_worker_complete(&((struct sq *)impl)->w, key, o, ttl_ms, cb, arg);
}

static void
sq_release(void *impl, const char *key, sg_store_done_cb cb, void *arg)
{
	sg_store_worker_release(&((struct sq *)impl)->w, key, cb, arg);
}

static void
sq_close(struct sq *q)
{
	sqlite3_stmt *all[] = {q->get,   q->put,    q->done,  q->del, q->sweep,
	                       q->count, q->ccount, q->cnext, q->cof};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sqlite3_finalize(all[i]);
	sqlite3_close(q->db);
}

/* Stops the thread once the queue is drained (every queued callback runs), then closes. */
static void
sq_free(void *impl)
{
	struct sq *q = impl;

	sg_store_worker_stop(&q->w);
	sq_close(q);
	free(q);
}

static const sg_store_ops sqlite_ops = {
        .name = "sqlite",
        .scope = "node",
        .claim = sq_claim,
        .complete = sq_complete,
        .release = sq_release,
        .free = sq_free,
};

/* A file made before the provider column gets it (older rows name no provider). */
static bool
add_provider(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool has = sqlite3_prepare_v2(db, "SELECT provider FROM idem LIMIT 0", -1, &s, NULL) ==
	           SQLITE_OK;

	sqlite3_finalize(s);
	return has || sqlite3_exec(db,
	                           "ALTER TABLE idem ADD COLUMN provider TEXT NOT NULL"
	                           " DEFAULT ''",
	                           NULL, NULL, NULL) == SQLITE_OK;
}

/* A file made before the caller column gets it (older rows count for callers not known). */
static bool
add_caller(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool has = sqlite3_prepare_v2(db, "SELECT caller FROM idem LIMIT 0", -1, &s, NULL) ==
	           SQLITE_OK;

	sqlite3_finalize(s);
	return (has ||
	        sqlite3_exec(db, "ALTER TABLE idem ADD COLUMN caller TEXT NOT NULL DEFAULT ''",
	                     NULL, NULL, NULL) == SQLITE_OK) &&
	       sqlite3_exec(db,
	                    "CREATE INDEX IF NOT EXISTS idem_caller ON idem(caller, state,"
	                    " expires_at)",
	                    NULL, NULL, NULL) == SQLITE_OK;
}

/* The counts per caller, from the file (at start, once expired rows are swept: every row is
 * live). A count is made again when its caller first reaches a cap. */
static void
load_counts(struct sq *q)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(q->db, "SELECT caller, COUNT(*) FROM idem GROUP BY caller", -1, &s,
	                       NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *caller = (const char *)sqlite3_column_text(s, 0);
		count_add(q, caller != NULL ? caller : "", sqlite3_column_int64(s, 1), 0);
	}
	sqlite3_finalize(s);
}

sg_store *
sg_store_sqlite_new(const char *path, size_t max_entries, int64_t (*clock)(void), char *err,
                    size_t errlen)
{
	static const char schema[] =
	        "PRAGMA journal_mode=WAL;"
	        "PRAGMA synchronous=FULL;"
	        "PRAGMA busy_timeout=5000;"
	        "CREATE TABLE IF NOT EXISTS idem ("
	        " key TEXT PRIMARY KEY,"
	        " fp_a INTEGER NOT NULL, fp_b INTEGER NOT NULL,"
	        " state INTEGER NOT NULL,"       /* 0 in_progress, 1 completed */
	        " owner TEXT NOT NULL,"          /* the claimer */
	        " lease_until INTEGER NOT NULL," /* in_progress: the claim is live until */
	        " expires_at INTEGER NOT NULL,"  /* completed: the outcome is kept until */
	        " status BLOB, payload BLOB, has_payload INTEGER NOT NULL DEFAULT 0,"
	        " first_seen INTEGER NOT NULL,"
	        " provider TEXT NOT NULL DEFAULT ''," /* the call's, for the operator's view */
	        " caller TEXT NOT NULL DEFAULT '');"  /* whose key it is (the callers' quotas) */
	        "CREATE INDEX IF NOT EXISTS idem_expiry ON idem(state, expires_at);";
	struct sq *q = calloc(1, sizeof(*q));
	sg_store *s = malloc(sizeof(*s));
	char host[64] = "host", dir[4096];

	if (q == NULL || s == NULL) {
		snprintf(err, errlen, "idempotency store sqlite: out of memory");
		goto fail;
	}
	q->max_entries = max_entries ? max_entries : 1;
	q->clock = clock != NULL ? clock : wall_ms;
	gethostname(host, sizeof(host) - 1);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(q->owner, sizeof(q->owner), "%.40s:%d:%lx", host, (int)getpid(),
	         (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20) ^ (uintptr_t)q));
	/* the state directory: created (private to the service) when missing */
	const char *slash = strrchr(path, '/');
	if (slash != NULL && slash != path && (size_t)(slash - path) < sizeof(dir)) {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "idempotency store sqlite: %s: %s", dir,
			         strerror(errno));
			goto fail;
		}
	}
	if (sqlite3_open_v2(path, &q->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK ||
	    sqlite3_exec(q->db, schema, NULL, NULL, NULL) != SQLITE_OK || !add_provider(q->db) ||
	    !add_caller(q->db) ||
	    sqlite3_prepare_v2(q->db,
	                       "SELECT fp_a, fp_b, state, lease_until, expires_at, status, payload,"
	                       " has_payload FROM idem WHERE key = ?1",
	                       -1, &q->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
	            q->db,
	            "INSERT OR REPLACE INTO idem (key, fp_a, fp_b, state, owner,"
	            " lease_until, expires_at, first_seen, provider, caller) VALUES (?1, ?2, ?3,"
	            " 0, ?4, ?5, 0, ?6, ?7, ?8)",
	            -1, &q->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db,
	                       "SELECT COUNT(*) FROM idem WHERE caller = ?1 AND (state = 0 OR"
	                       " expires_at > ?2)",
	                       -1, &q->ccount, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db,
	                       "SELECT MIN(expires_at) FROM idem WHERE caller = ?1 AND state = 1"
	                       " AND expires_at > ?2",
	                       -1, &q->cnext, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db,
	                       "UPDATE idem SET state = 1, status = ?1, payload = ?2, has_payload ="
	                       " ?3, expires_at = ?4 WHERE key = ?5 AND owner = ?6 AND state = 0",
	                       -1, &q->done, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db,
	                       "DELETE FROM idem WHERE key = ?1 AND owner = ?2 AND state = 0", -1,
	                       &q->del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db, "SELECT caller FROM idem WHERE key = ?1", -1, &q->cof,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db, "DELETE FROM idem WHERE state = 1 AND expires_at <= ?1", -1,
	                       &q->sweep, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(q->db, "SELECT COUNT(*) FROM idem", -1, &q->count, NULL) !=
	            SQLITE_OK) {
		snprintf(err, errlen, "idempotency store sqlite: %s: %s", path,
		         q->db ? sqlite3_errmsg(q->db) : "cannot open");
		goto fail;
	}
	sweep(q, q->clock());
	if (sqlite3_step(q->count) == SQLITE_ROW)
		q->rows = sqlite3_column_int64(q->count, 0);
	sqlite3_reset(q->count);
	load_counts(q);
	q->w.prefix = "";
	q->w.run = sq_run;
	q->w.impl = q;
	if (sg_store_worker_start(&q->w) != 0) {
		snprintf(err, errlen, "idempotency store sqlite: cannot start its thread");
		goto fail;
	}
	s->ops = &sqlite_ops;
	s->impl = q;
	s->fleet_id = NULL;
	return s;
fail:
	if (q != NULL) {
		sq_close(q);
		free(q);
	}
	free(s);
	return NULL;
}

/* ------------------------------------------------------------------ the operator's view */

/* Opens path for an operator's command, beside a running gateway (WAL lets both in). */
static sqlite3 *
op_open(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA busy_timeout=5000; SELECT 1 FROM idem LIMIT 1", NULL, NULL,
	                 NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/*
 * Which rows an operator sees as unknown, at ?1 (now): a claim whose lease ran out without an
 * outcome, and a kept outcome that is UNKNOWN itself (the call failed after its request may
 * have reached the provider). The stored Status is packed by protobuf-c, which writes fields
 * in field-number order, so a code of UNKNOWN (2) starts it with field 1's tag and value:
 * 0x08 0x02. sg_store_status_unknown checks the decoded Status as well.
 */
#define UNKNOWN_ROWS                                                                               \
	"((state = 0 AND lease_until <= ?1) OR (state = 1 AND expires_at > ?1 AND"                 \
	" substr(status, 1, 2) = X'0802'))"

int
sg_store_sqlite_unknown(const char *path, int64_t now_ms,
                        void (*fn)(void *arg, const sg_store_unknown *u), void *arg, char *err,
                        size_t errlen)
{
	sqlite3 *db = op_open(path, err, errlen);
	sqlite3_stmt *s = NULL;
	int n = 0;

	if (db == NULL)
		return -1;
	if (sqlite3_prepare_v2(db,
	                       "SELECT key, fp_a, fp_b, owner, first_seen, lease_until, provider,"
	                       " state, status FROM idem WHERE " UNKNOWN_ROWS
	                       " ORDER BY first_seen",
	                       -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_bind_int64(s, 1, now_ms);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char why[300] = "";
		bool stored = sqlite3_column_int(s, 7) == 1;
		if (stored &&
		    !sg_store_status_unknown(sqlite3_column_blob(s, 8),
		                             (size_t)sqlite3_column_bytes(s, 8), why, sizeof(why)))
			continue;
		sg_store_unknown u = {
		        .key = (const char *)sqlite3_column_text(s, 0),
		        .fp_a = (uint64_t)sqlite3_column_int64(s, 1),
		        .fp_b = (uint64_t)sqlite3_column_int64(s, 2),
		        .owner = (const char *)sqlite3_column_text(s, 3),
		        .first_seen_ms = sqlite3_column_int64(s, 4),
		        .lease_until_ms = sqlite3_column_int64(s, 5),
		        .provider = (const char *)sqlite3_column_text(s, 6),
		        .stored = stored,
		        .why = stored ? why : "the gateway stopped before the call ended",
		};
		fn(arg, &u);
		n++;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		n = -1;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

int
sg_store_sqlite_release_unknown(const char *path, const char *key, int64_t now_ms, char *err,
                                size_t errlen)
{
	return sg_store_sqlite_resolve(path, key, NULL, 0, 0, now_ms, err, errlen);
}

int
sg_store_sqlite_resolve(const char *path, const char *key, const uint8_t *payload,
                        size_t payload_len, int64_t ttl_ms, int64_t now_ms, char *err,
                        size_t errlen)
{
	sqlite3 *db = op_open(path, err, errlen);
	sqlite3_stmt *s = NULL;
	int n = -1;
	const char *sql =
	        payload == NULL
	                ? "DELETE FROM idem WHERE key = ?2 AND " UNKNOWN_ROWS
	                : "UPDATE idem SET state = 1, status = X'', payload = ?3, has_payload = 1,"
	                  " expires_at = ?1 + ?4, owner = 'operator' WHERE key = ?2 "
	                  "AND " UNKNOWN_ROWS;

	if (db == NULL)
		return -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, now_ms);
		sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
		if (payload != NULL) {
			sqlite3_bind_blob(s, 3, payload_len ? payload : (const uint8_t *)"",
			                  (int)payload_len, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, ttl_ms);
		}
		if (sqlite3_step(s) == SQLITE_DONE)
			n = sqlite3_changes(db);
	}
	if (n < 0)
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}
