// The shipgate client: addresses, deadlines, retries, typed calls.
//
// A call sends one shipgate.v1.RpcRequest as one SP request and waits for one RpcReply. The
// behaviour follows the C client (include/shipgate/client.h):
// - Several gateways: one connection per address; attempts go round-robin over the
//   addresses, preferring ones that are connected now.
// - Deadlines: each call has a budget (deadlineMs, else defaultDeadlineMs) covering every
//   attempt and backoff. An attempt waits for its reply no longer than the budget left when it
//   is written (or attemptTimeoutMs), and its envelope's deadline_ms is that wait less a
//   margin for the reply's way back (min(50 ms, a fifth)), so that a gateway keeping its
//   deadline answers first. A call whose budget is spent fails with DEADLINE_EXCEEDED /
//   CLIENT_DEADLINE_EXPIRED without sending anything.
// - Retries, by the rule in proto/shipgate/v1/client_policy.json (generated into
//   src/gen/policy.ts, as every client's), with exponential backoff and jitter, within the
//   deadline and up to maxAttempts:
//     - any method when the attempt provably never left the client (TRANSPORT_NOT_CONNECTED);
//     - idempotent methods (Track, GetOrder, Health) after UNAVAILABLE (gateway or transport)
//       and after the client's own TRANSPORT_TIMEOUT while budget remains;
//     - CreateOrder (and methods unknown to this client) with an idempotency key ("keyed"),
//       sent unchanged in every attempt, after the gateway's UNAVAILABLE; and after a lost
//       connection or a timeout only within a fleet (below).
//   A DEADLINE_EXCEEDED from the gateway is never retried (it spent the budget it was given).
//   A CreateOrder (or unknown method) whose request went out and whose connection then broke,
//   or whose gateway did not answer in time, is otherwise not retried at all, on this address
//   or another: it fails with UNKNOWN / OUTCOME_UNKNOWN. The gateway's retry_after_ms, when
//   given, lengthens the backoff.
// - Fleets: before a keyed call is sent on a connection, the client asks that connection's
//   Health once (again on each new connection) where the gateway keeps idempotency keys; its
//   fleet is fleet_id when idempotency_scope is "fleet", else none. A keyed call lost (or timed
//   out) on a gateway of a fleet is retried, only where Health reports the same fleet: the
//   gateways of a fleet share the keys, so the next one waits for the first one's outcome and
//   replays it. An address of another fleet (or none) ends the call OUTCOME_UNKNOWN unsent.
//   Once an attempt may have been sent, a final failure that does not settle the call (local,
//   or a gateway code in client_policy.json's unsettled_codes) is reported OUTCOME_UNKNOWN.
// - Lost connections: requests waiting on a connection that drops fail with UNAVAILABLE /
//   TRANSPORT_CONNECTION_LOST, and the rules above decide; nothing is silently re-sent.

import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

import { parseAddress } from "./address.js";
import { Endpoint, type Loss } from "./endpoint.js";
import { loadTls } from "./tls.js";
import { ClientReason, Code, ShipgateError } from "./errors.js";
import { decide, IDEMPOTENT_METHODS, PolicyDefaults, sentDeadlineMs, unsettled, type CallKind } from "./gen/policy.js";
import { RpcReplySchema, RpcRequestSchema, type RpcRequest } from "./gen/shipgate/v1/rpc_pb.js";
import {
  CreateOrderRequestSchema,
  CreateOrderResponseSchema,
  GetOrderRequestSchema,
  GetOrderResponseSchema,
  HealthRequestSchema,
  HealthResponseSchema,
  Shipgate,
  TrackRequestSchema,
  TrackResponseSchema,
  type CreateOrderResponse,
  type GetOrderResponse,
  type HealthResponse,
  type TrackResponse,
} from "./gen/shipgate/v1/shipgate_pb.js";

export const DEFAULT_ADDRESS = "tcp://127.0.0.1:7400";

/** Full method names in gRPC form, as RpcRequest.method carries them. */
export const Method = {
  Track: "/shipgate.v1.Shipgate/Track",
  GetOrder: "/shipgate.v1.Shipgate/GetOrder",
  CreateOrder: "/shipgate.v1.Shipgate/CreateOrder",
  Health: "/shipgate.v1.Shipgate/Health",
} as const;

const IDEMPOTENT = new Set<string>(IDEMPOTENT_METHODS.map((m) => `/shipgate.v1.Shipgate/${m}`)); // client_policy.json
const MAX_TIMER_MS = 0x7fffffff; // setTimeout's limit, and the C client's clamp of deadline_ms

