// TLS: tls+tcp:// addresses, over certificates made with openssl in a temporary folder
// (procs.js makeCerts). First without a gateway: the options checked at construction, a Node
// TLS rep0 server (TLS 1.2 only, like the gateway's mbedTLS) for the SNI and the name check,
// a peer that never does TLS, and a failed handshake leaving nothing open. Then against a live
// shipgated with tls+tcp listeners: the CA (Health, Track), another CA, serverName, client
// certificates required (the CA's, none, a stranger's) and optional. Binaries as in
// interop.test.js.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const sg = require("../dist/index.js");
const { FakeRep } = require("./fake-rep.js");
const { findBinary, startSandbox, startGateway, makeCerts } = require("./procs.js");

const { Client, parseAddress } = sg;
const dist = path.join(__dirname, "..", "dist", "index.js");

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function failure(p) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof sg.ShipgateError, `not a ShipgateError: ${e && e.stack}`);
    return e;
  }
  assert.fail("the call succeeded");
}

/** A client that fails fast: one attempt, a short wait for the connection. */
const FAST = { connectTimeoutMs: 300, maxAttempts: 1, reconnectMinMs: 20, reconnectMaxMs: 100 };

/** The call fails locally, unsent, because the connection never came up (well before its deadline). */
async function assertNotConnected(client, lastError) {
  const t0 = Date.now();
  const e = await failure(client.health({}, { deadlineMs: 2000 }));
  const took = Date.now() - t0;
  assert.equal(e.codeName, "UNAVAILABLE", e.message);
  assert.equal(e.reason, "TRANSPORT_NOT_CONNECTED", e.message);
  assert.equal(e.local, true);
  assert.ok(took < 1500, `failed after ${took} ms, not within about connectTimeoutMs`);
  assert.match(e.message, lastError);
  assert.equal(client.connected, 0);
  assert.equal(client.stats()[0].connections, 0);
}

