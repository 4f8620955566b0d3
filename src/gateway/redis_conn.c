/*
 * redis_conn.c - see redis_conn.h.
 */
#include "gateway/redis_conn.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
sg_redis_parse_url(sg_redis_addr *a, const char *setting, const char *url, char *err, size_t errlen)
{
	int n = 0;

	memset(a, 0, sizeof(*a));
	a->port = 6379;
	if (url == NULL || strncmp(url, "redis://", 8) != 0 || strlen(url + 8) >= 300 ||
	    sscanf(url + 8, "%255[^:/]%n", a->host, &n) != 1) {
		snprintf(err, errlen, "%s: %s: want redis://HOST:PORT[/DB]", setting,
		         url ? url : "(none)");
		return -1;
	}
	const char *p = url + 8 + n;
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);
		if (port < 1 || port > 65535 || end == p + 1) {
			snprintf(err, errlen, "%s: %s: bad port", setting, url);
			return -1;
		}
		a->port = (int)port;
		p = end;
	}
	if (*p == '/') {
		char *end;
		long db = strtol(p + 1, &end, 10);
		if (db < 0 || db > 1000 || *end != '\0' || end == p + 1) {
			snprintf(err, errlen, "%s: %s: bad database", setting, url);
			return -1;
		}
		a->db = (int)db;
	} else if (*p != '\0') {
		snprintf(err, errlen, "%s: %s: want redis://HOST:PORT[/DB]", setting, url);
		return -1;
	}
	return 0;
}

redisContext *
sg_redis_conn(redisContext **cp, const sg_redis_addr *a, int timeout_ms)
{
	if (*cp != NULL && (*cp)->err == 0)
		return *cp;
	if (*cp != NULL) {
		redisFree(*cp);
		*cp = NULL;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
	if (c == NULL || c->err != 0) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (a->db != 0) {
		redisReply *rep = redisCommand(c, "SELECT %d", a->db);
		bool ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
		freeReplyObject(rep);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	return *cp = c;
}

void
sg_redis_owner_id(char *out, size_t n, const void *salt)
{
	char host[64] = "host";
	struct timespec ts;

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(out, n, "%.40s:%d:%lx", host, (int)getpid(),
	         (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20) ^ (uintptr_t)salt));
}
