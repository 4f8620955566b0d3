// The SP codec alone: connection headers and frames, any split of the byte stream.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { SpDecoder, SpError, connectionHeader, encodeRequest, PROTO_REP0, PROTO_REQ0 } = require("../dist/sp.js");
const { parseAddress } = require("../dist/address.js");
const { frame, header } = require("./fake-rep.js");

const dec = (o = {}) => new SpDecoder({ ipc: false, expectPeer: PROTO_REP0, maxReplySize: 1024, ...o });

test("connection header: 0 S P 0, protocol 16-bit BE, two zero bytes", () => {
  assert.deepEqual([...connectionHeader(PROTO_REQ0)], [0, 0x53, 0x50, 0, 0x00, 0x30, 0, 0]);
  assert.deepEqual([...connectionHeader(PROTO_REP0)], [0, 0x53, 0x50, 0, 0x00, 0x31, 0, 0]);
});

test("request frames: 64-bit BE length, request id, body; ipc adds the 0x01 type byte", () => {
  const body = Buffer.from("hello");
  const tcp = encodeRequest(0x80000001, body, false);
  assert.equal(tcp.length, 8 + 4 + 5);
  assert.equal(tcp.readBigUInt64BE(0), 9n);
  assert.equal(tcp.readUInt32BE(8), 0x80000001);
  assert.equal(tcp.subarray(12).toString(), "hello");
  const ipc = encodeRequest(0xfffffffe, body, true);
  assert.equal(ipc[0], 1);
  assert.equal(ipc.readBigUInt64BE(1), 9n);
  assert.equal(ipc.readUInt32BE(9), 0xfffffffe);
  assert.deepEqual(ipc.subarray(13), body);
});

test("handshake then several frames in one chunk", () => {
  const d = dec();
  const bytes = Buffer.concat([header(0x31), frame(0x80000001, Buffer.from("a"), false), frame(0x80000002, Buffer.from("bc"), false), frame(0x80000003, Buffer.alloc(0), false)]);
  const ev = d.push(bytes);
  assert.deepEqual(
    ev.map((e) => (e.type === "handshake" ? ["hs", e.peer] : [e.id, e.body.toString()])),
    [["hs", 0x31], [0x80000001, "a"], [0x80000002, "bc"], [0x80000003, ""]],
  );
  assert.equal(d.pending, 0);
});

test("every split of the stream, down to one byte at a time, gives the same frames", () => {
  const bodies = [Buffer.from("first"), Buffer.alloc(300, 7), Buffer.from("x")];
  for (const ipc of [false, true]) {
    const stream = Buffer.concat([header(0x31), ...bodies.map((b, i) => frame(0x80000000 + i, b, ipc))]);
    for (const step of [1, 2, 3, 5, 7, 8, 9, 13, 64, 1000]) {
      const d = dec({ ipc });
      const got = [];
      for (let off = 0; off < stream.length; off += step) got.push(...d.push(stream.subarray(off, off + step)));
      const frames = got.filter((e) => e.type === "frame");
      assert.equal(got[0].type, "handshake", `ipc=${ipc} step=${step}`);
      assert.deepEqual(frames.map((f) => f.id), [0x80000000, 0x80000001, 0x80000002]);
      frames.forEach((f, i) => assert.deepEqual(Buffer.from(f.body), bodies[i]));
      assert.equal(d.pending, 0);
    }
  }
});

test("a partial frame stays buffered until it completes", () => {
  const d = dec();
  d.push(header(0x31));
  const f = frame(0x80000009, Buffer.from("abcdef"), false);
  assert.deepEqual(d.push(f.subarray(0, 5)), []);
  assert.deepEqual(d.push(f.subarray(5, 14)), []);
  assert.equal(d.pending, 6); // the 8-byte length is consumed, 6 of the 10 body bytes wait
  const ev = d.push(f.subarray(14));
  assert.equal(ev.length, 1);
  assert.equal(ev[0].body.toString(), "abcdef");
});

