/*
 * redis_conn.h - what the Redis-backed parts share (the idempotency store, the fleet's lookup
 * cache): the URL, and a connection that comes back after Redis does.
 *
 * hiredis 0.14, synchronous, with a timeout on connect and on every command. A connection is
 * used by one thread only.
 */
#ifndef SG_REDIS_CONN_H
#define SG_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

typedef struct sg_redis_addr {
	char host[256]; /* name or address */
	int port;       /* 6379 unless given */
	int db;         /* SELECTed after connecting (0: none) */
} sg_redis_addr;

/* redis://HOST[:PORT][/DB] into a. 0, or -1 with a message naming setting (the config key)
 * in err[errlen]. */
int sg_redis_parse_url(sg_redis_addr *a, const char *setting, const char *url, char *err,
                       size_t errlen);

/* *c when it is live; else a new connection (the old one freed) into *c, or NULL when Redis
 * cannot be reached within timeout_ms. */
redisContext *sg_redis_conn(redisContext **c, const sg_redis_addr *a, int timeout_ms);

/* A process's id for the claims and locks it takes: host:pid:random. */
void sg_redis_owner_id(char *out, size_t n, const void *salt);

#endif /* SG_REDIS_CONN_H */
