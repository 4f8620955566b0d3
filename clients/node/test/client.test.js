// The client against fake rep0 servers (test/fake-rep.js): id matching, framing faults,
// connection loss, reconnects, deadlines, retries, cancellation. Every wait is bounded.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const { create, toBinary } = require("@bufbuild/protobuf");
const { Client, Code, ShipgateError, HealthResponseSchema, TrackResponseSchema, Provider, Method } = require("../dist/index.js");
const { FakeRep, frame, header } = require("./fake-rep.js");

const health = (version) => Buffer.from(toBinary(HealthResponseSchema, create(HealthResponseSchema, { version })));
const unavailable = (extra = {}) => ({
  code: Code.UNAVAILABLE,
  message: "provider unavailable",
  detail: { reason: "UPSTREAM_UNAVAILABLE", retryable: true, ...extra },
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms = 3000, what = "condition") {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Runs fn with a fake server and a client on it, closing both. */
async function withServer(serverOpts, clientOpts, fn) {
  const srv = await FakeRep.start(serverOpts);
  const client = new Client({ addresses: [srv.url], ...clientOpts });
  try {
    await fn(srv, client);
  } finally {
    await client.close();
    await srv.close();
  }
}

/** The rejection of p, which must be a ShipgateError. */
async function failure(p) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ShipgateError, `not a ShipgateError: ${e && e.stack}`);
    return e;
  }
  assert.fail("the call succeeded");
}

test("concurrent calls share one connection; out-of-order replies reach their own call by id", async () => {
  const n = 40;
  const held = [];
  await withServer(
    {
      handler: (req, ctx) => {
        held.push({ req, ctx });
        if (held.length === n) {
          // answer in reverse order, each with the number the call sent in its metadata
          for (const h of held.reverse()) h.ctx.reply({ payload: health(`v${h.req.env.metadata.n}`) });
        }
      },
    },
    {},
    async (srv, client) => {
      const calls = Array.from({ length: n }, (_, i) => client.health({}, { metadata: { n: String(i) } }));
      const got = await Promise.all(calls);
      got.forEach((r, i) => assert.equal(r.version, `v${i}`));
      assert.equal(srv.connectCount, 1);
      const ids = new Set(srv.requests.map((r) => r.id));
      assert.equal(ids.size, n, "request ids are distinct");
      for (const id of ids) assert.ok(id >= 0x80000000 && id <= 0xffffffff, "high bit set");
      assert.deepEqual([...srv.requests[0].conn.peerHeader], [0, 0x53, 0x50, 0, 0, 0x30, 0, 0], "req0 header");
    },
  );
});

