#!/usr/bin/env bash
# test_readme.sh - runs the README's stock-tools example (protoc --encode | nngcat | protoc
# --decode) exactly as written (but for the gateway's address), against a gateway and sandbox
# this test starts and stops.
# usage: test_readme.sh SHIPGATED SANDBOX REPO_ROOT
set -uo pipefail
gw_bin=$1 sb_bin=$2 root=$3
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $2" >&2; fi; }
tmp=$(mktemp -d)
cleanup() { kill "$gw" "$sb" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$sb_bin" --listen 127.0.0.1:0 >"$tmp/sb.out" &
sb=$!
for _ in $(seq 100); do grep -q listening "$tmp/sb.out" && break; sleep 0.05; done
base=$(sed -n 's/^listening on //p' "$tmp/sb.out")
"$gw_bin" --quiet --listen tcp://127.0.0.1:0 --set "boscod.base_url=$base/boscod" \
	--set "state_dir=$tmp/state" >"$tmp/gw.out" &
gw=$!
for _ in $(seq 100); do grep -q ready "$tmp/gw.out" && break; sleep 0.05; done
url=$(sed -n 's/^shipgated ready on //p' "$tmp/gw.out")
check '[ -n "$url" ]' "gateway started"

# The README block: the fenced block marked <!-- readme-test stock --> (test_readme_install.sh
# runs the other marked blocks, in a fresh clone).
block=$(awk '
  on { if ($0 ~ /^```[[:space:]]*$/) exit; print; next }
  armed { armed = 0; if ($0 ~ /^```/) on = 1; next }
  /^<!-- readme-test stock -->$/ { armed = 1 }
' "$root/README.md")
check '[ -n "$block" ]' "README block found"
block=${block//tcp:\/\/127.0.0.1:7400/$url}
out=$(cd "$root" && bash -c "$block" 2>&1)
echo "$out" | head -20
check 'grep -q "TRACKING_STATUS_PICKED_UP" <<<"$out"' "first event picked up"
check 'grep -q "TRACKING_STATUS_DELIVERED" <<<"$out"' "delivered"
check '[ "$(grep -c "time_unix" <<<"$out")" = 11 ]' "11 events"
check 'grep -q "pod_photo_url" <<<"$out"' "POD photo"
check '! grep -q "code: " <<<"$out"' "status OK (no error code)"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
