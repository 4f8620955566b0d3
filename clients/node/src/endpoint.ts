// One gateway address: a req0 connection (tcp, tls+tcp or ipc), redialled with backoff when it
// drops. On tls+tcp the same SP bytes go over a tls.TLSSocket, sent once its handshake is done.
//
// Requests go out on the connection that is up now, each with its own 4-byte request id;
// replies are matched back by that id, so any number of requests share one connection. A
// reply whose id is unknown (its request timed out or was cancelled, or the peer is confused)
// is dropped. When the connection drops, every request waiting on it fails at once ("lost"):
// nothing is ever sent again by this layer.

import * as net from "node:net";
import * as tls from "node:tls";
import { debuglog } from "node:util";

import type { Address } from "./address.js";
import { connectionHeader, encodeRequest, PROTO_REP0, PROTO_REQ0, SpDecoder, SpError } from "./sp.js";
import { connectOptions, type TlsSettings } from "./tls.js";

const debug = debuglog("shipgate");

/** Why a request lost its connection. */
export interface Loss {
  kind: "lost" | "too-large" | "closed";
  message: string;
}

export interface PendingRequest {
  onReply(body: Buffer): void;
  onLoss(loss: Loss): void;
}

export interface EndpointOptions {
  maxReplySize: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** longest wait for the peer's connection header (and before it the TLS handshake) after connecting */
  handshakeTimeoutMs: number;
  /** for a tls+tcp address: the client's TLS settings (required there) */
  tls?: TlsSettings;
}

export type EndpointState = "down" | "connecting" | "up" | "closed";

export class Endpoint {
  private socket: net.Socket | undefined;
  private decoder: SpDecoder | undefined;
  private st: EndpointState = "down";
  private readonly pending = new Map<number, PendingRequest>();
  private readonly waiters = new Set<() => void>();
  private nextId = Math.floor(Math.random() * 0x7fffffff);
  private delay: number;
  private redial: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closeCause: string | undefined; // why we are dropping the current connection
  private closed: Promise<void> | undefined;
  /** The last connection failure, for error messages. */
  lastError: string | undefined;
  /** Replies dropped because no request waits for their id. */
  unknownReplies = 0;
  /** Connections completed (handshake done) so far. */
  connections = 0;

  constructor(
    readonly address: Address,
    private readonly opts: EndpointOptions,
  ) {
    if (address.kind === "tcp" && address.tls === true && opts.tls === undefined)
      throw new TypeError(`shipgate: address "${address.url}" needs TLS settings`);
    this.delay = opts.reconnectMinMs;
  }

  get url(): string {
    return this.address.url;
  }

  get state(): EndpointState {
    return this.st;
  }

  get up(): boolean {
    return this.st === "up";
  }

  /**
   * The current connection's number (its place in `connections`, from 1) while up, else 0: it
   * changes whenever the connection is replaced (a drop, a gateway restart, a redial), so what
   * was learned about one connection (its gateway's fleet) is not taken for the next.
   */
  get connectionId(): number {
    return this.st === "up" ? this.connections : 0;
  }

  /** Requests waiting for their reply on this endpoint. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Starts dialing (in the background; redialled until close()). */
  start(): void {
    if (this.st === "down" && this.redial === undefined) this.dial();
  }

  /** Calls fn once when the endpoint is up (or closed); returns a function that unregisters it. */
  waitUp(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => {
      this.waiters.delete(fn);
    };
  }

  /**
   * Sends body as one request and returns its id; the outcome arrives through p. Throws when
   * the endpoint is not up (check `up` first).
   */
  send(body: Uint8Array, p: PendingRequest): number {
    if (this.st !== "up" || this.socket === undefined) throw new Error(`${this.url}: not connected`);
    let id: number;
    do {
      this.nextId = (this.nextId + 1) & 0x7fffffff;
      id = (this.nextId | 0x80000000) >>> 0;
    } while (this.pending.has(id));
    this.pending.set(id, p);
    this.socket.write(encodeRequest(id, body, this.address.kind === "ipc"));
    return id;
  }

  /** Stops waiting for request id (timed out or cancelled): its reply, if any, is dropped. */
  forget(id: number): void {
    this.pending.delete(id);
  }

