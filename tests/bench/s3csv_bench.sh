#!/usr/bin/env bash
# s3csv_bench.sh — CSV objects -> stored signals through the S3/CSV connector,
# in MB/s of CSV, next to two baselines measured in the same run on the same
# file: PostgreSQL's COPY of the file into a plain table, and the connector's
# CSV parser alone.
#
#   bash tests/bench/s3csv_bench.sh                  # 128 MiB
#   BENCH_MB=1024 bash tests/bench/s3csv_bench.sh    # the issue's 1 GiB
#
# Environment (all optional):
#   BENCH_MB          size of the generated CSV in MiB           (default 128)
#   BENCH_BATCH_ROWS  rows per commit (plugins.s3csv.batch_rows)  (default 5000)
#   BENCH_ROW_BYTES   pad the rows to about this many bytes (default: none,
#                     ~105 bytes a row); the store pays mostly per row
#   BENCH_BUILD_DIR   meson build directory                       (default build)
#   BENCH_KEEP=1      keep the temp dir (CSV, logs) for inspection
#   INGEST_NPM_PREFIX where s3rver is installed (default ~/.cache/ingest-host/npm)
#
# The file: a header and rows of 8 columns (id, name, email, amount, currency,
# created_at, city, note), ~150 bytes a row, generated before any timing.
#   parser   build/tests/bench/s3csv_bench: the file mapped, fed in 64 KiB
#            chunks, best of 3 (one core, no I/O);
#   copy     psql "COPY plain FROM STDIN (FORMAT csv, HEADER)" of the file into
#            a plain table with the same columns typed (no index), one
#            transaction, wall clock around psql;
#   import   the file served by s3rver (tests/integration/s3_server.js, SigV4
#            checked) on loopback; one sync job of one connection with a typed
#            schema and key field id, one worker; time = sync_jobs.finished_at
#            - started_at (both PostgreSQL's now()). Every row becomes a signal
#            with its provenance in the signals table (unique key + 3 indexes +
#            primary key), committed with the cursor every BENCH_BATCH_ROWS.
#   sql-store the signal rows the import stored, copied back into the
#            emptied signals table by one INSERT ... SELECT ... ON CONFLICT
#            DO NOTHING: the table's own ceiling for these rows, no daemon.
# Targets (from the issue): import >= 50 MB/s per worker and >= 50 % of COPY.
# Exit status 0 whatever the verdict (a benchmark, not a test); non-zero only
# if something broke.
set -euo pipefail

cd "$(dirname "$0")/../.."
MB=${BENCH_MB:-128}
BATCH=${BENCH_BATCH_ROWS:-5000}
ROW_BYTES=${BENCH_ROW_BYTES:-0}
BUILD=${BENCH_BUILD_DIR:-build}
NPM_PREFIX=${INGEST_NPM_PREFIX:-$HOME/.cache/ingest-host/npm}
TENANT=00000000-0000-4000-8000-00000000beef
BUCKET=bench

log() { printf '%s\n' "$*" >&2; }
die() { log "s3csv_bench: $*"; exit 1; }

