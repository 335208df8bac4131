#!/usr/bin/env bash
# Build and run every test suite, in a plain and an ASan/UBSan build.
#   INGEST_TEST_BUILDS="build build-asan"   which build dirs (names with "asan"
#                                           get the sanitizer configuration)
#   PYTHON=/usr/bin/python3                 interpreter with the Debian
#                                           python3-pytest/psycopg2 packages
#   extra arguments are passed to pytest, e.g.  etc/dev/test.sh -k reload
# Runs all suites even when one fails; the exit code is tests/summarize.py's.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

bash etc/dev/deps.sh
# The Debian interpreter, not whatever python3 is first in PATH (pyenv, venv):
# pytest and psycopg2 come from Debian packages.
PY=${PYTHON:-/usr/bin/python3}
read -r -a BUILDS <<< "${INGEST_TEST_BUILDS:-build build-asan}"

# step BUILD NAME CMD...: run CMD, record its exit code, never abort the script.
step() {
  local b=$1 name=$2 rc=0
  shift 2
  echo "=== $b: $name" >&2
  "$@" || rc=$?
  echo "$name $rc" >> "$b/test-steps.txt"
  return "$rc"
}

for b in "${BUILDS[@]}"; do
  mkdir -p "$b"
  abs=$(cd "$b" && pwd)
  # Stale results must not be counted if a step does not run this time.
  rm -f "$b/test-steps.txt" "$b/meson-logs/testlog.json" "$b/pytest-junit.xml"
  san_env=()
  if [[ $b == *asan* ]]; then
    opts=(-Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug)
    san_env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
             UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)
    if [[ -f tests/lsan.supp ]]; then
      san_env+=(LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp)
    fi
  else
    opts=(--buildtype=debugoptimized)
  fi
  if [[ -f $b/meson-private/coredata.dat ]]; then
    step "$b" setup meson setup --reconfigure "$b" "${opts[@]}" || continue
  else
    step "$b" setup meson setup "$b" "${opts[@]}" || continue
  fi
  step "$b" compile meson compile -C "$b" || continue

  mult=1; [[ $b == *asan* ]] && mult=3  # sanitizers slow things down
  step "$b" meson-test env "${san_env[@]}" \
    meson test -C "$b" --print-errorlogs --timeout-multiplier "$mult" || true
  # tests/integration and the SDK test kit's example (sdk/testing/example),
  # in one run: one junit file, one summary line.
  step "$b" pytest env "${san_env[@]}" INGEST_BUILD_DIR="$abs" \
    "$PY" -m pytest tests/integration sdk/testing/example -q -p no:cacheprovider \
      --junitxml="$abs/pytest-junit.xml" "$@" || true
done

echo "=== summary" >&2
exec "$PY" tests/summarize.py "${BUILDS[@]}"
