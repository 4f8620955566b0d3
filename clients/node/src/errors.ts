// The outcome of a failed call: ShipgateError, holding the gateway's Status/ErrorDetail or a
// status the client made itself (local = true).

import { LocalReason } from "./gen/policy.js";
import { Code, type Status } from "./gen/shipgate/v1/rpc_pb.js";

export { Code };

/**
 * Reasons of failures made by the client itself (ShipgateError.local is true for these):
 * generated from proto/shipgate/v1/client_policy.json, like every client's.
 */
export const ClientReason = LocalReason;

/** The name of a gRPC code ("OK", "UNAVAILABLE", ...); "UNKNOWN_CODE" outside 0..16. */
export function codeName(code: number): string {
  const n = (Code as unknown as Record<number, string>)[code];
  return typeof n === "string" ? n : "UNKNOWN_CODE";
}

/** One entry of ErrorDetail.field_violations. */
export interface Violation {
  /** dotted path, e.g. "order_id" or "receiver.phone" */
  field: string;
  description: string;
}

/** What a ShipgateError is built from. */
export interface ShipgateErrorInit {
  code: number;
  message?: string;
  reason?: string;
  retryable?: boolean;
  upstreamHttpStatus?: number;
  provider?: string;
  providerCode?: string;
  providerMessage?: string;
  violations?: Violation[];
  retryAfterMs?: number;
  attempts?: number;
  local?: boolean;
  requestId?: string;
  method?: string;
}

/**
 * A failed call. `code` is the gRPC number (`Code.NOT_FOUND` = 5), `codeName` its name;
 * `reason` is the stable identifier to branch on (the gateway's ErrorDetail.reason, or one of
 * ClientReason when `local`). Absent strings are undefined.
 */
export class ShipgateError extends Error {
  override name = "ShipgateError";
  /** gRPC status code number (Code enum). */
  readonly code: number;
  /** The code's name: "NOT_FOUND", "UNAVAILABLE", ... */
  readonly codeName: string;
  /** Stable upper-case reason, e.g. "UPSTREAM_NOT_FOUND" or "TRANSPORT_TIMEOUT". */
  readonly reason: string | undefined;
  /** The same call may succeed if retried later (with the same idempotency key). */
  readonly retryable: boolean;
  /** The provider's HTTP status, 0 when it did not answer. */
  readonly upstreamHttpStatus: number;
  /** Lower-case provider name ("boscod", ...). */
  readonly provider: string | undefined;
  /** The provider's own error code and message, verbatim. */
  readonly providerCode: string | undefined;
  readonly providerMessage: string | undefined;
  /** Per-field problems. */
  readonly violations: Violation[];
  /** Wait this long before retrying, 0 if unknown. */
  readonly retryAfterMs: number;
  /** Attempts sent or tried; 0 when the call failed before any. */
  readonly attempts: number;
  /** True when the client made this status (transport, deadline, arguments), false for the gateway's. */
  readonly local: boolean;
  /** The RpcRequest.request_id used. */
  readonly requestId: string | undefined;
  /** The full method name called. */
  readonly method: string | undefined;

  constructor(init: ShipgateErrorInit) {
    super(init.message || codeName(init.code));
    this.code = init.code;
    this.codeName = codeName(init.code);
    this.reason = init.reason || undefined;
    this.retryable = init.retryable ?? false;
    this.upstreamHttpStatus = init.upstreamHttpStatus ?? 0;
    this.provider = init.provider || undefined;
    this.providerCode = init.providerCode || undefined;
    this.providerMessage = init.providerMessage || undefined;
    this.violations = init.violations ?? [];
    this.retryAfterMs = init.retryAfterMs ?? 0;
    this.attempts = init.attempts ?? 0;
    this.local = init.local ?? false;
    this.requestId = init.requestId || undefined;
    this.method = init.method || undefined;
  }

  /** The same error with call bookkeeping (attempts, request id, method) filled in. */
  withCall(attempts: number, requestId: string, method: string | undefined): ShipgateError {
    return new ShipgateError({ ...this.toInit(), attempts, requestId, method });
  }

  /** The gateway's wire Status as an error (local = false). */
  static fromStatus(st: Status): ShipgateError {
    const d = st.detail;
    return new ShipgateError({
      code: st.code,
      message: st.message,
      reason: d?.reason,
      retryable: d?.retryable ?? false,
      upstreamHttpStatus: d?.upstreamHttpStatus ?? 0,
      provider: d?.provider,
      providerCode: d?.providerCode,
      providerMessage: d?.providerMessage,
      violations: (d?.fieldViolations ?? []).map((v) => ({ field: v.field, description: v.description })),
      retryAfterMs: d ? Number(d.retryAfterMs) : 0,
      local: false,
    });
  }

  /** A status made by the client. */
  static local(code: Code, reason: string, retryable: boolean, message: string): ShipgateError {
    return new ShipgateError({ code, reason, retryable, message, local: true });
  }

  private toInit(): ShipgateErrorInit {
    return {
      code: this.code,
      message: this.message,
      reason: this.reason,
      retryable: this.retryable,
      upstreamHttpStatus: this.upstreamHttpStatus,
      provider: this.provider,
      providerCode: this.providerCode,
      providerMessage: this.providerMessage,
      violations: this.violations,
      retryAfterMs: this.retryAfterMs,
      attempts: this.attempts,
      local: this.local,
      requestId: this.requestId,
      method: this.method,
    };
  }

  /** A plain object for logs and JSON. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, codeName: this.codeName, ...this.toInit() };
  }
}
