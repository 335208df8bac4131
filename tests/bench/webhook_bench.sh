#!/usr/bin/env bash
# webhook_bench.sh — the webhook ingress under load, on loopback: durable
# acknowledged deliveries per second at saturation, ack latency at a fixed
# offered rate, the same daemon's GET /healthz rate as the HTTP-stack
# baseline, RSS growth over many deliveries, and acknowledged deliveries
# against rows in webhook_deliveries — all in one run, one daemon, one
# database.
#
#   bash tests/bench/webhook_bench.sh
#   BENCH_QUICK=1 bash tests/bench/webhook_bench.sh      # < 1 minute, smaller figures
#
# Environment (all optional):
#   BENCH_QUICK=1            short run: every phase scaled down (defaults below
#                            in brackets)
#   BENCH_BUILD_DIR          meson build directory                  (build)
#   BENCH_WORKERS            daemon workers                         (2)
#   BENCH_POOL               daemon database_pool                   (2, the default)
#   BENCH_QUEUE              daemon webhook_queue                   (daemon default, 10000)
#   BENCH_HEALTHZ_REQUESTS   GET /healthz, closed loop              (200000 [30000])
#   BENCH_HEALTHZ_CONNS      its connections                        (64)
#   BENCH_OPEN_RATE          open-loop offered webhooks/s           (5000)
#   BENCH_OPEN_DURATION      its seconds                            (30 [8])
#   BENCH_OPEN_CONNS         its connections                        (1000)
#   BENCH_OPEN_RUNS          runs of it, back to back; the median
#                            p99 is judged                          (3 [1])
#   BENCH_SAT_REQUESTS       saturation, closed loop                (200000 [30000])
#   BENCH_SAT_CONNS          its connections, a space-separated list:
#                            one run per value, the best counts     ("64 256" ["128"])
#   BENCH_MEM_DELIVERIES     memory phase deliveries; RSS is taken
#                            after the first tenth and at the end   (1000000 [40000])
#   BENCH_MEM_CONNS          its connections                        (128)
#   BENCH_WARMUP             deliveries sent (closed loop, not measured) before
#                            phase 2                                (10000)
#   BENCH_PG_STATEMENTS=1    load pg_stat_statements and print, per phase, the
#                            statements PostgreSQL spent its time on (diagnostics;
#                            adds a little overhead)
#   BENCH_PG_WAL=1           load pg_walinspect and print, per phase, the
#                            relations the WAL was written for (record bytes
#                            and full-page images apart; diagnostics: reading
#                            the WAL back takes a few seconds per phase)
#   BENCH_PG_WAITS=1         sample, every 10 ms of each latency run, what the
#                            daemon's PostgreSQL backends are doing (wait event,
#                            or CPU) and print the tally (diagnostics; the
#                            sampling costs some CPU)
#   BENCH_PG_AGE=0           skip ageing the new cluster's WAL (see below)
#   BENCH_PG_CONF            extra postgresql.conf lines (newline-separated),
#                            after the benchmark's own (shared_buffers = 1GB,
#                            backend_flush_after = 256kB), before the daemon starts
#   BENCH_DIRTY_BACKGROUND_BYTES
#                            the kernel's vm.dirty_background_bytes for the
#                            run, restored at exit (32 MiB; 0 = leave the
#                            machine's setting alone; needs root; see below)
#   BENCH_KEEP=1             keep the temp dir (daemon log, acked keys, ...)
#
# PostgreSQL 15 extends a table by writing zeroed pages, which stay dirty in
# the kernel's page cache (the real contents follow at the next checkpoint).
# With the kernel's default thresholds (background writeback from 10 % of
# memory, and pages older than 30 s) the extensions of half a minute at
# 5,000 deliveries/s, about 400 MB, were written back in one burst every
# 30 s, stalling every WAL flush meanwhile for 100-400 ms. A database host
# is set to write back early and steadily instead (README, "PostgreSQL for
# production"); the benchmark does the same for its duration when it runs
# as root, and prints the setting in effect either way.
#
# Before the phases the new cluster's WAL is aged: about max_wal_size of WAL
# is written and checkpointed, so that, as in a database that has been
# running, commits reuse recycled WAL segments instead of creating each one
# (BENCH_PG_AGE=0 skips it).
#
# Phases, in this order, against one ingest-hostd (plugin hook_hmac from
# tests/plugins/hook_plugin.c: HMAC-SHA256 over the raw body, key header
# X-Hook-Delivery) and one throw-away PostgreSQL cluster (etc/dev/pg.sh;
# fsync on, synchronous_commit on — the 202 means committed):
#   1. healthz      GET /healthz, closed loop: the HTTP stack's ceiling
#   2. latency      after a warm-up of BENCH_WARMUP deliveries (not
#                   measured), open loop at BENCH_OPEN_RATE (requests due at
#                   fixed intervals, latency from the due time: no
#                   coordinated omission); p50/p99/max of the 2xx answers and
#                   the worst one-second windows, per run; the verdict takes
#                   the median run's p99
#   3. saturation   closed loop (each connection sends its next request when
#                   its answer is in); durable acks/s = 2xx answers / elapsed
#   4. memory       closed loop, BENCH_MEM_DELIVERIES deliveries; VmRSS of the
#                   daemon after the first tenth and after all of them
#   5. accounting   every X-Hook-Delivery answered 2xx (warm-up and phases 2-4) against
#                   webhook_deliveries.delivery_key: counts and both set
#                   differences (acked-but-missing must be 0)
# The dispatch keeps turning stored deliveries into signals in the background
# throughout (as in production); its progress is printed, not judged.
# CPU seconds used per phase by the daemon (its loop thread apart), the
# PostgreSQL processes and the load generator are printed, to show where the
# cores go, and what PostgreSQL did meanwhile (WAL written, checkpoints
# begun, autovacuum runs finished), and the kernel's peak of data waiting for
# writeback and time stalled on I/O: the usual company of a latency tail.
#
# Targets (issue): >= 10,000 durable acks/s; p99 <= 25 ms at 5,000/s offered;
# acked-but-missing = 0 (and rows = acks); RSS at the end within 10 % of RSS
# after the first tenth. Prints PASS/FAIL per target; exit status 0 whatever
# the verdicts, non-zero only if something broke.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BENCH_BUILD_DIR:-build}
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  d_hz=30000 d_open=8 d_runs=1 d_sat=30000 d_satc=128 d_mem=40000
else
  d_hz=200000 d_open=30 d_runs=3 d_sat=200000 d_satc="64 256" d_mem=1000000
