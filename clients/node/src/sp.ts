// The SP (scalability protocols) wire format of nng's tcp and ipc transports, REQ side.
//
// Connection header, both ways, 8 bytes:  0x00 'S' 'P' 0x00  proto(16-bit BE)  0x00 0x00
//   (req0 = 0x0030, its peer rep0 = 0x0031).
// Then messages, each one frame:
//   tcp: length(64-bit BE) body
//   ipc: 0x01 length(64-bit BE) body
// A req0 body starts with the 4-byte big-endian request id (high bit set); the rep0 peer
// echoes it at the start of the reply.

export const PROTO_REQ0 = 0x0030;
export const PROTO_REP0 = 0x0031;

const PROTOCOL_NAMES: Record<number, string> = {
  0x10: "pair0/pair1",
  0x11: "pair1",
  0x20: "pub0",
  0x21: "sub0",
  0x30: "req0",
  0x31: "rep0",
  0x50: "push0",
  0x51: "pull0",
  0x62: "surveyor0",
  0x63: "respondent0",
  0x70: "bus0",
};

/** "rep0 (0x0031)". */
export function protocolName(id: number): string {
  const hex = "0x" + id.toString(16).padStart(4, "0");
  const n = PROTOCOL_NAMES[id];
  return n ? `${n} (${hex})` : hex;
}

/** The 8-byte connection header announcing protocol `proto`. */
export function connectionHeader(proto: number): Buffer {
  const b = Buffer.alloc(8);
  b[1] = 0x53; // 'S'
  b[2] = 0x50; // 'P'
  b.writeUInt16BE(proto, 4);
  return b;
}

/** One framed request: header (length, plus the type byte on ipc), request id, body. */
export function encodeRequest(id: number, body: Uint8Array, ipc: boolean): Buffer {
  const head = ipc ? 9 : 8;
  const out = Buffer.allocUnsafe(head + 4 + body.length);
  if (ipc) out[0] = 0x01;
  out.writeBigUInt64BE(BigInt(4 + body.length), ipc ? 1 : 0);
  out.writeUInt32BE(id >>> 0, head);
  out.set(body, head + 4);
  return out;
}

export type SpErrorKind = "handshake" | "protocol" | "oversize";

/** A violation of the wire protocol by the peer: the connection must be closed. */
export class SpError extends Error {
  override name = "SpError";
  constructor(
    readonly kind: SpErrorKind,
    message: string,
    /** oversize: the announced reply size (without the request id), bytes */
    readonly size?: bigint,
    /** oversize: the request id of that reply, when its first bytes had already arrived */
    readonly id?: number,
  ) {
    super(message);
  }
}

export type SpEvent = { type: "handshake"; peer: number } | { type: "frame"; id: number; body: Buffer };

/**
 * Incremental decoder of what a rep0 peer sends a req0 socket: the connection header, then
 * frames. push() takes chunks as they come (any split: partial headers, several frames in one
 * chunk) and returns the complete events; it throws SpError on a protocol violation, and never
 * buffers more than one frame of at most maxReplySize (+4 id bytes) plus the chunk being read.
 */
export class SpDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private stage: "handshake" | "header" | "body" = "handshake";
  private want = 0; // body bytes of the frame being read
  private failed = false;

  constructor(
    private readonly opts: {
      /** ipc framing (a 0x01 type byte before each length) */
      ipc: boolean;
      /** protocol the peer must announce (PROTO_REP0) */
      expectPeer: number;
      /** largest reply accepted, bytes, not counting the 4-byte request id */
      maxReplySize: number;
    },
  ) {}

  push(chunk: Buffer): SpEvent[] {
    if (this.failed) return [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: SpEvent[] = [];
    try {
      for (;;) {
        if (this.stage === "handshake") {
          if (this.buffered < 8) break;
          const h = this.take(8);
          if (h[0] !== 0 || h[1] !== 0x53 || h[2] !== 0x50 || h[3] !== 0)
            throw new SpError("handshake", `peer is not an SP (nng) endpoint: connection header ${h.toString("hex")}`);
          if (h[6] !== 0 || h[7] !== 0)
            throw new SpError("handshake", `peer sent a malformed SP connection header ${h.toString("hex")}`);
          const peer = h.readUInt16BE(4);
          if (peer !== this.opts.expectPeer)
            throw new SpError(
              "handshake",
              `peer speaks ${protocolName(peer)}, not ${protocolName(this.opts.expectPeer)}: is the address a shipgate gateway?`,
            );
          this.stage = "header";
          out.push({ type: "handshake", peer });
        } else if (this.stage === "header") {
          const hl = this.opts.ipc ? 9 : 8;
          if (this.buffered < hl) break;
          const h = this.take(hl);
          if (this.opts.ipc && h[0] !== 0x01)
            throw new SpError("protocol", `peer sent an ipc frame of type ${h[0]}, not 1 (message)`);
          const len = h.readBigUInt64BE(this.opts.ipc ? 1 : 0);
          if (len < 4n) throw new SpError("protocol", `peer sent a ${len}-byte reply, shorter than its request id`);
          if (len - 4n > BigInt(this.opts.maxReplySize)) {
            const id = this.buffered >= 4 ? this.peekU32() : undefined;
            throw new SpError(
              "oversize",
              `peer announced a reply of ${len - 4n} bytes, over maxReplySize ${this.opts.maxReplySize}`,
              len - 4n,
              id,
            );
          }
          this.want = Number(len);
          this.stage = "body";
        } else {
          if (this.buffered < this.want) break;
          const f = this.take(this.want);
          this.stage = "header";
          out.push({ type: "frame", id: f.readUInt32BE(0), body: f.subarray(4) });
        }
      }
    } catch (e) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw e;
    }
    return out;
  }

  /** Bytes held waiting for the rest of a header or frame. */
  get pending(): number {
    return this.buffered;
  }

  private peekU32(): number {
    const b = this.chunks[0].length >= 4 ? this.chunks[0] : Buffer.concat(this.chunks);
    return b.readUInt32BE(0);
  }

  /** The next n buffered bytes (n <= buffered), copied only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) {
      this.buffered -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}
