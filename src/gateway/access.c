/*
 * access.c - the access step: who is calling, and whether the access table lets them.
 *
 * A caller is known by its caller token (metadata "authorization: Bearer <token>", looked up by
 * its SHA-256 among caller.<name>.token_sha256), by the TLS listener of its own that its
 * connection came through (caller.<name>.tls_listen: only certificates that the caller's own CA
 * signed are let in there), or on ipc by its peer uid (caller.<name>.uid). A caller with a
 * tenant calls with that tenant's credentials (c->tenant).
 * A token that no caller has is UNAUTHENTICATED whatever else is true. A caller that is not
 * known is anonymous: allowed everything from loopback, ipc and inproc by default
 * (access.anonymous = local), from anywhere with "all", never with "none". A known caller may
 * call its methods with its providers; anything else is PERMISSION_DENIED. Health is always
 * allowed: it says nothing about orders, and clients probe it before keyed calls.
 */
#include "gateway/gateway_int.h"

#include <string.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

static void
sha256(const void *p, size_t n, uint8_t out[32])
{
#if MBEDTLS_VERSION_MAJOR >= 3
	mbedtls_sha256(p, n, out, 0);
#else
	mbedtls_sha256_ret(p, n, out, 0);
#endif
}

/* Equal in time that does not depend on where they differ. */
static bool
same32(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;
	for (size_t i = 0; i < 32; i++)
		d |= (uint8_t)(a[i] ^ b[i]);
	return d == 0;
}

bool
sg_gateway_wants_peer(const sg_gateway *gw)
{
	const char *anon = gw->cfg->access_anonymous;
	return gw->cfg->ncallers > 0 || anon == NULL || strcmp(anon, "all") != 0;
}

static unsigned
method_bit(const sg_method *m)
{
	switch (m->kind) {
	case SG_M_HEALTH: return SG_CALLER_HEALTH;
	case SG_M_TRACK: return SG_CALLER_TRACK;
	case SG_M_GET_ORDER: return SG_CALLER_GET_ORDER;
	case SG_M_CREATE_ORDER: return SG_CALLER_CREATE_ORDER;
	default: return 0;
	}
}

/* The caller token of the call's metadata, or NULL (len into *n). */
static const char *
call_token(const sg_call *c, size_t *n)
{
	for (size_t i = 0; i < c->env->n_metadata; i++) {
		const Shipgate__V1__RpcRequest__MetadataEntry *e = c->env->metadata[i];
		if (e->key != NULL && strcmp(e->key, "authorization") == 0 && e->value != NULL &&
		    strncmp(e->value, "Bearer ", 7) == 0) {
			*n = strlen(e->value + 7);
			return e->value + 7;
		}
	}
	return NULL;
}

bool
gw_access_method(sg_call *c)
{
	const sg_config *cfg = c->gw->cfg;
	const char *anon = cfg->access_anonymous ? cfg->access_anonymous : "local";
	size_t n = 0;
	const char *tok = call_token(c, &n);

	c->caller = NULL;
	c->tenant = 0;
	const sg_caller *by_tls = c->peer_caller > 0 && (size_t)c->peer_caller <= cfg->ncallers
	                                  ? &cfg->callers[c->peer_caller - 1]
	                                  : NULL;
	if (tok != NULL && cfg->ncallers > 0) {
		uint8_t h[32];
		sha256(tok, n, h);
		for (size_t i = 0; i < cfg->ncallers; i++)
			if (cfg->callers[i].has_token && same32(h, cfg->callers[i].token_sha256))
				c->caller = &cfg->callers[i];
		if (c->caller == NULL) {
			gw_call_fail(c, SG_ECALLER_UNAUTH,
			             "the caller token is not one of this "
			             "gateway's callers");
			return false;
		}
		if (by_tls != NULL && c->caller != by_tls) {
			/* one connection, two identities: believe neither */
			gw_call_fail(c, SG_ECALLER_UNAUTH,
			             "the caller token names another caller than the TLS "
			             "certificate of this connection");
			return false;
		}
	} else if (by_tls != NULL) {
		c->caller = by_tls; /* a certificate its own CA verified, on its own listener */
	} else if (tok != NULL) {
		gw_call_fail(c, SG_ECALLER_UNAUTH,
		             "this gateway has no callers to check a caller "
		             "token against (caller.<name>.token_sha256)");
		return false;
	} else if (c->peer_uid >= 0) {
		for (size_t i = 0; i < cfg->ncallers; i++)
			if (cfg->callers[i].uid == c->peer_uid)
				c->caller = &cfg->callers[i];
	}
	if (c->caller != NULL)
		c->tenant = c->caller->tenant;
	if (c->method->kind == SG_M_HEALTH)
		return true;
	if (c->caller == NULL) {
		bool ok = strcmp(anon, "all") == 0 ||
		          (strcmp(anon, "local") == 0 && c->peer_local == 1);
		if (!ok) {
			gw_call_fail(c, SG_ECALLER_UNAUTH,
			             strcmp(anon, "none") == 0
			                     ? "this gateway needs a caller token (metadata "
			                       "authorization: Bearer TOKEN)"
			                     : "a caller from another host needs a caller token "
			                       "(metadata authorization: Bearer TOKEN)");
			return false;
		}
		return true;
	}
	if ((c->caller->methods & method_bit(c->method)) == 0) {
		sg_status_set(&c->st, &c->arena, SG_ECALLER_DENIED, "caller %s may not call %s",
		              c->caller->name, c->method->desc->name);
		gw_call_finish(c);
		return false;
	}
	return true;
}

bool
gw_access_provider(sg_call *c, int provider_id)
{
	if (c->caller == NULL || provider_id < 1 || provider_id > 32 ||
	    (c->caller->providers & (1u << (provider_id - 1))) != 0)
		return true;
	const sg_pconf *pc = sg_config_provider(c->gw->cfg, provider_id);
	sg_status_set(&c->st, &c->arena, SG_ECALLER_DENIED, "caller %s may not use provider %s",
	              c->caller->name, pc != NULL && pc->name != NULL ? pc->name : "?");
	gw_call_finish(c);
	return false;
}