fi
WORKERS=${BENCH_WORKERS:-2}
POOL=${BENCH_POOL:-}
QUEUE=${BENCH_QUEUE:-}
HZ_N=${BENCH_HEALTHZ_REQUESTS:-$d_hz}
HZ_C=${BENCH_HEALTHZ_CONNS:-64}
OPEN_RATE=${BENCH_OPEN_RATE:-5000}
OPEN_S=${BENCH_OPEN_DURATION:-$d_open}
OPEN_C=${BENCH_OPEN_CONNS:-1000}
OPEN_RUNS=${BENCH_OPEN_RUNS:-$d_runs}
SAT_N=${BENCH_SAT_REQUESTS:-$d_sat}
SAT_CS=${BENCH_SAT_CONNS:-$d_satc}
MEM_N=${BENCH_MEM_DELIVERIES:-$d_mem}
MEM_C=${BENCH_MEM_CONNS:-128}
PG_STATEMENTS=${BENCH_PG_STATEMENTS:-0}
PG_WAL=${BENCH_PG_WAL:-0}
PG_CONF=${BENCH_PG_CONF:-}
PG_WAITS=${BENCH_PG_WAITS:-0}
PG_AGE=${BENCH_PG_AGE:-1}
DIRTY_BG=${BENCH_DIRTY_BACKGROUND_BYTES:-33554432}
MEM_FIRST=$((MEM_N / 10))
WARM_N=${BENCH_WARMUP:-10000}
TENANT=00000000-0000-4000-8000-0000000b0b0b

log() { printf '%s\n' "$*" >&2; }
die() { log "webhook_bench: $*"; exit 1; }

# Every connection is a descriptor in the generator and in the daemon (which
# inherits this limit): raise the soft limit, or use fewer connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]]; then
  for v in OPEN_C HZ_C MEM_C; do
    if ((${!v} > NOFILE - 200)); then
      log "webhook_bench: open files limit $NOFILE: $v lowered from ${!v} to $((NOFILE - 200))"
      printf -v "$v" '%d' $((NOFILE - 200))
    fi
  done
fi