export interface ClientOptions {
  /**
   * Gateway addresses: "tcp://host:port", "tcp://[::1]:port", "tls+tcp://host:port" (TLS: needs
   * caFile), "ipc:///path". Default tcp://127.0.0.1:7400.
   */
  addresses?: string | string[];
  /** Budget of a call that gives none, ms. Default 10000. */
  defaultDeadlineMs?: number;
  /** Largest RpcReply accepted, bytes; a peer announcing more loses its connection. Default 4 MiB. */
  maxReplySize?: number;
  /** Attempts in all, the first included; 1 = never retry. Default 3. */
  maxAttempts?: number;
  /** Backoff before the first retry, doubled each time, jittered to [d/2, d]. Default 50. */
  backoffBaseMs?: number;
  /** Backoff ceiling. Default 1000. */
  backoffCapMs?: number;
  /** Longest wait for one reply; 0 = the whole remaining budget. Default 0. */
  attemptTimeoutMs?: number;
  /** Longest an attempt waits for a connection to its address. Default 1000. */
  connectTimeoutMs?: number;
  /** Redial backoff after a failed or dropped connection: from min, doubling to max. Default 100 / 1000. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /**
   * TLS (tls+tcp:// addresses): PEM bundle of the CAs the gateway's certificate must chain to
   * (only these, never the system's). Required with a tls+tcp:// address. The gateway's
   * certificate and name are always verified.
   */
  caFile?: string;
  /** TLS: PEM client certificate (the chain, leaf first), for a gateway that requires one (mTLS); with keyFile. */
  certFile?: string;
  /** TLS: the client certificate's PEM private key; with certFile. */
  keyFile?: string;
  /** TLS: the name the gateway's certificate must carry (DNS name or IP address). Default: each address's host. */
  serverName?: string;
}

export interface CallOptions {
  /** Budget of the whole call, retries included, ms. Undefined or 0: the client's default; < 0: already spent. */
  deadlineMs?: number;
  /** RpcRequest.metadata; keys lower-case [a-z0-9._-], starting with a letter or digit. */
  metadata?: Record<string, string>;
  /** RpcRequest.request_id, echoed by the gateway; default 16 random hex digits. */
  requestId?: string;
  /**
   * Sent in every attempt; required by createOrder. With it, a call that is not idempotent is
   * retried after the gateway's UNAVAILABLE, and after a lost or timed-out attempt only to a
   * gateway of the same fleet (its Health, asked first on each connection).
   */
  idempotencyKey?: string;
  /** Overrides the client's maxAttempts for this call. */
  maxAttempts?: number;
  /** Aborting it ends the call with CANCELLED / CLIENT_CANCELLED. */
  signal?: AbortSignal;
}

/** The outcome of a raw call, with its bookkeeping. */
export interface RawResult {
  /** The encoded response message. */
  payload: Uint8Array;
  attempts: number;
  requestId: string;
}

type Outcome =
  | { ok: true; payload: Uint8Array }
  | { ok: false; error: ShipgateError; neverSent?: boolean; final?: boolean };

/** What a connection's Health said about where its gateway keeps idempotency keys. */
interface FleetInfo {
  /** the Endpoint.connectionId it was learned on */
  conn: number;
  /** the fleet_id (scope "fleet"), or null: none (scope "node", not given, or Health failed) */
  fleet: string | null;
  /** how it was learned, for messages */
  why: string;
}

type ProbeResult = { ok: true; info: FleetInfo } | { ok: false; error: ShipgateError };

/** An attempt's outcome; a keyed one's with the fleet of the connection it went to, once known. */
type KeyedOutcome = Outcome & { fleet?: FleetInfo };

/** A keyed call's attempt that may have been sent and got no answer. */
interface Lost {
  url: string;
  fleet: FleetInfo | undefined;
  error: ShipgateError;
}

/** The transport failures after which a request that went out may have been acted on. */
const LOSSES = new Set<string>([ClientReason.TRANSPORT_CONNECTION_LOST, ClientReason.TRANSPORT_ERROR, ClientReason.TRANSPORT_TIMEOUT]);

interface ActiveCall {
  cancelled: string | undefined; // why, once cancelled
  interrupt: (() => void) | undefined; // ends the current wait
}

function now(): number {
  return performance.now();
}

/**
 * The full method name for "Track", "shipgate.v1.Shipgate.Track" or "/shipgate.v1.Shipgate/Track";
 * any other "/package.Service/Method" is passed through; undefined when malformed.
 */
export function resolveMethod(method: string): string | undefined {
  if (typeof method !== "string") return undefined;
  for (const m of Shipgate.methods) {
    const svc = m.parent.typeName;
    if (method === m.name || method === `${svc}.${m.name}` || method === `/${svc}/${m.name}`) return `/${svc}/${m.name}`;
  }
  return /^\/[^/\s]+\/[^/\s]+$/.test(method) ? method : undefined;
}

const METADATA_KEY = /^[a-z0-9][a-z0-9._-]*$/;

function optNumber(name: string, v: number | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  if (typeof v !== "number" || Number.isNaN(v) || v < min)
    throw new RangeError(`shipgate: ${name} must be a number >= ${min}, got ${String(v)}`);
  return Math.min(v, MAX_TIMER_MS);
}

export class Client {
  /** The addresses, as given. */
  readonly addresses: readonly string[];
  readonly defaultDeadlineMs: number;
  readonly maxReplySize: number;
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  readonly attemptTimeoutMs: number;
  readonly connectTimeoutMs: number;

