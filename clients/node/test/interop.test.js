// The shared interop case list (tests/interop/cases.json), run with this client against a live
// shipgated and shipgate-sandbox that the test starts on loopback and stops. See
// tests/interop/README.md for how a case reads.
//
// Binaries: $SHIPGATED and $SHIPGATE_SANDBOX (CTest sets both), else ../../build/bin/.
// Cases: $SHIPGATE_INTEROP_CASES, else ../../tests/interop/cases.json.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { fromBinary, fromJson, toBinary, toJson } = require("@bufbuild/protobuf");
const sg = require("../dist/index.js");
const { repo, findBinary, startSandbox, startGateway, httpRequest } = require("./procs.js");

const casesFile = process.env.SHIPGATE_INTEROP_CASES || path.join(repo, "tests", "interop", "cases.json");
const cases = JSON.parse(fs.readFileSync(casesFile, "utf8")).cases;

const METHODS = {
  Health: { input: sg.HealthRequestSchema, output: sg.HealthResponseSchema, call: (c, r, o) => c.health(r, o) },
  Track: { input: sg.TrackRequestSchema, output: sg.TrackResponseSchema, call: (c, r, o) => c.track(r, o) },
  GetOrder: { input: sg.GetOrderRequestSchema, output: sg.GetOrderResponseSchema, call: (c, r, o) => c.getOrder(r, o) },
  CreateOrder: { input: sg.CreateOrderRequestSchema, output: sg.CreateOrderResponseSchema, call: (c, r, o) => c.createOrder(r, o) },
};

/** The value at a dotted path of proto field names; "x.#" is the length of array x; undefined when absent. */
function lookup(j, p) {
  for (const tok of p.split(".")) {
    if (tok === "#") return Array.isArray(j) ? j.length : undefined;
    if (j === null || typeof j !== "object") return undefined;
    j = Array.isArray(j) ? j[Number(tok)] : j[tok];
    if (j === undefined) return undefined;
  }
  return j;
}

/** null means absent; numbers compare by value (int64 arrive as strings in proto3 JSON). */
function same(got, want) {
  if (want === null) return got === undefined || got === null;
  if (got === undefined) return false;
  if (typeof want === "number") {
    const g = typeof got === "string" ? Number(got) : got;
    return typeof g === "number" && Math.abs(g - want) < 1e-9 * (Math.abs(want) + 1);
  }
  try {
    assert.deepStrictEqual(got, want);
    return true;
  } catch {
    return false;
  }
}

