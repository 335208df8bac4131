#!/usr/bin/env bash
# signals_bench.sh — signals stored per second through the plugin API, next to
# plain COPY of the same rows into the same table, in the same run.
#
#   bash tests/bench/signals_bench.sh
#
# Environment (all optional):
#   BENCH_SIGNALS     signals per run                         (default 1000000)
#   BENCH_RUNS        runs; medians are taken over them       (default 3)
#   BENCH_PAGE_SIZE   signals per cursor_set() transaction    (default 5000)
#   BENCH_BUILD_DIR   meson build directory                   (default build)
#   BENCH_POOL        daemon database_pool (writer threads)   (default: daemon's, 2)
#   BENCH_KEEP=1      keep the temp dir (daemon logs, COPY file) for inspection
#
# Each run uses two fresh databases of one throw-away PostgreSQL cluster
# (etc/dev/pg.sh; fsync on, default settings), both migrated by
# `ingest-hostctl migrate`, so the signals table, its unique constraint and its
# indexes are identical:
#   api   ingest-hostd loads ingest_bench.so; one sync job emits BENCH_SIGNALS
#         signals, a cursor_set() (one transaction, waits until durable) every
#         BENCH_PAGE_SIZE. Time = sync_jobs.finished_at - started_at, both
#         set by PostgreSQL's now() (at the claim and at the success update),
#         so the poll below does not affect it; "wall" adds the claim latency
#         (from the job's INSERT to finished_at).
#   copy  psql "COPY signals (...) FROM STDIN" of a file holding the same rows
#         (same columns, same provenance shape, generated before the runs and
#         not timed); one transaction; time = wall clock around psql.
# The two phases alternate their order from run to run and each starts after a
# CHECKPOINT, so neither inherits the other's dirty buffers systematically.
#
# Prints per run: API rows/s, COPY rows/s, ratio; then the medians, the median
# ratio and "target: ratio >= 0.50: PASS|FAIL". Exit status 0 whatever the
# verdict (it is a benchmark, not a test); non-zero only if something broke.
set -euo pipefail

cd "$(dirname "$0")/../.."
SIGNALS=${BENCH_SIGNALS:-1000000}
RUNS=${BENCH_RUNS:-3}
PAGE=${BENCH_PAGE_SIZE:-5000}
BUILD=${BENCH_BUILD_DIR:-build}
TENANT=00000000-0000-4000-8000-00000000beef
COLS="tenant_id, connection_id, source, kind, occurred_at, dedupe_key, payload, raw, provenance"

log() { printf '%s\n' "$*" >&2; }
die() { log "signals_bench: $*"; exit 1; }

