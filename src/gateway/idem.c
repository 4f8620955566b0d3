/*
 * idem.c - CreateOrder's idempotency: coalescing in the process, claim before call in the
 * store, and what is kept for the key.
 */
#include "gateway/gateway_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "providers/common.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* ------------------------------------------------------------------ idempotency */

/*
 * Whether an owner's outcome is kept for its idempotency key. Kept: success, and any failure
 * after which the provider may have created the order. Released: the request was refused
 * before it could take effect (never sent, or a 4xx), so a retry may run it again.
 */
static bool
idem_keep(sg_err err)
{
	switch (err) {
	case SG_OK: return true;
	case SG_EUP_CONNECT:
	case SG_EUP_TLS:
	case SG_EDEADLINE:
	case SG_ENOCRED:
	case SG_EINVAL:
	case SG_EUP_BADREQ:
	case SG_EUP_UNAUTH:
	case SG_EUP_FORBIDDEN:
	case SG_EUP_NOTFOUND:
	case SG_EUP_CONFLICT:
	case SG_EUP_RATELIMIT: return false;
	default: return true;
	}
}

/* True when key is acceptable: 1..255 bytes of printable ASCII. */
static bool
idem_key_ok(const char *key)
{
	size_t n = 0;
	for (; key[n] != '\0'; n++)
		if (key[n] < 0x21 || key[n] > 0x7e || n >= 255)
			return false;
	return n > 0;
}

/* The key's calls in this process get c's outcome o (each waiter gets it replayed). */
void
gw_idem_local_finish(sg_call *c, const sg_outcome *o)
{
	if (c->idem_local) {
		c->idem_local = false;
		sg_flight_finish(c->gw->idem, c->idem_key, false, 0, 0, o);
	}
}

/* The store kept (or released) an owner's outcome. Store's thread, or inline. */
static void
idem_stored(void *arg, sg_err err)
{
	sg_call *c = arg;

	if (err != SG_OK)
		/* the caller still gets the real outcome; a retry finds the key claimed */
		fprintf(stderr, "shipgated: idempotency store %s: %s: %s\n",
		        c->gw->store->ops->name, c->idem_key, sg_strerror(err));
	gw_call_deliver(c);
}

/* An owner's failure after which the provider may have created the order is what every
 * caller of the key will get: UNKNOWN / OUTCOME_UNKNOWN, saying what it means. */
void
gw_idem_outcome(sg_call *c)
{
	if (c->idem_owner && c->st.err != SG_OK && idem_keep(c->st.err)) {
		c->st.message = sg_arena_printf(
		        &c->arena,
		        "outcome unknown (%s): the provider may have created the order; this "
		        "idempotency key will keep returning this answer, so check with the "
		        "provider before retrying under a new key",
		        c->st.message ? c->st.message : sg_strerror(c->st.err));
		c->st.err = SG_EOUTCOME;
	}
}

bool
gw_idem_store(sg_call *c)
{
	sg_gateway *gw = c->gw;

	if (!c->idem_owner)
		return false;
	c->idem_owner = false;
	if (idem_keep(c->st.err))
		sg_store_complete(gw->store, c->idem_key, &c->out, gw->cfg->idem_ttl_ms,
		                  idem_stored, c);
	else
		sg_store_release(gw->store, c->idem_key, idem_stored, c);
	return true;
}

/* The store's answer to c's claim. Store's thread, or inline. */
static void
idem_claimed(void *arg, sg_claim res, const sg_outcome *o)
{
	sg_call *c = arg;
	uint8_t extra[SG_REPLY_EXTRA_MAX];

	switch (res) {
	case SG_CLAIM_OWNER:
		c->idem_owner = true;
		gw_call_submit(c);
		return;
	case SG_CLAIM_DONE:
		/* the stored outcome, replayed to this call and to those that waited for it */
		gw_idem_local_finish(c, o);
		gw_call_done(c, SG_END_REPLAY, o, extra, sg_reply_replayed_field(c->method, extra));
		gw_call_send(c);
		return;
	case SG_CLAIM_CONFLICT:
		gw_call_fail(c, SG_EIDEMCONFLICT,
		             "idempotency_key was already used with a different request");
		return;
	case SG_CLAIM_BUSY:
		gw_call_fail(c, SG_EIDEMBUSY,
		             "idempotency_key is in progress at another gateway (or at one that "
		             "stopped while its lease runs); retry later with the same key");
		return;
	case SG_CLAIM_UNKNOWN:
		gw_call_fail(
		        c, SG_EOUTCOME,
		        "outcome unknown: an earlier attempt with this idempotency_key may have "
		        "reached the provider and left no answer; check with the provider");
		return;
	case SG_CLAIM_FULL:
		gw_call_fail(c, SG_EBUSY, "idempotency table full; retry later");
		return;
	case SG_CLAIM_QUOTA:
		/* (this call's flight ends with the failure: its key was never claimed) */
		sg_status_set(&c->st, &c->arena, SG_EKEY_QUOTA,
		              "caller %s holds %zu live idempotency keys, its most (caller.<name>."
		              "max_keys); keys free up as they expire after idempotency.ttl_ms",
		              c->caller != NULL ? c->caller->name : "(not known)",
		              sg_config_caller_max_keys(c->gw->cfg, c->caller));
		gw_call_finish(c);
		return;
	case SG_CLAIM_ERROR:
	default:
		/* fail closed: nothing is sent without a claim */
		sg_status_set(
		        &c->st, &c->arena, SG_ESTORE,
		        "idempotency store %s unavailable; CreateOrder is refused until it is "
		        "back (lookups are not affected)",
		        c->gw->store->ops->name);
		gw_call_finish(c);
		return;
	}
}

