#!/usr/bin/env bash
# insert_strategies.sh — run insert_strategies (see insert_strategies.c)
# against a throw-away PostgreSQL (etc/dev/pg.sh, fsync on) and a database
# migrated by `ingest-hostctl migrate`, then clean everything up.
#
#   bash tests/bench/insert_strategies.sh [insert_strategies options]
#
# Default options: -n 200000 -b 1000,5000 -r 3 (all strategies; ~3 minutes on
# 2 cores). Examples:
#   bash tests/bench/insert_strategies.sh -n 1000000 -b 5000 -s json,copy_tmp,copy_all
#   bash tests/bench/insert_strategies.sh -C      # ingested_at from the client
#   bash tests/bench/insert_strategies.sh -O      # price the ON CONFLICT clause
# Environment: BENCH_BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BENCH_BUILD_DIR:-build}
(($#)) || set -- -n 200000 -b 1000,5000 -r 3

TMP=$(mktemp -d /tmp/ingest-strat.XXXXXX)
cleanup() {
  local rc=$?
  set +e
  [[ -d $TMP/pg/data ]] && bash etc/dev/pg.sh stop "$TMP/pg" immediate >/dev/null 2>&1
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -f $BUILD/build.ninja ]] || meson setup "$BUILD" --buildtype=debugoptimized >&2
ninja -C "$BUILD" >&2
PROG=$BUILD/tests/bench/insert_strategies
if [[ ! -x $PROG ]]; then  # not registered in meson yet: build it the same way
  PROG=$TMP/insert_strategies
  cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(pkg-config --cflags libpq) \
     tests/bench/insert_strategies.c -o "$PROG" $(pkg-config --libs libpq)
fi

chmod 755 "$TMP"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=$(bash etc/dev/pg.sh start "$TMP/pg" "$PORT" 2>"$TMP/pg-start.log") \
  || { cat "$TMP/pg-start.log" >&2; exit 1; }
printf 'log_level = "warn";\n' >"$TMP/hostd.conf"
INGEST_DATABASE_URL=$URL "$BUILD/host/ingest-hostctl" -c "$TMP/hostd.conf" migrate >/dev/null
"$PROG" -d "$URL" "$@"
