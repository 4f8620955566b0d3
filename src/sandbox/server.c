/*
 * server.c - libmicrohttpd glue: per-request state, request bodies, routing, the request
 * record, the /__sandbox/ hooks, and slow answers through suspend/resume.
 *
 * Life of a request (all on one MHD thread, except the resume):
 *   on_uri        MHD has read the request line: allocate the rq and keep the raw target.
 *   on_request    1st call: headers are in (early 413 if Content-Length is over the cap);
 *                 next calls: body chunks; last call: route, record, answer.
 *                 A delayed answer is built now, the connection suspended, and a timer added.
 *   on_timer      (timer thread) resume the connection; MHD calls on_request again, which
 *                 queues the prepared answer.
 *   on_completed  free the rq.
 */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>

#include <microhttpd.h>

#include "core/dynbuf.h"

#include "providers.h"
#include "reqlog.h"
#include "timer.h"

#define BODY_MAX       ((size_t)1 << 20)  /* request body cap; over it: 413 */
#define LOG_ENTRIES    10000              /* requests kept in the record */
#define LOG_BYTES      ((size_t)64 << 20) /* bytes kept in the record */
#define LOG_BODY_MAX   ((size_t)64 << 10) /* body bytes kept per recorded request */
#define LOG_HDRS_MAX   64                 /* headers kept per recorded request */
#define IDLE_TIMEOUT_S 60                 /* keep-alive connections idle this long are closed */
#define LISTEN_BACKLOG 16384              /* the kernel clamps it to net.core.somaxconn */

/* ================================================================== state */

struct sbx_server {
	struct MHD_Daemon *mhd;      /* the listener and its threads */
	sbx_conf conf;               /* configuration the handlers read */
	sbx_timer *timer;            /* holds slow answers */
	sbx_reqlog *log;             /* the request record */
	unsigned port;               /* port bound */
	atomic_bool stopping;        /* no new delays: answer at once */
	atomic_ullong requests;      /* requests answered (or being answered) */
	atomic_ullong delayed_now;   /* answers held right now */
	atomic_ullong delayed_total; /* answers ever held */
};

typedef enum rq_state {
	RQ_NEW,     /* request line and headers read; on_request not called yet */
	RQ_BODY,    /* reading the body */
	RQ_DELAYED, /* answer prepared; connection suspended until the timer fires */
	RQ_DONE,    /* answer queued */
} rq_state;

/* One request. Created by on_uri, freed by on_completed; only its MHD thread touches it. */
typedef struct rq {
	sbx_server *srv;             /* the server */
	struct MHD_Connection *conn; /* the connection it arrived on */
	rq_state state;              /* where it is */
	char *target;                /* raw request target as received (owned) */
	sg_dynbuf body;              /* body, NUL-terminated, capped at BODY_MAX (owned) */
	uint64_t body_seen;          /* bytes received or announced; over BODY_MAX: too_big */
	bool too_big;                /* body over BODY_MAX: answer 413 */
	struct MHD_Response *resp;   /* RQ_DELAYED: the answer to queue on resume (owned) */
	unsigned status;             /* RQ_DELAYED: its status */
} rq;

static void
rq_free(rq *q)
{
	if (q->resp != NULL) {
		/* held answer that never went out (shutdown, or a client gone) */
		MHD_destroy_response(q->resp);
		atomic_fetch_sub(&q->srv->delayed_now, 1);
	}
	free(q->target);
	sg_dynbuf_free(&q->body);
	free(q);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ================================================================== the record */

/* A JSON string of s (invalid UTF-8 replaced), or null when s is NULL. */
static json_t *
json_opt(const char *s)
{
	return sbx_json_bytes(s, s ? strlen(s) : 0);
}

/* Collects request headers into a JSON array of [name, value] pairs. */
typedef struct hdr_acc {
	json_t *arr; /* the array (borrowed) */
	size_t n;    /* headers seen */
} hdr_acc;

static enum MHD_Result
hdr_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	hdr_acc *acc = cls;

	(void)kind;
	if (acc->n++ >= LOG_HDRS_MAX)
		return MHD_NO;
	json_array_append_new(acc->arr, json_pack("[o, o]", json_opt(key), json_opt(value)));
	return MHD_YES;
}

/* Appends one entry to the record (see docs/sandbox.md for the fields). */
static void
record(sbx_server *s, rq *q, const sbx_call *c, const char *url, unsigned status)
{
	size_t keep = q->body.len < LOG_BODY_MAX ? q->body.len : LOG_BODY_MAX;
	hdr_acc acc = {json_array(), 0};
	json_t *o;
	char *text;

