#!/usr/bin/env bash
# A private Kafka-protocol broker for adledger (tansu 0.6.0 on sqlite storage): data in
# .local/kafka (or $ADLEDGER_KAFKA_DIR), listening on a free loopback port.
#   scripts/kafka.sh env      install and start it if needed; print `export ADLEDGER_KAFKA_BROKERS=...`
#   scripts/kafka.sh start    install and start it if needed
#   scripts/kafka.sh stop     stop it
#   scripts/kafka.sh status
#   scripts/kafka.sh install  only install the broker binary (cargo install, about 14 minutes once)
# When ADLEDGER_KAFKA_BROKERS is already set, `env` prints it back and starts nothing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=${ADLEDGER_KAFKA_DIR:-$root/.local/kafka}
pid_file=$base/tansu.pid
port_file=$base/port
log=$base/tansu.log
version=0.6.0

say() { echo "kafka: $*" >&2; }

tansu_bin() {
    if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then echo "$TANSU_BIN"; return; fi
    local cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin/tansu
    if [ -x "$cargo_bin" ]; then echo "$cargo_bin"; return; fi
    command -v tansu 2>/dev/null || return 1
}

install() {
    if bin=$(tansu_bin) && "$bin" --version 2>/dev/null | grep -q "$version"; then
        return
    fi
    say "installing tansu $version with cargo (sqlite storage; takes a while on 2 cores)"
    # Without these features the broker has no storage engine and every start fails.
    cargo install tansu --locked --version "$version" --features dynostore,libsql >&2
}

ensure_python() {
    command -v python3 >/dev/null 2>&1 && return
    say "python3 not found (needed to index the broker's storage); installing it"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 >&2
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

brokers() { echo "127.0.0.1:$(cat "$port_file")"; }

start() {
    install
    ensure_python
    mkdir -p "$base"
    if running; then return; fi
    local port=19092
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port" >"$port_file"
    say "starting tansu on 127.0.0.1:$port (log: $log)"
    # tansu reads a .env file from its working directory, and resolves the sqlite path against it:
    # run it from its own data directory.
    (
        cd "$base"
        # Its info logs run to gigabytes an hour: warnings only unless TANSU_LOG says otherwise.
        RUST_LOG=${TANSU_LOG:-warn} nohup "$(tansu_bin)" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "sqlite://tansu.db" >"$log" 2>&1 &
        echo $! >"$pid_file"
    )
    for _ in $(seq 1 100); do
        if port_in_use "$port"; then
            python3 "$root/scripts/tansu-index.py" "$base/tansu.db"
            return
        fi
        if ! running; then tail -n 20 "$log" >&2; say "tansu exited during start-up"; exit 1; fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    say "tansu did not listen on $port within 10 s"
    exit 1
}

stop() {
    if running; then
        kill "$(cat "$pid_file")" 2>/dev/null || true
        for _ in $(seq 1 50); do running || break; sleep 0.1; done
        running && kill -9 "$(cat "$pid_file")" 2>/dev/null || true
        say "stopped"
    fi
    rm -f "$pid_file"
}

case "${1:-env}" in
    env)
        if [ -n "${ADLEDGER_KAFKA_BROKERS:-}" ]; then
            echo "export ADLEDGER_KAFKA_BROKERS='$ADLEDGER_KAFKA_BROKERS'"
        else
            start
            echo "export ADLEDGER_KAFKA_BROKERS='$(brokers)'"
            echo "export TANSU_BIN='$(tansu_bin)'"
        fi
        ;;
    start) start; say "ready at $(brokers)" ;;
    stop) stop ;;
    status)
        if running; then say "running at $(brokers)"; else say "not running"; exit 1; fi
        ;;
    install) install ;;
    *) echo "usage: $0 [env|start|stop|status|install]" >&2; exit 2 ;;
esac