  private readonly eps: Endpoint[];
  private rr = 0;
  /** per address: the fleet learned on its connection (valid while that connection is the current one) */
  private readonly fleets = new Map<Endpoint, FleetInfo>();
  /** per address: the Health in flight for its connection's fleet */
  private readonly probes = new Map<Endpoint, { conn: number; done: Promise<ProbeResult> }>();
  private readonly active = new Set<ActiveCall>();
  private closing: Promise<void> | undefined;

  constructor(opts: ClientOptions = {}) {
    let addrs = opts.addresses ?? [DEFAULT_ADDRESS];
    if (typeof addrs === "string") addrs = [addrs];
    if (!Array.isArray(addrs)) throw new TypeError("shipgate: addresses must be a string or an array of strings");
    if (addrs.length === 0) addrs = [DEFAULT_ADDRESS];
    const parsed = addrs.map(parseAddress); // throws TypeError on a bad one
    this.addresses = Object.freeze([...addrs]);
    const d = PolicyDefaults; // client_policy.json
    this.defaultDeadlineMs = optNumber("defaultDeadlineMs", opts.defaultDeadlineMs, d.deadlineMs, 1);
    const mrs = opts.maxReplySize ?? d.maxReplySize;
    if (!Number.isSafeInteger(mrs) || mrs < 1)
      throw new RangeError(`shipgate: maxReplySize must be an integer >= 1, got ${String(opts.maxReplySize)}`);
    this.maxReplySize = mrs;
    this.maxAttempts = Math.floor(optNumber("maxAttempts", opts.maxAttempts, d.maxAttempts, 1));
    this.backoffBaseMs = optNumber("backoffBaseMs", opts.backoffBaseMs, d.backoffBaseMs, 0);
    this.backoffCapMs = Math.max(optNumber("backoffCapMs", opts.backoffCapMs, d.backoffCapMs, 0), this.backoffBaseMs);
    this.attemptTimeoutMs = optNumber("attemptTimeoutMs", opts.attemptTimeoutMs, d.attemptTimeoutMs, 0);
    this.connectTimeoutMs = optNumber("connectTimeoutMs", opts.connectTimeoutMs, d.connectTimeoutMs, 1);
    const reconnectMinMs = optNumber("reconnectMinMs", opts.reconnectMinMs, d.reconnectMinMs, 1);
    const reconnectMaxMs = Math.max(optNumber("reconnectMaxMs", opts.reconnectMaxMs, d.reconnectMaxMs, 1), reconnectMinMs);
    // throws TypeError (a tls+tcp:// address without caFile, a certificate without its key), or
    // Error (a file that does not load)
    const tls = loadTls(opts, parsed);
    this.eps = parsed.map(
      (a) =>
        new Endpoint(a, {
          maxReplySize: this.maxReplySize,
          reconnectMinMs,
          reconnectMaxMs,
          handshakeTimeoutMs: this.connectTimeoutMs,
          tls,
        }),
    );
    for (const ep of this.eps) ep.start();
  }

  /** How many addresses have a live connection now. */
  get connected(): number {
    return this.eps.filter((e) => e.up).length;
  }

  /**
   * Per-address state, for diagnostics. `fleet` is what the current connection's Health said
   * (asked before a keyed call): the fleet_id, null for none, undefined when not asked yet.
   */
  stats(): {
    url: string;
    state: string;
    inFlight: number;
    connections: number;
    unknownReplies: number;
    lastError?: string;
    fleet?: string | null;
  }[] {
    return this.eps.map((e) => {
      const f = this.fleets.get(e);
      return {
        url: e.url,
        state: e.state,
        inFlight: e.inFlight,
        connections: e.connections,
        unknownReplies: e.unknownReplies,
        lastError: e.lastError,
        fleet: f !== undefined && e.connectionId !== 0 && f.conn === e.connectionId ? f.fleet : undefined,
      };
    });
  }

  // ---------------------------------------------------------------- typed calls

  /** Track: the tracking of an order or waybill. Idempotent: retried on UNAVAILABLE. */
  track(req: MessageInitShape<typeof TrackRequestSchema>, opts?: CallOptions): Promise<TrackResponse> {
    return this.unary(Method.Track, TrackRequestSchema, TrackResponseSchema, req, opts);
  }

  /** GetOrder: the full order (Biteship). Idempotent. */
  getOrder(req: MessageInitShape<typeof GetOrderRequestSchema>, opts?: CallOptions): Promise<GetOrderResponse> {
    return this.unary(Method.GetOrder, GetOrderRequestSchema, GetOrderResponseSchema, req, opts);
  }