describe("TLS (tls+tcp://)", () => {
  let dir;
  let certs;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sg-node-tls-"));
    certs = makeCerts(dir); // throws when openssl is missing or fails
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("without a gateway", () => {
    it("tls+tcp addresses parse like tcp ones, marked tls", () => {
      assert.deepEqual(parseAddress("tls+tcp://127.0.0.1:7443"), {
        kind: "tcp",
        url: "tls+tcp://127.0.0.1:7443",
        host: "127.0.0.1",
        port: 7443,
        family: undefined,
        tls: true,
      });
      assert.equal(parseAddress("tls+tcp://[::1]:7443").host, "::1");
      assert.equal(parseAddress("tls+tcp4://gw.example:7443").family, 4);
      assert.equal(parseAddress("tls+tcp6://[::1]:7443").family, 6);
      assert.equal(parseAddress("tcp://127.0.0.1:7400").tls, undefined);
      assert.throws(() => parseAddress("tls+tcp://127.0.0.1"), /no port/);
      assert.throws(() => parseAddress("tls+ipc:///x"), /not supported/);
      assert.throws(() => parseAddress("tls+tcp4://[::1]:7443"), /not IPv4/);
    });

    it("bad TLS options throw at construction", () => {
      const url = "tls+tcp://127.0.0.1:7443";
      // a tls+tcp address needs the CA
      assert.throws(() => new Client({ addresses: url }), { name: "TypeError", message: /needs caFile/ });
      assert.throws(() => new Client({ addresses: ["tcp://127.0.0.1:7400", url] }), { name: "TypeError", message: /needs caFile/ });
      assert.throws(() => new Client({ addresses: url, certFile: certs.clientCert, keyFile: certs.clientKey }), TypeError);
      // a certificate and its key go together
      assert.throws(() => new Client({ addresses: url, caFile: certs.ca, certFile: certs.clientCert }), {
        name: "TypeError",
        message: /certFile and keyFile go together/,
      });
      assert.throws(() => new Client({ addresses: url, caFile: certs.ca, keyFile: certs.clientKey }), /go together/);
      assert.throws(() => new Client({ addresses: url, caFile: "" }), TypeError);
      assert.throws(() => new Client({ addresses: url, caFile: certs.ca, serverName: 7 }), TypeError);
      // files that do not load
      assert.throws(() => new Client({ addresses: url, caFile: path.join(dir, "none.pem") }), /caFile .*ENOENT/);
      assert.throws(() => new Client({ addresses: url, caFile: certs.srvKey }), /holds no PEM certificate/);
      assert.throws(
        () => new Client({ addresses: url, caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.strangerKey }),
        /certFile .* keyFile .*: .*(mismatch|KEY_VALUES)/i,
      );
      assert.throws(() => new Client({ addresses: url, caFile: certs.ca, certFile: certs.clientCert, keyFile: path.join(dir, "none.key") }), /keyFile .*ENOENT/);
      // TLS options are checked even without a tls+tcp address
      assert.throws(() => new Client({ addresses: "tcp://127.0.0.1:7400", certFile: certs.clientCert }), /go together/);
      // good ones construct (and dial in the background)
      for (const opts of [
        { addresses: url, caFile: certs.ca },
        { addresses: [url, "tcp://127.0.0.1:7400"], caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey, serverName: "localhost" },
      ]) {
        const c = new Client(opts);
        void c.close();
      }
    });

    it("a TLS 1.2 rep0: calls answered; SNI only for a DNS name; the certificate's name always checked", async () => {
      const srv = await FakeRep.start({
        tls: {
          cert: fs.readFileSync(certs.srvCert),
          key: fs.readFileSync(certs.srvKey),
          maxVersion: "TLSv1.2", // as the gateway's mbedTLS 2.28
          ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        },
        handler: (req, ctx) => ctx.reply({ payload: Buffer.from("ok") }),
      });
      const port = srv.server.address().port;
      try {
        // an IP host: the IP SAN is checked, no SNI is sent
        let c = new Client({ addresses: srv.url, caFile: certs.ca, ...FAST });
        try {
          const r = await c.call("/other.v1.Svc/Do", new Uint8Array([1, 2]), { deadlineMs: 2000 });
          assert.equal(Buffer.from(r).toString(), "ok");
          assert.equal(srv.requests.length, 1);
          assert.deepEqual(Buffer.from(srv.requests[0].env.payload), Buffer.from([1, 2]));
          assert.equal(srv.requests[0].conn.peerHeader.toString("hex"), "0053500000300000"); // req0, inside TLS
          assert.deepEqual(srv.tlsConns, [{ servername: false, protocol: "TLSv1.2", authorized: false }]);
        } finally {
          await c.close();
        }
        // a DNS host (tls+tcp4: its IPv4 address): sent as SNI, and checked (DNS:localhost)
        c = new Client({ addresses: `tls+tcp4://localhost:${port}`, caFile: certs.ca, ...FAST });
        try {
          await c.call("/other.v1.Svc/Do", new Uint8Array(0), { deadlineMs: 2000 });
          assert.equal(srv.tlsConns[1].servername, "localhost");
        } finally {
          await c.close();
        }
        // serverName replaces the host: a DNS name is sent as SNI; an IP one is not
        c = new Client({ addresses: srv.url, caFile: certs.ca, serverName: "localhost", ...FAST });
        try {
          await c.call("/other.v1.Svc/Do", new Uint8Array(0), { deadlineMs: 2000 });
          assert.equal(srv.tlsConns[2].servername, "localhost");
        } finally {
          await c.close();
        }
        // a name the certificate does not carry: never connected, nothing sent
        const before = srv.requests.length;
        c = new Client({ addresses: srv.url, caFile: certs.ca, serverName: "gw.example", ...FAST });
        try {
          await assertNotConnected(c, /TLS handshake failed: ERR_TLS_CERT_ALTNAME_INVALID.*gw\.example/);
        } finally {
          await c.close();
        }
        assert.equal(srv.requests.length, before);
      } finally {
        await srv.close();
      }
    });

    it("a peer that never does TLS (silent, or plain SP): no connection, handshake timed out or failed", async () => {
      const silent = net.createServer((s) => s.resume()); // accepts, reads, says nothing
      await new Promise((r) => silent.listen(0, "127.0.0.1", r));
      const plain = await FakeRep.start({ handler: () => assert.fail("no request may arrive") });
      try {
        let c = new Client({ addresses: `tls+tcp://127.0.0.1:${silent.address().port}`, caFile: certs.ca, ...FAST, connectTimeoutMs: 150 });
        try {
          await assertNotConnected(c, /no connection/);
          await waitFor(() => /TLS handshake with .* not done within 150 ms/.test(c.stats()[0].lastError || ""), 2000, "the TLS handshake timeout");
        } finally {
          await c.close();
        }
        c = new Client({ addresses: plain.url.replace("tcp://", "tls+tcp://"), caFile: certs.ca, ...FAST });
        try {
          await assertNotConnected(c, /TLS handshake failed/);
        } finally {
          await c.close();
        }
        assert.equal(plain.requests.length, 0);
      } finally {
        await plain.close();
        await new Promise((r) => silent.close(r));
      }
    });
  });

  describe("against a live shipgated with tls+tcp listeners", () => {
    const gwBin = findBinary("SHIPGATED", "shipgated");
    const sbBin = findBinary("SHIPGATE_SANDBOX", "shipgate-sandbox");
    let sandbox;
    let plain; // the gateway's certificate only
    let mtls; // client certificates from the CA required (tls.ca_file)
    let optional; // tls.client_auth=optional
    const started = [];

    before(async () => {
      if (!gwBin || !sbBin) throw new Error("set SHIPGATED and SHIPGATE_SANDBOX (or build ../../build/bin/)");
      sandbox = await startSandbox(sbBin);
      const srv = ["--set", `tls.cert_file=${certs.srvCert}`, "--set", `tls.key_file=${certs.srvKey}`];
      const listen = ["tls+tcp://127.0.0.1:0"];
      plain = await startGateway(gwBin, sandbox.base, listen, srv);
      started.push(plain);
      mtls = await startGateway(gwBin, sandbox.base, listen, [...srv, "--set", `tls.ca_file=${certs.ca}`]);
      started.push(mtls);
      optional = await startGateway(gwBin, sandbox.base, listen, [
        ...srv,
        "--set",
        `tls.ca_file=${certs.ca}`,
        "--set",
        "tls.client_auth=optional",
      ]);
      started.push(optional);
      for (const g of started) assert.match(g.urls[0], /^tls\+tcp:\/\/127\.0\.0\.1:\d+$/);
    });

    after(async () => {
      for (const g of started) assert.equal(await g.stop(), 0);
      if (sandbox) assert.equal(await sandbox.stop(), 0);
    });

    it("with the CA: Health and a Track (BosCOD BOS123) answered on one connection", async () => {
      const c = new Client({ addresses: plain.urls[0], caFile: certs.ca });
      try {
        const h = await c.health({}, { deadlineMs: 5000 });
        assert.equal(h.status, sg.HealthResponse_ServingStatus.SERVING);
        const t = await c.track({ provider: sg.Provider.BOSCOD, orderId: "BOS123" }, { deadlineMs: 5000 });
        assert.equal(t.tracking.status, sg.TrackingStatus.DELIVERED);
        assert.equal(t.tracking.events.length, 11);
        const st = c.stats();
        assert.deepEqual([st[0].state, st[0].connections, st[0].inFlight], ["up", 1, 0]);
      } finally {
        await c.close();
      }
    });

    it("serverName: localhost (in the certificate) answered; another name never connects", async () => {
      let c = new Client({ addresses: plain.urls[0], caFile: certs.ca, serverName: "localhost", ...FAST });
      try {
        assert.equal((await c.health({}, { deadlineMs: 5000 })).status, sg.HealthResponse_ServingStatus.SERVING);
      } finally {
        await c.close();
      }
      c = new Client({ addresses: plain.urls[0], caFile: certs.ca, serverName: "gw.example", ...FAST });
      try {
        await assertNotConnected(c, /ERR_TLS_CERT_ALTNAME_INVALID/);
      } finally {
        await c.close();
      }
    });

    it("another CA: no connection, the call fails fast with TRANSPORT_NOT_CONNECTED", async () => {
      const c = new Client({ addresses: plain.urls[0], caFile: certs.otherCa, ...FAST });
      try {
        await assertNotConnected(c, /TLS handshake failed: .*(UNABLE_TO_VERIFY|SELF_SIGNED|certificate)/);
        assert.match(c.stats()[0].lastError, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      } finally {
        await c.close();
      }
      assert.equal(c.stats()[0].state, "closed");
    });

    it("mTLS required: the CA's client certificate answered; none refused; a stranger's refused", async () => {
      let c = new Client({ addresses: mtls.urls[0], caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey });
      try {
        assert.equal((await c.health({}, { deadlineMs: 5000 })).status, sg.HealthResponse_ServingStatus.SERVING);
        const t = await c.track({ provider: sg.Provider.BOSCOD, orderId: "BOS123" }, { deadlineMs: 5000 });
        assert.equal(t.tracking.status, sg.TrackingStatus.DELIVERED);
      } finally {
        await c.close();
      }
      c = new Client({ addresses: mtls.urls[0], caFile: certs.ca, ...FAST });
      try {
        await assertNotConnected(c, /TLS handshake failed/);
      } finally {
        await c.close();
      }
      c = new Client({ addresses: mtls.urls[0], caFile: certs.ca, certFile: certs.strangerCert, keyFile: certs.strangerKey, ...FAST });
      try {
        await assertNotConnected(c, /TLS handshake failed/);
      } finally {
        await c.close();
      }
    });

    it("client certificates optional: answered with the CA's certificate and without one", async () => {
      for (const extra of [{ certFile: certs.clientCert, keyFile: certs.clientKey }, {}]) {
        const c = new Client({ addresses: optional.urls[0], caFile: certs.ca, ...extra });
        try {
          assert.equal((await c.health({}, { deadlineMs: 5000 })).status, sg.HealthResponse_ServingStatus.SERVING);
        } finally {
          await c.close();
        }
      }
    });

    it("a failed handshake leaves nothing open: the process exits by itself, and close() leaves no socket or timer", () => {
      // "idle": the failing client stays, redialling (unref'd): the process must still exit.
      // "close": every socket and timer the client made (async_hooks) must be gone after close().
      const script = `
        const { createHook } = require("node:async_hooks");
        const live = new Map();
        let tracking = true;
        createHook({
          init(id, type) { if (tracking && /TCP|TLS|Timeout/.test(type)) live.set(id, type); },
          destroy(id) { live.delete(id); },
        }).enable();
        const { Client } = require(${JSON.stringify(dist)});
        const [url, caFile, mode] = process.argv.slice(1);
        (async () => {
          const c = new Client({ addresses: url, caFile, connectTimeoutMs: 200, maxAttempts: 1, reconnectMinMs: 10, reconnectMaxMs: 50 });
          const e = await c.health({}, { deadlineMs: 1000 }).then(() => undefined, (x) => x);
          if (!e || e.reason !== "TRANSPORT_NOT_CONNECTED") { console.error("not TRANSPORT_NOT_CONNECTED: " + String(e)); process.exit(3); }
          if (mode !== "close") return;
          if (live.size === 0) { console.error("async_hooks saw no socket or timer"); process.exit(4); }
          await c.close();
          tracking = false;
          // destroy hooks run asynchronously; a TLSWRAP's only once it is garbage-collected
          for (let i = 0; i < 3; i++) {
            await new Promise((r) => setTimeout(r, 30));
            global.gc();
          }
          await new Promise((r) => setTimeout(r, 30));
          console.log(JSON.stringify([...live.values()]));
        })();`;
      for (const [url, caFile] of [
        [plain.urls[0], certs.otherCa], // the client refuses the gateway
        [mtls.urls[0], certs.ca], // the gateway refuses the client (no certificate)
      ]) {
        for (const mode of ["idle", "close"]) {
          const r = spawnSync(process.execPath, ["--expose-gc", "-e", script, url, caFile, mode], { encoding: "utf8", timeout: 10000 });
          assert.equal(r.status, 0, `${mode} ${url}: exit ${r.status} signal ${r.signal}: ${r.stderr}`);
          if (mode === "close") assert.deepEqual(JSON.parse(r.stdout.trim()), [], `left open after close(): ${r.stdout}`);
        }
      }
    });
  });
});
