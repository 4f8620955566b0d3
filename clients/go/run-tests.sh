#!/usr/bin/env bash
# Tests of the Go client; the entry point CTest calls.
#
#   clients/go/run-tests.sh [extra go test flags]
#
# Steps: go mod download (the ordinary module proxy), generate.sh --check (the committed
# shipgatev1/*.pb.go match proto/), go vet, go test ./... -count=1 -parallel 8 -timeout 120s.
# Prints go test's summary and exits non-zero on any failure.
#
# Environment:
#   GO                 the go command (default: go; e.g. /usr/lib/go-1.19/bin/go)
#   SHIPGATED          the gateway binary, for interop_test.go (CTest sets it)
#   SHIPGATE_SANDBOX   the sandbox binary (CTest sets it)
#   When both are unset and build/bin/ of this repository holds the binaries, those are used
#   (and said so). Without binaries the interop test fails; pass -short to skip it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
GO="${GO:-go}"
export GO
# never switch to another toolchain: the module must build with the go it is given (>= 1.19)
export GOTOOLCHAIN=local

if ! command -v "$GO" >/dev/null 2>&1; then
	echo "run-tests.sh: $GO not found (apt-get install golang-go)" >&2
	exit 1
fi
echo "run-tests.sh: $("$GO" version)"

if [ -z "${SHIPGATED:-}" ] && [ -z "${SHIPGATE_SANDBOX:-}" ] &&
	[ -x "$root/build/bin/shipgated" ] && [ -x "$root/build/bin/shipgate-sandbox" ]; then
	export SHIPGATED="$root/build/bin/shipgated" SHIPGATE_SANDBOX="$root/build/bin/shipgate-sandbox"
	echo "run-tests.sh: SHIPGATED/SHIPGATE_SANDBOX not set; using $root/build/bin"
fi

echo "run-tests.sh: go mod download"
"$GO" mod download
echo "run-tests.sh: generate.sh --check"
./generate.sh --check
echo "run-tests.sh: go vet ./..."
"$GO" vet ./...

# -parallel: the interop tests (t.Parallel) mostly wait on their gateways, whatever the CPUs
echo "run-tests.sh: go test ./... -count=1 -parallel 8 -timeout 120s $*"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
"$GO" test ./... -v -count=1 -parallel 8 -timeout 120s "$@" >"$log" 2>&1
rc=$?
set -e

passed=$(grep -c -E '^[[:space:]]*--- PASS: ' "$log" || true)
failed=$(grep -c -E '^[[:space:]]*--- FAIL: ' "$log" || true)
skipped=$(grep -c -E '^[[:space:]]*--- SKIP: ' "$log" || true)
if [ "$rc" -ne 0 ]; then
	cat "$log"
else
	# the tests and subtests, then go test's own closing lines
	grep -E '^[[:space:]]*--- (PASS|SKIP): |^(ok|FAIL|\?)[[:space:]]' "$log" || true
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1 # a build failure, a panic or a timeout: no "--- FAIL" line, but a failure
fi
echo "go: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