test("an oversize announcement fails at once, without waiting for (or allocating) the body", () => {
  const d = dec({ maxReplySize: 100 });
  d.push(header(0x31));
  const h = Buffer.alloc(12);
  h.writeBigUInt64BE(BigInt(4 + 101));
  h.writeUInt32BE(0x80000042, 8);
  assert.throws(
    () => d.push(h),
    (e) => e instanceof SpError && e.kind === "oversize" && e.size === 101n && e.id === 0x80000042 && /101 bytes, over maxReplySize 100/.test(e.message),
  );
  // exactly the limit is fine
  const ok = dec({ maxReplySize: 100 });
  ok.push(header(0x31));
  assert.equal(ok.push(frame(0x80000001, Buffer.alloc(100), false)).length, 1);
});

test("a 2^64-1 length announcement is refused, and the id is unknown when not yet received", () => {
  const d = dec();
  const h = Buffer.alloc(8, 0xff);
  assert.throws(
    () => d.push(Buffer.concat([header(0x31), h])),
    (e) => e.kind === "oversize" && e.size === 2n ** 64n - 1n - 4n && e.id === undefined,
  );
  // a failed decoder stays failed and holds nothing
  assert.deepEqual(d.push(Buffer.alloc(10)), []);
  assert.equal(d.pending, 0);
});

test("a frame shorter than a request id is a protocol error", () => {
  const d = dec();
  const h = Buffer.alloc(8);
  h.writeBigUInt64BE(3n);
  assert.throws(() => d.push(Buffer.concat([header(0x31), h, Buffer.alloc(3)])), (e) => e.kind === "protocol");
});

test("ipc: a frame type other than 1 is a protocol error", () => {
  const d = dec({ ipc: true });
  const f = frame(0x80000001, Buffer.from("a"), true);
  f[0] = 2;
  assert.throws(() => d.push(Buffer.concat([header(0x31), f])), (e) => e.kind === "protocol" && /type 2/.test(e.message));
});

test("handshake errors: not SP, wrong protocol, malformed reserved bytes", () => {
  assert.throws(() => dec().push(Buffer.from("HTTP/1.1 400 Bad")), (e) => e.kind === "handshake" && /not an SP/.test(e.message));
  assert.throws(() => dec().push(header(0x30)), (e) => e.kind === "handshake" && /req0 \(0x0030\), not rep0 \(0x0031\)/.test(e.message));
  assert.throws(() => dec().push(header(0x11)), (e) => e.kind === "handshake" && /pair1/.test(e.message));
  const bad = header(0x31);
  bad[7] = 1;
  assert.throws(() => dec().push(bad), (e) => e.kind === "handshake" && /malformed/.test(e.message));
  // a partial header waits
  assert.deepEqual(dec().push(header(0x31).subarray(0, 7)), []);
});

test("addresses", () => {
  assert.deepEqual(parseAddress("tcp://127.0.0.1:7400"), { kind: "tcp", url: "tcp://127.0.0.1:7400", host: "127.0.0.1", port: 7400, family: undefined });
  assert.equal(parseAddress("tcp://[::1]:9").host, "::1");
  assert.equal(parseAddress("tcp6://[::1]:9").family, 6);
  assert.equal(parseAddress("tcp://localhost:1").host, "localhost");
  assert.deepEqual(parseAddress("ipc:///tmp/x.ipc"), { kind: "ipc", url: "ipc:///tmp/x.ipc", path: "/tmp/x.ipc" });
  for (const bad of ["", "127.0.0.1:7400", "tcp://host", "tcp://host:0", "tcp://host:70000", "tcp://::1:9", "inproc://x", "ws://h:1", "tcp://:80", "ipc://", "tcp4://[::1]:9"])
    assert.throws(() => parseAddress(bad), TypeError, bad);
});