# ----------------------------------------------------------------- clean-up
TMP=$(mktemp -d /tmp/ingest-whb.XXXXXX)
HOSTD_PID=
cleanup() {
  local rc=$?
  set +e
  [[ -n ${DIRTY_PID:-} ]] && kill "$DIRTY_PID" 2>/dev/null
  if [[ -n $HOSTD_PID ]] && kill -0 "$HOSTD_PID" 2>/dev/null; then
    kill -TERM "$HOSTD_PID"; wait "$HOSTD_PID" 2>/dev/null
  fi
  [[ -d $TMP/pg/data ]] && bash etc/dev/pg.sh stop "$TMP/pg" immediate >/dev/null 2>&1
  restore_writeback
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------- kernel writeback
# Setting one of dirty_background_bytes / _ratio zeroes the other, so the
# one in use is put back.
VM=/proc/sys/vm
SAVED_BG_BYTES= SAVED_BG_RATIO= WRITEBACK_NOTE="as found"
restore_writeback() {
  [[ -n $SAVED_BG_BYTES ]] || return 0
  if ((SAVED_BG_BYTES > 0)); then echo "$SAVED_BG_BYTES" >"$VM/dirty_background_bytes"
  else echo "$SAVED_BG_RATIO" >"$VM/dirty_background_ratio"; fi
  SAVED_BG_BYTES=
}
if ((DIRTY_BG > 0)) && [[ $(cat "$VM/dirty_background_bytes") != "$DIRTY_BG" ]]; then
  if [[ -w $VM/dirty_background_bytes ]] &&
     bg_bytes=$(cat "$VM/dirty_background_bytes") && bg_ratio=$(cat "$VM/dirty_background_ratio") &&
     echo "$DIRTY_BG" 2>/dev/null >"$VM/dirty_background_bytes"; then
    SAVED_BG_BYTES=$bg_bytes SAVED_BG_RATIO=$bg_ratio
    WRITEBACK_NOTE="set by the benchmark, restored at exit"
  else
    WRITEBACK_NOTE="as found: could not set $DIRTY_BG (not root?)"
  fi
fi
writeback_settings() {
  local bytes; bytes=$(cat "$VM/dirty_background_bytes")
  if ((bytes > 0)); then printf 'vm.dirty_background_bytes=%s' "$bytes"
  else printf 'vm.dirty_background_ratio=%s%%' "$(cat "$VM/dirty_background_ratio")"; fi
  printf ' vm.dirty_expire_centisecs=%s (%s)' "$(cat "$VM/dirty_expire_centisecs")" "$WRITEBACK_NOTE"
}

# -------------------------------------------------------------------- build
if [[ ! -f $BUILD/build.ninja ]]; then
  meson setup "$BUILD" --buildtype=debugoptimized >&2
fi
ninja -C "$BUILD" >&2
HOSTD=$BUILD/host/ingest-hostd
HOSTCTL=$BUILD/host/ingest-hostctl
PLUGIN=$BUILD/tests/plugins/ingest_hook_hmac.so
LOAD=$BUILD/tests/bench/webhook_load
[[ -x $HOSTD && -x $HOSTCTL ]] || die "ingest-hostd / ingest-hostctl not built in $BUILD"
[[ -f $PLUGIN ]] || die "$PLUGIN not built (meson option tests=true?)"
if [[ ! -x $LOAD ]]; then  # not registered in meson: build it the same way
  LOAD=$TMP/webhook_load
  cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(pkg-config --cflags libevent openssl) \
     tests/bench/webhook_load.c -o "$LOAD" $(pkg-config --libs libevent openssl)
fi

# The plugin directory must not be group/world-writable; the loader takes
# regular files only, so copy with a fixed mode.
mkdir -p "$TMP/plugins"
chmod 755 "$TMP" "$TMP/plugins"
install -m 0755 "$PLUGIN" "$TMP/plugins/"

# ---------------------------------------------------------------- PostgreSQL
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
URL=$(bash etc/dev/pg.sh start "$TMP/pg" "$PORT" 2>"$TMP/pg-start.log") \
  || { cat "$TMP/pg-start.log" >&2; die "PostgreSQL did not start"; }
PSQL=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1)
[[ -x ${PSQL:-} ]] || PSQL=psql
psql_db() { PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URL" "$@"; }
scalar() { psql_db -tA -c "$1"; }
pg_restart() {
  bash etc/dev/pg.sh stop "$TMP/pg" >/dev/null 2>&1
  bash etc/dev/pg.sh start "$TMP/pg" "$PORT" >/dev/null 2>"$TMP/pg-start.log" \
    || { cat "$TMP/pg-start.log" >&2; die "PostgreSQL did not restart ($1)"; }
}
# Configured as a database serving this daemon would be (see README,
# "PostgreSQL for production"): shared_buffers at a few % of this machine's
# memory instead of initdb's 128MB, and backends' own page writes pushed to
# disk as they go (backend_flush_after) rather than left dirty in the page
# cache for each checkpoint's final fsync to flush at once. fsync and
# synchronous_commit stay on. BENCH_PG_CONF lines come after, so they win.
printf '%s\n' "shared_buffers = 1GB" "backend_flush_after = 256kB" ${PG_CONF:+"$PG_CONF"} \
  >>"$TMP/pg/data/postgresql.conf"
pg_restart "with the benchmark's settings"
if [[ $PG_STATEMENTS == 1 ]]; then
  # Diagnostics: where PostgreSQL's time goes, per phase (restart to preload).
  printf "shared_preload_libraries = 'pg_stat_statements'\n" >>"$TMP/pg/data/postgresql.conf"
  pg_restart "with pg_stat_statements"
  scalar "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
fi
# The daemon's histograms, "le count" per line, all three in one scrape:
# ack time for hook_hmac ("ack ..."), inbox commit time ("commit ...") and
# deliveries per inbox commit ("batch ...").
daemon_buckets() {
  curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | sed -n \
    -e 's/^ingest_webhook_ack_seconds_bucket{provider="hook_hmac",le="\([^"]*\)"} \([0-9.e+]*\)$/ack \1 \2/p' \
    -e 's/^ingest_webhook_inbox_commit_seconds_bucket{le="\([^"]*\)"} \([0-9.e+]*\)$/commit \1 \2/p' \
    -e 's/^ingest_webhook_inbox_batch_size_bucket{le="\([^"]*\)"} \([0-9.e+]*\)$/batch \1 \2/p' \
    -e 's/^ingest_webhook_inbox_batch_size_sum \([0-9.e+]*\)$/batch sum \1/p'
}
# Share of a histogram's phase observations (difference of two
# daemon_buckets scrapes) within each bound up to 100 ms.
seconds_share() {
  awk -v h="$1" 'NR == FNR { if ($1 == h) before[$2] = $3; next }
       $1 == h { d[$2] = $3 - before[$2]; order[++n] = $2 }
       END { total = d["+Inf"]; if (total <= 0) { print "none"; exit }
             for (i = 1; i <= n; i++) if (order[i] != "+Inf" && order[i] + 0 <= 0.1)
               printf "%s%.1f%% <= %g ms", (i > 1 ? ", " : ""), 100 * d[order[i]] / total, order[i] * 1000 }' \
    <(printf '%s\n' "$2") <(printf '%s\n' "$3")
}
# Inbox commits in the phase and their mean size.
batch_summary() {
  awk 'NR == FNR { if ($1 == "batch") before[$2] = $3; next }
       $1 == "batch" { d[$2] = $3 - before[$2] }
       END { n = d["+Inf"]; if (n <= 0) { print "no inbox commits"; exit }
             printf "%d inbox commits, %.1f deliveries each on average", n, d["sum"] / n }' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}
# Top statements since the last call (BENCH_PG_STATEMENTS=1 only).
pg_top() {
  [[ $PG_STATEMENTS == 1 ]] || return 0
  printf '   PostgreSQL, top statements by total time in this phase (all backends):\n'
  psql_db -tA -F ' | ' -c "SELECT lpad(round((total_exec_time / 1000)::numeric, 1)::text, 7) || ' s',
      lpad(calls::text, 8) || ' calls', lpad(round((total_exec_time / calls)::numeric, 3)::text, 9) || ' ms/call',
      lpad(rows::text, 9) || ' rows', left(regexp_replace(query, '\s+', ' ', 'g'), 90)
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time DESC LIMIT 8" | sed 's/^/     /'
  scalar "SELECT pg_stat_statements_reset()" >/dev/null
}
# WAL per relation since the phase began (BENCH_PG_WAL=1 only). A record
# counts for the relation of its first block; records without a block (commit,
# ...) count under their resource manager.
# Segments a checkpoint would recycle are kept, so a phase's WAL can still be
# read back after it (disk for them is the price; only with BENCH_PG_WAL=1).
if [[ $PG_WAL == 1 ]]; then
  scalar "CREATE EXTENSION IF NOT EXISTS pg_walinspect" >/dev/null
  scalar "ALTER SYSTEM SET wal_keep_size = '8GB'" >/dev/null
  scalar "SELECT pg_reload_conf()" >/dev/null
fi
# What the daemon's backends were doing, sampled (BENCH_PG_WAITS=1 only):
# waits_start before a phase, waits_top after it.
WAITS_PID=
waits_start() {
  [[ $PG_WAITS == 1 ]] || return 0
  echo "SELECT application_name || ' | ' || coalesce(wait_event_type || ':' || wait_event, 'CPU')
        FROM pg_stat_activity WHERE application_name IN ('ingest-hostd inbox', 'ingest-hostd')
         AND state = 'active' \\watch 0.01" | psql_db -tA >"$TMP/waits.txt" 2>/dev/null &
  WAITS_PID=$!
}
waits_top() {
  [[ -n $WAITS_PID ]] || return 0
  # $! is the subshell running psql_db: stop its psql too, or it goes on
  # sampling (and writing into the next phase's file).
  pkill -P "$WAITS_PID" 2>/dev/null; kill "$WAITS_PID" 2>/dev/null
  wait "$WAITS_PID" 2>/dev/null || true
  WAITS_PID=
  printf '   PostgreSQL backends of the daemon, sampled every 10 ms while active (samples; wait event or CPU):\n'
  grep -v '^$' "$TMP/waits.txt" | sort | uniq -c | sort -rn | head -n 10 |
    awk '{n = $1; $1 = ""; printf "     %7d %s\n", n, $0}'
}
PHASE_LSN=
pg_wal_top() {
  [[ $PG_WAL == 1 && -n $PHASE_LSN ]] || return 0
  printf '   WAL by relation in this phase (record bytes incl. full-page images; images alone; records):\n'
  psql_db -tA -F ' | ' -v start="$PHASE_LSN" <<'SQL' | sed 's/^/     /' ||
WITH r AS (
  SELECT record_length, fpi_length, resource_manager,
         (regexp_match(block_ref, 'rel [0-9]+/[0-9]+/([0-9]+)'))[1]::oid AS node
  FROM pg_get_wal_records_info(:'start', pg_current_wal_flush_lsn())),
t AS (SELECT coalesce(pg_filenode_relation(0, node)::text, '(' || resource_manager || ')') AS rel,
             sum(record_length) AS b, sum(fpi_length) AS f, count(*) AS n FROM r GROUP BY 1)
SELECT lpad(round(b / 1e6, 1)::text, 7) || ' MB', lpad(round(f / 1e6, 1)::text, 7) || ' MB FPI',
       lpad(n::text, 9) || ' records', rel FROM t ORDER BY b DESC LIMIT 12;
SQL
    log "webhook_bench: the phase's WAL could not be read back"
}
# A cluster initdb'd a moment ago has no WAL segments to reuse: the first
# max_wal_size of WAL is made file by file, each new segment zero-filled and
# flushed inside some commit (wait event WALInitSync, tens of ms each). A
# database that has been running recycles its old segments at each
# checkpoint instead. Age this one so: write about max_wal_size of WAL (a
# 900-byte row takes about 1.2 kB of it) and checkpoint.
if [[ $PG_AGE == 1 ]]; then
  log "ageing the cluster's WAL (a running database's recycled segments) ..."
  psql_db <<'SQL'
CREATE TABLE bench_wal_filler (pad text);
INSERT INTO bench_wal_filler SELECT repeat('x', 900)
  FROM generate_series(1, pg_size_bytes(current_setting('max_wal_size')) / 1200);
DROP TABLE bench_wal_filler;
CHECKPOINT;
SQL
fi
PG_VERSION=$(scalar "SHOW server_version")
PG_SETTINGS=$(scalar "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
  FROM pg_settings WHERE name IN ('fsync','synchronous_commit','wal_sync_method','shared_buffers','max_wal_size',
                 'checkpoint_timeout','backend_flush_after')")
PG_POSTMASTER=$(head -n1 "$TMP/pg/data/postmaster.pid")

# ------------------------------------------------------------------ daemon
SECRET=$(openssl rand -hex 32)
export INGEST_CRYPTO_KEY; INGEST_CRYPTO_KEY=$(openssl rand -base64 32)
export INGEST_PLUGIN_DIR=$TMP/plugins
export INGEST_CONTROL_SOCKET=$TMP/hostd.sock
export INGEST_DATABASE_URL=$URL
HTTP_PORT=$(free_port)
export INGEST_LISTEN=127.0.0.1:$HTTP_PORT
export INGEST_WORKERS=$WORKERS
unset INGEST_OPERATOR_TOKEN INGEST_DATABASE_POOL INGEST_WEBHOOK_QUEUE
[[ -n $POOL ]] && export INGEST_DATABASE_POOL=$POOL
[[ -n $QUEUE ]] && export INGEST_WEBHOOK_QUEUE=$QUEUE
cat >"$TMP/hostd.conf" <<CONF
log_level = "warn";
plugins = {
  hook_hmac = { webhook_secret = "$SECRET"; webhook_tenant_id = "$TENANT"; };
};
CONF
"$HOSTCTL" -c "$TMP/hostd.conf" migrate >/dev/null

"$HOSTD" -c "$TMP/hostd.conf" >"$TMP/hostd.log" 2>&1 &
HOSTD_PID=$!
for ((i = 0; ; i++)); do
  kill -0 "$HOSTD_PID" 2>/dev/null || { tail -n 30 "$TMP/hostd.log" >&2; die "ingest-hostd exited"; }
  if "$HOSTCTL" -s "$INGEST_CONTROL_SOCKET" --json list 2>/dev/null | grep -q '"hook_hmac"' &&
     [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz") == 200 ]]; then
    break
  fi
  ((i < 300)) || { tail -n 30 "$TMP/hostd.log" >&2; die "ingest-hostd did not become ready"; }
  sleep 0.1
done
# One signed delivery end to end, so a broken set-up fails here, clearly.
"$LOAD" --target "127.0.0.1:$HTTP_PORT" --secret "$SECRET" --requests 1 --connections 1 \
  --key-prefix smoke >"$TMP/smoke.out" || die "webhook_load failed"
grep -q ' s202=1 ' "$TMP/smoke.out" || { cat "$TMP/smoke.out" >&2; tail -n 20 "$TMP/hostd.log" >&2; die "a signed delivery was not accepted with 202"; }
printf 'smoke-0\n' >"$TMP/acked-smoke.keys"
[[ $PG_STATEMENTS == 1 ]] && scalar "SELECT pg_stat_statements_reset()" >/dev/null

# ------------------------------------------------------------------ helpers
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$HOSTD_PID/status"; }
clk=$(getconf CLK_TCK)
# CPU ticks (utime+stime): the daemon's loop thread (tid = pid), the whole
# daemon, all postgres processes (the postmaster's children + itself), and
# of those the backends serving the daemon's inbox (application_name
# "ingest-hostd inbox") and its other connections ("ingest-hostd"); the rest
# is PostgreSQL's own (WAL writer, checkpointer, autovacuum, ...).
cpu_snapshot() {
  local loop all pg roles
  loop=$(awk '{print $14 + $15}' "/proc/$HOSTD_PID/task/$HOSTD_PID/stat")
  all=$(awk '{print $14 + $15}' "/proc/$HOSTD_PID/stat")
  roles=$(scalar "SELECT pid || CASE application_name WHEN 'ingest-hostd' THEN ' daemon' ELSE ' inbox' END
                  FROM pg_stat_activity WHERE application_name IN ('ingest-hostd inbox', 'ingest-hostd')")
  pg=$( { echo "$PG_POSTMASTER"; pgrep -P "$PG_POSTMASTER"; } | while read -r p; do
          [[ -r /proc/$p/stat ]] || continue
          role=$(awk -v p="$p" '$1 == p {print $2}' <<<"$roles")
          awk -v r="${role:-own}" '{print r, $14 + $15 + $16 + $17}' "/proc/$p/stat"; done |
        awk '{s += $2; by[$1] += $2} END {print s + 0, by["inbox"] + 0, by["daemon"] + 0}')
  echo "$loop $all $pg"
}
# Field of a webhook_load result line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
# WAL bytes, checkpoints begun, autovacuum/autoanalyze runs finished.
# PostgreSQL 17 moved the checkpoint counts to pg_stat_checkpointer.
if (($(scalar "SHOW server_version_num") >= 170000)); then
  CHECKPOINTS_SQL="SELECT num_timed + num_requested FROM pg_stat_checkpointer"
else
  CHECKPOINTS_SQL="SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
fi
pg_activity() {
  scalar "SELECT (SELECT wal_bytes FROM pg_stat_wal) || ' ' || ($CHECKPOINTS_SQL) || ' ' ||
    (SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables)"
}
# The kernel's side of a phase: the most data waiting in the page cache for
# writeback (Dirty, sampled every 100 ms) and how long tasks stalled on I/O
# (pressure stall information, "some": at least one task waiting).
io_stall_us() { sed -n 's/^some .* total=\([0-9]*\)$/\1/p' /proc/pressure/io 2>/dev/null; }
DIRTY_PID=
dirty_start() {
  while :; do
    while read -r key kb _; do [[ $key == Dirty: ]] && { echo "$kb"; break; }; done </proc/meminfo
    sleep 0.1
  done >"$TMP/dirty.txt" &
  DIRTY_PID=$!
}
dirty_peak_mb() {
  kill "$DIRTY_PID" 2>/dev/null; wait "$DIRTY_PID" 2>/dev/null || true
  sort -n "$TMP/dirty.txt" | tail -n1 | awk '{printf "%.0f", $1 / 1024}'
}
PHASE_CPU= PHASE_PG=
# run_load NAME ARGS...: runs webhook_load, records CPU use and PostgreSQL's
# activity; sets RESULT.
run_load() {
  local name=$1; shift
  local before after t0 t1 pg_before pg_after stall_before stall_after
  pg_before=$(pg_activity)
  stall_before=$(io_stall_us); dirty_start
  [[ $PG_WAL == 1 ]] && PHASE_LSN=$(scalar "SELECT pg_current_wal_lsn()")
  [[ $name == latency* ]] && waits_start
  before=$(cpu_snapshot); t0=$(date +%s.%N)
  "$LOAD" --target "127.0.0.1:$HTTP_PORT" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" \
    || { cat "$TMP/$name.err" >&2; die "webhook_load failed in phase $name"; }
  t1=$(date +%s.%N); after=$(cpu_snapshot)
  pg_after=$(pg_activity)
  stall_after=$(io_stall_us)
  PHASE_PG=$(awk -v b="$pg_before" -v a="$pg_after" -v d="$(dirty_peak_mb)" \
                 -v s0="${stall_before:-x}" -v s1="${stall_after:-x}" 'BEGIN { split(b, x, " "); split(a, y, " ");
    printf "postgres meanwhile: WAL %.0f MB, checkpoints begun %d, autovacuum/analyze runs finished %d; kernel: Dirty peak %s MB, tasks stalled on I/O %s",
           (y[1] - x[1]) / 1e6, y[2] - x[2], y[3] - x[3], d,
           (s0 == "x" || s1 == "x") ? "? (no /proc/pressure/io)" : sprintf("%.0f ms", (s1 - s0) / 1000) }')
  RESULT=$(tail -n1 "$TMP/$name.out")
  local gen_cpu; gen_cpu=$(field "$RESULT" cpu_s)
  PHASE_CPU=$(awk -v b="$before" -v a="$after" -v t0="$t0" -v t1="$t1" -v hz="$clk" -v g="$gen_cpu" '
    BEGIN { split(b, x, " "); split(a, y, " "); w = t1 - t0;
            loop = (y[1] - x[1]) / hz; all = (y[2] - x[2]) / hz; pg = (y[3] - x[3]) / hz;
            inbox = (y[4] - x[4]) / hz; other = (y[5] - x[5]) / hz;
            if (all < loop) all = loop;  # the two are read at slightly different times
            printf "cpu over %.1f s wall: daemon %.1f s (loop thread %.1f s = %.0f%% of a core, other threads %.1f s), postgres %.1f s (inbox backends %.1f s, other daemon backends %.1f s, its own processes %.1f s), generator %.1f s",
                   w, all, loop, 100 * loop / w, all - loop, pg, inbox, other, pg - inbox - other, g }')
  grep -v -E '^webhook_load: (rss |[0-9]+s )' "$TMP/$name.err" >&2 || true  # errors, not progress
}
backlog() {  # "pending N, signals M"
  scalar "SELECT 'deliveries not yet processed ' || count(*) FILTER (WHERE state <> 'processed') ||
                 ', signals ' || (SELECT count(*) FROM signals) FROM webhook_deliveries"
}
verdict() { if (($(echo "$1" | bc -l))); then echo PASS; else echo FAIL; fi; }

SRC_REV=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
SRC_DIRTY=$(git diff --quiet HEAD -- host 2>/dev/null || echo ' + uncommitted host/ changes')
cat <<HEAD
webhook ingress benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPU(s), $SRC_REV$SRC_DIRTY$([[ $QUICK == 1 ]] && echo ', QUICK')
  daemon      workers = $WORKERS, database_pool = ${POOL:-2 (default)}, webhook_queue = ${QUEUE:-10000 (default)}, log_level = warn
  plugin      hook_hmac (tests/plugins/hook_plugin.c): X-Hook-Signature sha256=HMAC-SHA256(secret, body), key X-Hook-Delivery
  requests    POST /webhooks/hook_hmac, unique ~200-byte JSON body and key each, keep-alive HTTP/1.1, loopback
  generator   $LOAD (one thread, libevent)
  kernel      $(writeback_settings)
  PostgreSQL  $PG_VERSION, $PG_SETTINGS$([[ $PG_STATEMENTS == 1 ]] && echo ", pg_stat_statements loaded")$([[ $PG_WAL == 1 ]] && echo ", pg_walinspect loaded")$([[ $PG_AGE == 1 ]] && echo ", WAL aged (about max_wal_size written and checkpointed before the daemon started)" || echo ", WAL not aged (BENCH_PG_AGE=0)")
HEAD

# ---------------------------------------------------- 1. /healthz baseline
log "phase 1: GET /healthz x $HZ_N, closed loop, $HZ_C connections ..."
run_load healthz --method GET --path /healthz --mode closed --connections "$HZ_C" --requests "$HZ_N"
HZ=$RESULT
printf '\n1. GET /healthz baseline (closed loop, %s connections, %s requests)\n' "$HZ_C" "$HZ_N"
printf '   %.0f req/s; latency p50 %s ms, p99 %s ms; non-2xx %s, errors %s\n' \
  "$(field "$HZ" rate)" "$(field "$HZ" p50_ms)" "$(field "$HZ" p99_ms)" "$(field "$HZ" non2xx)" "$(field "$HZ" errors)"
printf '   %s\n' "$PHASE_CPU"

# ------------------------------------------------ 2. latency at fixed rate
# Warm-up first (not measured, but counted in phase 5): both store
# connections and the daemon's allocator see traffic before the clock runs.
log "warm-up: $WARM_N deliveries, closed loop ..."
run_load warmup --secret "$SECRET" --mode closed --connections 64 --requests "$WARM_N" \
  --key-prefix warm --acked-file "$TMP/acked-warmup.keys"
printf '\n2. ack latency, open loop at %s/s offered for %s s, %s run(s) back to back (%s connections; latency from the due time)\n' \
  "$OPEN_RATE" "$OPEN_S" "$OPEN_RUNS" "$OPEN_C"
P99S=() LAT_OK=1
for ((r = 1; r <= OPEN_RUNS; r++)); do
  log "phase 2, run $r of $OPEN_RUNS: open loop, $OPEN_RATE/s for $OPEN_S s, $OPEN_C connections ..."
  HIST_BEFORE=$(daemon_buckets)
  run_load "latency$r" --secret "$SECRET" --mode open --rate "$OPEN_RATE" --duration "$OPEN_S" \
    --connections "$OPEN_C" --key-prefix "lat$r" --acked-file "$TMP/acked-latency$r.keys" --progress
  LAT=$RESULT
  # The three worst one-second windows (from --progress): when the tail happened.
  LAT_WORST=$(sed -n 's/^webhook_load: \([0-9]*\)s .*max \([0-9.]*\) ms)$/\2 \1/p' "$TMP/latency$r.err" |
    sort -gr | head -n 3 | awk '{printf "%s%.0f ms in second %d", (NR > 1 ? ", " : ""), $1, $2}')
  P99S+=("$(field "$LAT" p99_ms)")
  printf '   run %s: sent %s, 2xx %s (202 %s, 200 %s), non-2xx %s (%s), errors %s, sent again after an idle close %s; achieved %.0f acks/s\n' \
    "$r" "$(field "$LAT" sent)" "$(field "$LAT" ok_2xx)" "$(field "$LAT" s202)" "$(field "$LAT" s200)" \
    "$(field "$LAT" non2xx)" "$(field "$LAT" status)" "$(field "$LAT" errors)" "$(field "$LAT" resent)" "$(field "$LAT" rate)"
  printf '     latency p50 %s ms, p90 %s ms, p99 %s ms, max %s ms; worst seconds: %s\n' \
    "$(field "$LAT" p50_ms)" "$(field "$LAT" p90_ms)" "$(field "$LAT" p99_ms)" "$(field "$LAT" max_ms)" "${LAT_WORST:--}"
  printf '     schedule: %s request(s) sent > 1 ms after due because the generator was slow, %s because all connections were busy; worst %s ms%s\n' \
    "$(field "$LAT" late)" "$(field "$LAT" late_conn)" "$(field "$LAT" lag_max_ms)" \
    "$([[ $(field "$LAT" behind) == 1 ]] && echo ' (fell behind; latency still counts from the due time)' || echo ' (kept up)')"
  HIST_AFTER=$(daemon_buckets)
  printf '     daemon-side (ingest_webhook_ack_seconds, request read to reply queued): %s\n' \
    "$(seconds_share ack "$HIST_BEFORE" "$HIST_AFTER")"
  printf '     inbox: %s; commit time (ingest_webhook_inbox_commit_seconds): %s\n' \
    "$(batch_summary "$HIST_BEFORE" "$HIST_AFTER")" "$(seconds_share commit "$HIST_BEFORE" "$HIST_AFTER")"
  printf '     %s\n     %s\n' "$PHASE_CPU" "$PHASE_PG"
  pg_top
  waits_top
  pg_wal_top
  (( $(field "$LAT" non2xx) + $(field "$LAT" errors) == 0 )) || LAT_OK=0
done
# Counted once, after the last run: the count reads both tables whole, and
# right after a checkpoint that scan's page pruning writes thousands of
# full-page images, a stall the next run would measure.
printf '   after the last run: %s\n' "$(backlog)"
# Judged on the median run: one checkpoint or autovacuum landing in a
# 30-second window moves a p99 several-fold on a small machine; every run's
# figure is printed next to it.
P99=$(printf '%s\n' "${P99S[@]}" | sort -g | awk '{v[NR] = $1} END {printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
P99_RUNS=$(printf '%s\n' "${P99S[@]}" | paste -sd '/' - | sed 's|/| / |g')
printf '   p99 median of %s run(s): %s ms (each run: %s ms)\n' "$OPEN_RUNS" "$P99" "$P99_RUNS"

# ------------------------------------------------------- 3. saturation
BEST_RATE=0 BEST_C=
printf '\n3. saturation, closed loop, %s deliveries per run\n' "$SAT_N"
k=0
for c in $SAT_CS; do
  k=$((k + 1))
  log "phase 3: closed loop, $c connections, $SAT_N deliveries ..."
  run_load "sat$k" --secret "$SECRET" --mode closed --connections "$c" --requests "$SAT_N" \
    --key-prefix "sat$k" --acked-file "$TMP/acked-sat$k.keys"
  R=$(field "$RESULT" rate)
  printf '   %4s connections: %.0f durable acks/s (2xx %s of %s, non-2xx %s (%s), errors %s); latency p50 %s ms, p99 %s ms, max %s ms\n' \
    "$c" "$R" "$(field "$RESULT" ok_2xx)" "$(field "$RESULT" sent)" "$(field "$RESULT" non2xx)" \
    "$(field "$RESULT" status)" "$(field "$RESULT" errors)" "$(field "$RESULT" p50_ms)" \
    "$(field "$RESULT" p99_ms)" "$(field "$RESULT" max_ms)"
  printf '        %s\n        %s\n' "$PHASE_CPU" "$PHASE_PG"
  pg_top
  if (($(echo "$R > $BEST_RATE" | bc -l))); then BEST_RATE=$R BEST_C=$c; fi
done
printf '   after: %s\n' "$(backlog)"

# ----------------------------------------------------------- 4. memory
log "phase 4: $MEM_N deliveries, closed loop, $MEM_C connections, RSS every $MEM_FIRST ..."
RSS_START=$(rss_kb)
run_load memory --secret "$SECRET" --mode closed --connections "$MEM_C" --requests "$MEM_N" \
  --key-prefix mem --acked-file "$TMP/acked-memory.keys" --rss-pid "$HOSTD_PID" \
  --rss-every "$MEM_FIRST" --progress
MEM=$RESULT
RSS_CURVE=$(sed -n 's/^webhook_load: rss ok=\([0-9]*\) vmrss_kb=\([0-9]*\)$/\1:\2/p' "$TMP/memory.err" | paste -sd ' ' -)
RSS_FIRST=$(sed -n "s/^webhook_load: rss ok=$MEM_FIRST vmrss_kb=\([0-9]*\)$/\1/p" "$TMP/memory.err")
RSS_LAST=$(sed -n "s/^webhook_load: rss ok=$MEM_N vmrss_kb=\([0-9]*\)$/\1/p" "$TMP/memory.err")
[[ -n $RSS_LAST ]] || RSS_LAST=$(sed -n 's/^webhook_load: rss ok=[0-9]* vmrss_kb=\([0-9]*\) (end)$/\1/p' "$TMP/memory.err")
[[ -n $RSS_FIRST && -n $RSS_LAST ]] || die "no RSS samples (see $TMP/memory.err)"
RSS_RATIO=$(echo "$RSS_LAST / $RSS_FIRST" | bc -l)
sleep 2
RSS_IDLE=$(rss_kb)
printf '\n4. memory, %s deliveries, closed loop, %s connections (%.0f acks/s, non-2xx %s, errors %s)\n' \
  "$MEM_N" "$MEM_C" "$(field "$MEM" rate)" "$(field "$MEM" non2xx)" "$(field "$MEM" errors)"
printf '   VmRSS before %s kB; after the first %s: %s kB; after %s: %s kB; ratio %.3f; 2 s later %s kB\n' \
  "$RSS_START" "$MEM_FIRST" "$RSS_FIRST" "$MEM_N" "$RSS_LAST" "$RSS_RATIO" "$RSS_IDLE"
printf '   curve (acks:kB) %s\n' "$RSS_CURVE"
printf '   %s\n   %s\n' "$PHASE_CPU" "$PHASE_PG"
printf '   after: %s\n' "$(backlog)"
pg_top

# ------------------------------------------------------- 5. accounting
cat "$TMP"/acked-*.keys | LC_ALL=C sort >"$TMP/acked.sorted"
psql_db -c "\\copy (SELECT delivery_key FROM webhook_deliveries) TO '$TMP/stored.keys'"
LC_ALL=C sort "$TMP/stored.keys" >"$TMP/stored.sorted"
ACKED=$(wc -l <"$TMP/acked.sorted")
ACKED_UNIQ=$(LC_ALL=C uniq "$TMP/acked.sorted" | wc -l)
ROWS=$(scalar "SELECT count(*) FROM webhook_deliveries")
MISSING=$(LC_ALL=C comm -23 <(LC_ALL=C uniq "$TMP/acked.sorted") "$TMP/stored.sorted" | wc -l)
EXTRA=$(LC_ALL=C comm -13 <(LC_ALL=C uniq "$TMP/acked.sorted") "$TMP/stored.sorted" | wc -l)
printf '\n5. acknowledged vs stored (all webhook phases, incl. the smoke delivery and the warm-up)\n'
printf '   acknowledged (2xx) %s (%s distinct keys); rows in webhook_deliveries %s\n' "$ACKED" "$ACKED_UNIQ" "$ROWS"
printf '   acked but missing from the table: %s; stored but not acked (answer lost or refused): %s\n' "$MISSING" "$EXTRA"
if ((MISSING > 0)); then
  LC_ALL=C comm -23 <(LC_ALL=C uniq "$TMP/acked.sorted") "$TMP/stored.sorted" | head -n 5 | sed 's/^/   missing: /'
fi

# --------------------------------------------------------------- verdicts
SAT_V=$(verdict "$BEST_RATE >= 10000")
LAT_V=$(verdict "$P99 <= 25 && $LAT_OK")
ACK_V=$( ((MISSING == 0 && ACKED_UNIQ == ROWS)) && echo PASS || echo FAIL)
MEM_V=$(verdict "$RSS_RATIO <= 1.10")
printf '\nsummary\n'
printf '  GET /healthz (HTTP-stack baseline)          %8.0f req/s\n' "$(field "$HZ" rate)"
printf '  durable acks/s at saturation (best: %3s c) %8.0f   target >= 10000      %s\n' "$BEST_C" "$BEST_RATE" "$SAT_V"
printf '  ack latency at %s/s offered, p99, median of %s runs   %s ms (each: %s)   target p99 <= 25 ms%s  %s\n' \
  "$OPEN_RATE" "$OPEN_RUNS" "$P99" "$P99_RUNS" \
  "$( ((LAT_OK)) || echo ' (and no non-2xx/errors: there were some)')" "$LAT_V"
printf '  acked vs rows                               %s vs %s, acked-but-missing %s   target equal, 0   %s\n' \
  "$ACKED_UNIQ" "$ROWS" "$MISSING" "$ACK_V"
printf '  RSS after %s / after %s          %s / %s kB = %.3f   target <= 1.10   %s\n' \
  "$MEM_N" "$MEM_FIRST" "$RSS_LAST" "$RSS_FIRST" "$RSS_RATIO" "$MEM_V"
printf 'reproduce: %s\n' "$(env | grep -E '^BENCH_' | sort | paste -sd ' ' -) bash tests/bench/webhook_bench.sh"