# ----------------------------------------------------------------- clean-up
TMP=$(mktemp -d /tmp/ingest-bench.XXXXXX)
HOSTD_PID=
cleanup() {
  local rc=$?
  set +e
  if [[ -n $HOSTD_PID ]] && kill -0 "$HOSTD_PID" 2>/dev/null; then
    kill -TERM "$HOSTD_PID"; wait "$HOSTD_PID" 2>/dev/null
  fi
  [[ -d $TMP/pg/data ]] && bash etc/dev/pg.sh stop "$TMP/pg" immediate >/dev/null 2>&1
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -------------------------------------------------------------------- build
if [[ ! -f $BUILD/build.ninja ]]; then
  meson setup "$BUILD" --buildtype=debugoptimized >&2
fi
ninja -C "$BUILD" >&2
HOSTD=$BUILD/host/ingest-hostd
HOSTCTL=$BUILD/host/ingest-hostctl
[[ -x $HOSTD && -x $HOSTCTL ]] || die "ingest-hostd / ingest-hostctl not built in $BUILD"

# The plugin directory must not be group/world-writable; the loader takes
# regular files only, so copy with a fixed mode.
mkdir -p "$TMP/plugins"
chmod 755 "$TMP" "$TMP/plugins"
if [[ -f $BUILD/tests/bench/ingest_bench.so ]]; then
  install -m 0755 "$BUILD/tests/bench/ingest_bench.so" "$TMP/plugins/"
  PLUGIN_FROM="$BUILD/tests/bench/ingest_bench.so (meson)"
else
  # Not registered in meson yet: build it as tests/bench/meson.build would
  # (debugoptimized, hidden visibility, the SDK's version script).
  cc -shared -fPIC -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
     -fvisibility=hidden -I sdk -Wl,--version-script=sdk/ingest_plugin.map \
     tests/bench/bench_plugin.c -o "$TMP/plugins/ingest_bench.so"
  chmod 0755 "$TMP/plugins/ingest_bench.so"
  PLUGIN_FROM="tests/bench/bench_plugin.c (cc, by hand)"
fi

# ---------------------------------------------------------------- PostgreSQL
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
URL=$(bash etc/dev/pg.sh start "$TMP/pg" "$PORT" 2>"$TMP/pg-start.log") \
  || { cat "$TMP/pg-start.log" >&2; die "PostgreSQL did not start"; }
BASE=${URL%/*}
# The real psql binary, not Debian's Perl wrapper: the job is polled while it
# runs, and a cheap poll disturbs the measurement less.
PSQL=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1)
[[ -x ${PSQL:-} ]] || PSQL=psql
psql_db() { local db=$1; shift; PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BASE/$db" "$@"; }
scalar() { psql_db "$1" -tA -c "$2"; }
PG_VERSION=$(scalar ingest "SHOW server_version")
PG_SETTINGS=$(scalar ingest "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
  FROM pg_settings WHERE name IN ('fsync','synchronous_commit','wal_level','shared_buffers','max_wal_size','checkpoint_timeout')")

fresh_db() {  # name: create and migrate (same schema for both phases)
  scalar postgres "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  scalar postgres "CREATE DATABASE $1" >/dev/null
  INGEST_DATABASE_URL=$BASE/$1 "$HOSTCTL" -c "$TMP/hostd.conf" migrate >/dev/null
}

# ------------------------------------------------------------------ daemon
export INGEST_CRYPTO_KEY; INGEST_CRYPTO_KEY=$(openssl rand -base64 32)
export INGEST_PLUGIN_DIR=$TMP/plugins
export INGEST_CONTROL_SOCKET=$TMP/hostd.sock
export INGEST_LISTEN=127.0.0.1:$(free_port)
unset INGEST_OPERATOR_TOKEN
POOL_LINE=
[[ -n ${BENCH_POOL:-} ]] && POOL_LINE="database_pool = $BENCH_POOL;"
cat >"$TMP/hostd.conf" <<CONF
log_level = "info";
job_poll_ms = 50;
$POOL_LINE
plugins = {
  bench = { signals = $SIGNALS; page_size = $PAGE; tenant_id = "$TENANT"; start = 1; };
};
CONF

start_daemon() {  # db, log
  INGEST_DATABASE_URL=$BASE/$1 "$HOSTD" -c "$TMP/hostd.conf" >"$2" 2>&1 &
  HOSTD_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$HOSTD_PID" 2>/dev/null || { tail -n 30 "$2" >&2; die "ingest-hostd exited"; }
    if "$HOSTCTL" -s "$INGEST_CONTROL_SOCKET" --json list 2>/dev/null | grep -q '"bench"' &&
       "$HOSTCTL" -s "$INGEST_CONTROL_SOCKET" health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 30 "$2" >&2
  die "ingest-hostd did not become healthy with the bench plugin loaded"
}

stop_daemon() {
  kill -TERM "$HOSTD_PID"
  wait "$HOSTD_PID" || true
  HOSTD_PID=
}

# ------------------------------------------------------ the COPY input file
# The same rows the plugin emits, shaped exactly as the daemon stores them.
# The shape is taken from the daemon itself, not copied by hand (host/run.c
# and host/store.c change): a calibration job stores 10 signals, and the row
# of seq 1 is the template. Per row, the fields that vary in the daemon's rows
# vary here too (dedupe_key, payload, and the provenance keys source_id,
# content_sha256 of the payload text as emitted, batch_id per page); the rest
# (job id, plugin, observed/ingested times, ...) is copied. Generated once,
# before any timing, by the server; not part of the measurement.
log "calibrating: the daemon stores 10 signals to show the row shape ..."
fresh_db bench_calib
INGEST_PLUGINS_BENCH_SIGNALS=10 INGEST_PLUGINS_BENCH_PAGE_SIZE=10 \
  start_daemon bench_calib "$TMP/hostd-calib.log"
scalar bench_calib "INSERT INTO sync_jobs (tenant_id, provider, stream)
                    VALUES ('$TENANT', 'bench', 'signals')" >/dev/null
for ((i = 0; i < 600; i++)); do
  [[ $(scalar bench_calib "SELECT count(*) FROM sync_jobs WHERE state = 'succeeded'") == 1 ]] && break
  sleep 0.05
done
stop_daemon
[[ $(scalar bench_calib "SELECT count(*) FROM signals") == 10 ]] \
  || die "calibration job did not store 10 signals (log: $TMP/hostd-calib.log)"
log "generating $SIGNALS rows for COPY ..."
GEN_SQL="
WITH t AS (SELECT * FROM signals WHERE dedupe_key = 'bench:1'),
r AS (
  SELECT i, format('{\"seq\":%s,\"v\":\"x\"}', i) AS payload,
         md5(((i - 1) / $PAGE)::text)::uuid AS batch_id
  FROM generate_series(1, $SIGNALS) AS i)
SELECT t.tenant_id, t.connection_id, t.source, t.kind, t.occurred_at, 'bench:' || r.i,
       r.payload::jsonb, t.raw,
       t.provenance || (
         SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(jsonb_build_object(
           'source_id', r.i::text,
           'content_sha256', encode(sha256(convert_to(r.payload, 'UTF8')), 'hex'),
           'batch_id', r.batch_id)) AS e(k, v)
         WHERE t.provenance ? k)
FROM r, t"
psql_db bench_calib -c "\\copy ($GEN_SQL) TO '$TMP/rows.copy'"
scalar postgres "DROP DATABASE bench_calib WITH (FORCE)" >/dev/null
COPY_LINES=$(wc -l <"$TMP/rows.copy")
[[ $COPY_LINES -eq $SIGNALS ]] || die "COPY file has $COPY_LINES rows, expected $SIGNALS"
COPY_MB=$(du -m "$TMP/rows.copy" | cut -f1)

# ------------------------------------------------------------------- phases
run_api() {  # run index -> sets API_S, API_WALL_S, API_ROWS
  local db=bench_api_$1
  fresh_db "$db"
  start_daemon "$db" "$TMP/hostd-$1.log"
  scalar "$db" "CHECKPOINT" >/dev/null
  local job state i
  job=$(scalar "$db" "INSERT INTO sync_jobs (tenant_id, provider, stream)
                      VALUES ('$TENANT', 'bench', 'signals') RETURNING id" | head -n1)
  for ((i = 0; ; i++)); do
    state=$(scalar "$db" "SELECT state FROM sync_jobs WHERE id = '$job'")
    case $state in
      succeeded) break ;;
      failed | retrying | dead)
        scalar "$db" "SELECT last_error FROM sync_jobs WHERE id = '$job'" >&2
        die "sync job $state (daemon log: $TMP/hostd-$1.log; BENCH_KEEP=1 keeps it)" ;;
    esac
    ((i < 9000)) || die "sync job still $state after 30 minutes"
    sleep 0.2  # the timing comes from the job row, not from this poll
  done
  read -r API_S API_WALL_S < <(scalar "$db" "SELECT extract(epoch FROM finished_at - started_at),
      extract(epoch FROM finished_at - created_at) FROM sync_jobs WHERE id = '$job'" | tr '|' ' ')
  API_ROWS=$(scalar "$db" "SELECT count(*) FROM signals")
  API_PROV=$(scalar "$db" "SELECT round(avg(pg_column_size(provenance))) || '/' ||
      round(avg(pg_column_size(payload))) FROM (SELECT * FROM signals LIMIT 10000) s")
  API_SAMPLE=$(scalar "$db" "SELECT provenance FROM signals ORDER BY dedupe_key LIMIT 1")
  stop_daemon
  [[ $API_ROWS -eq $SIGNALS ]] || die "api run stored $API_ROWS rows, expected $SIGNALS"
  scalar postgres "DROP DATABASE $db WITH (FORCE)" >/dev/null
}

run_copy() {  # run index -> sets COPY_S, COPY_ROWS
  local db=bench_copy_$1 t0 t1
  fresh_db "$db"
  scalar "$db" "CHECKPOINT" >/dev/null
  t0=$(date +%s.%N)
  psql_db "$db" -c "COPY signals ($COLS) FROM STDIN" <"$TMP/rows.copy"
  t1=$(date +%s.%N)
  COPY_S=$(echo "$t1 - $t0" | bc -l)
  COPY_ROWS=$(scalar "$db" "SELECT count(*) FROM signals")
  COPY_PROV=$(scalar "$db" "SELECT round(avg(pg_column_size(provenance))) || '/' ||
      round(avg(pg_column_size(payload))) FROM (SELECT * FROM signals LIMIT 10000) s")
  COPY_SAMPLE=$(scalar "$db" "SELECT provenance FROM signals ORDER BY dedupe_key LIMIT 1")
  [[ $COPY_ROWS -eq $SIGNALS ]] || die "copy run stored $COPY_ROWS rows, expected $SIGNALS"
  scalar postgres "DROP DATABASE $db WITH (FORCE)" >/dev/null
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
rate() { echo "$1 / $2" | bc -l; }

STORE_BATCH=$(sed -n 's/^#define MAX_BATCH \([0-9]*\).*/\1/p' host/store.c)
# What host/store.c uses to write signals: its SQL string constants, by
# keyword (comments excluded; read the file to be sure).
STORE_SQL=$(grep -E '^ *"' host/store.c | grep -oE 'json_to_recordset|unnest\(|COPY [a-z_]+ |FROM [a-z_]+_staging|ON CONFLICT \([a-z_, ]+\) DO NOTHING' | sort -u | paste -sd ' ' -)
cat <<HEAD
signals benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPU(s), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- host 2>/dev/null || echo ' + uncommitted host/ changes')
  rows per run        $SIGNALS (kind bench.row, dedupe key bench:<seq>, payload {"seq":N,"v":"x"})
  plugin              $PLUGIN_FROM
  daemon              page_size = $PAGE signals per cursor_set() (1 transaction each), one sync job,
                      database_pool = ${BENCH_POOL:-2 (default)}, store group commit up to $STORE_BATCH requests per transaction
                      host/store.c signal insert uses: ${STORE_SQL:-?}
  baseline            psql COPY signals (...) FROM STDIN, $SIGNALS rows, ${COPY_MB} MB text, one transaction
  PostgreSQL          $PG_VERSION, $PG_SETTINGS
  both                same cluster, fresh database migrated by ingest-hostctl (unique constraint + 3 indexes + pkey)

run  order      api s   api rows/s  (wall s)    copy s  copy rows/s   ratio   prov/payload bytes api|copy
HEAD

API_RATES=() COPY_RATES=() RATIOS=()
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then order=api,copy; run_api "$r"; run_copy "$r"
  else order=copy,api; run_copy "$r"; run_api "$r"; fi
  a=$(rate "$SIGNALS" "$API_S"); c=$(rate "$SIGNALS" "$COPY_S"); q=$(echo "$a / $c" | bc -l)
  API_RATES+=("$a") COPY_RATES+=("$c") RATIOS+=("$q")
  printf '%3d  %-9s %7.2f  %11.0f  (%6.2f)  %7.2f  %11.0f   %5.3f   %s|%s\n' \
    "$r" "$order" "$API_S" "$a" "$API_WALL_S" "$COPY_S" "$c" "$q" "$API_PROV" "$COPY_PROV"
done

MA=$(printf '%s\n' "${API_RATES[@]}" | median)
MC=$(printf '%s\n' "${COPY_RATES[@]}" | median)
MQ=$(printf '%s\n' "${RATIOS[@]}" | median)
printf '\nmedian of %d run(s): plugin API %.0f rows/s, COPY %.0f rows/s, ratio %.3f (median of per-run ratios)\n' \
  "$RUNS" "$MA" "$MC" "$MQ"
if (($(echo "$MQ >= 0.5" | bc -l))); then verdict=PASS; else verdict=FAIL; fi
echo "target: ratio >= 0.50: $verdict"
printf '\nsample provenance (api):  %s\nsample provenance (copy): %s\n' "$API_SAMPLE" "$COPY_SAMPLE"
