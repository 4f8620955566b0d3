// The transport against the real gateway (beyond the shared case list): tcp and ipc
// listeners of one shipgated, round robin over both, many calls at once, a reply over
// maxReplySize, and a gateway restart. Binaries as in interop.test.js.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const sg = require("../dist/index.js");
const { findBinary, startSandbox, startGateway } = require("./procs.js");

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("against a live shipgated", () => {
  const gwBin = findBinary("SHIPGATED", "shipgated");
  const sbBin = findBinary("SHIPGATE_SANDBOX", "shipgate-sandbox");
  let dir;
  let sandbox;
  let gateway;

  before(async () => {
    if (!gwBin || !sbBin) throw new Error("set SHIPGATED and SHIPGATE_SANDBOX (or build ../../build/bin/)");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sg-node-gw-"));
    sandbox = await startSandbox(sbBin);
    gateway = await startGateway(gwBin, sandbox.base, ["tcp://127.0.0.1:0", `ipc://${path.join(dir, "gw.ipc")}`]);
  });

  after(async () => {
    if (gateway) assert.equal(await gateway.stop(), 0);
    if (sandbox) assert.equal(await sandbox.stop(), 0);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("tcp and ipc listeners, round robin over both, 200 calls at once", async () => {
    assert.equal(gateway.urls.length, 2);
    const client = new sg.Client({ addresses: gateway.urls });
    try {
      await waitFor(() => client.connected === 2, 5000, "both connections");
      const calls = [];
      for (let i = 0; i < 200; i++) {
        calls.push(
          i % 2
            ? client.health()
            : client.track({ provider: sg.Provider.BOSCOD, orderId: "BOS123" }).then((r) => {
                assert.equal(r.tracking.status, sg.TrackingStatus.DELIVERED);
                assert.equal(r.tracking.events.length, 11);
                assert.equal(typeof r.tracking.lastUpdateUnix, "bigint");
              }),
        );
      }
      await Promise.all(calls);
      const st = client.stats();
      assert.deepEqual(
        st.map((s) => [s.state, s.connections, s.inFlight, s.unknownReplies]),
        [
          ["up", 1, 0, 0],
          ["up", 1, 0, 0],
        ],
      );
    } finally {
      await client.close();
    }
  });

  it("a reply over maxReplySize: RESOURCE_EXHAUSTED / TRANSPORT_REPLY_TOO_LARGE, then the connection comes back", async () => {
    const client = new sg.Client({ addresses: gateway.urls[0], maxReplySize: 200, reconnectMinMs: 20 });
    try {
      const h = await client.health(); // small: fits
      assert.equal(h.status, sg.HealthResponse_ServingStatus.SERVING);
      const e = await client.track({ provider: sg.Provider.BOSCOD, orderId: "BOS123" }).catch((x) => x);
      assert.ok(e instanceof sg.ShipgateError, String(e));
      assert.equal(e.codeName, "RESOURCE_EXHAUSTED");
      assert.equal(e.reason, "TRANSPORT_REPLY_TOO_LARGE");
      assert.equal(e.local, true);
      assert.equal(e.attempts, 1);
      assert.match(e.message, /over maxReplySize 200/);
      assert.equal((await client.health()).status, sg.HealthResponse_ServingStatus.SERVING);
      assert.equal(client.stats()[0].connections, 2);
    } finally {
      await client.close();
    }
  });

  it("a gateway that dies: calls in flight fail with TRANSPORT_CONNECTION_LOST (not resent), later calls reach the new gateway", async () => {
    const port = Number(/:(\d+)$/.exec(gateway.urls[0])[1]);
    const url = `tcp://127.0.0.1:${port}`;
    const client = new sg.Client({ addresses: url, reconnectMinMs: 20, reconnectMaxMs: 200 });
    try {
      assert.equal((await client.health()).status, sg.HealthResponse_ServingStatus.SERVING);
      // a slow call (the sandbox answers SLOW-3000 after 3 s) in flight when the gateway dies
      const slow = client
        .track({ provider: sg.Provider.BOSCOD, orderId: "SLOW-3000" }, { deadlineMs: 5000, maxAttempts: 1 })
        .then(() => "ok", (x) => x);
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      gateway.proc.kill("SIGKILL");
      await gateway.stop();
      const e = await slow;
      assert.ok(e instanceof sg.ShipgateError, String(e));
      assert.equal(e.codeName, "UNAVAILABLE");
      assert.equal(e.reason, "TRANSPORT_CONNECTION_LOST");
      assert.equal(e.retryable, true);
      assert.equal(e.attempts, 1);
      assert.ok(Date.now() - t0 < 1000, "failed at once, not at the deadline");
      await waitFor(() => client.connected === 0, 3000, "the drop");
      gateway = await startGateway(gwBin, sandbox.base, [url]);
      const r = await client.health({}, { deadlineMs: 5000 });
      assert.equal(r.status, sg.HealthResponse_ServingStatus.SERVING);
      assert.equal(client.stats()[0].connections, 2);
    } finally {
      await client.close();
    }
  });
});
