// The TypeScript types as a user sees them: test/types/consumer.ts must compile (strict), and
// its deliberate misuse must be reported.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const path = require("node:path");

test("the published .d.ts files type-check a strict TypeScript consumer", () => {
  const tsc = require.resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", path.join(__dirname, "types", "tsconfig.json")], { encoding: "utf8", timeout: 120000 });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