	if (acc.arr != NULL)
		MHD_get_connection_values(q->conn, MHD_HEADER_KIND, hdr_collect, &acc);
	o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:b, s:i}", "time_ms",
	              (json_int_t)now_ms(), "method", json_opt(c->method), "target",
	              json_opt(q->target), "path", json_opt(url), "query", json_opt(c->query),
	              "authorization", json_opt(c->authorization), "content_type",
	              json_opt(c->content_type), "headers", acc.arr ? acc.arr : json_array(),
	              "body", sbx_json_bytes(q->body.data ? q->body.data : "", keep), "body_len",
	              (json_int_t)q->body_seen, "body_truncated", q->too_big || keep < q->body.len,
	              "status", (int)status);
	if (o == NULL)
		return;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text != NULL)
		sbx_reqlog_add(s->log, text, strlen(text));
}

/* ================================================================== hooks */

/* /__sandbox/<name>. Sets *hook for the four hooks, which are not recorded. */
static void
hooks(sbx_server *s, const sbx_call *c, sbx_reply *r, bool *hook)
{
	size_t held;
	uint64_t dropped, total;
	char *dump;
	size_t len = 0;

	*hook = c->nseg == 1 && (sbx_seg_is(c, 0, "health") || sbx_seg_is(c, 0, "requests") ||
	                         sbx_seg_is(c, 0, "reset") || sbx_seg_is(c, 0, "stats"));
	if (!*hook) {
		sbx_reply_error(r, SBX_STYLE_SANDBOX, 404, "no such sandbox hook");
		return;
	}
	if (sbx_seg_is(c, 0, "reset")) {
		if (!sbx_method_is(c, "POST")) {
			sbx_reply_405(r, SBX_STYLE_SANDBOX, "use POST", "POST");
			return;
		}
		sbx_reply_json(r, 200,
		               json_pack("{s:I}", "cleared", (json_int_t)sbx_reqlog_clear(s->log)),
		               false);
		return;
	}
	if (!sbx_method_is(c, "GET")) {
		sbx_reply_405(r, SBX_STYLE_SANDBOX, "use GET", "GET, HEAD");
		return;
	}
	if (sbx_seg_is(c, 0, "health")) {
		sbx_reply_json(r, 200, json_pack("{s:s}", "status", "ok"), false);
	} else if (sbx_seg_is(c, 0, "requests")) {
		dump = sbx_reqlog_dump(s->log, &len);
		sbx_reply_take(r, 200, "application/json", dump, len);
	} else {
		sbx_reqlog_stats(s->log, &held, &dropped, &total);
		sbx_reply_json(r, 200,
		               json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "requests",
		                         (json_int_t)atomic_load(&s->requests), "delayed_now",
		                         (json_int_t)atomic_load(&s->delayed_now), "delayed_total",
		                         (json_int_t)atomic_load(&s->delayed_total), "recorded",
		                         (json_int_t)held, "recorded_total", (json_int_t)total,
		                         "dropped", (json_int_t)dropped),
		               false);
	}
}

/* ================================================================== routing */

/* The path and query of a raw target; absolute-form ("http://host/p?q") is reduced to /p?q. */
static void
split_target(const char *t, const char **path, size_t *path_len, const char **query)
{
	const char *qm;

	if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
		const char *p = strchr(t, ':') + 3;

		p += strcspn(p, "/?");
		t = p;
	}
	qm = strchr(t, '?');
	*path = t;
	*path_len = qm ? (size_t)(qm - t) : strlen(t);
	*query = qm ? qm + 1 : NULL;
}

/*
 * Fills r for the request. Splits the raw path on '/' before percent-decoding, so "a%2Fb" is one
 * segment (and then not a valid id). segbuf receives the decoded segments (owned by caller).
 */