TMP=$(mktemp -d /tmp/ingest-s3bench.XXXXXX)
HOSTD_PID= S3_PID=
cleanup() {
  local rc=$?
  set +e
  [[ -n $HOSTD_PID ]] && kill -TERM "$HOSTD_PID" 2>/dev/null && wait "$HOSTD_PID" 2>/dev/null
  [[ -n $S3_PID ]] && kill -TERM "$S3_PID" 2>/dev/null && wait "$S3_PID" 2>/dev/null
  [[ -d $TMP/pg/data ]] && bash etc/dev/pg.sh stop "$TMP/pg" immediate >/dev/null 2>&1
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -------------------------------------------------------------------- build
[[ -f $BUILD/build.ninja ]] || meson setup "$BUILD" --buildtype=debugoptimized >&2
ninja -C "$BUILD" >&2
HOSTD=$BUILD/host/ingest-hostd
HOSTCTL=$BUILD/host/ingest-hostctl
PARSER=$BUILD/tests/bench/s3csv_bench
PLUGIN=$BUILD/plugins/s3csv/ingest_s3csv.so
for f in "$HOSTD" "$HOSTCTL" "$PARSER" "$PLUGIN"; do [[ -x $f || -f $f ]] || die "$f not built"; done
command -v node >/dev/null || die "node is not installed"
[[ -f $NPM_PREFIX/node_modules/s3rver/package.json ]] ||
  die "s3rver is not installed: npm install --prefix $NPM_PREFIX s3rver@3"
mkdir -p "$TMP/plugins"
chmod 755 "$TMP" "$TMP/plugins"
install -m 0755 "$PLUGIN" "$TMP/plugins/"

# --------------------------------------------------------------- the file
log "generating a ${MB} MiB CSV ..."
python3 - "$TMP/data.csv" "$MB" "$ROW_BYTES" <<'PY'
import sys
path, mib, row_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pad = " " + "lorem ipsum " * ((row_bytes - 105) // 12) if row_bytes > 105 else ""
target = mib * 1024 * 1024
cities = ["Berlin", "São Paulo", "Zürich", "New York, NY", "Kraków", "Lyon", "Osaka"]
with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("id,name,email,amount,currency,created_at,city,note\n")
    size, i, buf = 0, 0, []
    while size < target:
        i += 1
        city = cities[i % len(cities)]
        city = f'"{city}"' if "," in city else city
        note = f'"order {i}, ""rush""{pad}"' if i % 10 == 0 else f"order {i} ok{pad}"
        line = (f"{i},Customer {i % 9973},user{i}@example.com,{i % 100000}.{i % 100:02d},"
                f"{'EUR' if i % 3 else 'USD'},2024-{1 + i % 12:02d}-{1 + i % 28:02d}T"
                f"{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z,{city},{note}\n")
        buf.append(line)
        size += len(line.encode())
        if len(buf) == 10000:
            f.write("".join(buf))
            buf = []
    f.write("".join(buf))
PY
BYTES=$(stat -c %s "$TMP/data.csv")
ROWS=$(($(wc -l <"$TMP/data.csv") - 1))

# ------------------------------------------------------------ parser alone
log "parser alone ..."
PARSE_LINE=$("$PARSER" "$TMP/data.csv")
PARSE_MBS=$(sed -n 's/.*mb_s=\([0-9.]*\).*/\1/p' <<<"$PARSE_LINE")
PARSE_RECORDS=$(sed -n 's/records=\([0-9]*\).*/\1/p' <<<"$PARSE_LINE")
[[ $PARSE_RECORDS -eq $((ROWS + 1)) ]] || die "parser saw $PARSE_RECORDS records, expected $((ROWS + 1))"

# -------------------------------------------------------------- PostgreSQL
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
URL=$(bash etc/dev/pg.sh start "$TMP/pg" "$(free_port)" 2>"$TMP/pg-start.log") ||
  { cat "$TMP/pg-start.log" >&2; die "PostgreSQL did not start"; }
BASE=${URL%/*}
PSQL=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1)
[[ -x ${PSQL:-} ]] || PSQL=psql
psql_db() { local db=$1; shift; PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BASE/$db" "$@"; }
scalar() { psql_db "$1" -tA -c "$2"; }
PG_VERSION=$(scalar ingest "SHOW server_version")

cat >"$TMP/hostd.conf" <<CONF
log_level = "info";
job_poll_ms = 50;
plugins = { s3csv = { batch_rows = $BATCH; }; };
CONF
scalar postgres "CREATE DATABASE bench" >/dev/null
INGEST_DATABASE_URL=$BASE/bench "$HOSTCTL" -c "$TMP/hostd.conf" migrate >/dev/null

# --------------------------------------------------------------------- COPY
log "COPY into a plain table ..."
scalar bench "CREATE TABLE plain (id bigint, name text, email text, amount numeric,
  currency text, created_at timestamptz, city text, note text)" >/dev/null
scalar bench "CHECKPOINT" >/dev/null
t0=$(date +%s.%N)
psql_db bench -c "COPY plain FROM STDIN (FORMAT csv, HEADER true)" <"$TMP/data.csv"
t1=$(date +%s.%N)
COPY_S=$(echo "$t1 - $t0" | bc -l)
[[ $(scalar bench "SELECT count(*) FROM plain") -eq $ROWS ]] || die "COPY stored a wrong count"
scalar bench "DROP TABLE plain" >/dev/null

# ---------------------------------------------------------------- S3 server
log "serving the file from s3rver ..."
ADMIN=$(openssl rand -hex 16)
S3RVER_MODULE=$NPM_PREFIX/node_modules/s3rver S3_DATA_DIR=$TMP/s3 S3_ADMIN_TOKEN=$ADMIN \
  node tests/integration/s3_server.js >"$TMP/s3.port" 2>"$TMP/s3.log" &
S3_PID=$!
for ((i = 0; i < 100; i++)); do [[ -s $TMP/s3.port ]] && break; sleep 0.1; done
S3_PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$TMP/s3.port")
[[ -n $S3_PORT ]] || { cat "$TMP/s3.log" >&2; die "s3_server.js did not start"; }
S3=http://127.0.0.1:$S3_PORT
AK=AKIABENCH$(openssl rand -hex 6 | tr a-f A-F) SK=$(openssl rand -hex 20)
curl -sf -X POST -H "X-Admin-Token: $ADMIN" -H 'Content-Type: application/json' \
  -d "{\"access_key_id\":\"$AK\",\"secret_access_key\":\"$SK\"}" "$S3/__admin/credentials" >/dev/null
curl -sf -X PUT -H "X-Admin-Token: $ADMIN" "$S3/$BUCKET" >/dev/null
curl -sf -T "$TMP/data.csv" -H "X-Admin-Token: $ADMIN" -H 'Content-Type: text/csv' \
  "$S3/$BUCKET/in/data.csv" >/dev/null

# ------------------------------------------------------------------- import
log "importing through ingest-hostd ..."
export INGEST_CRYPTO_KEY; INGEST_CRYPTO_KEY=$(openssl rand -base64 32)
export INGEST_PLUGIN_DIR=$TMP/plugins INGEST_CONTROL_SOCKET=$TMP/hostd.sock
export INGEST_LISTEN=127.0.0.1:$(free_port) INGEST_DATABASE_URL=$BASE/bench
"$HOSTD" -c "$TMP/hostd.conf" >"$TMP/hostd.log" 2>&1 &
HOSTD_PID=$!
for ((i = 0; i < 300; i++)); do
  kill -0 "$HOSTD_PID" 2>/dev/null || { tail -n 30 "$TMP/hostd.log" >&2; die "ingest-hostd exited"; }
  "$HOSTCTL" -s "$INGEST_CONTROL_SOCKET" --json list 2>/dev/null | grep -q '"s3csv"' && break
  sleep 0.1
done
CONFIG=$(cat <<JSON
{"schedule": {"*": {"enabled": false}}, "bucket": "$BUCKET", "prefix": "in/",
 "endpoint": "$S3", "force_path_style": true, "kind": "order", "key_fields": ["id"],
 "purpose": "benchmark", "classification": "internal", "occurred_at_field": "created_at",
 "schema": [{"column": "id", "type": "int", "required": true}, {"column": "name"},
            {"column": "email"}, {"column": "amount", "type": "float"},
            {"column": "currency", "type": "enum", "values": ["EUR", "USD"]},
            {"column": "created_at", "type": "timestamp", "required": true},
            {"column": "city"}, {"column": "note"}]}
JSON
)
CID=$("$HOSTCTL" -s "$INGEST_CONTROL_SOCKET" --json connection-add s3csv --tenant "$TENANT" \
  --config-json "$CONFIG" <<<"{\"access_key_id\":\"$AK\",\"secret_access_key\":\"$SK\"}" |
  sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p')
[[ -n $CID ]] || die "connection-add failed"
scalar bench "CHECKPOINT" >/dev/null
JOB=$("$HOSTCTL" -s "$INGEST_CONTROL_SOCKET" --json sync "$CID" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p' | head -n1)
[[ -n $JOB ]] || die "sync could not be queued"
for ((i = 0; ; i++)); do
  state=$(scalar bench "SELECT state FROM sync_jobs WHERE id = '$JOB'")
  case $state in
    succeeded) break ;;
    failed | dead) scalar bench "SELECT last_error FROM sync_jobs WHERE id = '$JOB'" >&2
                   die "sync job $state (log: $TMP/hostd.log; BENCH_KEEP=1 keeps it)" ;;
  esac
  ((i < 18000)) || die "sync job still $state after an hour"
  sleep 0.2
done
IMPORT_S=$(scalar bench "SELECT extract(epoch FROM finished_at - started_at) FROM sync_jobs WHERE id = '$JOB'")
STORED=$(scalar bench "SELECT count(*) FROM signals")
[[ $STORED -eq $ROWS ]] || die "the import stored $STORED signals, expected $ROWS"
SIZES=$(scalar bench "SELECT round(avg(pg_column_size(payload))) || '/' || round(avg(pg_column_size(provenance)))
  FROM (SELECT * FROM signals LIMIT 10000) s")
kill -TERM "$HOSTD_PID" 2>/dev/null && wait "$HOSTD_PID" 2>/dev/null
HOSTD_PID=

# --------------------------------------------- the signals table's ceiling
# The rows the import stored, put back into the emptied signals table by
# one INSERT ... SELECT with the same conflict handling: what PostgreSQL
# itself needs for these rows and this table's five indexes, with no
# daemon, no batching and no network in the way.
log "the same signals by SQL alone ..."
scalar bench "CREATE TABLE stored AS SELECT * FROM signals" >/dev/null
scalar bench "TRUNCATE signals" >/dev/null
scalar bench "CHECKPOINT" >/dev/null
t0=$(date +%s.%N)
scalar bench "INSERT INTO signals (tenant_id, connection_id, source, kind, occurred_at, dedupe_key,
  payload, raw, provenance) SELECT tenant_id, connection_id, source, kind, occurred_at, dedupe_key,
  payload, raw, provenance FROM stored ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING" >/dev/null
t1=$(date +%s.%N)
STORE_S=$(echo "$t1 - $t0" | bc -l)
[[ $(scalar bench "SELECT count(*) FROM signals") -eq $ROWS ]] || die "the SQL insert stored a wrong count"

# ------------------------------------------------------------------ report
mbs() { echo "$BYTES / $1 / 1000000" | bc -l; }
IMPORT_MBS=$(mbs "$IMPORT_S") COPY_MBS=$(mbs "$COPY_S") STORE_MBS=$(mbs "$STORE_S")
RATIO=$(echo "$IMPORT_MBS / $COPY_MBS" | bc -l)
STORE_RATIO=$(echo "$IMPORT_MBS / $STORE_MBS" | bc -l)
cat <<REPORT
S3/CSV benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPU(s), PostgreSQL $PG_VERSION (fsync on, defaults)
  file        $BYTES bytes ($MB MiB), $ROWS rows + header, $((BYTES / (ROWS + 1))) bytes a row
  import      one sync job, batch_rows = $BATCH; stored payload/provenance ${SIZES} bytes a row (jsonb)

  step        seconds      MB/s      rows/s
$(printf '  %-9s %8.2f  %8.1f  %10.0f\n' parser "$(echo "$BYTES / $PARSE_MBS / 1000000" | bc -l)" "$PARSE_MBS" "$(echo "$ROWS * $PARSE_MBS * 1000000 / $BYTES" | bc -l)")
$(printf '  %-9s %8.2f  %8.1f  %10.0f\n' copy "$COPY_S" "$COPY_MBS" "$(echo "$ROWS / $COPY_S" | bc -l)")
$(printf '  %-9s %8.2f  %8.1f  %10.0f\n' sql-store "$STORE_S" "$STORE_MBS" "$(echo "$ROWS / $STORE_S" | bc -l)")
$(printf '  %-9s %8.2f  %8.1f  %10.0f\n' import "$IMPORT_S" "$IMPORT_MBS" "$(echo "$ROWS / $IMPORT_S" | bc -l)")

$(printf 'import / copy = %.3f   import / sql-store = %.3f\n' "$RATIO" "$STORE_RATIO")
$(if (($(echo "$IMPORT_MBS >= 50" | bc -l))); then echo "target: import >= 50 MB/s per worker: PASS"; else echo "target: import >= 50 MB/s per worker: FAIL"; fi)
$(if (($(echo "$RATIO >= 0.5" | bc -l))); then echo "target: import >= 50 % of COPY: PASS"; else echo "target: import >= 50 % of COPY: FAIL"; fi)
REPORT