  /**
   * CreateOrder (bosOnline checkout). opts.idempotencyKey is required: the gateway turns
   * every call with one key into at most one order. The call is retried when nothing was sent
   * or the gateway answered UNAVAILABLE; once the request went out, a broken connection or a
   * timeout fails it with UNKNOWN / OUTCOME_UNKNOWN (check with the provider before trying
   * again), unless its gateway is of a fleet (Health, asked first on each connection): then it
   * is retried on a gateway of the same fleet, which replays the first one's outcome.
   */
  createOrder(
    req: MessageInitShape<typeof CreateOrderRequestSchema>,
    opts: CallOptions & { idempotencyKey: string },
  ): Promise<CreateOrderResponse> {
    if (!opts || typeof opts.idempotencyKey !== "string" || opts.idempotencyKey === "") {
      return Promise.reject(
        new ShipgateError({
          code: Code.INVALID_ARGUMENT,
          reason: ClientReason.CLIENT_INVALID_ARGUMENT,
          message: "createOrder needs opts.idempotencyKey (1-255 printable ASCII): a retry with the same key never creates a second order",
          local: true,
          requestId: opts?.requestId,
          method: Method.CreateOrder,
        }),
      );
    }
    return this.unary(Method.CreateOrder, CreateOrderRequestSchema, CreateOrderResponseSchema, req, opts);
  }

  /** Health of the gateway. Idempotent. */
  health(req: MessageInitShape<typeof HealthRequestSchema> = {}, opts?: CallOptions): Promise<HealthResponse> {
    return this.unary(Method.Health, HealthRequestSchema, HealthResponseSchema, req, opts);
  }

