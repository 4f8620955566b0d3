// nng-style addresses: tcp://host:port (also tcp4://, tcp6://, [v6]:port), the same over TLS
// (tls+tcp://, tls+tcp4://, tls+tcp6://) and ipc:///path.

import { isIP } from "node:net";

export type Address =
  | {
      kind: "tcp";
      url: string;
      host: string;
      port: number;
      family?: 4 | 6;
      /** tls+tcp, tls+tcp4, tls+tcp6: TLS over the TCP connection, the same SP bytes inside */
      tls?: boolean;
    }
  | { kind: "ipc"; url: string; path: string };

/** Parses an address; throws TypeError when it is malformed or names another transport. */
export function parseAddress(url: string): Address {
  if (typeof url !== "string" || url === "") throw new TypeError("shipgate: empty address");
  const m = /^([a-z0-9+]+):\/\/(.*)$/.exec(url);
  if (!m) throw new TypeError(`shipgate: address "${url}" is not scheme://...`);
  const [, scheme, rest] = m;
  switch (scheme) {
    case "ipc": {
      if (rest === "") throw new TypeError(`shipgate: address "${url}" has no path`);
      return { kind: "ipc", url, path: rest };
    }
    case "tcp":
    case "tcp4":
    case "tcp6":
    case "tls+tcp":
    case "tls+tcp4":
    case "tls+tcp6": {
      const tls = scheme.startsWith("tls+");
      let host: string;
      let port: string;
      const v6 = /^\[([^\]]*)\]:(\d+)$/.exec(rest);
      if (v6) {
        host = v6[1];
        port = v6[2];
      } else {
        const i = rest.lastIndexOf(":");
        if (i < 0) throw new TypeError(`shipgate: address "${url}" has no port`);
        host = rest.slice(0, i);
        port = rest.slice(i + 1);
        if (host.includes(":")) throw new TypeError(`shipgate: address "${url}": write IPv6 hosts as [addr]:port`);
      }
      const n = /^\d+$/.test(port) ? Number(port) : NaN;
      if (!(n >= 1 && n <= 65535)) throw new TypeError(`shipgate: address "${url}" has a bad port`);
      if (host === "" || host === "*") throw new TypeError(`shipgate: address "${url}" has no host to dial`);
      const family = scheme.endsWith("tcp4") ? 4 : scheme.endsWith("tcp6") ? 6 : undefined;
      if (family !== undefined && isIP(host) !== 0 && isIP(host) !== family)
        throw new TypeError(`shipgate: address "${url}": host is not IPv${family}`);
      return tls ? { kind: "tcp", url, host, port: n, family, tls } : { kind: "tcp", url, host, port: n, family };
    }
    default:
      throw new TypeError(`shipgate: address "${url}": transport "${scheme}" is not supported (tcp, tcp4, tcp6, tls+tcp, tls+tcp4, tls+tcp6, ipc)`);
  }
}
