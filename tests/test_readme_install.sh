#!/usr/bin/env bash
# test_readme_install.sh - a newcomer's path through README.md, run as written, in a fresh clone
# of the working tree: .ci/demo (the set-up command) builds build/ and runs the gateway and
# sandbox; then the CLI block and each client's install and example (C, Python, Go, Node) run
# from the clone's root; at last .ci/demo is stopped with SIGINT (as Ctrl-C) and once more with
# SIGTERM, and must exit 0 having stopped what it started.
#
# The commands and programs come from README.md's fenced blocks marked
#   <!-- readme-test LANG -->         a block of shell commands (run in order, from the root)
#   <!-- readme-test LANG PATH -->    a file to save at PATH (before LANG's commands run)
# so this test cannot drift from the README. Two things differ from a person's run, both so
# that the test never meets a demo someone is running: .ci/demo gets `-l tcp://127.0.0.1:0`
# and SHIPGATE_SANDBOX_LISTEN=127.0.0.1:0, and `tcp://127.0.0.1:7400` in the blocks is replaced
# by the address the gateway reports (the CLI gets it as $SHIPGATE_ADDR). The sandbox's request
# count shows that the calls reached this test's gateway.
#
# Package caches (pip, npm, Go modules and builds) are the user's own, as for a person.
# usage: test_readme_install.sh REPO_ROOT [LANG...]   (default: c python go node cli fleet tls)
set -uo pipefail
root=$(cd "$1" && pwd)
shift
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(c python go node cli fleet tls)
step_timeout=${README_STEP_TIMEOUT:-240}
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $2" >&2; fi; }
t0=$SECONDS
say() { echo "== [$((SECONDS - t0))s] $*"; }
tmp=$(mktemp -d)
src=$tmp/shipgate
demo=""
cleanup() {
  if [ -n "$demo" ]; then kill -TERM -- "-$demo" 2>/dev/null; wait "$demo" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
set -m # .ci/demo gets its own process group, with SIGINT not ignored (as in a terminal)

# ---------------------------------------------------------------- the README's blocks
readme=$root/README.md
# blocks LANG [PATH]: the content of LANG's command blocks (no PATH) or of its file PATH
blocks() {
  awk -v want="$1" -v path="${2:-}" '
    on { if ($0 ~ /^```[[:space:]]*$/) on = 0; else print; next }
    armed { armed = 0; if ($0 ~ /^```/ && lang == want && f == path) on = 1; next }
    /^<!-- readme-test [^ ]+( [^ ]+)? -->$/ { n = split($0, w, " "); lang = w[3]; f = n == 5 ? w[4] : ""; armed = 1 }
  ' "$readme"
}
# every marker must stand right before a fence, or its block would be skipped silently
bad=$(awk 'armed && !/^```/ { print prev } { armed = 0 } /^<!-- readme-test / { armed = 1; prev = $0 }' "$readme")
check '[ -z "$bad" ]' "README markers not followed by a fenced block: $bad"
files() { sed -n "s/^<!-- readme-test $1 \([^ ]*\) -->\$/\1/p" "$readme"; }

# ---------------------------------------------------------------- a fresh clone
# HEAD, plus the working tree's uncommitted changes to tracked files and its new files that git
# does not ignore: what a clone would hold if the working tree were committed.
say "clone"
git clone -q "$root" "$src" || { echo "FAIL: git clone" >&2; exit 1; }
{
  git -C "$root" --no-optional-locks diff --name-only -z HEAD
  git -C "$root" --no-optional-locks ls-files -z --others --exclude-standard
} | while IFS= read -r -d '' f; do
  if [ -e "$root/$f" ] || [ -L "$root/$f" ]; then
    mkdir -p "$(dirname "$src/$f")" && cp -P "$root/$f" "$src/$f"
  else
    rm -f "$src/$f"
  fi
done

# ---------------------------------------------------------------- .ci/demo
demo_cmd=$(blocks demo)
check '[ "$demo_cmd" = ".ci/demo" ]' "README's set-up block runs .ci/demo (it holds: $demo_cmd)"
# start_demo NAME: runs .ci/demo in the clone (its own process group); sets demo, url, sb_url
start_demo() {
  (cd "$src" && SHIPGATE_SANDBOX_LISTEN=127.0.0.1:0 exec $demo_cmd -l tcp://127.0.0.1:0) \
    >"$tmp/$1.out" 2>"$tmp/$1.err" </dev/null &
  demo=$!
  url="" sb_url=""
  for _ in $(seq $((step_timeout * 5))); do
    url=$(sed -n 's/^shipgated ready on \([^ ]*\).*/\1/p' "$tmp/$1.out")
    [ -n "$url" ] && grep -q '^Ctrl-C stops both' "$tmp/$1.err" && break
    kill -0 "$demo" 2>/dev/null || break
    sleep 0.2
  done
  sb_url=$(sed -n 's/.*against the sandbox providers (\(http[^)]*\)).*/\1/p' "$tmp/$1.err")
}
# stop_demo SIG TARGET NAME: sends SIG to the demo's group ("group", as Ctrl-C does) or to the script
# alone ("script"); the demo must exit 0 within 15 s and leave nothing of its group running
stop_demo() {
  local rc=none failed_before=$fail
  if [ "$2" = group ]; then kill "-$1" -- "-$demo"; else kill "-$1" "$demo"; fi
  for _ in $(seq 150); do kill -0 "$demo" 2>/dev/null || break; sleep 0.1; done
  if ! kill -0 "$demo" 2>/dev/null; then wait "$demo"; rc=$?; fi
  check '[ "$rc" = 0 ]' ".ci/demo exits 0 on SIG$1 to its $2 (got $rc)"
  sleep 0.2
  check '! pgrep -g "$demo" >/dev/null' ".ci/demo's gateway and sandbox stopped after SIG$1"
  if [ "$fail" -gt "$failed_before" ]; then
    ps -o pid,stat,ignored,blocked,caught,cmd -g "$demo" >&2
    tail -n 8 "$tmp/$3.err" | sed "s/^/  demo| /" >&2
  fi
  kill -KILL -- "-$demo" 2>/dev/null
  demo=""
}

say "$demo_cmd (build and start)"
start_demo demo
check '[ -n "$url" ]' ".ci/demo started the gateway"
if [ -z "$url" ]; then
  kill -0 "$demo" 2>/dev/null || { wait "$demo"; echo ".ci/demo exited with status $?" >&2; }
  tail -n 30 "$tmp/demo.out" "$tmp/demo.err" >&2
  echo "$pass passed, $fail failed"
  exit 1
fi
check 'grep -qF -- "shipgate -a $url call Track" "$tmp/demo.err"' "the banner names the -l address ($url)"
check '[ -n "$sb_url" ]' "the banner names the sandbox"
say "gateway $url, sandbox $sb_url"

# ---------------------------------------------------------------- each language, as written
# expected output of each language's block (a grep -E pattern)
declare -A want=(
  [c]='^TRACKING_STATUS_DELIVERED 11$'
  [python]='^TRACKING_STATUS_DELIVERED 11$'
  [go]='^TRACKING_STATUS_DELIVERED 11$'
  [node]='^TRACKING_STATUS_DELIVERED 11$'
)
calls=0 bos123=0
for lang in "${langs[@]}"; do
  cmds=$(blocks "$lang")
  check '[ -n "$cmds" ]' "README has $lang commands"
  [ -n "$cmds" ] || continue
  for f in $(files "$lang"); do
    mkdir -p "$(dirname "$src/$f")"
    blocks "$lang" "$f" | sed "s#tcp://127.0.0.1:7400#$url#g" >"$src/$f"
  done
  cmds=${cmds//tcp:\/\/127.0.0.1:7400/$url}
  say "$lang"
  start=$SECONDS failed_before=$fail
  if [ "$lang" = fleet ]; then
    # free ports for redis and the two gateways, the demo's sandbox for bosOnline; the block
    # runs in a process group of its own, stopped afterwards whatever happened
    read -r p_redis p_a p_b < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1", 0)) for s in ss]
print(*[s.getsockname()[1] for s in ss])')
    cmds=${cmds//6390/$p_redis}
    cmds=${cmds//7401/$p_a}
    cmds=${cmds//7402/$p_b}
    posts() { curl -fs "$sb_url/__sandbox/requests" | grep -o '"POST"[^}]*/bosonline/order/' | wc -l; }
    before=$(posts)
    gets() { curl -fs "$sb_url/__sandbox/requests" | grep -o '"GET"[^}]*/boscod/v1/order/tracking/BOS123' | wc -l; }
    gets_before=$(gets)
    (cd "$src" && SHIPGATE_BOSONLINE_URL=$sb_url/bosonline SHIPGATE_BOSCOD_URL=$sb_url/boscod \
      exec setsid -w timeout "$step_timeout" bash -e -o pipefail -c "$cmds") >"$tmp/$lang.log" 2>&1
    rc=$?
    pkill -f "redis-server 127.0.0.1:$p_redis" 2>/dev/null
    pkill -f "tcp://127.0.0.1:$p_a" 2>/dev/null
    pkill -f "tcp://127.0.0.1:$p_b" 2>/dev/null
    check '[ "$rc" = 0 ]' "fleet: the README's commands succeed (exit status $rc)"
    check 'grep -q "\"idempotencyScope\": *\"fleet\"" "$tmp/$lang.log"' "fleet: Health says scope fleet"
    check 'grep -q "\"replayed\": *true" "$tmp/$lang.log"' "fleet: the other gateway replays"
    check '[ "$(grep -c "\"totalPayment\"" "$tmp/$lang.log")" = 2 ]' "fleet: both calls answered"
    check '[ "$(($(posts) - before))" = 1 ]' "fleet: one POST for the two calls"
    check '[ "$(grep -c "\"hit\": *true" "$tmp/$lang.log")" = 1 ]' "fleet: the second gateway's Track is a cache hit"
    check '[ "$(($(gets) - gets_before))" = 1 ]' "fleet: one GET for the two Tracks"
  elif [ "$lang" = tls ]; then
    # a free port, the demo's sandbox for BosCOD; a process group of its own, stopped after
    p_tls=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cmds=${cmds//7443/$p_tls}
    (cd "$src" && SHIPGATE_BOSCOD_URL=$sb_url/boscod exec setsid -w timeout "$step_timeout" \
      bash -e -o pipefail -c "$cmds") >"$tmp/$lang.log" 2>&1
    rc=$?
    pkill -f "tls+tcp://127.0.0.1:$p_tls" 2>/dev/null
    check '[ "$rc" = 0 ]' "tls: the README's commands succeed (exit status $rc)"
    check 'grep -q "DELIVERED" "$tmp/$lang.log"' "tls: Track answered over mTLS"
    check 'grep -q "refused without a client certificate" "$tmp/$lang.log"' "tls: no client certificate, no call"
  elif [ "$lang" = cli ]; then
    # one call after another, errors included: no -e; the last one (ERR-404) exits 15
    (cd "$src" && SHIPGATE_ADDR=$url timeout "$step_timeout" bash -c "$cmds") >"$tmp/$lang.log" 2>&1
    rc=$?
    check '[ "$rc" = 15 ]' "cli: the block ends with NOT_FOUND's exit status 15 (got $rc)"
    check '! grep -q "command not found\|No such file" "$tmp/$lang.log"' "cli: every command found"
    check 'grep -q "/shipgate.v1.Shipgate/Track\|shipgate.v1.Shipgate.Track" "$tmp/$lang.log"' "cli: list names Track"
    check '[ "$(grep -c "DELIVERED" "$tmp/$lang.log")" -ge 4 ]' "cli: the -o text tracks are delivered"
    check 'grep -q "\"totalPayment\"" "$tmp/$lang.log"' "cli: CreateOrder answered"
    check 'grep -q "UPSTREAM_NOT_FOUND" "$tmp/$lang.log"' "cli: ERR-404 gives its reason"
    calls=$((calls + 7)) # the upstream calls but one (Track BOS123, perhaps cached already)
  else
    (cd "$src" && timeout "$step_timeout" bash -e -o pipefail -c "$cmds") >"$tmp/$lang.log" 2>&1
    rc=$?
    check '[ "$rc" = 0 ]' "$lang: the README's commands succeed (exit status $rc)"
    check 'grep -qE "${want[$lang]}" "$tmp/$lang.log"' "$lang: the example prints ${want[$lang]}"
    bos123=1 # Track BOS123: one upstream call in all (the gateway caches it for 30 s)
  fi
  say "$lang: $((SECONDS - start))s, exit status $rc"
  if [ "$fail" -gt "$failed_before" ]; then tail -n 40 "$tmp/$lang.log" | sed "s/^/  $lang| /" >&2; fi
done

# the calls went through this test's gateway to its sandbox
calls=$((calls + bos123))
stats=$(curl -fs "$sb_url/__sandbox/stats" || true)
n=$(sed -n 's/.*"requests": *\([0-9]*\).*/\1/p' <<<"$stats")
check '[ "${n:-0}" -ge "$calls" ]' "the sandbox saw the calls ($n requests, $calls expected at least)"

# ---------------------------------------------------------------- stopping .ci/demo
say "stop .ci/demo: SIGINT to its group (Ctrl-C)"
stop_demo INT group demo
say "again, stopped by SIGTERM to the script alone"
start_demo demo2
check '[ -n "$url" ]' ".ci/demo started again"
[ -n "$demo" ] && stop_demo TERM script demo2
say "done"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