test("ipc: the same calls over a unix socket (type byte before each frame)", async () => {
  await withServer({ ipc: true, handler: (req, ctx) => ctx.reply({ payload: health("over-ipc") }) }, {}, async (srv, client) => {
    assert.match(srv.url, /^ipc:\/\//);
    const rs = await Promise.all([client.health(), client.health(), client.health()]);
    for (const r of rs) assert.equal(r.version, "over-ipc");
  });
});

test("a reply with an unknown id is dropped, and the call still gets its own", async () => {
  await withServer(
    {
      handler: (req, ctx) => {
        ctx.replyFrame(req.id ^ 0x1234, Buffer.from("garbage for nobody"));
        ctx.replyFrame(0x00000007, Buffer.from("no high bit"));
        ctx.reply({ payload: health("mine") });
      },
    },
    {},
    async (srv, client) => {
      assert.equal((await client.health()).version, "mine");
      assert.equal(client.stats()[0].unknownReplies, 2);
      assert.equal(client.connected, 1, "the connection stays up");
    },
  );
});

test("a reply after the call timed out is dropped; the connection stays usable", async () => {
  let first = true;
  await withServer(
    {
      handler: (req, ctx) => {
        if (first) {
          first = false;
          setTimeout(() => ctx.reply({ payload: health("late") }), 250);
        } else ctx.reply({ payload: health("on time") });
      },
    },
    {},
    async (srv, client) => {
      const t0 = Date.now();
      const e = await failure(client.health({}, { deadlineMs: 100 }));
      assert.equal(e.codeName, "DEADLINE_EXCEEDED");
      assert.equal(e.reason, "TRANSPORT_TIMEOUT");
      assert.equal(e.local, true);
      assert.equal(e.attempts, 1);
      assert.ok(Date.now() - t0 < 1000, "bounded by the deadline");
      await waitFor(() => client.stats()[0].unknownReplies === 1, 2000, "the late reply");
      assert.equal((await client.health()).version, "on time");
      assert.equal(srv.connectCount, 1);
    },
  );
});

test("an oversize announcement fails the connection: that call TRANSPORT_REPLY_TOO_LARGE, the others CONNECTION_LOST; then redial", async () => {
  const held = [];
  await withServer(
    {
      handler: (req, ctx) => {
        held.push({ req, ctx });
        if (held.length < 2) return;
        // announce 1 GiB for the first request (id included, body never sent)
        const h = Buffer.alloc(12);
        h.writeBigUInt64BE(BigInt(4 + (1 << 30)));
        h.writeUInt32BE(held[0].req.id, 8);
        held[0].ctx.raw(h);
      },
    },
    { maxReplySize: 1000 },
    async (srv, client) => {
      const a = failure(client.call("CreateOrder", new Uint8Array(0), { metadata: { n: "a" } }));
      await waitFor(() => srv.requests.length === 1);
      const b = failure(client.call("CreateOrder", new Uint8Array(0), { metadata: { n: "b" } }));
      const [ea, eb] = await Promise.all([a, b]);
      assert.equal(ea.codeName, "RESOURCE_EXHAUSTED");
      assert.equal(ea.reason, "TRANSPORT_REPLY_TOO_LARGE");
      assert.match(ea.message, /1073741824 bytes, over maxReplySize 1000/);
      // a CreateOrder whose connection broke after it went out: its outcome is unknown
      assert.equal(eb.codeName, "UNKNOWN");
      assert.equal(eb.reason, "OUTCOME_UNKNOWN");
      assert.match(eb.message, /TRANSPORT_CONNECTION_LOST/);
      assert.match(eb.message, /over maxReplySize/);
      assert.equal(eb.attempts, 1, "CreateOrder is not retried after the request went out");
      await waitFor(() => srv.connectCount === 2, 3000, "the redial");
    },
  );
});

test("handshake errors: a peer speaking another protocol, or not SP at all, never connects", async () => {
  for (const serverOpts of [{ protocol: 0x30 }, { protocol: 0x11 }, { headerBytes: Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n") }]) {
    await withServer({ ...serverOpts, handler: () => assert.fail("no request may arrive") }, { connectTimeoutMs: 200, maxAttempts: 1 }, async (srv, client) => {
      const e = await failure(client.health({}, { deadlineMs: 1000 }));
      assert.equal(e.codeName, "UNAVAILABLE");
      assert.equal(e.reason, "TRANSPORT_NOT_CONNECTED");
      assert.equal(e.retryable, true);
      assert.match(e.message, serverOpts.headerBytes ? /not an SP/ : /not rep0 \(0x0031\)/);
      assert.equal(srv.requests.length, 0);
    });
  }
});

test("a silent peer (no connection header) times out the handshake", async () => {
  const net = require("node:net");
  const srv = net.createServer((c) => c.resume()); // accepts, reads, says nothing
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const client = new Client({ addresses: `tcp://127.0.0.1:${srv.address().port}`, connectTimeoutMs: 150, maxAttempts: 1 });
  try {
    const e = await failure(client.health({}, { deadlineMs: 1000 }));
    assert.equal(e.reason, "TRANSPORT_NOT_CONNECTED");
    await waitFor(() => /no SP connection header/.test(client.stats()[0].lastError || ""), 2000, "the handshake timeout");
  } finally {
    await client.close();
    await new Promise((r) => srv.close(r));
  }
});

test("a dropped connection fails its calls at once; idempotent calls are retried on the next connection, others end OUTCOME_UNKNOWN and are not resent", async () => {
  let drop = true;
  await withServer(
    {
      handler: (req, ctx) => {
        if (drop) {
          drop = false;
          ctx.destroy();
        } else ctx.reply({ payload: health("second connection") });
      },
    },
    { backoffBaseMs: 20 },
    async (srv, client) => {
      const r = await client.health();
      assert.equal(r.version, "second connection");
      assert.equal(srv.requests.length, 2);
      assert.equal(srv.connectCount, 2);

      drop = true;
      srv.requests.length = 0;
      const e = await failure(client.call(Method.CreateOrder, new Uint8Array(0)));
      assert.equal(e.codeName, "UNKNOWN");
      assert.equal(e.reason, "OUTCOME_UNKNOWN");
      assert.match(e.message, /TRANSPORT_CONNECTION_LOST/);
      assert.equal(e.retryable, false);
      assert.equal(e.local, true);
      assert.equal(e.attempts, 1);
      assert.equal(srv.requests.length, 1, "sent once, never again");

      // with an idempotency key too: the gateway may still be working on it
      drop = true;
      srv.requests.length = 0;
      const e2 = await failure(client.createOrder({ formId: "f" }, { idempotencyKey: "k-1", requestId: "rid-1" }));
      assert.equal(e2.reason, "OUTCOME_UNKNOWN");
      assert.equal(e2.attempts, 1);
      assert.equal(srv.requests.length, 1);
      assert.equal(srv.requests[0].env.idempotencyKey, "k-1");
    },
  );
});

test("a spent budget fails locally with DEADLINE_EXCEEDED, nothing sent", async () => {
  await withServer({}, {}, async (srv, client) => {
    await waitFor(() => client.connected === 1);
    for (const deadlineMs of [-1, -1000]) {
      const e = await failure(client.track({ provider: Provider.BOSCOD, orderId: "X" }, { deadlineMs }));
      assert.equal(e.codeName, "DEADLINE_EXCEEDED");
      assert.equal(e.reason, "CLIENT_DEADLINE_EXPIRED");
      assert.equal(e.local, true);
      assert.equal(e.attempts, 0);
    }
    assert.equal(srv.requests.length, 0);
  });
});

test("deadline_ms in the envelope is the budget left when sent, and shrinks across attempts", async () => {
  await withServer({ handler: (req, ctx) => setTimeout(() => ctx.reply(unavailable()), 30) }, { backoffBaseMs: 20 }, async (srv, client) => {
    await waitFor(() => client.connected === 1);
    const e = await failure(client.health({}, { deadlineMs: 800 }));
    assert.equal(e.attempts, 3);
    const ds = srv.requests.map((r) => Number(r.env.deadlineMs));
    assert.equal(ds.length, 3);
    assert.ok(ds[0] > 700 && ds[0] <= 800, `first ${ds[0]}`);
    assert.ok(ds[1] < ds[0] - 30 && ds[2] < ds[1] - 30 && ds[2] > 0, `shrinks: ${ds}`);
    assert.equal(srv.requests[0].env.method, "/shipgate.v1.Shipgate/Health");
    assert.match(srv.requests[0].env.requestId, /^[0-9a-f]{16}$/);
  });
});

test("retries: idempotent calls on UNAVAILABLE, backoff between them, maxAttempts in all", async () => {
  await withServer({ handler: (req, ctx) => ctx.reply(unavailable()) }, { maxAttempts: 4, backoffBaseMs: 40, backoffCapMs: 60 }, async (srv, client) => {
    await waitFor(() => client.connected === 1);
    const t0 = Date.now();
    const e = await failure(client.track({ provider: Provider.BOSCOD, orderId: "ERR-503" }));
    const took = Date.now() - t0;
    assert.equal(e.codeName, "UNAVAILABLE");
    assert.equal(e.reason, "UPSTREAM_UNAVAILABLE");
    assert.equal(e.local, false);
    assert.equal(e.attempts, 4);
    assert.equal(srv.requests.length, 4);
    // backoffs jittered to [d/2, d]: 20..40, 30..60, 30..60
    assert.ok(took >= 75 && took < 1500, `took ${took} ms`);
    const gaps = srv.requests.slice(1).map((r, i) => r.at - srv.requests[i].at);
    for (const g of gaps) assert.ok(g >= 15, `gap ${g}`);

    // per-call maxAttempts, and a method that is not idempotent without a key: one attempt
    srv.requests.length = 0;
    assert.equal((await failure(client.health({}, { maxAttempts: 1 }))).attempts, 1);
    assert.equal((await failure(client.call("CreateOrder", new Uint8Array(0)))).attempts, 1);
    assert.equal((await failure(client.call("/other.v1.Svc/Do", new Uint8Array(0)))).attempts, 1);
    assert.equal((await failure(client.call("/other.v1.Svc/Do", new Uint8Array(0), { idempotencyKey: "k" }))).attempts, 4);
    assert.equal(srv.requests.length, 7);
  });
});

test("codes other than UNAVAILABLE / DEADLINE_EXCEEDED are not retried; the detail is kept", async () => {
  await withServer(
    {
      handler: (req, ctx) =>
        ctx.reply({
          code: Code.INVALID_ARGUMENT,
          message: "bad",
          detail: {
            reason: "INVALID_FIELD",
            upstreamHttpStatus: 400,
            provider: "fuuffy",
            providerCode: "E1",
            providerMessage: "order_id wrong",
            fieldViolations: [{ field: "order_id", description: "wrong" }],
          },
        }),
    },
    {},
    async (srv, client) => {
      const e = await failure(client.track({ provider: Provider.FUUFFY, orderId: "x" }));
      assert.equal(e.code, 3);
      assert.equal(e.codeName, "INVALID_ARGUMENT");
      assert.equal(e.message, "bad");
      assert.equal(e.reason, "INVALID_FIELD");
      assert.equal(e.upstreamHttpStatus, 400);
      assert.equal(e.provider, "fuuffy");
      assert.equal(e.providerCode, "E1");
      assert.equal(e.providerMessage, "order_id wrong");
      assert.deepEqual(e.violations, [{ field: "order_id", description: "wrong" }]);
      assert.equal(e.attempts, 1);
      assert.equal(e.method, "/shipgate.v1.Shipgate/Track");
      assert.equal(srv.requests.length, 1);
    },
  );
});

test("retryAfterMs lengthens the backoff; a retry that cannot fit the deadline is not made", async () => {
  await withServer({ handler: (req, ctx) => ctx.reply(unavailable({ retryAfterMs: 200n })) }, {}, async (srv, client) => {
    await waitFor(() => client.connected === 1);
    let t0 = Date.now();
    let e = await failure(client.health({}, { deadlineMs: 2000 }));
    assert.equal(e.attempts, 3);
    assert.equal(e.retryAfterMs, 200);
    assert.ok(Date.now() - t0 >= 390, `waited ${Date.now() - t0} ms`);

    srv.requests.length = 0;
    t0 = Date.now();
    e = await failure(client.health({}, { deadlineMs: 150 }));
    assert.equal(e.attempts, 1);
    // UNAVAILABLE after one attempt (not a DEADLINE_EXCEEDED after sleeping 200 ms): it gave up at once
    assert.equal(e.codeName, "UNAVAILABLE");
    assert.ok(Date.now() - t0 < 1000, "bounded");
  });
});

test("the client's own TRANSPORT_TIMEOUT is retried only while budget remains (attemptTimeoutMs)", async () => {
  let n = 0;
  await withServer(
    {
      handler: (req, ctx) => {
        if (++n >= 3) ctx.reply({ payload: health("third") });
      },
    },
    { attemptTimeoutMs: 80, backoffBaseMs: 10 },
    async (srv, client) => {
      await waitFor(() => client.connected === 1);
      const r = await client.health({}, { deadlineMs: 2000 });
      assert.equal(r.version, "third");
      // each attempt's deadline is the attempt timeout, less the reply margin min(50, 80 / 5)
      const d = Number(srv.requests[0].env.deadlineMs);
      assert.ok(d > 55 && d <= 64, `deadline_ms ${d}`);
    },
  );
  await withServer({ handler: () => {} }, {}, async (srv, client) => {
    await waitFor(() => client.connected === 1);
    const t0 = Date.now();
    const e = await failure(client.health({}, { deadlineMs: 200 }));
    assert.equal(e.reason, "TRANSPORT_TIMEOUT");
    assert.equal(e.attempts, 1, "the whole budget went to one attempt: nothing left to retry with");
    assert.ok(Date.now() - t0 >= 190 && Date.now() - t0 < 1500);
  });
});

test("round robin over several addresses; a dead address is skipped while another is up", async () => {
  const a = await FakeRep.start({ handler: (req, ctx) => ctx.reply({ payload: health("a") }) });
  const b = await FakeRep.start({ handler: (req, ctx) => ctx.reply({ payload: health("b") }) });
  const deadPort = await freePort();
  const client = new Client({ addresses: [a.url, b.url, `tcp://127.0.0.1:${deadPort}`] });
  try {
    await waitFor(() => client.connected === 2, 3000, "two connections");
    const got = [];
    for (let i = 0; i < 10; i++) got.push((await client.health()).version);
    assert.equal(got.filter((v) => v === "a").length, 5, got.join());
    assert.equal(got.filter((v) => v === "b").length, 5, got.join());
    assert.equal(client.stats()[2].state === "up", false);
  } finally {
    await client.close();
    await a.close();
    await b.close();
  }
});

test("no gateway at all: TRANSPORT_NOT_CONNECTED after connectTimeoutMs, retried for any method (never sent)", async () => {
  const port = await freePort();
  const client = new Client({ addresses: `tcp://127.0.0.1:${port}`, connectTimeoutMs: 100, backoffBaseMs: 10 });
  try {
    const t0 = Date.now();
    const e = await failure(client.call("CreateOrder", new Uint8Array(0), { deadlineMs: 2000 }));
    assert.equal(e.codeName, "UNAVAILABLE");
    assert.equal(e.reason, "TRANSPORT_NOT_CONNECTED");
    assert.equal(e.attempts, 3);
    assert.match(e.message, /ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 2000);
    // a deadline shorter than connectTimeoutMs: DEADLINE_EXCEEDED
    const e2 = await failure(client.health({}, { deadlineMs: 50 }));
    assert.equal(e2.codeName, "DEADLINE_EXCEEDED");
    assert.equal(e2.reason, "TRANSPORT_NOT_CONNECTED");
  } finally {
    await client.close();
  }
});

test("the client redials after the gateway drops it, and a call waiting for the connection goes out on it", async () => {
  await withServer({ handler: (req, ctx) => ctx.reply({ payload: health("ok") }) }, { reconnectMinMs: 20, reconnectMaxMs: 50 }, async (srv, client) => {
    assert.equal((await client.health()).version, "ok");
    srv.dropAll();
    await waitFor(() => client.connected === 0, 2000, "the drop");
    assert.equal((await client.health()).version, "ok");
    assert.equal(srv.connectCount, 2);
  });
});

test("close() cancels calls in flight and refuses new ones; an AbortSignal cancels one call", async () => {
  const srv = await FakeRep.start({ handler: () => {} });
  const client = new Client({ addresses: srv.url });
  try {
    const ac = new AbortController();
    const aborted = failure(client.health({}, { signal: ac.signal }));
    await waitFor(() => srv.requests.length === 1);
    ac.abort();
    const ea = await aborted;
    assert.equal(ea.codeName, "CANCELLED");
    assert.equal(ea.reason, "CLIENT_CANCELLED");

    const pending = failure(client.health());
    await waitFor(() => srv.requests.length === 2);
    const t0 = Date.now();
    await client.close();
    const e = await pending;
    assert.equal(e.codeName, "CANCELLED");
    assert.equal(e.reason, "CLIENT_CANCELLED");
    assert.ok(Date.now() - t0 < 1000);
    const after = await failure(client.health());
    assert.equal(after.codeName, "CANCELLED");
    assert.equal(after.attempts, 0);
  } finally {
    await client.close();
    await srv.close();
  }
});

test("unusable replies: not an RpcReply, no status, another request's id, a bad payload -> INTERNAL / CLIENT_BAD_REPLY, not retried", async () => {
  const replies = [
    (req, ctx) => ctx.replyFrame(req.id, Buffer.from([0xff, 0xff, 0xff])),
    (req, ctx) => ctx.replyFrame(req.id, Buffer.alloc(0)),
    (req, ctx) => ctx.reply({ requestId: "someone-else", payload: health("x") }),
    (req, ctx) => ctx.reply({ payload: Buffer.from([0x0a, 0x05, 0x01]) }), // truncated TrackResponse
  ];
  let i = 0;
  await withServer({ handler: (req, ctx) => replies[i](req, ctx) }, {}, async (srv, client) => {
    for (i = 0; i < replies.length; i++) {
      srv.requests.length = 0;
      const e = await failure(client.track({ provider: Provider.BOSCOD, orderId: "x" }));
      assert.equal(e.codeName, "INTERNAL", `case ${i}: ${e.message}`);
      assert.equal(e.reason, "CLIENT_BAD_REPLY");
      assert.equal(e.attempts, 1);
      assert.equal(srv.requests.length, 1);
    }
  });
});

test("local argument checks: createOrder without a key, metadata keys, unknown methods, bad requests", async () => {
  await withServer({ handler: (req, ctx) => ctx.reply({ payload: Buffer.from(toBinary(TrackResponseSchema, create(TrackResponseSchema, {}))) }) }, {}, async (srv, client) => {
    for (const p of [
      client.createOrder({ formId: "f" }, {}),
      client.createOrder({ formId: "f" }),
      client.health({}, { metadata: { Caller: "x" } }),
      client.health({}, { metadata: { "-x": "x" } }),
      client.call("Teleport", new Uint8Array(0)),
      client.call("/a/b/c", new Uint8Array(0)),
      client.call("Track", "not bytes"),
      client.track({ provider: "no such enum" }),
    ]) {
      const e = await failure(p);
      assert.equal(e.codeName, "INVALID_ARGUMENT", e.message);
      assert.equal(e.reason, "CLIENT_INVALID_ARGUMENT");
      assert.equal(e.local, true);
      assert.equal(e.attempts, 0);
    }
    assert.equal(srv.requests.length, 0);
    // the accepted method spellings, and a pass-through one
    for (const m of ["Track", "shipgate.v1.Shipgate.Track", "/shipgate.v1.Shipgate/Track"]) await client.call(m, new Uint8Array(0));
    await client.call("/other.v1.Svc/Do", new Uint8Array(0), { metadata: { "caller.name": "t-1", trace_id: "x" } });
    assert.deepEqual(
      srv.requests.map((r) => r.env.method),
      ["/shipgate.v1.Shipgate/Track", "/shipgate.v1.Shipgate/Track", "/shipgate.v1.Shipgate/Track", "/other.v1.Svc/Do"],
    );
    assert.deepEqual(srv.requests[3].env.metadata, { "caller.name": "t-1", trace_id: "x" });
  });
});

test("bad client options throw at construction", () => {
  assert.throws(() => new Client({ addresses: ["inproc://x"] }), TypeError);
  assert.throws(() => new Client({ addresses: ["tcp://nohostport"] }), TypeError);
  assert.throws(() => new Client({ addresses: 7 }), TypeError);
  assert.throws(() => new Client({ maxAttempts: 0, addresses: "tcp://127.0.0.1:1" }), RangeError);
  assert.throws(() => new Client({ defaultDeadlineMs: -5, addresses: "tcp://127.0.0.1:1" }), RangeError);
  assert.throws(() => new Client({ maxReplySize: 1.5, addresses: "tcp://127.0.0.1:1" }), RangeError);
});

test("an idle client keeps no process alive", () => {
  const dist = path.join(__dirname, "..", "dist", "index.js");
  const r = spawnSync(
    process.execPath,
    ["-e", `const {Client}=require(${JSON.stringify(dist)}); new Client({addresses:"tcp://127.0.0.1:1"}); setTimeout(()=>{},50)`],
    { timeout: 5000 },
  );
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
});

function freePort() {
  const net = require("node:net");
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// ---------------------------------------------------------------- the retry rule (client_policy.json)

test("a DEADLINE_EXCEEDED from the gateway is not retried, even with budget left", async () => {
  await withServer(
    { handler: (req, ctx) => ctx.reply({ code: Code.DEADLINE_EXCEEDED, message: "deadline", detail: { reason: "DEADLINE_EXPIRED", retryable: true } }) },
    { attemptTimeoutMs: 500, backoffBaseMs: 10 },
    async (srv, client) => {
      await waitFor(() => client.connected === 1);
      const e = await failure(client.health({}, { deadlineMs: 3000 }));
      assert.equal(e.codeName, "DEADLINE_EXCEEDED");
      assert.equal(e.reason, "DEADLINE_EXPIRED");
      assert.equal(e.local, false);
      assert.equal(e.attempts, 1);
      assert.equal(srv.requests.length, 1);
      const d = Number(srv.requests[0].env.deadlineMs); // 500 (less what the send took) less 50
      assert.ok(d > 430 && d <= 450, `deadline_ms ${d}`);
    },
  );
});

/** Two fake gateways: `first` handles requests as given, the second answers every call OK. */
async function withTwo(first, clientOpts, fn) {
  const a = await FakeRep.start({ handler: first });
  const b = await FakeRep.start({ handler: (req, ctx) => ctx.reply({ payload: new Uint8Array(0) }) });
  const client = new Client({ addresses: [a.url, b.url], backoffBaseMs: 10, ...clientOpts });
  try {
    await waitFor(() => client.connected === 2);
    await fn(a, b, client);
  } finally {
    await client.close();
    await a.close();
    await b.close();
  }
}

test("a CreateOrder is never sent to a second gateway after the first dropped it (kill -9)", async () => {
  await withTwo((req, ctx) => ctx.destroy(), {}, async (a, b, client) => {
    const e = await failure(client.createOrder({ formId: "f" }, { idempotencyKey: "order-lost", deadlineMs: 3000 }));
    assert.equal(e.codeName, "UNKNOWN");
    assert.equal(e.reason, "OUTCOME_UNKNOWN");
    assert.equal(e.attempts, 1);
    assert.equal(a.requests.length, 1);
    assert.equal(b.requests.length, 0);
    // a read in the same place goes on to the other gateway (whichever round robin picks first)
    await client.health({}, { deadlineMs: 3000 });
    await client.health({}, { deadlineMs: 3000 });
    assert.ok(b.requests.length >= 1);
  });
});

test("a CreateOrder whose gateway stays silent past the attempt timeout ends OUTCOME_UNKNOWN, not retried", async () => {
  await withTwo(() => {}, { attemptTimeoutMs: 200 }, async (a, b, client) => {
    const e = await failure(client.createOrder({ formId: "f" }, { idempotencyKey: "order-silent", deadlineMs: 3000 }));
    assert.equal(e.reason, "OUTCOME_UNKNOWN");
    assert.match(e.message, /TRANSPORT_TIMEOUT/);
    assert.equal(e.attempts, 1);
    assert.equal(b.requests.length, 0);
    await client.health({}, { deadlineMs: 3000 }); // b's turn
    await client.health({}, { deadlineMs: 3000 }); // a's: its own timeout, then b
    assert.equal(a.requests.length, 2);
    assert.equal(b.requests.length, 2);
  });
});

test("a keyed CreateOrder is retried after the gateway's UNAVAILABLE, with its key", async () => {
  let n = 0;
  await withServer(
    { handler: (req, ctx) => (n++ === 0 ? ctx.reply(unavailable()) : ctx.reply({ payload: new Uint8Array(0) })) },
    { backoffBaseMs: 10 },
    async (srv, client) => {
      await client.createOrder({ formId: "f" }, { idempotencyKey: "order-503", deadlineMs: 3000 });
      assert.equal(srv.requests.length, 2);
      for (const q of srv.requests) assert.equal(q.env.idempotencyKey, "order-503");
    },
  );
});
