#!/usr/bin/env bash
# A throwaway PostgreSQL server for FlowForge's PostgresStore tests.
#
#   eval "$(scripts/pg_test_server.sh start)"   # start one, export its DSN
#   scripts/pg_test_server.sh stop              # stop it and delete its files
#
# `start [ENV_FILE]` installs PostgreSQL with apt-get if no server binaries are
# found, creates a cluster in a new temporary directory (trust authentication,
# superuser `postgres`), starts it listening only on a unix socket in that
# directory (no TCP port, so it never clashes with another server), creates the
# database `flowforge_test`, and prints two shell lines:
#
#   export FLOWFORGE_TEST_POSTGRES_DSN='host=/tmp/flowforge-pg.XXXX ...'
#   export FLOWFORGE_TEST_POSTGRES_DIR=/tmp/flowforge-pg.XXXX
#
# With ENV_FILE it also writes those lines to that file. PostgreSQL refuses to
# run as root, so as root the server runs as the user `postgres` (created if
# missing). Extra server settings may be passed in FLOWFORGE_PG_OPTIONS, e.g.
# FLOWFORGE_PG_OPTIONS="-c fsync=off".
#
# `stop [DIR]` stops the server in DIR (default: $FLOWFORGE_TEST_POSTGRES_DIR)
# and deletes DIR. It only acts on a directory this script created.
set -euo pipefail

DATABASE=flowforge_test
SUPERUSER=postgres
MARKER=.flowforge-pg-test-server

die() {
    echo "pg_test_server: $*" >&2
    exit 1
}

# Print the directory holding initdb, pg_ctl and postgres, or nothing.
find_bin_dir() {
    local dir found
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
            echo "$dir"
            return
        fi
    done
    found=$(command -v initdb 2>/dev/null || true)
    if [[ -n $found ]]; then
        dir=$(dirname "$(readlink -f "$found")")
        if [[ -x $dir/pg_ctl && -x $dir/postgres ]]; then
            echo "$dir"
        fi
    fi
    return 0
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and only root can" \
        "install it; run: sudo apt-get install -y postgresql"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and" \
        "apt-get is missing; install the PostgreSQL server by hand"
    echo "pg_test_server: installing PostgreSQL with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # Only the binaries are wanted: keep the package from creating and starting
    # a cluster of its own.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" \
        >/etc/postgresql-common/createcluster.d/flowforge-no-main.conf
    apt-get install -y -qq postgresql >&2
}

# Run a command as the server's owner: `postgres` when we are root.
as_owner() {
    if [[ $(id -u) -ne 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u "$SUPERUSER" -- "$@"
    else
        su -s /bin/sh "$SUPERUSER" -c "$(printf '%q ' "$@")"
    fi
}

ensure_owner_user() {
    [[ $(id -u) -eq 0 ]] || return 0
    if ! id "$SUPERUSER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home \
            --shell /usr/sbin/nologin "$SUPERUSER"
    fi
}

start() {
    local env_file=${1:-} bin dir dsn
    bin=$(find_bin_dir)
    if [[ -z $bin ]]; then
        install_postgres
        bin=$(find_bin_dir)
        [[ -n $bin ]] || die "apt-get installed postgresql but initdb is not found"
    fi
    ensure_owner_user
    # A short path: a unix socket's path may not exceed about 100 bytes.
    dir=$(mktemp -d /tmp/flowforge-pg.XXXXXX)
    touch "$dir/$MARKER"
    chmod 755 "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$SUPERUSER" "$dir"
    fi
    if ! as_owner "$bin/initdb" -D "$dir/data" -A trust -U "$SUPERUSER" \
        -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir"
        die "initdb failed"
    fi
    # shellcheck disable=SC2086  # FLOWFORGE_PG_OPTIONS is a list of options
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -c listen_addresses= -c max_connections=200 \
${FLOWFORGE_PG_OPTIONS:-}" start >&2; then
        cat "$dir/server.log" >&2 || true
        rm -rf "$dir"
        die "the server did not start"
    fi
    echo "$bin" >"$dir/bin"
    if ! "$bin/psql" -X -q -h "$dir" -U "$SUPERUSER" -d postgres \
        -c "CREATE DATABASE $DATABASE" >&2; then
        stop "$dir"
        die "cannot create database $DATABASE"
    fi
    dsn="host=$dir user=$SUPERUSER dbname=$DATABASE"
    {
        echo "export FLOWFORGE_TEST_POSTGRES_DSN='$dsn'"
        echo "export FLOWFORGE_TEST_POSTGRES_DIR=$dir"
    } | tee ${env_file:+"$env_file"}
}

stop() {
    local dir=${1:-${FLOWFORGE_TEST_POSTGRES_DIR:-}}
    [[ -n $dir ]] || die "stop: give the server's directory or set" \
        "FLOWFORGE_TEST_POSTGRES_DIR"
    [[ -f $dir/$MARKER ]] || die "stop: $dir is not a server this script started"
    if [[ -f $dir/bin && -f $dir/data/postmaster.pid ]]; then
        as_owner "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m fast -w stop >&2 ||
            true
    fi
    rm -rf "$dir"
}

case ${1:-} in
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
*) die "usage: $0 start [ENV_FILE] | stop [DIR]" ;;
esac
