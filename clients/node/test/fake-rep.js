// A fake SP rep0 server for the tests: written independently of src/sp.ts (its own framing
// code), so the client's codec is checked against a second reading of the protocol. Each
// request is decoded as a shipgate.v1.RpcRequest and handed to a handler that answers (or
// not) through a context.
"use strict";

const net = require("node:net");
const tls = require("node:tls");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { create, fromBinary, toBinary } = require("@bufbuild/protobuf");
const { RpcRequestSchema, RpcReplySchema, HealthResponseSchema, HealthResponse_ServingStatus, Code, Method } = require("../dist/index.js");

function header(proto) {
  return Buffer.from([0, 0x53, 0x50, 0, (proto >> 8) & 0xff, proto & 0xff, 0, 0]);
}

/** One frame as a rep0 peer writes it. */
function frame(id, body, ipc) {
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(4 + body.length));
  const idb = Buffer.alloc(4);
  idb.writeUInt32BE(id >>> 0);
  return Buffer.concat([ipc ? Buffer.from([1]) : Buffer.alloc(0), len, idb, body]);
}

/** An encoded RpcReply: status OK with payload, or an error status. */
function replyBytes({ requestId = "", code = Code.OK, message = "", detail, payload }) {
  return Buffer.from(
    toBinary(
      RpcReplySchema,
      create(RpcReplySchema, {
        requestId,
        status: { code, message, detail },
        payload: payload ?? new Uint8Array(0),
      }),
    ),
  );
}

/** An encoded HealthResponse saying where the gateway keeps its idempotency keys. */
function healthBytes({ scope = "node", fleetId = "", store = scope === "fleet" ? "redis" : "sqlite", version = "fake" } = {}) {
  return Buffer.from(
    toBinary(
      HealthResponseSchema,
      create(HealthResponseSchema, {
        status: HealthResponse_ServingStatus.SERVING,
        version,
        idempotencyStore: store,
        idempotencyScope: scope,
        fleetId,
      }),
    ),
  );
}

let ipcSeq = 0;

class FakeRep {
  /**
   * opts.ipc: listen on a unix socket (ipc framing); opts.protocol: what to announce
   * (default rep0 0x31); opts.headerBytes: raw bytes instead of the header;
   * opts.handler(req, ctx): req = { id, env (RpcRequest), body, conn }, ctx = { reply(init),
   * raw(buf), replyFrame(id, body), destroy() }.
   * opts.health: the fake answers every Health itself (the handler never sees it) and records
   * it in healthRequests instead of requests: { scope, fleetId, store } for a HealthResponse,
   * or a function (req, ctx) answering it. It may be changed later (srv.health = ...).
   * opts.tls: tls.createServer's options: a TLS listener (a tls+tcp:// url), each connection's
   * { servername, protocol, authorized } recorded in tlsConns once its handshake is done.
   */
  static async start(opts = {}) {
    const s = new FakeRep(opts);
    await s.listen();
    return s;
  }

  constructor(opts) {
    this.ipc = !!opts.ipc;
    this.protocol = opts.protocol ?? 0x31;
    this.headerBytes = opts.headerBytes;
    this.handler = opts.handler ?? ((req, ctx) => ctx.reply({}));
    this.health = opts.health;
    this.requests = [];
    this.healthRequests = [];
    this.conns = new Set();
    this.connectCount = 0;
    this.tls = opts.tls;
    this.tlsConns = [];
    this.tlsErrors = [];
    if (this.tls) {
      this.server = tls.createServer(this.tls, (c) => {
        this.tlsConns.push({ servername: c.servername, protocol: c.getProtocol(), authorized: c.authorized });
        this.onConn(c);
      });
      this.server.on("tlsClientError", (e) => this.tlsErrors.push(e));
    } else {
      this.server = net.createServer((c) => this.onConn(c));
    }
  }

  async listen() {
    if (this.ipc) {
      this.path = path.join(os.tmpdir(), `sg-node-test-${process.pid}-${++ipcSeq}.ipc`);
      try {
        fs.unlinkSync(this.path);
      } catch {}
      await new Promise((res) => this.server.listen(this.path, res));
      this.url = `ipc://${this.path}`;
    } else {
      await new Promise((res) => this.server.listen(0, "127.0.0.1", res));
      this.url = `${this.tls ? "tls+tcp" : "tcp"}://127.0.0.1:${this.server.address().port}`;
    }
  }

  onConn(c) {
    this.conns.add(c);
    this.connectCount++;
    c.on("close", () => this.conns.delete(c));
    c.on("error", () => {});
    c.write(this.headerBytes ?? header(this.protocol));
    let buf = Buffer.alloc(0);
    let shook = false;
    c.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (!shook) {
        if (buf.length < 8) return;
        const h = buf.subarray(0, 8);
        buf = buf.subarray(8);
        shook = true;
        c.peerHeader = Buffer.from(h);
      }
      for (;;) {
        const hl = this.ipc ? 9 : 8;
        if (buf.length < hl) return;
        const len = Number(buf.readBigUInt64BE(this.ipc ? 1 : 0));
        if (buf.length < hl + len) return;
        const body = buf.subarray(hl, hl + len);
        buf = buf.subarray(hl + len);
        const id = body.readUInt32BE(0);
        const payload = Buffer.from(body.subarray(4));
        let env;
        try {
          env = fromBinary(RpcRequestSchema, payload);
        } catch {
          env = undefined;
        }
        const req = { id, env, body: payload, conn: c, at: Date.now() };
        const isHealth = this.health !== undefined && env !== undefined && env.method === Method.Health;
        (isHealth ? this.healthRequests : this.requests).push(req);
        const ctx = {
          reply: (init) => {
            if (!c.destroyed) c.write(frame(id, replyBytes({ requestId: env ? env.requestId : "", ...init }), this.ipc));
          },
          replyFrame: (rid, b) => {
            if (!c.destroyed) c.write(frame(rid, b, this.ipc));
          },
          raw: (b) => {
            if (!c.destroyed) c.write(b);
          },
          destroy: () => c.destroy(),
        };
        if (!isHealth) this.handler(req, ctx);
        else if (typeof this.health === "function") this.health(req, ctx);
        else ctx.reply({ payload: healthBytes(this.health) });
      }
    });
  }

  /** Drops every connection (the client sees them close). */
  dropAll() {
    for (const c of this.conns) c.destroy();
  }

  async close() {
    this.dropAll();
    await new Promise((res) => this.server.close(() => res()));
    if (this.path) {
      try {
        fs.unlinkSync(this.path);
      } catch {}
    }
  }
}

module.exports = { FakeRep, frame, header, replyBytes, healthBytes };
