#!/usr/bin/env bash
# Manage a throw-away, project-local PostgreSQL cluster for development and tests.
# Part of the SDK's test kit (ingest_testing.PgCluster drives it); etc/dev/pg.sh
# is a wrapper around this file.
#
#   pg.sh start DIR [PORT]   initdb DIR/data if missing, start, create db "ingest";
#                            stdout is only the libpq URL (all chatter goes to stderr)
#   pg.sh stop DIR [MODE]    shutdown, MODE smart|fast|immediate (default fast;
#                            no-op when not running)
#   pg.sh url DIR            print the URL of the cluster in DIR
#
# Superuser "ingest", trust auth (local socket + 127.0.0.1 only), socket in
# DIR/run, TCP on 127.0.0.1:PORT (default 54329, remembered in DIR/port).
# fsync is left on: the durability tests rely on it.
set -euo pipefail

usage() { echo "usage: pg.sh start DIR [PORT] | stop DIR [MODE] | url DIR" >&2; exit 2; }
(($# >= 2)) || usage
cmd=$1
[[ $cmd != start ]] || mkdir -p "$2"
if [[ ! -d $2 ]]; then
  [[ $cmd == stop ]] && exit 0  # nothing to stop
  echo "pg.sh: no such directory: $2" >&2; exit 1
fi
DIR=$(cd "$2" && pwd)
DATA=$DIR/data

find_bindir() {
  local d
  d=$(pg_config --bindir 2>/dev/null || true)
  if [[ -n $d && -x $d/initdb ]]; then echo "$d"; return; fi
  # libpq-dev's pg_config may not match an installed server: take the highest.
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [[ -n $d && -x $d/initdb ]]; then echo "$d"; return; fi
  echo "pg.sh: no PostgreSQL server binaries found (install postgresql; in the source tree: etc/dev/deps.sh)" >&2
  exit 1
}
BIN=$(find_bindir)

# initdb/pg_ctl refuse to run as root: run the server as the "postgres" user.
AS=()
if [[ $(id -u) -eq 0 ]]; then
  id -u postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
      --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  AS=(runuser -u postgres --)
  # Only before the server runs: afterwards it creates and deletes files
  # under DIR, and a recursive chown would race with it.
  if [[ $cmd == start ]]; then chown -R postgres: "$DIR"; fi
  # The postgres user must be able to traverse every parent of DIR.
  p=$(dirname "$DIR")
  while [[ $p != / ]]; do
    [[ $(( 0$(stat -c %a "$p") & 1 )) -eq 1 ]] || chmod o+x "$p"
    p=$(dirname "$p")
  done
fi
# Run as the cluster owner, from a directory it can read.
pg() { (cd "$DIR" && "${AS[@]}" "$@"); }

port() { if [[ -f $DIR/port ]]; then cat "$DIR/port"; else echo 54329; fi; }
url()  { echo "postgresql://ingest@127.0.0.1:$(port)/ingest"; }
running() { pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

case $cmd in
start)
  PORT=${3:-$(port)}
  sock="$DIR/run/.s.PGSQL.$PORT"
  if ((${#sock} > 100)); then  # sun_path is 108 bytes
    echo "pg.sh: socket path too long ($sock); use a shorter DIR" >&2; exit 1
  fi
  if [[ ! -f $DATA/PG_VERSION ]]; then
    pg mkdir -p "$DATA" "$DIR/run" "$DIR/log"
    pg "$BIN/initdb" -D "$DATA" -U ingest --auth=trust -E UTF8 \
       --locale=C.UTF-8 --no-instructions >&2
    # listen_addresses only; port and socket dir are passed at start so they
    # can change between runs. pg_hba from initdb --auth=trust already covers
    # local + 127.0.0.1 + ::1.
    pg tee -a "$DATA/postgresql.conf" >/dev/null <<CONF
# --- added by ingest_testing/pg.sh ---
listen_addresses = '127.0.0.1'
max_connections = 200
log_line_prefix = '%m [%p] %d '
CONF
  fi
  if running; then
    if [[ $PORT != $(port) ]]; then
      echo "pg.sh: already running on port $(port); stop it first" >&2; exit 1
    fi
  else
    pg mkdir -p "$DIR/run" "$DIR/log"
    echo "$PORT" | pg tee "$DIR/port" >/dev/null
    pg "$BIN/pg_ctl" start -D "$DATA" -w -t 60 -l "$DIR/log/postgres.log" \
       -o "-p $PORT -k $DIR/run" >&2 || {
      echo "pg.sh: start failed; tail of $DIR/log/postgres.log:" >&2
      tail -n 20 "$DIR/log/postgres.log" >&2 || true
      exit 1
    }
  fi
  psql=("$BIN/psql" -X -q -h "$DIR/run" -p "$PORT" -U ingest -d postgres -v ON_ERROR_STOP=1)
  if [[ -z $(pg "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'ingest'") ]]; then
    pg "${psql[@]}" -c 'CREATE DATABASE ingest' >&2
  fi
  url
  ;;
stop)
  if running; then
    pg "$BIN/pg_ctl" stop -D "$DATA" -m "${3:-fast}" -w -t 60 >&2
  fi
  ;;
url)
  url
  ;;
*) usage ;;
esac
