#!/usr/bin/env bash
# The whole test suite: format check, clippy, and every test against a private PostgreSQL
# (started by scripts/pg.sh when DATABASE_URL is not set). CI runs exactly this.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$component" \
            || rustup component add "$component"
    done
fi

# An `eval "$(...)"` would go on silently when the script fails: take its output first.
pg_env=$(scripts/pg.sh env) || { echo "test.sh: could not start PostgreSQL" >&2; exit 1; }
eval "$pg_env"
export DATABASE_URL

# The Kafka-protocol broker for the Kafka paths (installed on first use), in a data directory of
# its own, stopped afterwards unless it was already running or ADLEDGER_KAFKA_BROKERS points
# elsewhere. Test topics are throwaway: a broker this script starts begins empty, so it does not
# slow down with every earlier run's messages.
export ADLEDGER_KAFKA_DIR="$root/.local/kafka-test"
if [ -z "${ADLEDGER_KAFKA_BROKERS:-}" ] && ! scripts/kafka.sh status 2>/dev/null; then
    rm -rf "$ADLEDGER_KAFKA_DIR"
    trap 'scripts/kafka.sh stop' EXIT
fi
kafka_env=$(scripts/kafka.sh env) || { echo "test.sh: could not start the Kafka broker" >&2; exit 1; }
eval "$kafka_env"
export ADLEDGER_KAFKA_BROKERS
if [ -n "${TANSU_BIN:-}" ]; then export TANSU_BIN; fi

# Per-test databases from earlier runs.
psql "$DATABASE_URL" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'adledger_test_%'" 2>/dev/null \
    | while read -r db; do [ -n "$db" ] && psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; done || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features adledger-infra/testing -- -D warnings
echo "== cargo test"
cargo test --workspace --features adledger-infra/testing
echo "== schemathesis: the API contract, fuzzed (scripts/schemathesis.sh)"
scripts/schemathesis.sh