describe("interop cases (tests/interop/cases.json)", () => {
  let sandbox;
  let gateway;
  let client;

  before(async () => {
    const gw = findBinary("SHIPGATED", "shipgated");
    const sb = findBinary("SHIPGATE_SANDBOX", "shipgate-sandbox");
    if (!gw || !sb) throw new Error("set SHIPGATED and SHIPGATE_SANDBOX (or build ../../build/bin/ with `ninja -C build`)");
    sandbox = await startSandbox(sb);
    gateway = await startGateway(gw, sandbox.base);
    // the client's defaults (3 attempts, resend never), as the case list assumes
    client = new sg.Client({ addresses: [gateway.urls[0]] });
  });

  after(async () => {
    if (client) await client.close();
    const codes = [];
    if (gateway) codes.push(["shipgated", await gateway.stop()]);
    if (sandbox) codes.push(["shipgate-sandbox", await sandbox.stop()]);
    for (const [name, code] of codes) assert.equal(code, 0, `${name} exited with ${code}`);
  });

  async function sandboxCount(prefix) {
    const r = await httpRequest("GET", `${sandbox.base}/__sandbox/requests`);
    assert.equal(r.status, 200);
    return JSON.parse(r.body).filter((e) => typeof e.path === "string" && e.path.startsWith(prefix)).length;
  }

  for (const cs of cases) {
    it(cs.name, async () => {
      const m = METHODS[cs.method];
      assert.ok(m, `unknown method ${cs.method}`);
      if (cs.sandbox_reset) assert.equal((await httpRequest("POST", `${sandbox.base}/__sandbox/reset`)).status, 200);
      const req = fromJson(m.input, cs.request);
      const opts = { deadlineMs: cs.deadline_ms ?? 5000 };
      if (cs.idempotency_key) opts.idempotencyKey = cs.idempotency_key;
      if (cs.max_attempts) opts.maxAttempts = cs.max_attempts;
      // client options of the case: a client of its own
      let c = client;
      if (cs.attempt_timeout_ms) {
        c = new sg.Client({ addresses: [gateway.urls[0]], attemptTimeoutMs: cs.attempt_timeout_ms });
        const until = Date.now() + 3000;
        while (c.connected < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      }
      if (cs.gateway_paused) {
        // it takes requests and answers none; the signal is asynchronous, so wait for the stop
        gateway.proc.kill("SIGSTOP");
        await waitStopped(gateway.proc.pid);
      }

      let reply;
      let err;
      try {
        if (cs.raw_method) {
          // a method this client does not know: the generic call, bytes in and out
          reply = fromBinary(m.output, await c.call(cs.raw_method, toBinary(m.input, req), opts));
        } else if (cs.method === "CreateOrder" && !cs.idempotency_key) {
          // the typed createOrder refuses to send without a key...
          const local = await c.createOrder(req, opts).then(
            () => assert.fail("createOrder without a key was sent"),
            (e) => e,
          );
          assert.equal(local.reason, "CLIENT_INVALID_ARGUMENT");
          assert.equal(local.attempts, 0);
          // ...so the gateway's own check is reached through the generic call
          reply = fromBinary(m.output, await c.call(sg.Method.CreateOrder, toBinary(m.input, req), opts));
        } else {
          reply = await m.call(c, req, opts);
        }
      } catch (e) {
        if (!(e instanceof sg.ShipgateError)) throw e;
        err = e;
      } finally {
        if (cs.gateway_paused) gateway.proc.kill("SIGCONT");
        if (c !== client) await c.close();
      }

      const ex = cs.expect;
      const got = err ? err.codeName : "OK";
      assert.equal(got, ex.code, err ? `${err.codeName} ${err.reason}: ${err.message}` : "the call succeeded");
      if (ex.reason !== undefined) assert.equal(err?.reason, ex.reason);
      if (ex.retryable !== undefined) assert.equal(err?.retryable ?? false, ex.retryable);
      if (ex.upstream_http_status !== undefined) assert.equal(err?.upstreamHttpStatus ?? 0, ex.upstream_http_status);
      if (ex.retry_after_ms !== undefined) assert.equal(err?.retryAfterMs ?? 0, ex.retry_after_ms);
      if (ex.provider !== undefined) assert.equal(err?.provider, ex.provider);
      if (ex.attempts !== undefined) assert.equal(err?.attempts, ex.attempts);
      if (ex.local !== undefined) assert.equal(err?.local, ex.local);
      for (const f of ex.violations ?? []) {
        assert.ok((err?.violations ?? []).some((v) => v.field === f), `no violation for ${f}: ${JSON.stringify(err?.violations)}`);
      }
      if (ex.fields) {
        const json = reply ? toJson(m.output, reply, { useProtoFieldName: true, alwaysEmitImplicit: true }) : undefined;
        const bad = [];
        for (const [p, want] of Object.entries(ex.fields)) {
          const g = lookup(json, p);
          if (!same(g, want)) bad.push(`${p} is ${g === undefined ? "absent" : JSON.stringify(g)}, want ${JSON.stringify(want)}`);
        }
        assert.deepEqual(bad, []);
      }
      if (ex.sandbox_requests) assert.equal(await sandboxCount(ex.sandbox_requests.path), ex.sandbox_requests.count);
    });
  }
});

// Waits (at most 5 s) until pid is stopped: its /proc state reads "T". kill(2) returns before
// the stop takes effect, and a gateway that still runs answers the call.
async function waitStopped(pid) {
  const fs = require("node:fs");
  for (let i = 0; i < 500; i++) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const j = s.lastIndexOf(")");
      if (j >= 0 && (s[j + 2] === "T" || s[j + 2] === "t")) return;
    } catch (e) {
      // gone or unreadable: try again
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gateway ${pid} did not stop`);
}