  /**
   * Any method, with the payloads as bytes: `payload` is the encoded request message, the
   * result the encoded response message. `method` is "Track", "shipgate.v1.Shipgate.Track",
   * "/shipgate.v1.Shipgate/Track", or any other "/package.Service/Method" (passed through, and
   * retried like CreateOrder).
   */
  async call(method: string, payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array> {
    return (await this.callRaw(method, payload, opts)).payload;
  }

  /** call() with the attempts made and the request id used. */
  callRaw(method: string, payload: Uint8Array, opts?: CallOptions): Promise<RawResult> {
    return this.invoke(method, payload, opts ?? {});
  }

  /**
   * Cancels every call in flight (CANCELLED / CLIENT_CANCELLED) and closes the connections.
   * Calls made afterwards fail the same way. Resolves when the sockets are closed.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    for (const c of this.active) this.cancel(c, "client closed");
    this.closing = Promise.all(this.eps.map((e) => e.close())).then(() => undefined);
    return this.closing;
  }

  // ---------------------------------------------------------------- the call

  private async unary<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    req: MessageInitShape<I>,
    opts: CallOptions | undefined,
  ): Promise<MessageShape<O>> {
    let payload: Uint8Array;
    try {
      payload = toBinary(input, create(input, req ?? ({} as MessageInitShape<I>)));
    } catch (e) {
      throw new ShipgateError({
        code: Code.INVALID_ARGUMENT,
        reason: ClientReason.CLIENT_INVALID_ARGUMENT,
        message: `request is not a valid ${input.typeName}: ${(e as Error).message}`,
        local: true,
        requestId: opts?.requestId,
        method,
      });
    }
    const r = await this.invoke(method, payload, opts ?? {});
    try {
      return fromBinary(output, r.payload);
    } catch (e) {
      throw new ShipgateError({
        code: Code.INTERNAL,
        reason: ClientReason.CLIENT_BAD_REPLY,
        message: `reply payload is not a ${output.typeName}: ${(e as Error).message}`,
        local: true,
        attempts: r.attempts,
        requestId: r.requestId,
        method,
      });
    }
  }

  private async invoke(method: string, payload: Uint8Array, opts: CallOptions): Promise<RawResult> {
    const start = now();
    const requestId = opts.requestId || randomBytes(8).toString("hex");
    const full = resolveMethod(method);
    let attempts = 0;
    const fail = (e: ShipgateError) => e.withCall(attempts, requestId, full ?? method);
    const invalid = (msg: string) =>
      fail(ShipgateError.local(Code.INVALID_ARGUMENT, ClientReason.CLIENT_INVALID_ARGUMENT, false, msg));

    if (full === undefined) throw invalid(`unknown method "${String(method).slice(0, 100)}"`);
    if (!(payload instanceof Uint8Array)) throw invalid("payload must be a Uint8Array (the encoded request message)");
    if (typeof requestId !== "string") throw invalid("requestId must be a string");
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.metadata ?? {})) {
      if (!METADATA_KEY.test(k)) throw invalid(`metadata key "${k.slice(0, 60)}" is not lower-case [a-z0-9._-]`);
      if (typeof v !== "string") throw invalid(`metadata value of "${k}" is not a string`);
      metadata[k] = v;
    }
    const key = opts.idempotencyKey ?? "";
    if (typeof key !== "string") throw invalid("idempotencyKey must be a string");
    let maxAttempts = this.maxAttempts;
    if (opts.maxAttempts !== undefined) {
      if (typeof opts.maxAttempts !== "number" || !(opts.maxAttempts >= 1)) throw invalid("maxAttempts must be >= 1");
      maxAttempts = Math.floor(opts.maxAttempts);
    }
    let budget = opts.deadlineMs ?? 0;
    if (typeof budget !== "number" || Number.isNaN(budget)) throw invalid("deadlineMs must be a number");
    if (budget === 0) budget = this.defaultDeadlineMs;
    budget = Math.min(budget, MAX_TIMER_MS);
    const deadline = start + budget;
    const kind: CallKind = IDEMPOTENT.has(full) ? "idempotent" : key !== "" ? "keyed" : "other";

    // A keyed call's failover (client_policy.json, fleet): `lost` is its first attempt that may
    // have been sent and got no answer; once that one is retried (its gateway was of a fleet),
    // every next attempt must reach `required`, that same fleet. After `lost`, a final failure
    // that does not settle the call is reported as UNKNOWN / OUTCOME_UNKNOWN.
    let lost: Lost | undefined;
    let required: { url: string; fleet: string } | undefined;
    let lastUrl = "";
    const settle = (e: ShipgateError): ShipgateError =>
      lost !== undefined && unsettled(e.local, e.code) && !(e.local && e.reason === ClientReason.OUTCOME_UNKNOWN)
        ? unsettledOutcome(full, lost, lastUrl, e)
        : e;

    const env = create(RpcRequestSchema, { method: full, requestId, metadata, idempotencyKey: key, payload });
    const call: ActiveCall = { cancelled: undefined, interrupt: undefined };
    if (this.closing) call.cancelled = "client closed";
    const signal = opts.signal;
    const onAbort = () => this.cancel(call, "call aborted");
    if (signal?.aborted) call.cancelled = "call aborted";
    signal?.addEventListener("abort", onAbort);
    this.active.add(call);
    try {
      for (;;) {
        if (call.cancelled !== undefined) throw fail(settle(cancelledError(call.cancelled)));
        const t = now();
        const remaining = deadline - t;
        if (remaining < 1) {
          throw fail(
            settle(
              attempts === 0
                ? ShipgateError.local(
                    Code.DEADLINE_EXCEEDED,
                    ClientReason.CLIENT_DEADLINE_EXPIRED,
                    false,
                    "deadline expired before the request was sent",
                  )
                : ShipgateError.local(
                    Code.DEADLINE_EXCEEDED,
                    ClientReason.TRANSPORT_TIMEOUT,
                    false,
                    `deadline expired after ${attempts} attempts`,
                  ),
            ),
          );
        }
        const ep = this.pick();
        attempts++;
        lastUrl = ep.url;
        const attemptEnd = t + (this.attemptTimeoutMs > 0 ? Math.min(remaining, this.attemptTimeoutMs) : remaining);
        const out: KeyedOutcome =
          kind === "keyed"
            ? await this.keyedAttempt(call, ep, env, deadline, attemptEnd, full, required, lost)
            : await this.attempt(call, ep, env, deadline, attemptEnd);
        if (out.ok) return { payload: out.payload, attempts, requestId };
        const err = out.error;
        if (call.cancelled !== undefined) throw fail(settle(cancelledError(call.cancelled)));
        if (out.final) throw fail(settle(err));
        const sent = out.neverSent !== true;
        // the fleet condition: this attempt went to a connection whose fleet was known, and not none
        const inFleet = out.fleet !== undefined && out.fleet.fleet !== null;
        if (kind === "keyed" && sent && err.local && LOSSES.has(err.reason ?? "") && lost === undefined)
          lost = { url: ep.url, fleet: out.fleet, error: err };
        const decision = decide(kind, sent, err.local, err.code, err.reason, inFleet);
        if (decision === "outcome_unknown")
          throw fail(outcomeUnknown(full, err, out.fleet && `${ep.url} is in no fleet (${out.fleet.why}): no other gateway knows its keys`));
        if (required === undefined && lost?.fleet?.fleet != null) required = { url: lost.url, fleet: lost.fleet.fleet };
        if (decision !== "retry" || attempts >= maxAttempts) throw fail(settle(err));
        let delay = this.backoff(attempts);
        if (err.retryAfterMs > delay) delay = err.retryAfterMs;
        if (delay >= deadline - now()) throw fail(settle(err)); // no budget for another attempt
        await this.sleep(call, delay);
      }
    } finally {
      this.active.delete(call);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** One attempt on ep: wait for its connection, send, wait for the reply. Never rejects. */
  private async attempt(call: ActiveCall, ep: Endpoint, env: RpcRequest, deadline: number, attemptEnd: number): Promise<Outcome> {
    const down = await this.connect(call, ep, deadline, attemptEnd);
    return down ?? this.exchange(call, ep, env, deadline, attemptEnd);
  }

  /**
   * One attempt of a keyed call on ep: wait for its connection, learn that connection's fleet
   * (Health, once per connection), then send and wait for the reply, all within attemptEnd.
   * With `required`, an address of another fleet (or of none) ends the call without sending.
   * Never rejects.
   */
  private async keyedAttempt(
    call: ActiveCall,
    ep: Endpoint,
    env: RpcRequest,
    deadline: number,
    attemptEnd: number,
    method: string,
    required: { url: string; fleet: string } | undefined,
    lost: Lost | undefined,
  ): Promise<KeyedOutcome> {
    for (;;) {
      const down = await this.connect(call, ep, deadline, attemptEnd);
      if (down !== undefined) return down;
      const conn = ep.connectionId;
      const r = await this.fleetOf(call, ep, conn, deadline, attemptEnd, env.requestId);
      if (!r.ok) return { ok: false, neverSent: true, error: r.error }; // the keyed request was not sent
      if (ep.connectionId !== conn) continue; // replaced meanwhile: ask the new connection
      const info = r.info;
      if (required !== undefined && info.fleet !== required.fleet)
        return { ok: false, final: true, fleet: info, error: fleetMismatch(method, required, lost, ep.url, info) };
      if (Math.floor(attemptEnd - now()) < 1)
        return {
          ok: false,
          neverSent: true,
          fleet: info,
          error: ShipgateError.local(
            Code.DEADLINE_EXCEEDED,
            ClientReason.TRANSPORT_TIMEOUT,
            false,
            `the attempt's budget was spent asking ${ep.url} for its fleet (Health); ${method} was not sent`,
          ),
        };
      return { ...(await this.exchange(call, ep, env, deadline, attemptEnd)), fleet: info };
    }
  }

  /**
   * The fleet of ep's connection conn (up now): known, or learned from its Health. Concurrent
   * keyed calls on one connection share one Health request. A Health that fails in transport
   * (or is not answered within attemptEnd) is the failure returned; any answer gives a fleet
   * (none for an error status or a reply that does not decode). Never rejects.
   */
  private async fleetOf(
    call: ActiveCall,
    ep: Endpoint,
    conn: number,
    deadline: number,
    attemptEnd: number,
    requestId: string,
  ): Promise<ProbeResult> {
    for (;;) {
      const known = this.fleets.get(ep);
      if (known !== undefined && known.conn === conn) return { ok: true, info: known };
      let p = this.probes.get(ep);
      const mine = p === undefined || p.conn !== conn;
      if (p === undefined || mine) {
        const entry = { conn, done: this.probe(ep, conn, deadline, attemptEnd, requestId) };
        this.probes.set(ep, entry);
        void entry.done.then((res) => {
          if (this.probes.get(ep) === entry) this.probes.delete(ep);
          if (res.ok && (this.fleets.get(ep)?.conn ?? 0) <= conn) this.fleets.set(ep, res.info);
        });
        p = entry;
      }
      const r = await this.within(call, p.done, attemptEnd);
      if (r === undefined) {
        if (call.cancelled !== undefined) return { ok: false, error: cancelledError(call.cancelled) };
        return {
          ok: false,
          error: ShipgateError.local(
            Code.DEADLINE_EXCEEDED,
            ClientReason.TRANSPORT_TIMEOUT,
            false,
            `no answer from ${ep.url} to Health (asked for its fleet before a keyed call) within the attempt's budget`,
          ),
        };
      }
      // another call's Health failed within that call's budget: ask again while this one has time
      if (r.ok || mine || ep.connectionId !== conn || attemptEnd - now() < 1) return r;
    }
  }

  /** Health on ep's current connection conn, for its fleet, within attemptEnd. Never rejects. */
  private async probe(ep: Endpoint, conn: number, deadline: number, attemptEnd: number, requestId: string): Promise<ProbeResult> {
    const env = create(RpcRequestSchema, { method: Method.Health, requestId: `${requestId}.fleet`, payload: new Uint8Array(0) });
    const out = await this.exchange(undefined, ep, env, deadline, attemptEnd);
    const none = (why: string): ProbeResult => ({ ok: true, info: { conn, fleet: null, why } });
    if (out.ok) {
      let h: HealthResponse;
      try {
        h = fromBinary(HealthResponseSchema, out.payload);
      } catch (e) {
        return none(`its Health reply does not decode: ${(e as Error).message}`);
      }
      if (h.idempotencyScope === "fleet" && h.fleetId !== "")
        return { ok: true, info: { conn, fleet: h.fleetId, why: `idempotency scope "fleet", fleet_id "${h.fleetId}"` } };
      return none(h.idempotencyScope === "" ? "its Health names no idempotency scope" : `idempotency scope "${h.idempotencyScope}"`);
    }
    const e = out.error;
    if (out.final || !e.local) return none(`its Health answered ${e.codeName}${e.reason ? ` / ${e.reason}` : ""}`);
    return {
      ok: false,
      error: ShipgateError.local(
        e.code,
        e.reason ?? ClientReason.TRANSPORT_ERROR,
        e.retryable,
        `Health (asked for its fleet before a keyed call): ${e.message}`,
      ),
    };
  }

  /** p's value, or undefined once the call is cancelled or `until` passes first. */
  private within<T>(call: ActiveCall, p: Promise<T>, until: number): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve) => {
      if (call.cancelled !== undefined) return resolve(undefined);
      let done = false;
      let timer: NodeJS.Timeout | undefined = undefined;
      const finish = (v: T | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        call.interrupt = undefined;
        resolve(v);
      };
      // not before the Health's own timer (floor of the same wait, set earlier): a call's own
      // Health reports its own timeout
      timer = setTimeout(() => finish(undefined), Math.max(0, Math.ceil(until - now())));
      call.interrupt = () => finish(undefined);
      void p.then(finish);
    });
  }

  /** Waits (at most connectTimeoutMs, within attemptEnd) until ep is up: undefined then, else the failure. Never rejects. */
  private connect(call: ActiveCall, ep: Endpoint, deadline: number, attemptEnd: number): Promise<Outcome | undefined> {
    return new Promise<Outcome | undefined>((resolve) => {
      if (call.cancelled !== undefined) return resolve({ ok: false, error: cancelledError(call.cancelled), neverSent: true });
      if (ep.state === "closed") return resolve({ ok: false, error: cancelledError("client closed"), neverSent: true });
      if (ep.up) return resolve(undefined);
      ep.start();
      let done = false;
      let timer: NodeJS.Timeout | undefined = undefined;
      let unwait: (() => void) | undefined = undefined;
      const finish = (o: Outcome | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unwait?.();
        call.interrupt = undefined;
        resolve(o);
      };
      call.interrupt = () => finish({ ok: false, error: cancelledError(call.cancelled ?? "cancelled"), neverSent: true });
      const wait = Math.max(0, Math.min(this.connectTimeoutMs, attemptEnd - now()));
      timer = setTimeout(() => finish(this.notConnected(ep, deadline)), Math.ceil(wait));
      unwait = ep.waitUp(() => {
        unwait = undefined;
        if (ep.state === "closed") finish({ ok: false, error: cancelledError("client closed"), neverSent: true });
        else if (ep.up) finish(undefined);
        else finish(this.notConnected(ep, deadline));
      });
    });
  }

  /**
   * Sends env on ep's connection (up now) and waits for its reply until attemptEnd. Without a
   * call (a Health for the fleet, shared), nothing cancels it but its timer (unref'd) and the
   * connection. Never rejects.
   */
  private exchange(call: ActiveCall | undefined, ep: Endpoint, env: RpcRequest, deadline: number, attemptEnd: number): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let id = -1; // the request id while a reply is awaited
      let sent = false;
      const finish = (o: Outcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (id !== -1) ep.forget(id);
        if (call !== undefined) call.interrupt = undefined;
        resolve(o);
      };
      if (call?.cancelled !== undefined) return finish({ ok: false, error: cancelledError(call.cancelled), neverSent: true });
      if (ep.state === "closed") return finish({ ok: false, error: cancelledError("client closed"), neverSent: true });
      const left = Math.floor(attemptEnd - now());
      if (left < 1) return finish(this.notConnected(ep, deadline)); // the wait for a connection used the budget up
      if (call !== undefined)
        call.interrupt = () => finish({ ok: false, error: cancelledError(call.cancelled ?? "cancelled"), neverSent: !sent });
      // a little less than this attempt waits, so that the gateway's own answer comes first
      env.deadlineMs = BigInt(sentDeadlineMs(left));
      try {
        const bytes = toBinary(RpcRequestSchema, env);
        id = ep.send(bytes, {
          onReply: (body) => {
            id = -1;
            finish(decodeReply(body, env.requestId, ep.url));
          },
          onLoss: (loss) => {
            id = -1;
            finish(lossOutcome(loss));
          },
        });
      } catch (e) {
        return finish({
          ok: false,
          neverSent: true,
          error: ShipgateError.local(Code.UNAVAILABLE, ClientReason.TRANSPORT_ERROR, true, `sending to ${ep.url}: ${(e as Error).message}`),
        });
      }
      sent = true;
      timer = setTimeout(() => {
        finish({
          ok: false,
          error: ShipgateError.local(
            Code.DEADLINE_EXCEEDED,
            ClientReason.TRANSPORT_TIMEOUT,
            false,
            `no reply from ${ep.url} within ${left} ms`,
          ),
        });
      }, left);
      if (call === undefined) timer.unref();
    });
  }

  /** TRANSPORT_NOT_CONNECTED: UNAVAILABLE, or DEADLINE_EXCEEDED when the call's budget is spent. */
  private notConnected(ep: Endpoint, deadline: number): Outcome {
    const why = ep.lastError ? ` (last error: ${ep.lastError})` : "";
    return deadline - now() < 1
      ? {
          ok: false,
          neverSent: true,
          error: ShipgateError.local(
            Code.DEADLINE_EXCEEDED,
            ClientReason.TRANSPORT_NOT_CONNECTED,
            false,
            `no connection to ${ep.url} within the deadline${why}`,
          ),
        }
      : {
          ok: false,
          neverSent: true,
          error: ShipgateError.local(
            Code.UNAVAILABLE,
            ClientReason.TRANSPORT_NOT_CONNECTED,
            true,
            `no connection to ${ep.url} within ${this.connectTimeoutMs} ms${why}`,
          ),
        };
  }

  private sleep(call: ActiveCall, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        call.interrupt = undefined;
        resolve();
      };
      const t = setTimeout(done, Math.ceil(ms));
      call.interrupt = done;
    });
  }

  private cancel(call: ActiveCall, why: string): void {
    if (call.cancelled === undefined) call.cancelled = why;
    call.interrupt?.();
  }

  /** Backoff before retry number n (1-based): exponential, capped, jittered to [d/2, d]. */
  private backoff(n: number): number {
    let d = this.backoffBaseMs;
    for (let i = 1; i < n && d < this.backoffCapMs; i++) d *= 2;
    d = Math.min(d, this.backoffCapMs);
    return d / 2 + Math.random() * (d / 2);
  }

  /** Round robin over the addresses, preferring connected ones. */
  private pick(): Endpoint {
    const n = this.eps.length;
    for (let k = 0; k < n; k++) {
      const i = (this.rr + k) % n;
      if (this.eps[i].up) {
        this.rr = (i + 1) % n;
        return this.eps[i];
      }
    }
    const i = this.rr % n;
    this.rr = (i + 1) % n;
    return this.eps[i];
  }
}

