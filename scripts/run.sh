#!/usr/bin/env bash
# Runs adledger on local defaults: a private PostgreSQL (or $DATABASE_URL), migrations, the demo
# workspace (sandbox platform, 20 campaigns, 90 days), then the API on $ADLEDGER_BIND
# (default 127.0.0.1:8080). Ctrl-C stops it; scripts/pg.sh stop stops Postgres.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

eval "$(scripts/pg.sh env)"
export DATABASE_URL
export ADLEDGER_BIND=${ADLEDGER_BIND:-127.0.0.1:8080}

cargo build --release --bin adledger
bin=target/release/adledger
"$bin" migrate
"$bin" demo | sed "s#http://127.0.0.1:8080#http://$ADLEDGER_BIND#"
exec "$bin" serve "$@"