  /** Closes the connection for good; requests waiting on it fail with kind "closed". */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    const prev = this.st;
    this.st = "closed";
    clearTimeout(this.redial);
    clearTimeout(this.handshakeTimer);
    this.redial = this.handshakeTimer = undefined;
    this.failPending({ kind: "closed", message: "client closed" });
    this.notify();
    const s = this.socket;
    this.closed = new Promise<void>((resolve) => {
      if (s === undefined || s.destroyed || prev === "down") return resolve();
      s.once("close", () => resolve());
      s.destroy();
    });
    return this.closed;
  }

  // ---------------------------------------------------------------- connection

  private dial(): void {
    this.redial = undefined;
    if (this.st === "closed") return;
    this.st = "connecting";
    this.closeCause = undefined;
    const a = this.address;
    const secure = a.kind === "tcp" && a.tls === true;
    const s: net.Socket =
      a.kind === "ipc"
        ? net.connect({ path: a.path })
        : secure
          ? tls.connect(connectOptions(this.opts.tls!, a.host, a.port, a.family))
          : net.connect({ host: a.host, port: a.port, family: a.family });
    this.socket = s;
    this.decoder = new SpDecoder({
      ipc: a.kind === "ipc",
      expectPeer: PROTO_REP0,
      maxReplySize: this.opts.maxReplySize,
    });
    s.unref(); // pending calls keep the process alive through their own timers
    if (a.kind === "tcp") s.setNoDelay(true);
    // TLS: between the TCP connection and the end of the TLS handshake
    let tlsHandshake = false;
    s.on("connect", () => {
      if (s !== this.socket) return;
      // one timer for the TLS handshake (tls+tcp) and the SP connection header
      this.handshakeTimer = setTimeout(() => {
        this.drop(
          s,
          tlsHandshake
            ? `TLS handshake with ${this.url} not done within ${this.opts.handshakeTimeoutMs} ms`
            : `no SP connection header from ${this.url} within ${this.opts.handshakeTimeoutMs} ms`,
        );
      }, this.opts.handshakeTimeoutMs);
      this.handshakeTimer.unref();
      if (secure) tlsHandshake = true;
      else s.write(connectionHeader(PROTO_REQ0));
    });
    if (secure)
      s.on("secureConnect", () => {
        tlsHandshake = false;
        // the gateway's certificate and name were verified (rejectUnauthorized): else no secureConnect
        if (s === this.socket) s.write(connectionHeader(PROTO_REQ0));
      });
    s.on("data", (chunk: Buffer) => this.onData(s, chunk));
    s.on("error", (err: NodeJS.ErrnoException) => {
      if (this.closeCause === undefined) {
        const msg = err.message.trim().replace(/\s*\n\s*/g, " "); // OpenSSL's end with a newline
        const why = err.code ? `${err.code}: ${msg}` : msg;
        this.closeCause = tlsHandshake ? `TLS handshake failed: ${why}` : why;
      }
    });
    s.on("close", () => this.onClose(s));
  }

  private onData(s: net.Socket, chunk: Buffer): void {
    if (s !== this.socket || this.decoder === undefined || this.st === "closed") return;
    let events;
    try {
      events = this.decoder.push(chunk);
    } catch (e) {
      if (e instanceof SpError) {
        if (e.kind === "oversize" && e.id !== undefined) {
          const p = this.pending.get(e.id);
          if (p) {
            this.pending.delete(e.id);
            p.onLoss({ kind: "too-large", message: `${this.url}: ${e.message}` });
          }
        }
        this.drop(s, e.message);
        return;
      }
      throw e;
    }
    for (const ev of events) {
      if (ev.type === "handshake") {
        clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        this.st = "up";
        this.delay = this.opts.reconnectMinMs;
        this.lastError = undefined;
        this.connections++;
        debug("%s: connected", this.url);
        this.notify();
        continue;
      }
      const p = this.pending.get(ev.id);
      if (p === undefined) {
        this.unknownReplies++;
        debug("%s: dropped a reply for unknown request id 0x%s", this.url, ev.id.toString(16));
        continue;
      }
      this.pending.delete(ev.id);
      p.onReply(ev.body);
      if (s !== this.socket || this.st !== "up") return; // a callback closed us
    }
  }

  /** Fails the current connection with a cause; onClose does the rest. */
  private drop(s: net.Socket, cause: string): void {
    if (this.closeCause === undefined) this.closeCause = cause;
    debug("%s: dropping the connection: %s", this.url, cause);
    s.destroy();
  }

  private onClose(s: net.Socket): void {
    if (s !== this.socket) return;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.socket = undefined;
    this.decoder = undefined;
    if (this.st === "closed") return;
    const wasUp = this.st === "up";
    const cause = this.closeCause ?? (wasUp ? "peer closed the connection" : "connection closed during the SP handshake");
    this.lastError = cause;
    this.st = "down";
    this.failPending({ kind: "lost", message: `connection to ${this.url} lost: ${cause}` });
    // redial after [d/2, d], d doubling from reconnectMinMs to reconnectMaxMs
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, this.opts.reconnectMaxMs);
    const wait = d / 2 + Math.random() * (d / 2);
    debug("%s: down (%s); redial in %d ms", this.url, cause, Math.round(wait));
    this.redial = setTimeout(() => this.dial(), wait);
    this.redial.unref();
  }

  private failPending(loss: Loss): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.onLoss(loss);
  }

  private notify(): void {
    if (this.waiters.size === 0) return;
    const all = [...this.waiters];
    this.waiters.clear();
    for (const fn of all) fn();
  }
}
