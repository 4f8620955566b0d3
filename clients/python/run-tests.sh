#!/usr/bin/env bash
# The Python client's tests, the one entry point CTest calls:
#   creates (or reuses) a venv under $SHIPGATE_BUILD_DIR/py-venv, installs the package with its
#   test extras (editable), checks that the committed message code matches proto/, runs pytest.
#   Exit code: pytest's.
#
# Environment: SHIPGATE_BUILD_DIR (default <repo>/build), SHIPGATED and SHIPGATE_SANDBOX (default
# the build's bin/), PYTHON (default python3, >= 3.10, with venv), PYTEST_ARGS (extra arguments).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${SHIPGATE_BUILD_DIR:-$repo/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
venv=$build/py-venv
py=${PYTHON:-python3}

export SHIPGATED=${SHIPGATED:-$build/bin/shipgated}
export SHIPGATE_SANDBOX=${SHIPGATE_SANDBOX:-$build/bin/shipgate-sandbox}
export SHIPGATE_BUILD_DIR=$build

if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "run-tests.sh: $py is missing or older than 3.10" >&2
  exit 1
fi

# A venv made by another interpreter (or half made) is rebuilt.
want_py=$("$py" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])')
if [ -x "$venv/bin/python" ] &&
   [ "$("$venv/bin/python" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])' 2>/dev/null)" != "$want_py" ]; then
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi
vpy=$venv/bin/python

# Install only when pyproject.toml changed since the last install (or nothing is installed).
stamp=$venv/.shipgate-installed
want=$(cat "$here/pyproject.toml" | sha256sum | cut -d' ' -f1):$here
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] ||
   ! "$vpy" -c 'import pynng, google.protobuf, grpc_tools, pytest, pytest_timeout' 2>/dev/null; then
  rm -f "$stamp"
  "$vpy" -m pip install -q -e "$here[test]"
  echo "$want" > "$stamp"
fi

# the committed message code must match proto/ (run generate.sh to refresh it)
PYTHON=$vpy "$here/generate.sh" --check

cd "$here"
set +e
# shellcheck disable=SC2086
"$vpy" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-}
rc=$?
set -e
# no test collected is a failure here
[ $rc -eq 5 ] && rc=1
exit $rc
