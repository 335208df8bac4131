#!/usr/bin/env bash
# http_source_bench.sh — the HTTP push source (plugins/http) at saturation
# with NDJSON batches, on loopback, in one run: the daemon's GET /healthz
# rate (HTTP-stack baseline), durably acknowledged events per second
# (closed loop; each 202 means the batch is committed), the rate at which
# those events become stored signals, and acknowledged against stored.
#
#   bash tests/bench/http_source_bench.sh
#   BENCH_QUICK=1 bash tests/bench/http_source_bench.sh
#
# Environment (optional): BENCH_BUILD_DIR (build), BENCH_WORKERS (2),
# BENCH_EVENTS (events per request, 100), BENCH_REQUESTS (2000 [300]),
# BENCH_CONNS (64), BENCH_KEEP=1 keeps the temp dir.
#
# Target (issue): >= 100,000 events/s at saturation with 100-event batches.
# Prints PASS/FAIL; exits non-zero only if something broke.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BENCH_BUILD_DIR:-build}
QUICK=${BENCH_QUICK:-0}
WORKERS=${BENCH_WORKERS:-2}
EVENTS=${BENCH_EVENTS:-100}
REQUESTS=${BENCH_REQUESTS:-$([[ $QUICK == 1 ]] && echo 300 || echo 2000)}
CONNS=${BENCH_CONNS:-64}
TENANT=00000000-0000-4000-8000-00000000e7e7

log() { printf '%s\n' "$*" >&2; }
die() { log "http_source_bench: $*"; exit 1; }

TMP=$(mktemp -d /tmp/ingest-hsb.XXXXXX)
HOSTD_PID=
cleanup() {
  local rc=$?
  set +e
  [[ -n $HOSTD_PID ]] && kill -TERM "$HOSTD_PID" 2>/dev/null && wait "$HOSTD_PID" 2>/dev/null
  [[ -d $TMP/pg/data ]] && bash etc/dev/pg.sh stop "$TMP/pg" immediate >/dev/null 2>&1
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -f $BUILD/build.ninja ]] || meson setup "$BUILD" >&2
ninja -C "$BUILD" >&2
HOSTD=$BUILD/host/ingest-hostd
HOSTCTL=$BUILD/host/ingest-hostctl
LOAD=$BUILD/tests/bench/webhook_load
PLUGIN=$BUILD/plugins/http/ingest_http.so
for f in "$HOSTD" "$HOSTCTL" "$LOAD" "$PLUGIN"; do [[ -e $f ]] || die "$f not built"; done
mkdir -p "$TMP/plugins"
chmod 755 "$TMP" "$TMP/plugins"
install -m 0755 "$PLUGIN" "$TMP/plugins/"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
URL=$(bash etc/dev/pg.sh start "$TMP/pg" "$(free_port)" 2>"$TMP/pg-start.log") \
  || { cat "$TMP/pg-start.log" >&2; die "PostgreSQL did not start"; }
PSQL=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1)
scalar() { PGOPTIONS='-c client_min_messages=warning' "${PSQL:-psql}" -X -q -tA -d "$URL" -c "$1"; }

export INGEST_CRYPTO_KEY; INGEST_CRYPTO_KEY=$(openssl rand -base64 32)
export INGEST_PLUGIN_DIR=$TMP/plugins INGEST_CONTROL_SOCKET=$TMP/hostd.sock
export INGEST_DATABASE_URL=$URL INGEST_WORKERS=$WORKERS
HTTP_PORT=$(free_port)
export INGEST_LISTEN=127.0.0.1:$HTTP_PORT
unset INGEST_OPERATOR_TOKEN
# Single tenant, no webhook_secret: unsigned pushes (the signature costs the
# same HMAC as the webhook benchmark's; it is not what is measured here).
cat >"$TMP/hostd.conf" <<CONF
log_level = "warn";
plugins = { http = { webhook_tenant_id = "$TENANT"; dedupe_key_path = ""; }; };
CONF
"$HOSTCTL" -c "$TMP/hostd.conf" migrate >/dev/null
"$HOSTD" -c "$TMP/hostd.conf" >"$TMP/hostd.log" 2>&1 &
HOSTD_PID=$!
for ((i = 0; ; i++)); do
  kill -0 "$HOSTD_PID" 2>/dev/null || { tail -n 30 "$TMP/hostd.log" >&2; die "ingest-hostd exited"; }
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz") == 200 ]] && break
  ((i < 300)) || die "ingest-hostd did not become ready"
  sleep 0.1
done
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
load() { "$LOAD" --target "127.0.0.1:$HTTP_PORT" "$@" 2>>"$TMP/load.err" | tail -n1; }

log "phase 1: GET /healthz ..."
HZ=$(load --method GET --path /healthz --requests 20000 --connections 64)
log "phase 2: $REQUESTS requests of $EVENTS NDJSON events, closed loop, $CONNS connections ..."
t0=$(date +%s.%N)
SAT=$(load --path /webhooks/http --secret unused --events "$EVENTS" --pad 60 \
           --requests "$REQUESTS" --connections "$CONNS" --key-prefix hsb)
acked=$(field "$SAT" ok_2xx)
want=$((acked * EVENTS))
log "phase 3: waiting until the $want acknowledged events are signals ..."
for ((i = 0; ; i++)); do
  stored=$(scalar "SELECT count(*) FROM signals WHERE source = 'http'")
  ((stored >= want)) && break
  ((i < 3000)) || die "only $stored of $want events stored after 300 s"
  sleep 0.1
done
t1=$(date +%s.%N)
rows=$(scalar "SELECT count(*) FROM webhook_deliveries WHERE provider = 'http'")
dead=$(scalar "SELECT count(*) FROM dead_letters")

hz_rate=$(field "$HZ" rate)
ack_rate=$(field "$SAT" rate)
ack_events=$(awk -v r="$ack_rate" -v e="$EVENTS" 'BEGIN { printf "%.0f", r * e }')
stored_rate=$(awk -v n="$want" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t ? "PASS" : "FAIL") }'; }
cat <<OUT
http push source benchmark — $(date -u +%FT%TZ), $(nproc) CPU(s), $(git rev-parse --short HEAD 2>/dev/null)
  daemon workers = $WORKERS; $EVENTS events per request (~150 bytes each), NDJSON, $CONNS connections
  GET /healthz (HTTP-stack baseline)      $hz_rate req/s
  acknowledged requests/s (durable)        $ack_rate   (p50 $(field "$SAT" p50_ms) ms, p99 $(field "$SAT" p99_ms) ms; non-2xx $(field "$SAT" non2xx), errors $(field "$SAT" errors))
  acknowledged events/s                    $ack_events   target >= 100000   $(verdict "$ack_events" 100000)
  events stored as signals/s (end to end)  $stored_rate
  acknowledged vs stored                   $acked requests = $rows rows; $want events = $stored signals; dead letters $dead   $([[ $acked == "$rows" && $stored == "$want" ]] && echo PASS || echo FAIL)
OUT