const CHECK = "check with the provider before trying again";

/** What replaces a transport failure after a call that is not idempotent went out. */
function outcomeUnknown(method: string, err: ShipgateError, why?: string): ShipgateError {
  return ShipgateError.local(
    Code.UNKNOWN,
    ClientReason.OUTCOME_UNKNOWN,
    false,
    `${method} went out and no answer came back: ${err.message} (${err.reason}); ${why ? `${why}; ` : ""}` +
      `the gateway may have acted on it, so it is not retried (${CHECK})`,
  );
}

function status(e: ShipgateError): string {
  return `${e.codeName}${e.reason ? ` / ${e.reason}` : ""}: ${e.message}`;
}

/** A keyed call that failed over may not go to url, whose connection is of another fleet (or none). */
function fleetMismatch(method: string, required: { url: string; fleet: string }, lost: Lost | undefined, url: string, info: FleetInfo): ShipgateError {
  const there = info.fleet !== null ? `is in fleet "${info.fleet}"` : `is in no fleet (${info.why})`;
  return ShipgateError.local(
    Code.UNKNOWN,
    ClientReason.OUTCOME_UNKNOWN,
    false,
    `${method} went out to ${lost?.url ?? required.url} (fleet "${required.fleet}") and no answer came back` +
      `${lost ? ` (${status(lost.error)})` : ""}; the next address, ${url}, ${there}, not fleet "${required.fleet}", ` +
      `so it was not sent there: the first gateway may have acted on it (${CHECK})`,
  );
}

