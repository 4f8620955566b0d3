// Child processes for the live tests (sandbox, gateway, nngcat, openssl) and a small HTTP helper.
"use strict";

const { execFileSync, spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const repo = path.resolve(__dirname, "..", "..", "..");

/** A binary from the environment variable, else the default build's; undefined when neither exists. */
function findBinary(envName, name) {
  const p = process.env[envName] || path.join(repo, "build", "bin", name);
  return fs.existsSync(p) ? p : undefined;
}

/**
 * Starts argv and waits (at most 10 s) for a stdout line starting with readyPrefix. Resolves
 * { proc, line, stop() }; stop() sends SIGTERM and resolves the exit code (SIGKILL after 10 s).
 */
function startProcess(argv, readyPrefix) {
  return new Promise((resolve, reject) => {
    const proc = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    let buf = "";
    let ready = false;
    const exited = new Promise((res) => proc.once("exit", (code, signal) => res(code ?? (signal ? 128 : -1))));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${argv[0]} did not print "${readyPrefix}..." within 10 s (got ${JSON.stringify(buf.slice(0, 200))})`));
    }, 10000);
    proc.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.once("exit", (code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`${argv[0]} exited (${code}) before it was ready`));
      }
    });
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (d) => {
      if (ready) return; // keep draining
      buf += d;
      for (const line of buf.split("\n").slice(0, -1)) {
        if (line.startsWith(readyPrefix)) {
          ready = true;
          clearTimeout(timer);
          resolve({
            proc,
            line,
            stop: async () => {
              if (proc.exitCode !== null || proc.signalCode !== null) return exited;
              proc.kill("SIGTERM");
              const t = setTimeout(() => proc.kill("SIGKILL"), 10000);
              const code = await exited;
              clearTimeout(t);
              return code;
            },
          });
          return;
        }
      }
    });
  });
}

async function startSandbox(bin) {
  const p = await startProcess([bin, "--listen", "127.0.0.1:0"], "listening on ");
  return { ...p, base: p.line.slice("listening on ".length).trim() };
}

/** extra: more arguments (e.g. ["--set", "idempotency.store=redis", ...]). */
async function startGateway(bin, sandboxBase, listen = ["tcp://127.0.0.1:0"], extra = []) {
  // a fresh state directory (the idempotency store): no keys from an earlier run
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "shipgate-node-"));
  const argv = [bin, "--quiet", "--set", `state_dir=${stateDir}`, ...extra];
  for (const l of listen) argv.push("--listen", l);
  for (const name of ["boscod", "bosonline", "biteship", "fuuffy"]) argv.push("--set", `${name}.base_url=${sandboxBase}/${name}`);
  const p = await startProcess(argv, "shipgated ready on ");
  return { ...p, urls: p.line.slice("shipgated ready on ".length).trim().split(/\s+/) };
}

/** One HTTP request on loopback; resolves { status, body }. */
function httpRequest(method, url, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** A free loopback tcp port (closed again: the caller binds it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** One command to redis on port (RESP inline); resolves its first reply line, rejects after 1 s. */
function redisCommand(port, cmd) {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const t = setTimeout(() => c.destroy(new Error("redis: no reply within 1 s")), 1000);
    c.setEncoding("utf8");
    c.on("connect", () => c.write(`${cmd}\r\n`));
    c.on("data", (d) => {
      buf += d;
      const i = buf.indexOf("\r\n");
      if (i >= 0) {
        clearTimeout(t);
        c.end();
        resolve(buf.slice(0, i));
      }
    });
    c.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

/**
 * A redis-server of its own (no persistence) on a free loopback port, ready once it answers
 * PING (10 s at most). Resolves { proc, port, url, stop() }; stop() as startProcess's.
 */
async function startRedis(bin = process.env.REDIS_SERVER || "/usr/bin/redis-server") {
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const proc = spawn(bin, ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    const exited = new Promise((res) => proc.once("exit", (code, signal) => res(code ?? (signal ? 128 : -1))));
    let gone = false;
    void exited.then(() => (gone = true));
    proc.once("error", () => {});
    const until = Date.now() + 10000;
    while (!gone && Date.now() < until) {
      if ((await redisCommand(port, "PING").catch(() => "")) === "+PONG") {
        return {
          proc,
          port,
          url: `redis://127.0.0.1:${port}`,
          stop: async () => {
            if (proc.exitCode !== null || proc.signalCode !== null) return exited;
            proc.kill("SIGTERM");
            const t = setTimeout(() => proc.kill("SIGKILL"), 10000);
            const code = await exited;
            clearTimeout(t);
            return code;
          },
        };
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!gone) proc.kill("SIGKILL");
    await exited;
    // the port was taken meanwhile (or redis did not start): another one, twice more
    if (tries >= 2) throw new Error(`${bin} did not answer PING`);
  }
}

/**
 * Test certificates, made in dir with the openssl CLI (EC P-256 keys, valid 2 days) the way
 * tests/test_caller_tls.c makes them: ca and other-ca (self-signed); srv from ca for
 * IP:127.0.0.1, DNS:127.0.0.1 (which mbedTLS 2.28 matches against an IP host) and
 * DNS:localhost; client (CN checkout) from ca and stranger from other-ca, both
 * extendedKeyUsage=clientAuth. Throws when openssl fails (or takes over 60 s). Returns the paths.
 */
function makeCerts(dir) {
  const script = [
    "set -e",
    "gen() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj /CN=$2 2>/dev/null; }",
    "for c in ca other-ca; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $c.key -out $c.pem -days 2 -subj /CN=$c 2>/dev/null; done",
    "gen srv 127.0.0.1; gen client checkout; gen stranger stranger",
    "printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\\n' > srv.ext",
    "printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile srv.ext 2>/dev/null",
    "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null",
    "openssl x509 -req -in stranger.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out stranger.pem -days 2 -extfile client.ext 2>/dev/null",
  ].join("\n");
  execFileSync("sh", ["-c", script], { cwd: dir, timeout: 60000, stdio: ["ignore", "ignore", "inherit"] });
  const p = (f) => path.join(dir, f);
  return {
    ca: p("ca.pem"),
    otherCa: p("other-ca.pem"),
    srvCert: p("srv.pem"),
    srvKey: p("srv.key"),
    clientCert: p("client.pem"),
    clientKey: p("client.key"),
    strangerCert: p("stranger.pem"),
    strangerKey: p("stranger.key"),
  };
}

module.exports = { repo, findBinary, startProcess, startSandbox, startGateway, startRedis, httpRequest, makeCerts };
