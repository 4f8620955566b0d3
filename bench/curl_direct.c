/*
 * curl_direct.c - the upstream alone: libcurl keep-alive GETs of one sandbox URL, the request
 * the gateway makes for an uncached Track, with no gateway in between.
 *
 *   --concurrency 1  one easy handle, one connection, sequential curl_easy_perform
 *   --concurrency N  one multi handle driving N easy handles in a closed loop (each re-added as
 *                    soon as it finishes), N keep-alive connections
 *
 * Same histogram, percentiles, warm-up and JSON shape as loadgen. Each answer must be HTTP 200;
 * the body is copied into a per-handle buffer (as the gateway's engine does) and then dropped.
 *
 *   curl_direct --url URL [--header "Name: value"]... [--concurrency N] [--duration S]
 *               [--warmup S] [--requests N] [--label T] [--json]
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "hist.h"
#include "procstat.h"

/* One transfer slot. */
struct slot {
	CURL *easy;      /* its handle; keeps its connection alive */
	char *body;      /* the answer's body, copied */
	size_t len, cap; /* bytes in body, allocated */
	uint64_t t0;     /* ns: started */
	bool too_big;    /* the body outgrew the cap */
};

#define BODY_CAP (8u << 20)

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct slot *s = arg;
	size_t k = size * n;
	if (s->len + k > s->cap) {
		size_t nc = s->cap ? s->cap : 16384;
		while (nc < s->len + k)
			nc *= 2;
		if (nc > BODY_CAP) {
			s->too_big = true;
			return 0;
		}
		char *nb = realloc(s->body, nc);
		if (nb == NULL)
			return 0;
		s->body = nb;
		s->cap = nc;
	}
	memcpy(s->body + s->len, p, k);
	s->len += k;
	return k;
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *label = "";
	const char *hdrs[8];
	int nhdrs = 0, conc = 1;
	double duration = 5, warmup = 1;
	uint64_t requests = 0;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "curl_direct: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--url") == 0)
			url = v;
		else if (strcmp(a, "--header") == 0 && nhdrs < 8)
			hdrs[nhdrs++] = v;
		else if (strcmp(a, "--concurrency") == 0)
			conc = atoi(v);
		else if (strcmp(a, "--duration") == 0)
			duration = atof(v);
		else if (strcmp(a, "--warmup") == 0)
			warmup = atof(v);
		else if (strcmp(a, "--requests") == 0)
			requests = strtoull(v, NULL, 10);
		else if (strcmp(a, "--label") == 0)
			label = v;
		else {
			fprintf(stderr,
			        "usage: curl_direct --url URL [--header H]... [--concurrency N] "
			        "[--duration S] [--warmup S] [--requests N] [--label T] "
			        "[--json]\n");
			return 2;
		}
	}
	if (url == NULL || conc < 1 || duration <= 0) {
		fprintf(stderr, "curl_direct: --url is required\n");
		return 2;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct curl_slist *hl = NULL;
	for (int i = 0; i < nhdrs; i++)
		hl = curl_slist_append(hl, hdrs[i]);
	struct slot *slots = calloc((size_t)conc, sizeof(*slots));
	for (int i = 0; i < conc; i++) {
		CURL *e = slots[i].easy = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &slots[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	}

	bh_hist *h = bh_new();
	uint64_t ok = 0, ok_window = 0, errors = 0, bytes = 0, done = 0, started = 0;
	uint64_t http_other = 0, curl_fail = 0;
	double cpu0 = ps_self_cpu_s();
	uint64_t t_start = bh_now_ns();
	uint64_t t_window = requests ? t_start : t_start + (uint64_t)(warmup * 1e9);
	uint64_t t_end = requests ? UINT64_MAX : t_window + (uint64_t)(duration * 1e9);
	uint64_t t_last = t_start;

#define MORE() (requests ? started < requests : bh_now_ns() < t_end)
#define FINISH(s, res)                                                                             \
	do {                                                                                       \
		uint64_t now_ = bh_now_ns();                                                       \
		long code_ = 0;                                                                    \
		curl_easy_getinfo((s)->easy, CURLINFO_RESPONSE_CODE, &code_);                      \
		done++;                                                                            \
		t_last = now_;                                                                     \
		if ((res) != CURLE_OK) {                                                           \
			curl_fail++;                                                               \
			errors++;                                                                  \
		} else if (code_ != 200) {                                                         \
			http_other++;                                                              \
			errors++;                                                                  \
		} else {                                                                           \
			ok++;                                                                      \
			bytes = (s)->len;                                                          \
			if ((s)->t0 >= t_window) {                                                 \
				bh_record(h, now_ - (s)->t0);                                      \
				ok_window++;                                                       \
			}                                                                          \
		}                                                                                  \
	} while (0)

	if (conc == 1) {
		struct slot *s = &slots[0];
		while (MORE()) {
			s->len = 0;
			s->t0 = bh_now_ns();
			started++;
			CURLcode res = curl_easy_perform(s->easy);
			FINISH(s, res);
		}
	} else {
		CURLM *m = curl_multi_init();
		curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conc * 2);
		int active = 0;
		for (int i = 0; i < conc && MORE(); i++) {
			slots[i].len = 0;
			slots[i].t0 = bh_now_ns();
			started++;
			curl_multi_add_handle(m, slots[i].easy);
			active++;
		}
		while (active > 0) {
			int running;
			curl_multi_perform(m, &running);
			CURLMsg *msg;
			int left;
			while ((msg = curl_multi_info_read(m, &left)) != NULL) {
				if (msg->msg != CURLMSG_DONE)
					continue;
				CURL *e = msg->easy_handle;
				CURLcode res = msg->data.result;
				struct slot *s;
				curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
				FINISH(s, res);
				curl_multi_remove_handle(m, e);
				if (MORE()) {
					s->len = 0;
					s->t0 = bh_now_ns();
					started++;
					curl_multi_add_handle(m, e);
				} else {
					active--;
				}
			}
			if (active > 0)
				curl_multi_poll(m, NULL, 0, 100, NULL);
		}
		curl_multi_cleanup(m);
	}
	double cpu1 = ps_self_cpu_s();
	double wall_s = (double)(t_last - t_start) / 1e9;
	double window_s = requests ? wall_s : duration;
	double tput = window_s > 0 ? (double)ok_window / window_s : 0;

	fprintf(stderr,
	        "curl_direct %s: %d concurrent, %.2f s: ok %" PRIu64 " errors %" PRIu64
	        " (curl %" PRIu64 ", http!=200 %" PRIu64 "), %.0f ok/s, body %" PRIu64 " bytes\n",
	        label, conc, wall_s, ok, errors, curl_fail, http_other, tput, bytes);
	bh_print(h, "  latency", stderr);
	if (json) {
		printf("{\"tool\": \"curl_direct\", \"label\": \"%s\", \"mode\": \"closed\", "
		       "\"url\": \"%s\", \"contexts\": %d, \"window_s\": %.4f, \"wall_s\": %.4f, "
		       "\"ok\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"throughput_rps\": %.1f, "
		       "\"reply_bytes\": %" PRIu64 ", \"client_cpu_s\": %.3f, "
		       "\"status\": {\"curl_error\": %" PRIu64 ", \"http_not_200\": %" PRIu64 "}, "
		       "\"lat\": {",
		       label, url, conc, window_s, wall_s, ok, errors, tput, bytes, cpu1 - cpu0,
		       curl_fail, http_other);
		bh_json(h, stdout);
		printf("}}\n");
	}
	for (int i = 0; i < conc; i++) {
		curl_easy_cleanup(slots[i].easy);
		free(slots[i].body);
	}
	free(slots);
	curl_slist_free_all(hl);
	bh_free(h);
	curl_global_cleanup();
	(void)done;
	return errors == 0 && ok > 0 ? 0 : 3;
}