static void
route(sbx_server *s, sbx_call *c, const char *path, size_t path_len, char **segbuf, sbx_reply *r,
      bool *hook, bool *provider)
{
	sbx_str all[SBX_MAX_SEGS + 1];
	size_t n = 0, i = 1, o = 0;
	char *buf;

	*hook = false;
	*provider = false;
	if (path_len == 0 || path[0] != '/') {
		sbx_reply_error(r, SBX_STYLE_SANDBOX, 404, "no such endpoint");
		return;
	}
	/* decoding never grows a segment; each gets a NUL: path_len + segments bytes suffice */
	if ((*segbuf = buf = malloc(path_len + SBX_MAX_SEGS + 2)) == NULL) {
		sbx_reply_json(r, 500, NULL, false);
		return;
	}
	while (i <= path_len) {
		const char *seg = path + i;
		size_t len = strcspn(seg, "/");
		long dl;

		if (i + len > path_len)
			len = path_len - i;
		if (n == SBX_MAX_SEGS + 1) {
			sbx_reply_error(r, SBX_STYLE_SANDBOX, 404, "no such endpoint");
			return;
		}
		dl = sbx_pct_decode(seg, len, buf + o, len + 1, false);
		all[n].p = buf + o;
		all[n].n = dl < 0 ? 0 : (size_t)dl;
		o += all[n].n + 1;
		n++;
		i += len + 1;
	}
	if (n == 0) { /* "/" itself */
		sbx_reply_error(r, SBX_STYLE_SANDBOX, 404, "no such endpoint");
		return;
	}
	c->nseg = n - 1;
	memcpy(c->seg, all + 1, (n - 1) * sizeof(all[0]));
	*provider = true;
	if (all[0].n == 6 && memcmp(all[0].p, "boscod", 6) == 0) {
		sbx_boscod(c, r);
	} else if (all[0].n == 9 && memcmp(all[0].p, "bosonline", 9) == 0) {
		sbx_bosonline(c, r);
	} else if (all[0].n == 8 && memcmp(all[0].p, "biteship", 8) == 0) {
		sbx_biteship(c, r);
	} else if (all[0].n == 6 && memcmp(all[0].p, "fuuffy", 6) == 0) {
		sbx_fuuffy(c, r);
	} else {
		*provider = false;
		if (all[0].n == 9 && memcmp(all[0].p, "__sandbox", 9) == 0)
			hooks(s, c, r, hook);
		else
			sbx_reply_error(r, SBX_STYLE_SANDBOX, 404, "no such endpoint");
	}
}

/* ================================================================== MHD callbacks */

