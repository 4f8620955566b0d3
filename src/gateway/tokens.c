/*
 * tokens.c - the token step: a call goes on with its provider's cached token, or queues
 * behind one fetch (gateway/auth.c keeps the tokens and the queue).
 */
#include "gateway/gateway_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

static sg_err
auth_build(const sg_provider *p, const sg_pconf *pc, sg_arena *a, sg_http_req *out, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = p->auth.build(pc, a, out, st);
	sg_json_arena_set(NULL);
	out->tls = &pc->tls;
	return err;
}

static sg_err
auth_parse(const sg_provider *p, const sg_pconf *pc, const sg_http_resp *resp, sg_arena *a,
           const char **token, int64_t *lifetime_s, sg_status *st)
{
	sg_json_arena_set(a);
	sg_err err = p->auth.parse(pc, resp, a, token, lifetime_s, st);
	sg_json_arena_set(NULL);
	return err;
}

/* ------------------------------------------------------------------ provider tokens */

/* Stores the outcome of a token fetch in a call that waited for it (err SG_OK: tok is the
 * token; else fst says why it failed), copied into the call's arena: tok and fst belong to the
 * fetcher. */
static void
token_adopt(sg_call *c, sg_err err, const char *tok, const sg_status *fst)
{
	if (err == SG_OK) {
		c->pc.token = sg_arena_strdup(&c->arena, tok);
		if (c->pc.token == NULL)
			sg_status_set(&c->st, &c->arena, SG_ENOMEM, NULL);
		return;
	}
	if (fst != &c->st) {
		/* the fetcher's status, with its strings copied into this call's arena */
		c->st = *fst;
		c->st.message = sg_arena_strdup(&c->arena, fst->message);
		c->st.provider_code = sg_arena_strdup(&c->arena, fst->provider_code);
		c->st.provider_message = sg_arena_strdup(&c->arena, fst->provider_message);
		c->st.nviolations = 0;
	}
	c->st.err = err;
}

/* Goes on with a call whose token wait is over (token_adopt ran). */
static void
token_continue(sg_call *c)
{
	if (c->st.err == SG_OK)
		gw_call_build_submit(c);
	else
		gw_call_finish(c);
}

/* A queued call's token fetch ended (sg_auth_fetched, on the fetcher's thread). */
void
gw_token_done(sg_token_waiter *w, sg_err err, const char *tok, const sg_status *st)
{
	sg_call *c = (sg_call *)(void *)((char *)w - offsetof(sg_call, twait));

	token_adopt(c, err, tok, st);
	if (gw_park_settle(c))
		token_continue(c);
}

/* The completion of a token fetch; arg is the fetching call. */
static void
token_fetched(void *arg, sg_err err, const sg_http_resp *resp)
{
	sg_call *f = arg;
	const char *tok = NULL;
	int64_t lifetime_s = 0;

	if (err == SG_OK)
		err = auth_parse(f->prov, &f->pc, resp, &f->arena, &tok, &lifetime_s, &f->st);
	else if (f->st.err == SG_OK) /* an engine error; a build error already said why */
		sg_status_set(&f->st, &f->arena, err, "%s token: %s%s%s", f->prov->name,
		              sg_strerror(err), resp != NULL && resp->error ? ": " : "",
		              resp != NULL && resp->error ? resp->error : "");
	if (err == SG_OK && (tok == NULL || tok[0] == '\0'))
		err = sg_status_set(&f->st, &f->arena, SG_EUP_MALFORMED, "%s token: empty",
		                    f->prov->name);
	/* the others go on first: tok and the status strings live in the fetcher's arena */
	sg_auth_fetched(f->gw->auth, f->pslot, &f->twait, err, tok, lifetime_s, &f->st);
	token_adopt(f, err, tok, &f->st);
	token_continue(f);
}

/* Runs the call with the provider's cached token, fetching one first when needed. */
void
gw_call_with_token(sg_call *c)
{
	sg_gateway *gw = c->gw;

	gw_park_reset(c, NULL, c->pslot);
	switch (sg_auth_take(gw->auth, c->pslot, &c->arena, &c->pc.token, &c->twait)) {
	case SG_TOKEN_HAVE:
		if (c->pc.token == NULL) {
			gw_call_fail(c, SG_ENOMEM, NULL);
			return;
		}
		gw_call_build_submit(c);
		return;
	case SG_TOKEN_WAIT:
		/* another call is fetching: gw_token_done continues this one, unless its deadline
		 * comes first */
		gw_park(c, token_continue);
		return;
	case SG_TOKEN_FETCH: break;
	}
	sg_err err = auth_build(c->prov, &c->pc, &c->arena, &c->hreq, &c->st);
	if (err == SG_OK) {
		err = sg_upstream_call(gw->up, &c->up, c->prov->id, &c->hreq, c->deadline_ms,
		                       token_fetched, c);
		if (err == SG_OK)
			return;
		sg_status_set(&c->st, &c->arena, err, "%s token: %s", c->prov->name,
		              sg_strerror(err));
	}
	/* could not even ask: fail everyone queued, as if the fetch had failed */
	c->st.err = err;
	token_fetched(c, err, NULL);
}
