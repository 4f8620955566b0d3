// A keyed CreateOrder across two real gateways (client_policy.json, fleet): a fleet of two on
// one redis-server, and two gateways with node stores of their own, each with a sandbox that
// holds the bosOnline POST of order SLOW-<ms>. The scenarios run at once, each on processes of
// its own (one redis-server shared). Binaries as in interop.test.js; redis-server from
// $REDIS_SERVER, else /usr/bin/redis-server.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const { fromJson } = require("@bufbuild/protobuf");
const sg = require("../dist/index.js");
const { repo, findBinary, startSandbox, startGateway, startRedis, httpRequest } = require("./procs.js");

const casesFile = process.env.SHIPGATE_INTEROP_CASES || path.join(repo, "tests", "interop", "cases.json");
const example = JSON.parse(fs.readFileSync(casesFile, "utf8")).cases.find((c) => c.name === "create order: the document's example");
/** The document's CreateOrder with form id formId (SLOW-<ms>: the sandbox holds the POST that long). */
const createRequest = (formId) => fromJson(sg.CreateOrderRequestSchema, { ...example.request, formId });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Splits one direction of an SP tcp stream: the 8-byte header, then frames (8-byte length, body). */
function spStream(onHeader, onFrame) {
  let buf = Buffer.alloc(0);
  let shook = false;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (!shook) {
        if (buf.length < 8) return;
        onHeader(buf.subarray(0, 8));
        buf = buf.subarray(8);
        shook = true;
        continue;
      }
      if (buf.length < 8) return;
      const n = Number(buf.readBigUInt64BE(0));
      if (buf.length < 8 + n) return;
      onFrame(buf.subarray(0, 8 + n));
      buf = buf.subarray(8 + n);
    }
  };
}

/**
 * A loopback tcp relay in front of a gateway, to cut it off from the client while it works:
 * cut() closes every connection through it; with passReplies = n, only the first n replies of
 * each connection are passed back, the rest dropped. requests counts the requests relayed.
 */
class Relay {
  static async start(target) {
    const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(target);
    const r = new Relay(m[1], Number(m[2]));
    await new Promise((res) => r.server.listen(0, "127.0.0.1", res));
    r.url = `tcp://127.0.0.1:${r.server.address().port}`;
    return r;
  }

  constructor(host, port) {
    this.passReplies = Infinity;
    this.requests = 0;
    this.dropped = 0;
    this.pairs = new Set();
    this.server = net.createServer((c) => {
      const g = net.connect({ host, port });
      const pair = { c, g };
      this.pairs.add(pair);
      let passed = 0;
      const up = spStream(
        (h) => g.write(h),
        (f) => {
          this.requests++;
          g.write(f);
        },
      );
      const down = spStream(
        (h) => c.write(h),
        (f) => {
          if (passed++ < this.passReplies) c.write(f);
          else this.dropped++;
        },
      );
      c.on("data", up);
      g.on("data", down);
      const end = () => {
        this.pairs.delete(pair);
        c.destroy();
        g.destroy();
      };
      for (const s of [c, g]) {
        s.on("error", () => {});
        s.on("close", end);
      }
    });
  }

  cut() {
    for (const { c, g } of this.pairs) {
      c.destroy();
      g.destroy();
    }
  }

  close() {
    this.cut();
    return new Promise((res) => this.server.close(() => res()));
  }
}