static struct MHD_Response *
make_response(sbx_reply *r)
{
	struct MHD_Response *resp;
	size_t i;

	if (r->body_static) {
		resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer_with_free_callback(r->len, r->body, free);
		if (resp != NULL)
			r->body = NULL; /* MHD owns it now */
	}
	if (resp == NULL)
		return NULL;
	if (r->ctype != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
	for (i = 0; i < r->nhdr; i++)
		MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
	return resp;
}

static void
on_timer(void *arg)
{
	rq *q = arg;

	MHD_resume_connection(q->conn);
}

/* The request is complete (or over the cap): answer it, now or after its delay. */
static enum MHD_Result
finish(sbx_server *s, rq *q, struct MHD_Connection *conn, const char *url, const char *method)
{
	const char *path, *t = q->target ? q->target : url;
	char *segbuf = NULL;
	size_t path_len;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	bool hook, provider;
	sbx_reply r;
	sbx_call c;

	memset(&c, 0, sizeof(c));
	sbx_reply_init(&r);
	c.conf = &s->conf;
	c.method = method;
	c.authorization =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	c.content_type =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	c.body = q->body.data ? q->body.data : "";
	c.body_len = q->body.len;
	split_target(t, &path, &path_len, &c.query);

	atomic_fetch_add(&s->requests, 1);
	if (q->too_big) {
		char msg[64];

		hook = false;
		provider = false;
		snprintf(msg, sizeof(msg), "request body over %zu bytes", BODY_MAX);
		sbx_reply_error(&r, SBX_STYLE_SANDBOX, 413, msg);
	} else {
		route(s, &c, path, path_len, &segbuf, &r, &hook, &provider);
	}
	if (provider)
		r.delay_ms += s->conf.delay_ms;
	if (!hook)
		record(s, q, &c, url, r.status);
	free(segbuf);

	resp = make_response(&r);
	sbx_reply_fini(&r);
	if (resp == NULL)
		return MHD_NO; /* out of memory: MHD closes the connection */

	if (r.delay_ms > 0 && !atomic_load(&s->stopping)) {
		q->resp = resp;
		q->status = r.status;
		q->state = RQ_DELAYED;
		atomic_fetch_add(&s->delayed_now, 1);
		atomic_fetch_add(&s->delayed_total, 1);
		MHD_suspend_connection(conn);
		if (sbx_timer_add(s->timer, r.delay_ms, q) != 0)
			MHD_resume_connection(conn); /* stopping or no memory: answer now */
		return MHD_YES;
	}
	q->state = RQ_DONE;
	ret = MHD_queue_response(conn, r.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Appends a body chunk, up to BODY_MAX; past it (or without memory), counts and discards. */
static void
body_append(rq *q, const char *data, size_t n)
{
	q->body_seen += n;
	if (!q->too_big && sg_dynbuf_add(&q->body, data, n) != 0)
		q->too_big = true; /* over the cap, or cannot keep it: refuse it */
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static char oom[] = SBX_OOM_BODY;
	sbx_server *s = cls;
	rq *q = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *cl;

	(void)version;
	if (q == NULL) { /* on_uri could not allocate */
		resp = MHD_create_response_from_buffer(sizeof(oom) - 1, oom,
		                                       MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return MHD_NO;
		ret = MHD_queue_response(conn, 500, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	switch (q->state) {
	case RQ_NEW:
		q->state = RQ_BODY;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			unsigned long long v = strtoull(cl, NULL, 10);

			if (v > BODY_MAX) { /* refuse before reading a byte of it */
				q->body_seen = v;
				q->too_big = true;
				return finish(s, q, conn, url, method);
			}
		}
		return MHD_YES;
	case RQ_BODY:
		if (*upload_data_size > 0) {
			body_append(q, upload_data, *upload_data_size);
			*upload_data_size = 0;
			return MHD_YES;
		}
		return finish(s, q, conn, url, method);
	case RQ_DELAYED:
		q->state = RQ_DONE;
		ret = MHD_queue_response(conn, q->status, q->resp);
		MHD_destroy_response(q->resp);
		q->resp = NULL;
		atomic_fetch_sub(&s->delayed_now, 1);
		return ret;
	case RQ_DONE: break;
	}
	return MHD_NO;
}

/* Called once per request with its raw target, before MHD unescapes anything. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	rq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->srv = cls;
	q->conn = conn;
	q->state = RQ_NEW;
	sg_dynbuf_init(&q->body, BODY_MAX, 4096);
	if ((q->target = strdup(uri ? uri : "")) == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	if (*con_cls != NULL)
		rq_free(*con_cls);
	*con_cls = NULL;
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("shipgate-sandbox: mhd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* ================================================================== API */

int
sbx_server_start(sbx_server **out, const sbx_server_opts *o, char *err, size_t cap)
{
	const union MHD_DaemonInfo *info;
	unsigned flags;
	sbx_server *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	s->conf = o->conf;
	atomic_init(&s->stopping, false);
	atomic_init(&s->requests, 0);
	atomic_init(&s->delayed_now, 0);
	atomic_init(&s->delayed_total, 0);
	if ((s->log = sbx_reqlog_new(LOG_ENTRIES, LOG_BYTES)) == NULL) {
		snprintf(err, cap, "out of memory");
		goto fail;
	}
	if (sbx_timer_new(&s->timer, on_timer) != 0) {
		snprintf(err, cap, "timer thread: %s", strerror(errno));
		goto fail;
	}
	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (o->addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* https: libmicrohttpd's TLS (GnuTLS), with the certificate and key in memory */
	struct MHD_OptionItem tls[] = {
	        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
	if (o->tls_cert != NULL && o->tls_key != NULL) {
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key};
		tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert};
	}
	s->mhd = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
	        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&o->addr,
	        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	        s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conns,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
	        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
	        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads > 1 ? o->threads : 0),
	        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	if (s->mhd == NULL) {
		snprintf(err, cap,
		         o->tls_cert != NULL ? "cannot listen (address in use, not permitted, or a "
		                               "certificate and key that do not load?)"
		                             : "cannot listen (address in use, or not permitted?)");
		goto fail;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	*out = s;
	return 0;
fail:
	sbx_timer_free(s->timer);
	sbx_reqlog_free(s->log);
	free(s);
	return -1;
}

unsigned
sbx_server_port(const sbx_server *s)
{
	return s->port;
}

void
sbx_server_stop(sbx_server *s)
{
	if (s == NULL)
		return;
	/* order matters: MHD must not be stopped with a connection still suspended */
	atomic_store(&s->stopping, true);
	sbx_timer_stop(s->timer); /* resumes every held connection */
	MHD_stop_daemon(s->mhd);
	sbx_timer_free(s->timer);
	sbx_reqlog_free(s->log);
	free(s);
}
