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
/* TLS to one provider (every string borrowed; NULL: libcurl's default). Verification of the
 * peer and of its name is always on. */
typedef struct sg_tls_conf {
	const char *ca_file;     /* PEM CA bundle to verify the provider with */
	const char *client_cert; /* PEM client certificate (chain), or NULL */
	const char *client_key;  /* its PEM private key */
	int min_version;         /* 12: TLS 1.2, 13: TLS 1.3 */
	const char *proxy;       /* egress proxy URL, or NULL: none (the environment is ignored) */
} sg_tls_conf;

typedef struct sg_http_req {
	const char *method;                       /* "GET", "POST" */
	const char *url;                          /* absolute URL; every part validated/encoded */
	const char *headers[SG_HTTP_MAX_HEADERS]; /* "Name: value" lines, no CR/LF inside */
	size_t nheaders;                          /* entries used in headers[] */
	const char *body;                         /* request body or NULL */
	size_t body_len;                          /* bytes in body */
	const sg_tls_conf *tls;                   /* TLS and proxy settings, or NULL: defaults */
} sg_http_req;

/* One upstream HTTP answer. Borrowed for the duration of parse. */
typedef struct sg_http_resp {
	int status;          /* HTTP status code */
	const char *body;    /* response body, not NUL-terminated */
	size_t body_len;     /* bytes in body */
	const char *headers; /* raw header block "Name: value\r\n...", or NULL */
	size_t headers_len;  /* bytes in headers */
	const char *error;   /* a failed transfer: libcurl's words for it, or NULL */
} sg_http_resp;

#endif /* SG_HTTP_H */
