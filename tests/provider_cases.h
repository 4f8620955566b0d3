/*
 * provider_cases.h - the data-driven provider case runner that every tests/test_<provider>.c
 * shares, and the coded checks they all make the same way (hostile ids, misuse of the
 * operations, jansson allocation failures, long histories).
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
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/status.h"
#include "providers/common.h"
#include "providers/provider.h"
#include "shipgate/v1/shipgate.pb-c.h"

/* What a run, a sweep or a coded check did. Returned by value; owns nothing. */
typedef struct sg_cases_result {
	int ncases;        /* case files run (a sweep: 1); hostile ids: the ids that went through
	                      build; misuse: the operations tried */
	int passed;        /* checks that held */
	int failed;        /* checks that failed: 0 means clean */
	size_t nomem_caps; /* sweep: arena caps that ended in SG_ENOMEM; jansson sweep: the
	                      allocation budgets at which the call failed */
	size_t fit_cap;    /* sweep: the first arena cap at which the case passed (0: none) */
} sg_cases_result;

/* ------------------------------------------------------------------ naming coded checks */

/*
 * For the coded checks of a test_<provider>.c, counted by testutil.h's CHECK (include it too):
 * CASE_BEGIN(name) opens a case in the current block, CASE_END() closes it and prints
 * "  ^ in case <name>" under the case's failed checks. name is borrowed until CASE_END().
 */
#define CASE_BEGIN(name)                                                                           \
	int case_failed0_ = tu_failed;                                                             \
	const char *case_name_ = (name)
#define CASE_END()                                                                                 \
	do {                                                                                       \
		if (tu_failed != case_failed0_)                                                    \
			fprintf(stderr, "  ^ in case %s\n", case_name_);                           \
	} while (0)

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

/* True when build left nothing to send in hr: no method, URL, header or body. */
bool sg_cases_req_empty(const sg_http_req *hr);

/*
 * True when st matches an expected status object (`reason`, `grpc_code`, `message` or
 * `message_prefix`, `provider`, `http_status`, `provider_code`, `provider_message`,
 * `retry_after_ms`, `violations`; see the fixtures README). An omitted `provider` must equal
 * provider; other omitted detail must be 0 / absent. Prints each difference otherwise.
 */
bool sg_cases_status_matches(const sg_status *st, json_t *want, const char *provider);

/* ------------------------------------------------------------------ hostile ids */

/* Where the ids of a hostile_ids.json file go: one string field of one operation's request. */
typedef struct sg_cases_idtarget {
	const sg_op *op;              /* the operation whose build must refuse every id */
	const ProtobufCMessage *base; /* a request of op's type, copied for each id (borrowed) */
	const char *field;            /* base's string field that carries the id; the violation's */
	sg_idpol pol;                 /* the policy the file's descriptions are written for */
	const char *empty_desc;       /* what build says of "" when its own check comes before
	                                 the id policy (NULL: the file's description) */
} sg_cases_idtarget;

/*
 * Every entry {"id", "description"} of ids_file against target t:
 *   - the validator itself, sg_path_segment(t->field, id with its JSON length, t->pol), so that
 *     an id with a NUL counts too: SG_EINVAL, no segment, the one violation (t->field, the
 *     description) and a message that starts with "<field>: ";
 *   - then, when a C string can carry the id, build (config pc) of a copy of t->base whose
 *     t->field is the id: SG_EINVAL (INVALID_FIELD, gRPC 3), nothing left to send, the one
 *     violation, and `provider` in the status.
 * Failures print under "hostile_ids[i] as <request type>.<field>"; a summary line goes to
 * stdout.
 */
sg_cases_result sg_cases_hostile_ids(const char *provider, const char *ids_file,
                                     const sg_cases_idtarget *t, const sg_pconf *pc);

/* ------------------------------------------------------------------ misuse */

/*
 * Every request operation (Track, GetOrder, CreateOrder) that the registry's provider `id`
 * (named `provider`) offers, called with each other method's request type and with NULL: a bug,
 * not input, so build and parse fail with SG_EINTERNAL naming the provider, build leaves
 * nothing to send, parse leaves no reply and no upstream HTTP status (the answer given is
 * 200 "{}"). pc: the config for the calls. ncases counts the operations tried.
 */
sg_cases_result sg_cases_wrong_requests(const char *provider, Shipgate__V1__Provider id,
                                        const sg_pconf *pc);

/* ------------------------------------------------------------------ jansson allocation failures */

/* What one call under a jansson sweep gave. */
typedef struct sg_cases_jcall {
	sg_err rv;     /* the call's result */
	bool left;     /* it failed and still left a request or a reply behind */
	bool degraded; /* it failed with less detail than it gives with memory enough */
} sg_cases_jcall;

/* One call of the code under test, with its own arena a (fresh for each call). */
typedef sg_cases_jcall (*sg_cases_jfn)(void *arg, sg_arena *a);

/*
 * Calls fn again and again with jansson's allocations failing after 0, 1, 2, ... successes
 * (the allocator hooks are process-global: they are set for the call only), until a call ends
 * with want, not degraded. Every call must give back all that jansson allocated, and every
 * earlier one must fail cleanly (nothing left behind) with SG_ENOMEM, with want (degraded), or,
 * when malformed_ok, with SG_EUP_MALFORMED: jansson reports some failed allocations as a syntax
 * error, which a parser cannot tell apart. nomem_caps counts the failed calls; a summary line
 * "<name>: N failing allocations, M reported as malformed" goes to stdout.
 */
sg_cases_result sg_cases_jansson_sweep(const char *name, sg_cases_jfn fn, void *arg, sg_err want,
                                       bool malformed_ok);

/* One canned answer to one request, for sg_cases_jparse(). Everything borrowed. */
typedef struct sg_cases_parse {
	const sg_op *op;             /* the operation whose parse is called */
	const sg_pconf *pc;          /* its config */
	const ProtobufCMessage *req; /* the request it answers */
	sg_http_resp resp;           /* the answer */
} sg_cases_parse;

/* An sg_cases_jfn (arg: an sg_cases_parse) that parses the answer once. A failed parse is
 * degraded while it lacks the provider's code, so that a sweep that wants an error ends only
 * when the error's whole detail fits (want an error whose answer carries a code). */
sg_cases_jcall sg_cases_jparse(void *arg, sg_arena *a);

/* ------------------------------------------------------------------ long histories */

/*
 * For a long-history test: the event (0 to n - 1, in time order) that entry i of a list of
 * n + ndup entries stands for. Entries 0 to n - 1 are a permutation (7919 is prime to n = 500),
 * so the list is unsorted; entries from n on repeat the first ones exactly, as duplicates.
 */
int sg_cases_shuffled(int i, int n);

/* True when t's events are at t0, t0 + step, t0 + 2 step, ... (sorted, duplicates gone);
 * otherwise prints the first that is not. */
bool sg_cases_events_in_order(const Shipgate__V1__Tracking *t, int64_t t0, int64_t step);

#endif /* SG_TEST_PROVIDER_CASES_H */
