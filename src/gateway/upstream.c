/*
 * upstream.c - the one way out to a provider: in-flight accounting around the backend.
 */
#include "gateway/upstream.h"

#include <stdlib.h>

#include "core/waitgroup.h"

struct sg_upstream {
	sg_upstream_backend b; /* sends the HTTP */
	sg_waitgroup inflight; /* accepted calls whose callback has not returned */
};

sg_upstream *
sg_upstream_new(const sg_upstream_backend *b)
{
	sg_upstream *up = calloc(1, sizeof(*up));

	if (up == NULL)
		return NULL;
	up->b = *b;
	sg_waitgroup_init(&up->inflight);
	return up;
}

void
sg_upstream_free(sg_upstream *up)
{
	if (up == NULL)
		return;
	sg_waitgroup_fini(&up->inflight);
	free(up);
}

/* The backend's completion: the caller's callback, then the call leaves the count. A callback
 * that goes upstream again (a 401 retry, the calls a token fetch released) has counted its new
 * call before this one leaves, so the count never touches 0 in between. */
static void
up_done(void *arg, sg_err err, const sg_http_resp *resp)
{
	sg_upcall *uc = arg;
	sg_upstream *up = uc->up;

	uc->cb(uc->arg, err, resp);
	sg_waitgroup_add(&up->inflight, -1);
}

sg_err
sg_upstream_call(sg_upstream *up, sg_upcall *uc, int provider, const sg_http_req *req,
                 int64_t deadline_ms, sg_upstream_cb cb, void *arg)
{
	uc->up = up;
	uc->cb = cb;
	uc->arg = arg;
	uc->provider = provider;
	sg_waitgroup_add(&up->inflight, 1);
	sg_err err = up->b.submit(up->b.impl, req, deadline_ms, up_done, uc);
	if (err != SG_OK)
		sg_waitgroup_add(&up->inflight, -1);
	return err;
}

bool
sg_upstream_drain(sg_upstream *up, int64_t until_ms)
{
	return sg_waitgroup_wait(&up->inflight, until_ms);
}
