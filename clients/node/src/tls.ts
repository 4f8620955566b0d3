// TLS to gateways: tls+tcp:// addresses. nng's tls+tcp transport is plain TLS over TCP
// carrying the same SP bytes as tcp:// (connection header, then length-prefixed frames), so the
// endpoint runs its usual framing over a tls.TLSSocket. The rules are the C client's
// (shipgate_tls_opts in include/shipgate/client.h): a tls+tcp:// address needs a CA, the
// gateway's certificate and name are always verified, a client certificate is optional (its
// certificate and key together).

import * as fs from "node:fs";
import { isIP } from "node:net";
import * as tls from "node:tls";
import { X509Certificate } from "node:crypto";

import type { Address } from "./address.js";

/** The TLS options of a client (ClientOptions carries them). */
export interface TlsOptions {
  /** PEM bundle of the CA certificates the gateway's certificate must chain to; required for tls+tcp:// addresses. */
  caFile?: string;
  /** PEM client certificate (the chain, leaf first), for a gateway that requires one (mTLS); with keyFile. */
  certFile?: string;
  /** Its PEM private key; with certFile. */
  keyFile?: string;
  /** The name the gateway's certificate must carry (a DNS name or an IP address). Default: each address's host. */
  serverName?: string;
}

/** What every tls+tcp:// endpoint of a client dials with. */
export interface TlsSettings {
  context: tls.SecureContext;
  serverName: string | undefined;
}

/** The gateway side (nng 1.5 with mbedTLS 2.28) speaks TLS 1.2 only. */
const MIN_VERSION = "TLSv1.2";

function read(name: string, file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`shipgate: ${name} "${file}": ${(e as Error).message}`, { cause: e });
  }
}

function optString(name: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v === "") throw new TypeError(`shipgate: ${name} must be a non-empty string`);
  return v;
}

/**
 * Loads the TLS options into the context every tls+tcp:// endpoint dials with, or returns
 * undefined when there is neither a tls+tcp:// address nor a TLS option. Throws TypeError when
 * a tls+tcp:// address has no caFile, or a certificate comes without its key (or a key without
 * its certificate); Error when a file does not load (unreadable, no certificate in caFile, a
 * key that is not the certificate's).
 */
export function loadTls(opts: TlsOptions, addresses: readonly Address[]): TlsSettings | undefined {
  const caFile = optString("caFile", opts.caFile);
  const certFile = optString("certFile", opts.certFile);
  const keyFile = optString("keyFile", opts.keyFile);
  const serverName = optString("serverName", opts.serverName);
  const needed = addresses.find((a) => a.kind === "tcp" && a.tls === true);
  if (needed === undefined && !caFile && !certFile && !keyFile && !serverName) return undefined;
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new TypeError("shipgate: certFile and keyFile go together: a client certificate needs its key, a key its certificate");
  if (caFile === undefined && needed !== undefined)
    throw new TypeError(
      `shipgate: address "${needed.url}": a tls+tcp:// address needs caFile, the CA bundle the gateway's certificate must chain to`,
    );
  let ca: string[] | undefined;
  if (caFile !== undefined) {
    const pem = read("caFile", caFile);
    ca = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    if (ca.length === 0) throw new Error(`shipgate: caFile "${caFile}" holds no PEM certificate`);
    for (const c of ca) {
      try {
        new X509Certificate(c);
      } catch (e) {
        throw new Error(`shipgate: caFile "${caFile}": a certificate does not parse: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  const cert = certFile !== undefined ? read("certFile", certFile) : undefined;
  const key = keyFile !== undefined ? read("keyFile", keyFile) : undefined;
  let context: tls.SecureContext;
  try {
    // only these CAs: never the system's store
    context = tls.createSecureContext({ ca, cert, key, minVersion: MIN_VERSION });
  } catch (e) {
    const what = cert !== undefined ? `certFile "${certFile}" / keyFile "${keyFile}"` : `caFile "${caFile}"`;
    throw new Error(`shipgate: ${what}: ${(e as Error).message}`, { cause: e });
  }
  return { context, serverName };
}

/**
 * The options of tls.connect for one address: the gateway's certificate must chain to the CAs
 * and carry serverName (or the address's host). SNI is sent for a DNS name only (never for an
 * IP address); the name is checked in both cases.
 */
export function connectOptions(t: TlsSettings, host: string, port: number, family: 4 | 6 | undefined): tls.ConnectionOptions {
  const name = t.serverName ?? host;
  // family: passed on to the TCP connection (net.connect's option; not in @types/node 18's ConnectionOptions)
  const tcp: tls.ConnectionOptions & { family?: 4 | 6 } = { host, port, family };
  return {
    ...tcp,
    secureContext: t.context,
    minVersion: MIN_VERSION,
    rejectUnauthorized: true,
    servername: isIP(name) === 0 ? name : undefined,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
  };
}
