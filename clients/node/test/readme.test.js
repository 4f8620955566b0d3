// The README's example, run as written (an ES module importing the package by name) against a
// live gateway and sandbox.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { findBinary, startSandbox, startGateway } = require("./procs.js");

test("the README example runs and prints what it says", async () => {
  const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
  const m = /## Example\s+```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, "no js block under ## Example");
  const gwBin = findBinary("SHIPGATED", "shipgated");
  const sbBin = findBinary("SHIPGATE_SANDBOX", "shipgate-sandbox");
  assert.ok(gwBin && sbBin, "set SHIPGATED and SHIPGATE_SANDBOX");
  const sandbox = await startSandbox(sbBin);
  let gateway;
  // inside the package, so that "@shipgate/client" resolves to it (self-reference)
  const file = path.join(__dirname, `.readme-example-${process.pid}.mjs`);
  try {
    gateway = await startGateway(gwBin, sandbox.base);
    const code = m[1].replace("tcp://127.0.0.1:7400", gateway.urls[0]);
    assert.notEqual(code, m[1], "the example names tcp://127.0.0.1:7400");
    fs.writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "9 11");
  } finally {
    fs.rmSync(file, { force: true });
    if (gateway) assert.equal(await gateway.stop(), 0);
    assert.equal(await sandbox.stop(), 0);
  }
});
