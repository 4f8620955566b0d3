#!/usr/bin/env bash
# test_install.sh - installs the C client into a temporary prefix and builds a consumer against
# it twice: with pkg-config and with CMake's find_package(shipgate). Each consumer then calls
# Health on a gateway this test starts (and stops).
# usage: test_install.sh BUILD_DIR SHIPGATED
set -uo pipefail
build=$1 gw_bin=$2
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $2" >&2; fi; }
tmp=$(mktemp -d)
gw=""
cleanup() { [ -n "$gw" ] && kill "$gw" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

check 'cmake --install "$build" --component client --prefix "$tmp/prefix" >/dev/null' "install"
cat >"$tmp/consumer.c" <<'C'
#include <stdio.h>
#include <shipgate/client.h>
int main(int argc, char **argv) {
	shipgate_client_opts o = {0};
	const char *urls[] = {argv[1]};
	o.urls = urls;
	o.n_urls = 1;
	shipgate_client *c = NULL;
	if (shipgate_client_new(&c, &o) != 0) return 2;
	Shipgate__V1__HealthRequest req = SHIPGATE__V1__HEALTH_REQUEST__INIT;
	Shipgate__V1__HealthResponse *h = NULL;
	shipgate_status st;
	int rv = shipgate_health(c, &req, NULL, &h, &st);
	int ok = rv == 0 && h != NULL && h->status == SHIPGATE__V1__HEALTH_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING;
	printf("health: %s\n", ok ? "SERVING" : "failed");
	if (h) shipgate__v1__health_response__free_unpacked(h, NULL);
	shipgate_status_fini(&st);
	shipgate_client_free(c);
	return ok ? 0 : 1;
}
C
"$gw_bin" --quiet --listen tcp://127.0.0.1:0 --set "state_dir=$tmp/state" >"$tmp/gw.out" &
gw=$!
for _ in $(seq 100); do grep -q ready "$tmp/gw.out" && break; sleep 0.05; done
url=$(sed -n 's/^shipgated ready on //p' "$tmp/gw.out")

export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig:$tmp/prefix/share/pkgconfig"
check 'cc -std=c11 -o "$tmp/c1" "$tmp/consumer.c" $(pkg-config --cflags --libs shipgate-client)' "pkg-config build"
check 'LD_LIBRARY_PATH="$(pkg-config --variable=libdir shipgate-client)" "$tmp/c1" "$url"' "pkg-config consumer calls Health"

mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(shipgate REQUIRED)
add_executable(c2 ../consumer.c)
target_link_libraries(c2 PRIVATE shipgate::client)
CM
check 'cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null && cmake --build "$tmp/cm/b" >/dev/null' "find_package build"
check '"$tmp/cm/b/c2" "$url"' "find_package consumer calls Health"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
