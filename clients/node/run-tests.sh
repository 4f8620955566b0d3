#!/usr/bin/env bash
# The Node client's test entry point (CTest calls it): installs the locked dependencies,
# generates the messages from ../../proto, compiles, and runs every test with node's test
# runner. The live tests find shipgated and shipgate-sandbox through $SHIPGATED and
# $SHIPGATE_SANDBOX (default: ../../build/bin/). Exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

command -v node >/dev/null || { echo "run-tests.sh: node not found (Node >= 18 needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "run-tests.sh: npm not found" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || { echo "run-tests.sh: Node $(node --version) is too old (>= 18 needed)" >&2; exit 1; }

# One run at a time in this directory (npm ci replaces node_modules).
if command -v flock >/dev/null; then
  exec 9>"$here/.run-tests.lock"
  flock 9
fi

echo "== node $(node --version), npm $(npm --version)"
if [ -f package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund
else
  npm install --ignore-scripts --no-audit --no-fund
fi
echo "== generate and compile"
./generate.sh
npx --no-install tsc -p tsconfig.json
echo "== tests"
node --test --test-reporter=spec test/*.test.js
