/*
 * provider_cases.h - the data-driven provider case runner that every tests/test_<provider>.c
 * shares.
 *
 * A provider's fixtures live in tests/fixtures/<provider>/: cases/ holds one JSON case per file
 * (format: tests/fixtures/README.md) and bodies/ holds upstream bodies too long or too odd to
 * inline. A case gives a typed request, the upstream HTTP request that the provider's build must
 * produce, a canned upstream answer, and the typed reply or error status that its parse must
 * produce. The runner looks the operation up in the registry (sg_provider_get() and the case's
 * `method`), so a new provider or method needs fixtures, not runner changes.
 *
 * Test code only. Single-threaded: jansson's allocator hooks are process-global, and results
 * are printed to stdout/stderr as they happen. Nothing here calls exit(); every failure is
 * counted in the returned sg_cases_result (or a false return) and printed with the case name.
 */
#ifndef SG_TEST_PROVIDER_CASES_H
#define SG_TEST_PROVIDER_CASES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/status.h"
#include "providers/provider.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* What a run or a sweep did. Returned by value; owns nothing. */
typedef struct sg_cases_result {
	int ncases;        /* case files run (a sweep: 1) */
	int passed;        /* checks that held */
	int failed;        /* checks that failed: 0 means clean */
	size_t nomem_caps; /* sweep: arena caps that ended in SG_ENOMEM */
	size_t fit_cap;    /* sweep: the first arena cap at which the case passed (0: none) */
} sg_cases_result;

/* ------------------------------------------------------------------ running cases */

/*
 * Runs every *.json file of <dir>/cases, in name order, against the registry's provider `id`, whose
 * name must be `provider` (also the expected status `provider`). Each case runs in a fresh arena:
 * request from JSON, build, upstream request checked, parse of the canned answer, reply or
 * status checked, and the reply packed and unpacked again (into the arena) to the same JSON.
 *
 * defaults: the provider's config for every case (copied; its strings are borrowed for the
 * call; `name` is replaced by provider); a case's `config` overrides single fields. NULL gives
 * base_url "http://<provider>.test:4004", token "test-token", the Bearer scheme, no UTC offset
 * and a 5 s timeout.
 *
 * A missing or empty cases/ directory counts as a failure. Prints the case name and every
 * failed check to stderr, and one summary line to stdout.
 * Typical use: CHECK_INT(sg_cases_run("boscod", id, SG_FIXTURES_DIR "/boscod", NULL).failed, 0);
 */
sg_cases_result sg_cases_run(const char *provider, Shipgate__V1__Provider id, const char *dir,
                             const sg_pconf *defaults);

/*
 * Runs one case's build + parse at every arena cap from 16 bytes upward, in steps of 16, with
 * 64-byte blocks (many block boundaries), until the case passes. Below that cap each run must
 * fail with SG_ENOMEM (status err SG_ENOMEM, provider set, no request left behind by build, no
 * reply from parse); a case that expects an error may also end with that error's reason and a
 * degraded detail (a message that did not fit). Anything else, or no fit below 1 MiB, fails.
 *
 * provider: the registry name; method: "Track", "GetOrder" or "CreateOrder", which must be the
 * case's `method` (NULL: take the case's); case_file: path of the case, inside
 * <provider dir>/cases/ (bodies/ is read beside cases/); defaults as for sg_cases_run().
 * The result's nomem_caps and fit_cap tell how far it went; a one-line summary goes to stdout.
 */
sg_cases_result sg_cases_oom_sweep(const char *provider, const char *method, const char *case_file,
                                   const sg_pconf *defaults);

/* ------------------------------------------------------------------ helpers for coded tests */

/* Reads a whole file into a NEW malloc()ed buffer (NUL-terminated; *len excludes the NUL), or
 * NULL when it cannot be read. The caller frees it. */
char *sg_cases_slurp(const char *path, size_t *len);

/* Loads a JSON file (duplicate keys refused, \u0000 allowed). NEW reference, or NULL with the
 * reason printed. */
json_t *sg_cases_load_json(const char *path);

/*
 * m as proto3-style JSON, the format of a case's `expect_reply`: fields at their default
 * omitted, enums by name, wrappers as their plain value (present even when "" or 0), nested
 * messages as objects (present even when empty: {}), absent wrappers and messages omitted,
 * repeated fields as arrays (omitted when empty), 64-bit integers as JSON numbers, doubles as
 * reals ("NaN", "Infinity", "-Infinity" as strings). NEW reference.
 */
json_t *sg_cases_pb_to_json(const ProtobufCMessage *m);

/*
 * A new message of type d from JSON object j (the format of a case's `request`), allocated in
 * arena a. Accepts the output format above and also: enums by number, doubles as integers, and
 * null for "absent" (the field is left at its default). Unknown fields and wrong types are
 * refused. Returns NULL, with the JSON path and reason printed, on a refusal or a full arena.
 */
ProtobufCMessage *sg_cases_pb_from_json(const ProtobufCMessageDescriptor *d, json_t *j,
                                        sg_arena *a);

/*
 * True when m, as sg_cases_pb_to_json(), matches want: the same members, where a null in want
 * means "must be absent", and an integral double may be written as an integer. Otherwise prints
 * "<what> differs at <path>" and both documents, and returns false. want is borrowed.
 */
bool sg_cases_reply_matches(const ProtobufCMessage *m, json_t *want, const char *what);

/*
 * True when m passes protobuf_c_message_check(), packs, and unpacks (allocated in arena a) to
 * the same JSON. Otherwise prints why and returns false.
 */
bool sg_cases_round_trip(const ProtobufCMessage *m, sg_arena *a);

/*
 * True when st matches an expected status object (`reason`, `grpc_code`, `message` or
 * `message_prefix`, `provider`, `http_status`, `provider_code`, `provider_message`,
 * `retry_after_ms`, `violations`; see the fixtures README). An omitted `provider` must equal
 * provider; other omitted detail must be 0 / absent. Prints each difference otherwise.
 */
bool sg_cases_status_matches(const sg_status *st, json_t *want, const char *provider);

#endif /* SG_TEST_PROVIDER_CASES_H */
