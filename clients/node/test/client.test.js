// The client against fake rep0 servers (test/fake-rep.js): id matching, framing faults,
// connection loss, reconnects, deadlines, retries, cancellation. Every wait is bounded.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const { create, toBinary } = require("@bufbuild/protobuf");
const {
  Client,
  Code,
  ShipgateError,
  CreateOrderResponseSchema,
  HealthResponseSchema,
  TrackResponseSchema,
  Provider,
  Method,
} = require("../dist/index.js");
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
  let spare; // a method the drop spares
  await withServer(
    {
      handler: (req, ctx) => {
        if (drop && req.env.method !== spare) {
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

      // with an idempotency key too: the gateway may still be working on it (its Health, asked
      // first for the connection's fleet, names no scope: none)
      drop = true;
      spare = Method.Health;
      srv.requests.length = 0;
      const e2 = await failure(client.createOrder({ formId: "f" }, { idempotencyKey: "k-1", requestId: "rid-1" }));
      assert.equal(e2.reason, "OUTCOME_UNKNOWN");
      assert.equal(e2.attempts, 1);
      assert.deepEqual(
        srv.requests.map((r) => r.env.method),
        [Method.Health, Method.CreateOrder],
      );
      assert.equal(srv.requests[0].env.requestId, "rid-1.fleet");
      assert.equal(srv.requests[1].env.idempotencyKey, "k-1");
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
    // 1 + 1 + 1 + 4, and the one Health the keyed call asked first on this connection (for its
    // fleet; answered UNAVAILABLE here, which means none): not asked again by the retries
    assert.equal(srv.requests.length, 8);
    assert.equal(srv.requests.filter((r) => r.env.method === Method.Health).length, 2);
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

/**
 * Two fake gateways: `first` handles requests as given, the second (more.second) answers every
 * call OK. Both answer Health themselves (more.healthA, more.healthB; default scope "node"),
 * out of their `requests`.
 */
async function withTwo(first, clientOpts, fn, more = {}) {
  const a = await FakeRep.start({ handler: first, health: more.healthA ?? { scope: "node" } });
  const b = await FakeRep.start({
    handler: more.second ?? ((req, ctx) => ctx.reply({ payload: new Uint8Array(0) })),
    health: more.healthB ?? { scope: "node" },
  });
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
    assert.equal(a.healthRequests.length, 1, "its fleet asked first: scope node");
    assert.equal(b.healthRequests.length, 0);
    // a read in the same place goes on to the other gateway (whichever round robin picks first)
    await client.track({ provider: Provider.BOSCOD, orderId: "X" }, { deadlineMs: 3000 });
    await client.track({ provider: Provider.BOSCOD, orderId: "X" }, { deadlineMs: 3000 });
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
    assert.equal(b.healthRequests.length, 0);
    await client.track({ provider: Provider.BOSCOD, orderId: "X" }, { deadlineMs: 3000 }); // b's turn
    await client.track({ provider: Provider.BOSCOD, orderId: "X" }, { deadlineMs: 3000 }); // a's: its own timeout, then b
    assert.equal(a.requests.length, 2);
    assert.equal(b.requests.length, 2);
  });
});

test("a keyed CreateOrder is retried after the gateway's UNAVAILABLE, with its key", async () => {
  let n = 0;
  await withServer(
    {
      handler: (req, ctx) => (n++ === 0 ? ctx.reply(unavailable()) : ctx.reply({ payload: new Uint8Array(0) })),
      health: { scope: "node" },
    },
    { backoffBaseMs: 10 },
    async (srv, client) => {
      await client.createOrder({ formId: "f" }, { idempotencyKey: "order-503", deadlineMs: 3000 });
      assert.equal(srv.requests.length, 2);
      for (const q of srv.requests) assert.equal(q.env.idempotencyKey, "order-503");
    },
  );
});

// ---------------------------------------------------------------- keyed calls and fleets (client_policy.json, fleet)

const created = (fields = {}) => Buffer.from(toBinary(CreateOrderResponseSchema, create(CreateOrderResponseSchema, { awb: "AWB-1", ...fields })));
const order = (key, extra = {}) => [{ provider: Provider.BOSONLINE, formId: "f" }, { idempotencyKey: key, deadlineMs: 3000, ...extra }];
const track = { provider: Provider.BOSCOD, orderId: "X" };
const isProbe = (r) => r.env.method === Method.Health && /\.fleet$/.test(r.env.requestId);

test("a keyed call asks its connection's Health once before sending; again on a new connection; other calls never ask", async () => {
  await withServer(
    { handler: (req, ctx) => ctx.reply({ payload: req.env.method === Method.CreateOrder ? created() : new Uint8Array(0) }), health: { scope: "node" } },
    { reconnectMinMs: 10, reconnectMaxMs: 20 },
    async (srv, client) => {
      // idempotent calls, an un-keyed call, and Health itself: no Health asked for them
      await client.track(track);
      await client.getOrder({ provider: Provider.BITESHIP, orderId: "x" });
      await client.call("/other.v1.Svc/Do", new Uint8Array(0));
      await client.health();
      assert.equal(srv.healthRequests.length, 1, "only the call's own Health");
      assert.equal(client.stats()[0].fleet, undefined, "not asked yet");

      await client.createOrder(...order("k-probe-1"));
      assert.equal(srv.healthRequests.length, 2);
      const probe = srv.healthRequests[1];
      assert.ok(isProbe(probe), probe.env.requestId);
      const sent = srv.requests.at(-1);
      assert.equal(sent.env.method, Method.CreateOrder);
      assert.equal(probe.conn, sent.conn, "asked on the connection it then sends on");
      assert.ok(probe.at <= sent.at);
      assert.match(probe.env.requestId, new RegExp(`^${sent.env.requestId}\\.fleet$`));
      assert.ok(Number(probe.env.deadlineMs) > 2500 && Number(probe.env.deadlineMs) <= 3000, "the call's budget");
      assert.equal(client.stats()[0].fleet, null, "scope node: none");

      // the same connection: known
      await client.createOrder(...order("k-probe-2"));
      await client.call("/other.v1.Svc/Do", new Uint8Array(0), { idempotencyKey: "k-probe-3" }); // keyed too
      assert.equal(srv.healthRequests.length, 2);

      // the connection replaced (the gateway restarted, now in a fleet): asked again
      srv.health = { scope: "fleet", fleetId: "fleet-a" };
      srv.dropAll();
      await waitFor(() => client.connected === 0, 2000, "the drop");
      await client.createOrder(...order("k-probe-4"));
      assert.equal(srv.healthRequests.length, 3);
      assert.equal(srv.connectCount, 2);
      assert.equal(client.stats()[0].fleet, "fleet-a");
      await client.track(track);
      assert.equal(srv.healthRequests.length, 3);
    },
  );
});

test("keyed calls at once on a new connection share one Health", async () => {
  await withServer(
    {
      handler: (req, ctx) => ctx.reply({ payload: created() }),
      health: (req, ctx) => setTimeout(() => ctx.reply({ payload: require("./fake-rep.js").healthBytes({ scope: "fleet", fleetId: "f" }) }), 30),
    },
    {},
    async (srv, client) => {
      await waitFor(() => client.connected === 1);
      await Promise.all([1, 2, 3, 4].map((i) => client.createOrder(...order(`k-together-${i}`))));
      assert.equal(srv.healthRequests.length, 1);
      assert.equal(srv.requests.length, 4);
    },
  );
});

test("a Health that fails in transport is the attempt's failure, the keyed request not sent: retried", async () => {
  let drops = 1;
  await withServer(
    {
      handler: (req, ctx) => ctx.reply({ payload: created() }),
      health: (req, ctx) => (drops-- > 0 ? ctx.destroy() : ctx.reply({ payload: require("./fake-rep.js").healthBytes() })),
    },
    { backoffBaseMs: 10, reconnectMinMs: 10, reconnectMaxMs: 20 },
    async (srv, client) => {
      const r = await client.callRaw(Method.CreateOrder, new Uint8Array(0), { idempotencyKey: "k-health-lost", deadlineMs: 3000 });
      assert.equal(r.attempts, 2);
      assert.equal(srv.healthRequests.length, 2);
      assert.equal(srv.requests.length, 1, "the CreateOrder went out once, after the second Health");
      assert.equal(srv.connectCount, 2);
    },
  );
  // a Health that is never answered: the attempt times out with nothing sent, and so does the call
  await withServer({ handler: (req, ctx) => ctx.reply({ payload: created() }), health: () => {} }, { attemptTimeoutMs: 60, backoffBaseMs: 10 }, async (srv, client) => {
    const e = await failure(client.createOrder(...order("k-health-silent", { deadlineMs: 2000 })));
    assert.equal(e.codeName, "DEADLINE_EXCEEDED");
    assert.equal(e.reason, "TRANSPORT_TIMEOUT");
    assert.match(e.message, /Health/);
    assert.equal(e.attempts, 3);
    assert.equal(srv.requests.length, 0);
  });
});

test("no fleet: a Health with scope node, an error status or a reply that does not decode; the lost CreateOrder is not sent elsewhere", async () => {
  const { replyBytes, healthBytes } = require("./fake-rep.js");
  const healths = [
    { scope: "node" },
    { scope: "fleet", fleetId: "" }, // a fleet without an id is none
    (req, ctx) => ctx.reply({ code: Code.UNIMPLEMENTED, message: "no Health here" }),
    (req, ctx) => ctx.replyFrame(req.id, Buffer.from([0xff, 0xff, 0xff])), // not an RpcReply
    (req, ctx) => ctx.replyFrame(req.id, replyBytes({ requestId: req.env.requestId, payload: Buffer.from([0x0a, 0x05]) })), // not a HealthResponse
  ];
  for (const [i, h] of healths.entries()) {
    await withTwo(
      (req, ctx) => ctx.destroy(),
      {},
      async (a, b, client) => {
        const e = await failure(client.createOrder(...order(`k-none-${i}`)));
        assert.equal(e.codeName, "UNKNOWN", `case ${i}: ${e.message}`);
        assert.equal(e.reason, "OUTCOME_UNKNOWN");
        assert.equal(e.local, true);
        assert.equal(e.attempts, 1);
        assert.match(e.message, /no fleet/);
        assert.equal(a.requests.length, 1);
        assert.equal(b.requests.length + b.healthRequests.length, 0, "the second address never asked, never sent");
      },
      { healthA: h, healthB: { scope: "fleet", fleetId: "f" } },
    );
  }
  void healthBytes;
});

test("one fleet on both addresses: a CreateOrder lost on the first is retried on the second, whose answer (a replay) is returned", async () => {
  const replay = (req, ctx) => ctx.reply({ payload: created({ replayed: true }) });
  for (const [what, first, opts] of [
    ["connection lost", (req, ctx) => ctx.destroy(), {}],
    ["attempt timeout", () => {}, { attemptTimeoutMs: 100 }],
  ]) {
    await withTwo(
      first,
      opts,
      async (a, b, client) => {
        const r = await client.createOrder(...order(`k-fleet-${what}`, { requestId: "rid-fleet" }));
        assert.equal(r.replayed, true, what);
        assert.equal(r.awb, "AWB-1");
        assert.equal(a.requests.length, 1);
        assert.equal(b.requests.length, 1);
        for (const q of [a.requests[0], b.requests[0]]) {
          assert.equal(q.env.method, Method.CreateOrder);
          assert.equal(q.env.idempotencyKey, `k-fleet-${what}`);
          assert.equal(q.env.requestId, "rid-fleet");
        }
        assert.equal(a.healthRequests.length, 1);
        assert.equal(b.healthRequests.length, 1, "the second address's fleet asked before sending");
        assert.ok(b.healthRequests[0].at <= b.requests[0].at);
        assert.deepEqual(
          client.stats().map((s) => s.fleet),
          [what === "connection lost" ? undefined : "fleet-1", "fleet-1"],
        );
      },
      { healthA: { scope: "fleet", fleetId: "fleet-1" }, healthB: { scope: "fleet", fleetId: "fleet-1" }, second: replay },
    );
  }
  // one address: the new connection is asked again, and is of the same fleet
  let n = 0;
  await withServer(
    {
      handler: (req, ctx) => (n++ === 0 ? ctx.destroy() : ctx.reply({ payload: created({ replayed: true }) })),
      health: { scope: "fleet", fleetId: "fleet-1" },
    },
    { backoffBaseMs: 10, reconnectMinMs: 10, reconnectMaxMs: 20 },
    async (srv, client) => {
      const r = await client.callRaw(Method.CreateOrder, new Uint8Array(0), { idempotencyKey: "k-fleet-one", deadlineMs: 3000 });
      assert.equal(r.attempts, 2);
      assert.equal(srv.requests.length, 2);
      assert.equal(srv.healthRequests.length, 2);
      assert.equal(srv.connectCount, 2);
    },
  );
});

test("another fleet (or none) at the next address: OUTCOME_UNKNOWN, and that address never gets the CreateOrder", async () => {
  for (const healthB of [{ scope: "fleet", fleetId: "fleet-2" }, { scope: "node" }]) {
    await withTwo(
      (req, ctx) => ctx.destroy(),
      {},
      async (a, b, client) => {
        const e = await failure(client.createOrder(...order("k-other-fleet")));
        assert.equal(e.codeName, "UNKNOWN");
        assert.equal(e.reason, "OUTCOME_UNKNOWN");
        assert.equal(e.local, true);
        assert.equal(e.retryable, false);
        assert.equal(e.attempts, 2, "the second attempt asked Health and stopped");
        assert.ok(e.message.includes(a.url) && e.message.includes(b.url), e.message);
        assert.ok(e.message.includes('"fleet-1"'), e.message);
        assert.match(e.message, healthB.fleetId ? /in fleet "fleet-2"/ : /in no fleet \(idempotency scope "node"\)/);
        assert.equal(a.requests.length, 1);
        assert.equal(b.healthRequests.length, 1);
        assert.equal(b.requests.length, 0);
      },
      { healthA: { scope: "fleet", fleetId: "fleet-1" }, healthB },
    );
  }
});

test("after a failover, an answer that does not settle the call is reported OUTCOME_UNKNOWN; one that settles it, as it is", async () => {
  const cases = [
    [{ code: Code.DEADLINE_EXCEEDED, message: "deadline passed while waiting", detail: { reason: "DEADLINE_EXPIRED", retryable: true } }, false],
    [unavailable({ reason: "IDEMPOTENCY_STORE_UNAVAILABLE" }), false],
    [{ code: Code.ABORTED, message: "still in progress", detail: { reason: "IDEMPOTENCY_KEY_IN_PROGRESS", retryable: true } }, false],
    [{ code: Code.UNKNOWN, message: "outcome unknown at the gateway", detail: { reason: "OUTCOME_UNKNOWN" } }, true],
    [{ code: Code.INVALID_ARGUMENT, message: "key reused", detail: { reason: "IDEMPOTENCY_KEY_REUSED" } }, true],
  ];
  for (const [st, settles] of cases) {
    await withTwo(
      (req, ctx) => ctx.destroy(),
      { maxAttempts: 2 },
      async (a, b, client) => {
        const e = await failure(client.createOrder(...order(`k-after-${st.detail.reason}`)));
        assert.equal(e.attempts, 2);
        assert.equal(b.requests.length, 1);
        if (settles) {
          assert.equal(e.local, false, e.message);
          assert.equal(e.code, st.code);
          assert.equal(e.reason, st.detail.reason);
          assert.equal(e.message, st.message);
        } else {
          assert.equal(e.local, true, e.message);
          assert.equal(e.codeName, "UNKNOWN");
          assert.equal(e.reason, "OUTCOME_UNKNOWN");
          assert.equal(e.retryable, false);
          assert.ok(e.message.includes(st.detail.reason) && e.message.includes(st.message), e.message);
          assert.ok(e.message.includes(a.url) && e.message.includes(b.url), e.message);
          assert.match(e.message, /TRANSPORT_CONNECTION_LOST/);
        }
      },
      {
        healthA: { scope: "fleet", fleetId: "fleet-1" },
        healthB: { scope: "fleet", fleetId: "fleet-1" },
        second: (req, ctx) => ctx.reply(st),
      },
    );
  }
});

test("after a failover, no attempt left, the budget spent or the call cancelled: OUTCOME_UNKNOWN, never the transport status", async () => {
  const fleet = { healthA: { scope: "fleet", fleetId: "fleet-1" }, healthB: { scope: "fleet", fleetId: "fleet-1" }, second: () => {} };
  // maxAttempts 1: the fleet would allow a retry, but there is none
  await withTwo(
    (req, ctx) => ctx.destroy(),
    { maxAttempts: 1 },
    async (a, b, client) => {
      const e = await failure(client.createOrder(...order("k-no-more")));
      assert.equal(e.reason, "OUTCOME_UNKNOWN");
      assert.equal(e.local, true);
      assert.equal(e.attempts, 1);
      assert.match(e.message, /TRANSPORT_CONNECTION_LOST/);
      assert.equal(b.requests.length, 0);
    },
    fleet,
  );
  // the second gateway silent: the call's own deadline
  await withTwo(
    (req, ctx) => ctx.destroy(),
    {},
    async (a, b, client) => {
      const e = await failure(client.createOrder(...order("k-silent-second", { deadlineMs: 250 })));
      assert.equal(e.reason, "OUTCOME_UNKNOWN");
      assert.equal(e.local, true);
      assert.match(e.message, /TRANSPORT_TIMEOUT/);
      assert.equal(b.requests.length, 1);
    },
    fleet,
  );
  // cancelled while the second gateway has it
  await withTwo(
    (req, ctx) => ctx.destroy(),
    {},
    async (a, b, client) => {
      const ac = new AbortController();
      const p = failure(client.createOrder(...order("k-cancelled", { signal: ac.signal })));
      await waitFor(() => b.requests.length === 1, 3000, "the failover");
      ac.abort();
      const e = await p;
      assert.equal(e.reason, "OUTCOME_UNKNOWN");
      assert.match(e.message, /CLIENT_CANCELLED/);
    },
    fleet,
  );
});
