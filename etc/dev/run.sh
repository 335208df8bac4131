#!/usr/bin/env bash
# Build and run ingest-hostd against a project-local PostgreSQL cluster.
# State lives in .local/ (git-ignored): pg cluster, keys, plugin copies, socket.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

bash etc/dev/deps.sh
[[ -d build ]] || meson setup build --buildtype=debugoptimized
meson compile -C build

mkdir -p .local
chmod 700 .local  # holds the crypto key and operator token
URL=$(bash etc/dev/pg.sh start "$ROOT/.local/pg")

# Secrets are generated once and reused, so encrypted rows stay readable.
[[ -s .local/crypto.key ]] || (umask 077; openssl rand -base64 32 > .local/crypto.key)
[[ -s .local/operator.token ]] || (umask 077; openssl rand -hex 24 > .local/operator.token)

# The loader takes only regular files (no symlinks) that are not group/world-
# writable: copy with a fixed mode, never link.
rm -rf .local/plugins
mkdir -p .local/plugins
shopt -s nullglob
for so in build/plugins/*/ingest_*.so; do install -m 0755 "$so" .local/plugins/; done
shopt -u nullglob

export INGEST_DATABASE_URL=$URL
export INGEST_PLUGIN_DIR=$ROOT/.local/plugins
export INGEST_CONTROL_SOCKET=$ROOT/.local/hostd.sock
export INGEST_CRYPTO_KEY; INGEST_CRYPTO_KEY=$(cat .local/crypto.key)
export INGEST_OPERATOR_TOKEN; INGEST_OPERATOR_TOKEN=$(cat .local/operator.token)
export INGEST_LISTEN=${INGEST_LISTEN:-127.0.0.1:8080}

cat >&2 <<BANNER
----------------------------------------------------------------------
 ingest-hostd   http://$INGEST_LISTEN   (try: curl http://$INGEST_LISTEN/healthz)
 database       $INGEST_DATABASE_URL
 plugins        $INGEST_PLUGIN_DIR ($(ls .local/plugins | wc -l) copied from build/plugins)
 control        build/host/ingest-hostctl -s .local/hostd.sock list
 operator API   curl -H "Authorization: Bearer \$(cat .local/operator.token)" ...
 stop the db    bash etc/dev/pg.sh stop .local/pg
----------------------------------------------------------------------
BANNER
exec build/host/ingest-hostd -c etc/ingest/hostd.conf "$@"