describe("a keyed CreateOrder over two live gateways (fleet)", { concurrency: true }, () => {
  const gwBin = findBinary("SHIPGATED", "shipgated");
  const sbBin = findBinary("SHIPGATE_SANDBOX", "shipgate-sandbox");
  let redis;

  before(async () => {
    if (!gwBin || !sbBin) throw new Error("set SHIPGATED and SHIPGATE_SANDBOX (or build ../../build/bin/)");
    redis = await startRedis();
  });

  after(async () => {
    if (redis) assert.equal(await redis.stop(), 0);
  });

  /**
   * A sandbox and two gateways on it (fleet: on the one redis; else their own SQLite stores),
   * and a client given both addresses (through a relay in front of the first, with relay).
   * fn({ sandbox, gateways, client, relay, posts }); everything is stopped afterwards.
   */
  async function withSetup({ fleet, relay: withRelay = false, client: clientOpts = {} }, fn) {
    const extra = fleet ? ["--set", "idempotency.store=redis", "--set", `idempotency.redis_url=${redis.url}`] : [];
    const sandbox = await startSandbox(sbBin);
    const gateways = [];
    let relay;
    let client;
    const killed = new Set();
    try {
      gateways.push(await startGateway(gwBin, sandbox.base, undefined, extra));
      gateways.push(await startGateway(gwBin, sandbox.base, undefined, extra));
      if (withRelay) relay = await Relay.start(gateways[0].urls[0]);
      const urls = [relay ? relay.url : gateways[0].urls[0], gateways[1].urls[0]];
      client = new sg.Client({ addresses: urls, reconnectMinMs: 20, reconnectMaxMs: 100, ...clientOpts });
      await waitFor(() => client.connected === 2, 5000, "both connections");
      assert.equal((await httpRequest("POST", `${sandbox.base}/__sandbox/reset`)).status, 200);
      const posts = async () => {
        const r = await httpRequest("GET", `${sandbox.base}/__sandbox/requests`);
        assert.equal(r.status, 200);
        return JSON.parse(r.body).filter((e) => e.method === "POST" && typeof e.path === "string" && e.path.startsWith("/bosonline/order/")).length;
      };
      const kill = async (i) => {
        killed.add(i);
        gateways[i].proc.kill("SIGKILL");
        await gateways[i].stop();
      };
      await fn({ sandbox, gateways, urls, client, relay, posts, kill });
    } finally {
      if (client) await client.close();
      if (relay) await relay.close();
      const codes = [];
      for (const [i, g] of gateways.entries()) if (!killed.has(i)) codes.push([`shipgated ${i}`, await g.stop()]);
      codes.push(["shipgate-sandbox", await sandbox.stop()]);
      for (const [name, code] of codes) assert.equal(code, 0, `${name} exited with ${code}`);
    }
  }

  /** The call's outcome: the response, or the ShipgateError. */
  const settle = (p) =>
    p.then(
      (r) => ({ r }),
      (e) => {
        if (!(e instanceof sg.ShipgateError)) throw e;
        return { e };
      },
    );

  /**
   * kill -9 of the gateway that holds the POST (the one the client's CreateOrder is in flight
   * on): the call ends UNKNOWN / OUTCOME_UNKNOWN, and the provider sees one POST.
   */
  async function killHolder({ client, urls, posts, kill }, key) {
    // 3 s: well past the hold, and what the other gateway of a fleet waits at most (the dead
    // owner's lease is its deadline)
    const call = settle(client.createOrder(createRequest("SLOW-1500"), { idempotencyKey: key, deadlineMs: 3000 }));
    await waitFor(async () => (await posts()) === 1, 5000, "the POST at the sandbox");
    const holding = client.stats().filter((s) => s.inFlight > 0);
    assert.equal(holding.length, 1, JSON.stringify(client.stats()));
    const holder = urls.indexOf(holding[0].url);
    const postedAt = Date.now();
    await kill(holder);
    const { r, e } = await call;
    assert.ok(e, `the call succeeded: ${JSON.stringify(r)}`);
    assert.equal(e.codeName, "UNKNOWN", `${e.codeName} ${e.reason}: ${e.message}`);
    assert.equal(e.reason, "OUTCOME_UNKNOWN");
    assert.equal(e.retryable, false);
    // past the sandbox's hold: a second POST would have been seen by now
    await sleep(Math.max(0, postedAt + 1700 - Date.now()));
    assert.equal(await posts(), 1);
    return { e, holder };
  }

  it("fleet: the gateway holding the POST killed: the other one (same fleet) is asked, and the call ends OUTCOME_UNKNOWN; one POST", async () => {
    await withSetup({ fleet: true }, async (s) => {
      const { e, holder } = await killHolder(s, `node-fleet-kill-${process.pid}`);
      // the second attempt went to the other gateway, after its Health said the same fleet
      assert.equal(e.attempts, 2, e.message);
      assert.ok(e.message.includes(s.urls[holder]) || !e.local, e.message);
      const other = s.client.stats()[1 - holder];
      assert.equal(other.fleet, redis.url, "fleet_id: the redis url by default");
    });
  });

  it("fleet: the first gateway cut off from the client (its reply never comes): the attempt times out, the other gateway replays the outcome; one POST", async () => {
    await withSetup({ fleet: true, relay: true, client: { attemptTimeoutMs: 500 } }, async ({ client, relay, posts }) => {
      // the first address (round robin, both connected) passes its Health reply, then nothing
      relay.passReplies = 1;
      const r = await client.createOrder(createRequest("SLOW-200"), { idempotencyKey: `node-fleet-timeout-${process.pid}`, deadlineMs: 5000 });
      assert.equal(r.replayed, true);
      assert.equal(relay.requests, 2, "Health and the CreateOrder went to the first gateway");
      assert.equal(relay.dropped, 1, "its answer was dropped");
      assert.equal(await posts(), 1);
      assert.deepEqual(
        client.stats().map((x) => x.fleet),
        [redis.url, redis.url],
      );
    });
  });

  it("fleet: the client's connection to the gateway holding the POST lost: the other gateway waits for its outcome and replays it; one POST", async () => {
    await withSetup({ fleet: true, relay: true }, async ({ client, relay, posts }) => {
      const call = settle(client.createOrder(createRequest("SLOW-1500"), { idempotencyKey: `node-fleet-cut-${process.pid}`, deadlineMs: 5000 }));
      await waitFor(async () => (await posts()) === 1, 5000, "the POST at the sandbox");
      assert.equal(client.stats()[0].inFlight, 1, "the first address holds it");
      relay.cut();
      const { r, e } = await call;
      assert.ok(r, e && `${e.codeName} ${e.reason}: ${e.message}`);
      assert.equal(r.replayed, true);
      assert.equal(await posts(), 1);
    });
  });

  it("node stores: the gateway holding the POST killed: OUTCOME_UNKNOWN after one attempt, not sent elsewhere; one POST", async () => {
    await withSetup({ fleet: false }, async (s) => {
      const { e, holder } = await killHolder(s, `node-node-kill-${process.pid}`);
      assert.equal(e.local, true);
      assert.equal(e.attempts, 1);
      assert.match(e.message, /TRANSPORT_CONNECTION_LOST/);
      assert.match(e.message, /no fleet \(idempotency scope "node"\)/);
      assert.equal(s.client.stats()[holder].fleet, undefined, "its connection is gone");
    });
  });
});
