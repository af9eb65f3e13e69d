#!/usr/bin/env bash
# Runs adledger on local defaults: a private PostgreSQL (or $DATABASE_URL), migrations, local
# encryption and signing keys (made once in .local/keys.env unless ADLEDGER_MASTER_KEYS and
# ADLEDGER_JWT_KEYS are set), a checkpoint signing key (made once in .local/checkpoint-keys.env
# unless ADLEDGER_CHECKPOINT_KEYS is set), the demo user and workspace (sandbox platform, 20 campaigns,
# 90 days), then the API on $ADLEDGER_BIND (default 127.0.0.1:8080). Ctrl-C stops it;
# scripts/pg.sh stop stops Postgres.
#
# Kafka mode: `scripts/run.sh --kafka` (or ADLEDGER_KAFKA=1) also starts a local Kafka-protocol
# broker (scripts/kafka.sh; installed on first use), publishes the log to it with the relay and
# feeds the projections from the topic. scripts/kafka.sh stop stops the broker.
# Other arguments go to `adledger serve`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

kafka=${ADLEDGER_KAFKA:-0}
args=()
for arg in "$@"; do
    if [ "$arg" = "--kafka" ]; then kafka=1; else args+=("$arg"); fi
done

pg_env=$(scripts/pg.sh env) || { echo "run.sh: could not start PostgreSQL" >&2; exit 1; }
eval "$pg_env"
export DATABASE_URL
if [ "$kafka" = 1 ]; then
    kafka_env=$(scripts/kafka.sh env) || { echo "run.sh: could not start the Kafka broker" >&2; exit 1; }
    eval "$kafka_env"
    export ADLEDGER_KAFKA_BROKERS
    export ADLEDGER_PROJECTION_SOURCE=kafka
fi
export ADLEDGER_BIND=${ADLEDGER_BIND:-127.0.0.1:8080}

cargo build --release --bin adledger
bin=${CARGO_TARGET_DIR:-target}/release/adledger
if [ -z "${ADLEDGER_MASTER_KEYS:-}" ] || [ -z "${ADLEDGER_JWT_KEYS:-}" ]; then
    # Local keys only: losing this file makes local personal data unreadable, like an erasure.
    keys=.local/keys.env
    if [ ! -s "$keys" ]; then
        mkdir -p .local
        (umask 077 && "$bin" keys generate --kid local1 > "$keys")
        echo "run.sh: generated local keys in $keys"
    fi
    set -a
    # shellcheck source=/dev/null
    . "$keys"
    set +a
fi
if [ -z "${ADLEDGER_CHECKPOINT_KEYS:-}" ]; then
    # A local signing key for the log's checkpoints; its verifier key is the comment after it.
    export ADLEDGER_CHECKPOINT_ORIGIN=${ADLEDGER_CHECKPOINT_ORIGIN:-adledger.local/log}
    checkpoint_keys=.local/checkpoint-keys.env
    if [ ! -s "$checkpoint_keys" ]; then
        mkdir -p .local
        (umask 077 && "$bin" keys checkpoint "$ADLEDGER_CHECKPOINT_ORIGIN" > "$checkpoint_keys")
        echo "run.sh: generated a local checkpoint key in $checkpoint_keys"
    fi
    set -a
    # shellcheck source=/dev/null
    . "$checkpoint_keys"
    set +a
fi
"$bin" migrate
"$bin" demo | sed "s#http://127.0.0.1:8080#http://$ADLEDGER_BIND#"
exec "$bin" serve ${args[@]+"${args[@]}"}
