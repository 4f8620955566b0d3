// Compiled (never run) by test/types.test.js: the published types as a TypeScript user sees
// them, imported by package name. A type error here fails the test.
import {
  Client,
  Code,
  Method,
  Provider,
  ShipgateError,
  TrackingStatus,
  create,
  TrackRequestSchema,
  type CallOptions,
  type CreateOrderResponse,
  type HealthResponse,
  type TrackResponse,
  type Violation,
} from "@shipgate/client";

export async function example(): Promise<void> {
  const client = new Client({ addresses: ["tcp://127.0.0.1:7400"], defaultDeadlineMs: 2000, maxAttempts: 3 });
  const opts: CallOptions = { deadlineMs: 1500, metadata: { caller: "types" }, requestId: "r-1" };
  const t: TrackResponse = await client.track({ provider: Provider.BOSCOD, orderId: "BOS123" }, opts);
  const done: boolean = t.tracking?.status === TrackingStatus.DELIVERED;
  const last: bigint | undefined = t.tracking?.lastUpdateUnix;
  const rawCode: string | undefined = t.tracking?.events[0]?.rawCode; // a StringValue, unboxed
  const msg = create(TrackRequestSchema, { provider: Provider.FUUFFY, trackingNumber: "SF1" });
  await client.track(msg);
  const h: HealthResponse = await client.health();
  const o = await client.getOrder({ provider: Provider.BITESHIP, orderId: "x" });
  const price: number | undefined = o.order?.price; // a DoubleValue, unboxed
  const c: CreateOrderResponse = await client.createOrder({ provider: Provider.BOSONLINE, formId: "f" }, { idempotencyKey: "k" });
  // @ts-expect-error: createOrder needs the idempotency key
  await client.createOrder({ formId: "f" }, {});
  const bytes: Uint8Array = await client.call(Method.Health, new Uint8Array(0), { signal: new AbortController().signal });
  try {
    await client.health();
  } catch (e) {
    if (e instanceof ShipgateError) {
      const code: number = e.code;
      const name: string = e.codeName;
      const reason: string | undefined = e.reason;
      const v: Violation[] = e.violations;
      const n: number = e.attempts + e.retryAfterMs + e.upstreamHttpStatus;
      const local: boolean = e.local && e.retryable && code === Code.UNAVAILABLE;
      void [name, reason, v, n, local];
    }
  }
  const connected: number = client.connected;
  await client.close();
  const secure = new Client({
    addresses: "tls+tcp://gw.example:7443",
    caFile: "ca.pem",
    certFile: "client.pem",
    keyFile: "client.key",
    serverName: "gw.example",
  });
  // @ts-expect-error: caFile is a path
  new Client({ addresses: "tls+tcp://gw.example:7443", caFile: 7 });
  await secure.close();
  void [done, last, rawCode, h, price, c, bytes, connected];
}
