#!/usr/bin/env bash
# Generates the Go messages of the contract (proto/shipgate/v1/*.proto) into shipgatev1/, and the
# client policy (proto/shipgate/v1/client_policy.json, by clients/gen_policy.py) into
# policy_gen.go.
#
#   ./generate.sh           regenerate shipgatev1/*.pb.go and policy_gen.go in place
#   ./generate.sh --check   regenerate into a temporary directory and fail (exit 1) when the
#                           committed files differ: stale generated code must not slip through
#
# Needs protoc (Debian's protobuf-compiler, 3.21.12, with the well-known types under
# /usr/include) and go. protoc-gen-go is built from the google.golang.org/protobuf version pinned
# in go.mod (tools.go keeps it there), so generator and runtime always match. The .proto files
# carry no go_package option: the M flags below map each file to the Go package.
#
# --check compares everything except the one header line naming protoc's own version
# ("//	protoc        v3.21.12"), so a machine with another protoc release still checks the code.
#
# Environment: GO (default: go), PROTOC (default: protoc), PROTOC_INCLUDE (an extra -I holding
# google/protobuf/wrappers.proto when protoc does not find it by itself), PYTHON3 (default:
# python3, for gen_policy.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
proto_dir="$root/proto"
module="shipgate.local/clients/go"
pkg="shipgatev1"
files=(shipgate/v1/rpc.proto shipgate/v1/shipgate.proto shipgate/v1/views.proto)
GO="${GO:-go}"
PROTOC="${PROTOC:-protoc}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

check=false
case "${1:-}" in
"") ;;
--check) check=true ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

if ! command -v "$PROTOC" >/dev/null 2>&1; then
	echo "generate.sh: $PROTOC not found (apt-get install protobuf-compiler)" >&2
	exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# the generator, at the version go.mod pins
(cd "$here" && "$GO" build -buildvcs=false -o "$tmp/bin/protoc-gen-go" \
	google.golang.org/protobuf/cmd/protoc-gen-go)

mflags=()
for f in "${files[@]}"; do
	mflags+=("--go_opt=M$f=$module/$pkg;$pkg")
done
incl=(-I "$proto_dir")
if [ -n "${PROTOC_INCLUDE:-}" ]; then
	incl+=(-I "$PROTOC_INCLUDE")
fi

mkdir -p "$tmp/out"
(cd "$proto_dir" && "$PROTOC" "${incl[@]}" \
	--plugin=protoc-gen-go="$tmp/bin/protoc-gen-go" \
	--go_out="$tmp/out" --go_opt=module="$module" "${mflags[@]}" \
	"${files[@]}")

gen="$tmp/out/$pkg"
"${PYTHON3:-python3}" "$root/clients/gen_policy.py" go "$tmp/policy_gen.go"
if ! $check; then
	cp "$tmp/policy_gen.go" "$here/policy_gen.go"
	mkdir -p "$here/$pkg"
	rm -f "$here/$pkg"/*.pb.go
	cp "$gen"/*.pb.go "$here/$pkg/"
	echo "generate.sh: wrote $(cd "$gen" && ls -- *.pb.go | tr '\n' ' ')into $pkg/"
	exit 0
fi

# --check: the same files, the same contents (protoc's version line aside)
strip() { grep -v -E '^//[[:space:]]+protoc[[:space:]]+v' "$1" || true; }
status=0
want="$(cd "$gen" && ls -- *.pb.go | sort)"
have="$(cd "$here/$pkg" 2>/dev/null && ls -- *.pb.go 2>/dev/null | sort || true)"
if [ "$want" != "$have" ]; then
	echo "generate.sh --check: $pkg/ holds [$(echo $have)], the contract generates [$(echo $want)]" >&2
	status=1
fi
for f in $want; do
	[ -f "$here/$pkg/$f" ] || continue
	if ! diff -u <(strip "$here/$pkg/$f") <(strip "$gen/$f") >"$tmp/diff" 2>&1; then
		echo "generate.sh --check: $pkg/$f is stale; run clients/go/generate.sh" >&2
		head -n 40 "$tmp/diff" >&2
		status=1
	fi
done
if ! diff -u "$here/policy_gen.go" "$tmp/policy_gen.go" >"$tmp/diff" 2>&1; then
	echo "generate.sh --check: policy_gen.go is stale; run clients/go/generate.sh" >&2
	head -n 40 "$tmp/diff" >&2
	status=1
fi
if [ "$status" -eq 0 ]; then
	echo "generate.sh --check: $pkg/ and policy_gen.go are up to date with proto/"
fi
exit "$status"
