#!/usr/bin/env bash
# Generates the protobuf messages (src/gen/, TypeScript, @bufbuild/protobuf v2) from the
# contract in ../../proto (or $SHIPGATE_PROTO_DIR), and the client policy
# (shipgate/v1/client_policy.json, by ../gen_policy.py: python3) into src/gen/policy.ts. Idempotent: src/gen is rewritten only when
# the output changed. Run by `npm run build` (and so by `npm ci` / `npm test` through the
# "prepare" and "pretest" scripts). src/gen is not committed; the package tarball ships the
# compiled dist/ instead.
#
#   ./generate.sh           generate (or refresh) src/gen
#   ./generate.sh --check   exit 1 when src/gen is missing or differs from a fresh generation
#
# Needs protoc (Debian: protobuf-compiler), python3, and `npm ci` done (for protoc-gen-es).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=${SHIPGATE_PROTO_DIR:-$here/../../proto}
out=$here/src/gen
plugin=$here/node_modules/.bin/protoc-gen-es
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "generate.sh: $plugin missing: run npm ci in $here first" >&2; exit 1; }
[ -f "$proto/shipgate/v1/rpc.proto" ] || { echo "generate.sh: no contract under $proto" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# views.proto is for stock tools only (typed views of the envelope): not needed here.
protoc --plugin=protoc-gen-es="$plugin" -I "$proto" \
  --es_out="$tmp" --es_opt=target=ts,import_extension=js \
  shipgate/v1/rpc.proto shipgate/v1/shipgate.proto
# the client policy (defaults, idempotent methods, local reasons, the retry rule)
"${PYTHON3:-python3}" "$here/../gen_policy.py" --proto "$proto" \
  --policy "$proto/shipgate/v1/client_policy.json" node "$tmp/policy.ts"

if [ "$check" = 1 ]; then
  if ! diff -r "$tmp" "$out" >/dev/null 2>&1; then
    echo "generate.sh: $out is missing or stale: run ./generate.sh" >&2
    exit 1
  fi
  echo "generate.sh: $out is up to date"
  exit 0
fi
if diff -r "$tmp" "$out" >/dev/null 2>&1; then
  exit 0
fi
rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -R "$tmp" "$out"
echo "generate.sh: wrote $out"
