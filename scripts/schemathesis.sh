#!/usr/bin/env bash
# The API contract, checked by a fuzzer: schemathesis (pinned, in the project-local virtualenv
# .local/venv, installed from PyPI on first use and reused after) runs every check against
# `adledger serve` on a free loopback port and a fresh database of the Postgres that
# scripts/test.sh uses, three times: as a read_write API key of a workspace, as its owner (who
# is also an operator), and anonymously. Every check (schemathesis.toml turns
# them all on, and the few exceptions off, each with its reason beside it); fixed seed, bounded
# examples: a few minutes on 2 cores. Exits non-zero on any failure.
#
#   scripts/schemathesis.sh                 build, serve, fuzz, stop
#   SCHEMATHESIS_MAX_EXAMPLES=200 scripts/schemathesis.sh
#   SCHEMATHESIS_RUNS="owner" scripts/schemathesis.sh   only some of api-key, owner, anonymous
#   SCHEMATHESIS_ARGS="--include-path-regex /syncs" scripts/schemathesis.sh
#
# Reports (JUnit, NDJSON) and the server's log land in .local/schemathesis/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

version=4.32.5
venv=.local/venv
out=.local/schemathesis
seed=${SCHEMATHESIS_SEED:-20260511}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-50}
# The API key's run comes first: the owner's run may revoke every key it finds listed.
runs=${SCHEMATHESIS_RUNS:-api-key owner anonymous}

say() { echo "schemathesis.sh: $*" >&2; }

# The fuzzer, pinned: reused when the pinned version is there, else (re)installed. Only
# schemathesis and what it depends on; pip's own cache keeps a cold reinstall quick.
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $version" ]; then
    say "installing schemathesis $version into $venv"
    rm -rf "$venv"
    # Debian ships venv's pip bootstrap apart (python3-venv): install it when it is missing.
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        say "python3 with venv not found; installing the Debian packages"
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >&2
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

pg_env=$(scripts/pg.sh env) || { say "could not start PostgreSQL"; exit 1; }
eval "$pg_env"

# Exactly `cargo test`'s build (scripts/test.sh runs this after it): a no-op there, where a
# `cargo build` would resolve features without dev-dependencies and build the binary again.
cargo test --quiet --workspace --features adledger-infra/testing --no-run
# Where cargo put it: CARGO_TARGET_DIR when set (a shared build cache), else ./target.
bin=${CARGO_TARGET_DIR:-$root/target}/debug/adledger

mkdir -p "$out"
rm -f "$out"/*.xml "$out"/*.ndjson
# A database of its own, named like the tests' so that scripts/test.sh's sweep drops a leftover.
db=adledger_test_schemathesis_$$
admin_url=$DATABASE_URL
export DATABASE_URL="${admin_url%/*}/$db"
psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null

server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; fi
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
# Taken first: an `eval "$(...)"` would go on silently when the command fails.
keys=$("$bin" keys generate --kid fuzz) || { say "could not run $bin"; exit 1; }
eval "$(printf '%s\n' "$keys" | sed 's/^/export /')"
checkpoint_keys=$("$bin" keys checkpoint fuzz.local/log) || { say "could not run $bin"; exit 1; }
eval "$(printf '%s\n' "$checkpoint_keys" | grep -v '^#' | sed 's/^/export /')"
"$bin" migrate >/dev/null

# Rate limits off: a fuzzer is one very busy client by design, and every 429 would hide the
# answer under test (the limits have black-box tests of their own). The scheduler is off and one
# sync runs at a time, so that background work does not starve the run.
ADLEDGER_RATE_LIMIT_PER_MINUTE=0 \
ADLEDGER_CREDENTIAL_RATE_LIMIT_PER_MINUTE=0 \
ADLEDGER_CALLER_RATE_LIMIT_PER_MINUTE=0 \
ADLEDGER_SYNC_INTERVAL_SECS=0 \
ADLEDGER_MAX_CONCURRENT_SYNCS=1 \
RUST_LOG=${RUST_LOG:-warn} \
    "$bin" serve --bind "127.0.0.1:$port" >"$out/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; say "the server did not start"; exit 1; }
    sleep 0.2
done

# Credentials through the API itself: an owner (made an operator, so the deployment-wide routes
# are fuzzed too), the owner's workspace with a sandbox connection, and an API key of it.
call() {
    local method=$1 path=$2 body=${3:-} token=${4:-}
    curl -fsS -X "$method" "$base$path" -H 'content-type: application/json' \
        ${token:+-H "authorization: Bearer $token"} ${body:+--data "$body"}
}
# One field of a JSON answer (python3 is there anyway: the fuzzer runs on it).
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
email=fuzz-owner@example.com
password=fuzz-owner-password-1
call POST /v1/auth/register "{\"email\":\"$email\",\"name\":\"Fuzz Owner\",\"password\":\"$password\"}" >/dev/null
"$bin" operators grant "$email" >/dev/null
owner=$(call POST /v1/auth/login "{\"email\":\"$email\",\"password\":\"$password\"}" | field access_token)
workspace=$(call POST /v1/workspaces '{"name":"fuzz"}' "$owner" | field id)
call POST "/v1/workspaces/$workspace/connections" \
    '{"platform":"sandbox","label":"fuzz","sandbox":{"seed":1,"ad_accounts":1,"campaigns":3}}' "$owner" >/dev/null
api_key=$(call POST "/v1/workspaces/$workspace/api-keys" '{"name":"fuzz","scope":"read_write"}' "$owner" | field key)

export SCHEMATHESIS_WORKSPACE_ID=$workspace
# Hypothesis keeps its own files under .local too, not in the work tree.
export HYPOTHESIS_STORAGE_DIRECTORY=$root/$out/hypothesis
status=0
for run in $runs; do
    headers=() exclude=()
    case $run in
        # Logging out and erasing oneself end the session the rest of the run signs in with;
        # the anonymous and API-key runs fuzz them, the black-box tests cover their effect.
        owner) headers=(-H "Authorization: Bearer $owner")
            exclude=(--exclude-operation-id logout --exclude-operation-id erase_me) ;;
        api-key) headers=(-H "Authorization: Bearer $api_key") ;;
        anonymous) ;;
        *) say "unknown run $run (owner, api-key, anonymous)"; exit 2 ;;
    esac
    say "run: $run ($base, seed $seed, at most $max_examples examples per operation)"
    # shellcheck disable=SC2086
    "$venv/bin/schemathesis" --config-file schemathesis.toml run "$base/openapi.json" \
        --seed "$seed" --max-examples "$max_examples" --no-color \
        --report junit,ndjson --report-dir "$out" \
        --report-junit-path "$out/$run.xml" --report-ndjson-path "$out/$run.ndjson" \
        ${headers[@]+"${headers[@]}"} ${exclude[@]+"${exclude[@]}"} ${SCHEMATHESIS_ARGS:-} || status=1
done
if [ "$status" -ne 0 ]; then say "contract failures (reports in $out)"; fi
exit "$status"
