#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL server on 127.0.0.1 for Brick's persistence tests and
# print its connection URL on stdout (everything else goes to stderr).
#
#   export BRICK_TEST_PG_URL="$(tools/ci/postgres.sh)"     # install if needed, start, print URL
#   tools/ci/postgres.sh status                            # print URL if running, exit 1 if not
#   tools/ci/postgres.sh stop                              # stop the server (state dir is kept)
#   tools/ci/postgres.sh destroy                           # stop and remove the state dir
#
# Installs Debian's `postgresql` package when no server binaries are present (root only), then
# runs initdb + pg_ctl as a non-root user (the `postgres` account when invoked as root, otherwise
# the caller) in a private state directory. Idempotent: a second call reuses the running server
# and prints the same URL. The server is for tests only: it listens on 127.0.0.1 alone, uses a
# random password (scram-sha-256) and runs with fsync off.
#
# Environment: BRICK_PG_DIR (state dir, default /tmp/brick-pg), BRICK_PG_PORT (default: a free
# port chosen once in 20000-60000 and remembered), BRICK_PG_USER (server account when root,
# default postgres).
set -euo pipefail

DIR="${BRICK_PG_DIR:-/tmp/brick-pg}"
DATA="$DIR/data"
ACTION="${1:-start}"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# Run a command as the server account (postgres refuses to run as root).
if [ "$(id -u)" = 0 ]; then
  RUNAS="${BRICK_PG_USER:-postgres}"
  as_server() { runuser -u "$RUNAS" -- "$@"; }
else
  RUNAS="$(id -un)"
  as_server() { "$@"; }
fi

url_if_running() {
  [ -f "$DIR/url" ] && [ -f "$DATA/PG_VERSION" ] || return 1
  local bindir port
  bindir="$(find_bindir)" || return 1
  port="$(cat "$DIR/port")"
  as_server "$bindir/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || return 1
  "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5 || return 1
  cat "$DIR/url"
}

case "$ACTION" in
  status)
    url_if_running || { log "not running"; exit 1; }
    exit 0 ;;
  stop|destroy)
    if bindir="$(find_bindir)" && [ -f "$DATA/PG_VERSION" ]; then
      as_server "$bindir/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    if [ "$ACTION" = destroy ]; then rm -rf -- "$DIR"; log "removed $DIR"; fi
    exit 0 ;;
  start) ;;
  *) die "unknown action '$ACTION' (start, status, stop, destroy)" ;;
esac

# Fast path: already running.
if url_if_running; then exit 0; fi

# 1. Install the server binaries if missing.
if ! BINDIR="$(find_bindir)"; then
  [ "$(id -u)" = 0 ] || die "PostgreSQL server binaries not found and not root: install Debian's postgresql package"
  # Do not let the package create and start its default cluster: we run our own.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
  fi
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends postgresql >&2; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql >&2
  fi
  BINDIR="$(find_bindir)" || die "postgresql installed but no initdb found under /usr/lib/postgresql"
fi
id "$RUNAS" >/dev/null 2>&1 || die "server account '$RUNAS' does not exist (set BRICK_PG_USER)"

# 2. State dir owned by the server account.
mkdir -p "$DIR"
chmod 0700 "$DIR"
[ "$(id -u)" = 0 ] && chown "$RUNAS" "$DIR"

# 3. Port: remembered across calls.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -f "$DIR/port" ]; then
  PORT="$(cat "$DIR/port")"
elif [ -n "${BRICK_PG_PORT:-}" ]; then
  PORT="$BRICK_PG_PORT"
else
  PORT=""
  for _ in $(seq 1 50); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if port_free "$p"; then PORT="$p"; break; fi
  done
  [ -n "$PORT" ] || die "no free TCP port found on 127.0.0.1"
fi

# 4. initdb once (user brick, random password, scram over TCP, trust on the private socket).
if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf -- "$DATA"
  PASSWORD="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  umask 077
  printf '%s\n' "$PASSWORD" > "$DIR/pwfile"
  [ "$(id -u)" = 0 ] && chown "$RUNAS" "$DIR/pwfile"
  log "initdb in $DATA as $RUNAS"
  as_server "$BINDIR/initdb" -D "$DATA" -U brick --pwfile="$DIR/pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  cat >> "$DATA/postgresql.conf" <<EOF
# Brick test server (tools/ci/postgres.sh): loopback only, durability off for speed.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
  echo "$PORT" > "$DIR/port"
  printf 'postgresql://brick:%s@127.0.0.1:%s/brick\n' "$PASSWORD" "$PORT" > "$DIR/url"
  rm -f "$DIR/pwfile"
  [ "$(id -u)" = 0 ] && chown "$RUNAS" "$DIR/port" "$DIR/url"
  NEW=1
else
  NEW=0
fi

# 5. Start (pg_ctl -w waits until it accepts connections).
log "starting on 127.0.0.1:$PORT"
as_server "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/server.log" -o "-p $PORT" -w -t 60 start >/dev/null \
  || { tail -n 20 "$DIR/server.log" >&2; die "server did not start"; }

# 6. The test database.
if [ "$NEW" = 1 ] || ! as_server "$BINDIR/psql" -h "$DIR" -p "$PORT" -U brick -d brick -Atqc 'select 1' >/dev/null 2>&1; then
  as_server "$BINDIR/psql" -h "$DIR" -p "$PORT" -U brick -d postgres -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE brick' >&2
fi

url_if_running || die "server started but is not answering"