/*
 * CreateOrder's idempotency, claim before call: the first call in this process with its key
 * claims it in the store (idem_claimed goes on); the others wait for that one and get its
 * outcome. Answers the call (bad key, conflict) or parks it otherwise.
 */
void
gw_idem_begin(sg_call *c)
{
	sg_gateway *gw = c->gw;
	const char *key = c->env->idempotency_key;
	sg_outcome o;
	int64_t age;
	bool refresh;

	if (!idem_key_ok(key)) {
		sg_status_violation(&c->st, "idempotency_key",
		                    "1 to 255 printable ASCII characters");
		gw_call_fail(
		        c, SG_EIDEMKEY,
		        key[0] ? "idempotency_key: 1 to 255 printable ASCII characters"
		               : "CreateOrder requires an idempotency_key in the request envelope");
		return;
	}
	/* a tenant's keys are its own: the same key from another tenant is another key (a
	 * space never appears in a caller's key, so the two never meet) */
	if (c->tenant > 0)
		key = sg_arena_printf(&c->arena, "%s %s", gw->cfg->tenants[c->tenant - 1].name,
		                      key);
	if (key == NULL) {
		gw_call_fail(c, SG_ENOMEM, NULL);
		return;
	}
	c->idem_key = key;
	sg_flight_fp fp =
	        sg_flight_fingerprint(c->env->method, c->env->payload.data, c->env->payload.len);
	/* quotas: the caller's keys, running here and held in the store */
	size_t tag = c->caller != NULL ? (size_t)(c->caller - gw->cfg->callers) + 1 : 0;
	size_t in_flight = sg_config_caller_max_in_flight(gw->cfg, c->caller);
	sg_store_quota quota = {c->caller != NULL ? c->caller->name : "", tag,
	                        sg_config_caller_max_keys(gw->cfg, c->caller)};
	gw_park_reset(c, gw->idem, 0);
	switch (sg_flight_begin_tag(gw->idem, key, fp, &c->waiter, &c->arena, &o, &age, &refresh,
	                            tag, in_flight)) {
	case SG_FLIGHT_OWNER:
		c->idem_local = true;
		/* the lease: as long as this call may run */
		sg_store_claim(gw->store, key, fp, c->prov != NULL ? c->prov->name : "", &quota,
		               c->deadline_ms - sg_now_ms(), idem_claimed, c);
		return;
	case SG_FLIGHT_QUOTA:
		sg_status_set(&c->st, &c->arena, SG_EKEYS_IN_FLIGHT,
		              "caller %s has %zu CreateOrder calls running, its most "
		              "(caller.<name>.max_keys_in_flight); retry when one has answered",
		              c->caller != NULL ? c->caller->name : "(not known)", in_flight);
		gw_call_finish(c);
		return;
	case SG_FLIGHT_WAITING: gw_park(c, gw_call_send); return;
	case SG_FLIGHT_CONFLICT:
		gw_call_fail(c, SG_EIDEMCONFLICT,
		             "idempotency_key was already used with a different request");
		return;
	case SG_FLIGHT_FULL:
		gw_call_fail(c, SG_EBUSY, "too many idempotency keys in flight; retry later");
		return;
	default: /* the coalescing table keeps no outcomes: no hit */
		gw_call_fail(c, SG_EINTERNAL, "idempotency: unexpected flight state");
		return;
	}
}
