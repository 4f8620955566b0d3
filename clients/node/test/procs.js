// Child processes for the live tests (sandbox, gateway, nngcat) and a small HTTP helper.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
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

async function startGateway(bin, sandboxBase, listen = ["tcp://127.0.0.1:0"]) {
  // a fresh state directory (the idempotency store): no keys from an earlier run
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "shipgate-node-"));
  const argv = [bin, "--quiet", "--set", `state_dir=${stateDir}`];
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

module.exports = { repo, findBinary, startProcess, startSandbox, startGateway, httpRequest };
