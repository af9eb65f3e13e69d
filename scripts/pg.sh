#!/usr/bin/env bash
# A private PostgreSQL for adledger: data in .local/pg (or $ADLEDGER_PG_DIR), listening on a free
# loopback port (the same one again after a stop, when it is still free).
#   scripts/pg.sh env    start it if needed and print `export DATABASE_URL=...` (for eval)
#   scripts/pg.sh start  start it if needed
#   scripts/pg.sh stop   stop it
#   scripts/pg.sh restart  restart it at once (`pg_ctl restart -m fast`: sessions are cut)
#   scripts/pg.sh status
#   scripts/pg.sh bindir print the directory of the PostgreSQL programs (pg_dump, pg_ctl, ...)
# When DATABASE_URL is already set, `env` prints it back and starts nothing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=${ADLEDGER_PG_DIR:-$root/.local/pg}
data=$base/data
log=$base/postgres.log
port_file=$base/port

say() { echo "pg: $*" >&2; }

find_bindir() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
        return
    fi
    return 1
}

install_postgres() {
    say "PostgreSQL binaries not found; installing the Debian package"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

bindir=$(find_bindir || { install_postgres; find_bindir; })

# Postgres refuses to run as root: run its programs as the `postgres` user then.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            useradd --system --home-dir "$base" --shell /usr/sbin/nologin postgres
        fi
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [ -f "$data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

url() { echo "postgres://adledger@127.0.0.1:$(cat "$port_file")/adledger"; }

start() {
    mkdir -p "$base"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$base" 2>/dev/null || true; fi
    if [ ! -s "$data/PG_VERSION" ]; then
        say "initialising a new cluster in $data"
        rm -rf "$data"
        as_owner mkdir -p "$data"
        as_owner "$bindir/initdb" -D "$data" -U adledger --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$base/initdb.log" 2>&1 || { cat "$base/initdb.log" >&2; exit 1; }
    fi
    if running; then
        return
    fi
    # Below the kernel's ephemeral range (32768-60999), so no client socket can hold the port.
    # A restarted cluster keeps its port, so that its clients' URL stays right.
    local port=15432 attempt
    if [ -s "$port_file" ]; then port=$(cat "$port_file"); fi
    touch "$log"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$log"; fi
    for attempt in 1 2 3 4 5; do
        while port_in_use "$port"; do port=$((port + 1)); done
        echo "$port" >"$port_file"
        say "starting PostgreSQL on 127.0.0.1:$port (log: $log)"
        if as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c max_connections=300" \
            start >/dev/null; then
            break
        fi
        # Another process may have taken the port between the check and the bind: next one.
        tail -n 5 "$log" >&2
        if [ "$attempt" -eq 5 ]; then say "could not start PostgreSQL"; exit 1; fi
        port=$((port + 1))
    done
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U adledger -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = 'adledger'" | grep -q 1 \
        || as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U adledger adledger
}

case "${1:-env}" in
    env)
        if [ -n "${DATABASE_URL:-}" ]; then
            echo "export DATABASE_URL='$DATABASE_URL'"
        else
            start
            echo "export DATABASE_URL='$(url)'"
        fi
        ;;
    start) start; say "ready at $(url)" ;;
    restart)
        running || { say "not running"; exit 1; }
        # pg_ctl reuses the server's options (postmaster.opts); the log must be named again, or
        # the new server would write to this script's output.
        as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -m fast -w -t 60 restart >/dev/null
        say "restarted"
        ;;
    bindir) echo "$bindir" ;;
    stop)
        if running; then as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null; say "stopped"; fi
        ;;
    status)
        if running; then say "running at $(url)"; else say "not running"; exit 1; fi
        ;;
    *) echo "usage: $0 [env|start|stop|restart|status|bindir]" >&2; exit 2 ;;
esac
