/*
 * registry.c - the table of providers: identity and supported operations.
 *
 * Static and read-only, so any thread may look providers up at any time. A provider whose
 * translation is not written yet is listed with NULL operations (SG_EUNSUPPORTED upstream of
 * here), so that names and ids resolve the same way from day one.
 */
#include "providers/provider.h"

#include <stddef.h>

#include "providers/biteship.h"
#include "providers/boscod.h"
#include "providers/bosonline.h"
#include "providers/common.h"
#include "providers/fuuffy.h"

#define P(x) SHIPGATE__V1__PROVIDER__PROVIDER_##x
/* The sandbox's credential for the providers that take a static bearer token. */
#define SANDBOX_BEARER "sandbox-token", "Bearer"
/* Lookup answers: fresh 30 s, then stale 60 s while one refresh runs. */
#define CACHE_DEFAULT 30000, 60000
/* Operations left out are NULL: not written yet, or not offered by the provider. */
static const sg_provider providers[] = {
        {.id = P(BOSCOD),
         .name = SG_BOSCOD_NAME,
         .track = {sg_boscod_track_build, sg_boscod_track_parse},
         .defaults = {SANDBOX_BEARER, NULL, NULL, CACHE_DEFAULT}},
        {.id = P(BOSONLINE),
         .name = SG_BOSONLINE_NAME,
         .track = {sg_bosonline_track_build, sg_bosonline_track_parse},
         .create_order = {sg_bosonline_create_order_build, sg_bosonline_create_order_parse},
         .defaults = {SANDBOX_BEARER, NULL, NULL, CACHE_DEFAULT}},
        /* Biteship takes the raw key, without "Bearer" (docs/providers.md, "Biteship:
         * endpoint and authentication") */
        {.id = P(BITESHIP),
         .name = SG_BITESHIP_NAME,
         .track = {sg_biteship_track_build, sg_biteship_track_parse},
         .get_order = {sg_biteship_get_order_build, sg_biteship_get_order_parse},
         .defaults = {"biteship_test.sandbox", "", NULL, NULL, CACHE_DEFAULT}},
        /* Fuuffy issues bearer tokens by OAuth2 client credentials: the sandbox's client */
        {.id = P(FUUFFY),
         .name = SG_FUUFFY_NAME,
         .track = {sg_fuuffy_track_build, sg_fuuffy_track_parse},
         .auth = {sg_fuuffy_auth_build, sg_fuuffy_auth_parse},
         .defaults = {SANDBOX_BEARER, "shipgate", "sandbox-token", CACHE_DEFAULT}},
};

#define NPROVIDERS (sizeof(providers) / sizeof(providers[0]))

const sg_provider *
sg_providers(size_t *n)
{
	*n = NPROVIDERS;
	return providers;
}

const sg_provider *
sg_provider_get(Shipgate__V1__Provider id)
{
	for (size_t i = 0; i < NPROVIDERS; i++)
		if (providers[i].id == id)
			return &providers[i];
	return NULL;
}

const sg_provider *
sg_provider_by_name(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < NPROVIDERS; i++)
		if (sg_ascii_casecmp(providers[i].name, name) == 0)
			return &providers[i];
	return NULL;
}