/** The final failure of a keyed call after an attempt that may have been sent: its outcome is not settled. */
function unsettledOutcome(method: string, lost: Lost, lastUrl: string, err: ShipgateError): ShipgateError {
  const fleet = lost.fleet?.fleet != null ? ` (fleet "${lost.fleet.fleet}")` : "";
  const last = err === lost.error ? "no attempt (or budget) was left to try again" : `the last attempt, on ${lastUrl}, ended ${status(err)}`;
  return ShipgateError.local(
    Code.UNKNOWN,
    ClientReason.OUTCOME_UNKNOWN,
    false,
    `${method} went out to ${lost.url}${fleet} and no answer came back (${status(lost.error)}); ` +
      `${last}; nothing settled the call, so its outcome is unknown: a gateway may have acted on it (${CHECK})`,
  );
}

function cancelledError(why: string): ShipgateError {
  return ShipgateError.local(Code.CANCELLED, ClientReason.CLIENT_CANCELLED, false, `call cancelled by the client (${why})`);
}

function lossOutcome(loss: Loss): Outcome {
  switch (loss.kind) {
    case "too-large":
      return {
        ok: false,
        error: ShipgateError.local(Code.RESOURCE_EXHAUSTED, ClientReason.TRANSPORT_REPLY_TOO_LARGE, false, loss.message),
      };
    case "closed":
      return { ok: false, error: cancelledError("client closed") };
    default:
      return {
        ok: false,
        error: ShipgateError.local(Code.UNAVAILABLE, ClientReason.TRANSPORT_CONNECTION_LOST, true, loss.message),
      };
  }
}

/** The reply envelope's outcome; an unusable envelope is final (not retried). */
function decodeReply(body: Uint8Array, requestId: string, url: string): Outcome {
  const bad = (msg: string): Outcome => ({
    ok: false,
    final: true,
    error: ShipgateError.local(Code.INTERNAL, ClientReason.CLIENT_BAD_REPLY, false, msg),
  });
  let rep;
  try {
    rep = fromBinary(RpcReplySchema, body);
  } catch (e) {
    return bad(`reply from ${url} is not a shipgate.v1.RpcReply: ${(e as Error).message}`);
  }
  if (rep.status === undefined) return bad(`reply from ${url} carries no status`);
  if (rep.requestId !== "" && rep.requestId !== requestId)
    return bad(`reply from ${url} answers request ${rep.requestId.slice(0, 64)}, not ${requestId}`);
  if (rep.status.code === Code.OK) return { ok: true, payload: rep.payload };
  return { ok: false, error: ShipgateError.fromStatus(rep.status) };
}
