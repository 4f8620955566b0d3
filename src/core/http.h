/*
 * http.h - one HTTP request and one HTTP answer, as plain data.
 *
 * The translation layer describes the request it wants (providers/) and reads the answer; the
 * upstream engine (upstream/) sends the one and fills the other. Neither layer depends on the
 * other: both depend on these two types. No functions, no I/O.
 */
#ifndef SG_HTTP_H
#define SG_HTTP_H

#include <stddef.h>

#define SG_HTTP_MAX_HEADERS 8

/* One upstream HTTP request, fully formed. All strings borrowed (arena or config). */
typedef struct sg_http_req {
	const char *method;                       /* "GET", "POST" */
	const char *url;                          /* absolute URL; every part validated/encoded */
	const char *headers[SG_HTTP_MAX_HEADERS]; /* "Name: value" lines, no CR/LF inside */
	size_t nheaders;                          /* entries used in headers[] */
	const char *body;                         /* request body or NULL */
	size_t body_len;                          /* bytes in body */
} sg_http_req;

/* One upstream HTTP answer. Borrowed for the duration of parse. */
typedef struct sg_http_resp {
	int status;          /* HTTP status code */
	const char *body;    /* response body, not NUL-terminated */
	size_t body_len;     /* bytes in body */
	const char *headers; /* raw header block "Name: value\r\n...", or NULL */
	size_t headers_len;  /* bytes in headers */
} sg_http_resp;

#endif /* SG_HTTP_H */
