// The client against nng's own rep0 (Debian nng-utils' nngcat), over tcp and ipc: the
// handshake and framing are nng's, not ours. Skipped when nngcat is not installed.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { create, fromBinary, toBinary } = require("@bufbuild/protobuf");
const sg = require("../dist/index.js");

const haveNngcat = spawnSync("nngcat", ["--version"]).status === 0;

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const transport of ["tcp", "ipc"]) {
  test(`nngcat --rep0 over ${transport}: our request decodes, nng's reply reaches the call`, { skip: !haveNngcat && "nngcat not installed (apt-get install nng-utils)" }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sg-nngcat-"));
    const url = transport === "tcp" ? `tcp://127.0.0.1:${await freePort()}` : `ipc://${path.join(dir, "rep.ipc")}`;
    const replyFile = path.join(dir, "reply.bin");
    const health = toBinary(sg.HealthResponseSchema, create(sg.HealthResponseSchema, { version: "from-nngcat", status: 1 }));
    fs.writeFileSync(replyFile, toBinary(sg.RpcReplySchema, create(sg.RpcReplySchema, { status: { code: sg.Code.OK }, payload: health })));

    const cat = spawn("nngcat", ["--rep0", "--listen", url, "--file", replyFile, "--raw"], { stdio: ["ignore", "pipe", "inherit"] });
    const chunks = [];
    cat.stdout.on("data", (d) => chunks.push(d));
    const exited = new Promise((r) => cat.once("exit", r));
    const client = new sg.Client({ addresses: url, reconnectMinMs: 20, reconnectMaxMs: 100 });
    try {
      await waitFor(() => client.connected === 1, 5000, `a connection to nngcat on ${url}`);
      const r = await client.health({}, { deadlineMs: 3000, metadata: { caller: "nngcat-test" }, requestId: "req-42" });
      assert.equal(r.version, "from-nngcat");
      assert.equal(r.status, sg.HealthResponse_ServingStatus.SERVING);

      await waitFor(() => Buffer.concat(chunks).length > 0, 3000, "nngcat's output");
      const env = fromBinary(sg.RpcRequestSchema, Buffer.concat(chunks));
      assert.equal(env.method, "/shipgate.v1.Shipgate/Health");
      assert.equal(env.requestId, "req-42");
      assert.deepEqual(env.metadata, { caller: "nngcat-test" });
      assert.ok(env.deadlineMs > 0n && env.deadlineMs <= 3000n, `deadline_ms ${env.deadlineMs}`);

      // several calls at once on the one connection
      const many = await Promise.all(Array.from({ length: 8 }, () => client.health({}, { deadlineMs: 3000 })));
      for (const m of many) assert.equal(m.version, "from-nngcat");
      assert.equal(client.stats()[0].connections, 1);
    } finally {
      await client.close();
      cat.kill("SIGTERM");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
