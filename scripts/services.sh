#!/usr/bin/env bash
# Throwaway PostgreSQL cluster and Redis server for tests.
#   scripts/services.sh start DIR   initdb into DIR/pg; postgres on 127.0.0.1:<free port> with its
#                                   unix socket in DIR; redis-server on 127.0.0.1:<free port>, no
#                                   persistence; both with random passwords. Writes DIR/env:
#                                   PGURL, REDIS_URL, PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
#                                   REDIS_PORT (KEY=value lines; `set -a; . DIR/env`).
#   scripts/services.sh stop DIR    stops only the servers started in DIR (by their pid files).
#   scripts/services.sh status DIR
# As root, postgres runs as the system user "postgres" (it refuses root) and DIR is chowned to it.
set -euo pipefail

die() {
  echo "services: error: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
PGDATA_DIR=$DIR/pg
REDIS_PID=$DIR/redis.pid

pg_bin() {
  local p d
  if p=$(command -v pg_ctl 2>/dev/null); then
    d=$(dirname "$(readlink -f "$p")")
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && { echo "$d"; return 0; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  die "PostgreSQL (pg_ctl, initdb) not found; run: bash scripts/toolchain.sh"
}

redis_bin() {
  local p
  for p in "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server /usr/sbin/redis-server; do
    [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
  done
  die "redis-server not found; run: bash scripts/toolchain.sh"
}

# Run a command as the PostgreSQL owner: the "postgres" user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A free port below the kernel's ephemeral range (the 12,768 ports under its start, read from /proc;
# 20000-32767 with Linux's default range): the fault tests stop and restart these servers on the
# same port, and a port from the ephemeral range can meanwhile become the source port of some
# outgoing connection. Where the range starts too low to leave room, the kernel's pick.
free_port() {
  local p low=32768
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _ < /proc/sys/net/ipv4/ip_local_port_range
  fi
  if command -v node >/dev/null 2>&1; then
    p=$(LOW="$low" node -e '
      const net = require("net");
      const low = Number(process.env.LOW);
      const pick = () => (low >= 12768 + 1024 ? low - 12768 + Math.floor(Math.random() * 12768) : 0);
      const at = (n) => { const s = net.createServer();
        s.once("error", () => (n > 0 ? at(n - 1) : process.exit(1)));
        s.listen(pick(), "127.0.0.1", () => { console.log(s.address().port); s.close(); }); };
      at(50);') && { echo "$p"; return 0; }
  fi
  if command -v python3 >/dev/null 2>&1; then
    p=$(LOW="$low" python3 -c '
import os, random, socket
low = int(os.environ["LOW"])
for _ in range(50):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", low - 12768 + random.randrange(12768) if low >= 12768 + 1024 else 0))
        print(s.getsockname()[1]); s.close(); break
    except OSError:
        s.close()
else:
    raise SystemExit(1)') && { echo "$p"; return 0; }
  fi
  die "cannot find a free port (needs node or python3)"
}

random_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

pg_running() { [ -f "$PGDATA_DIR/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1; }

redis_running() {
  local pid
  [ -f "$REDIS_PID" ] || return 1
  pid=$(cat "$REDIS_PID")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q redis-server
}

start() {
  local bin redis pg_port redis_port pg_pass redis_pass
  bin=$(pg_bin)
  redis=$(redis_bin)
  if pg_running && redis_running && [ -f "$DIR/env" ]; then
    echo "services already running in $DIR (see $DIR/env)"
    return 0
  fi
  if pg_running || redis_running; then
    die "services in $DIR are partly running; run: $0 stop $DIR"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the system user 'postgres' (from the postgresql package)"
    chown postgres: "$DIR"
    chmod 700 "$DIR"
    runuser -u postgres -- test -w "$DIR" ||
      die "user postgres cannot reach $DIR (a parent directory is not searchable by others); use a directory under /tmp"
  fi
  rm -f "$DIR/env"

  # PostgreSQL
  pg_pass=$(random_secret)
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    rm -rf "$PGDATA_DIR"
    printf '%s\n' "$pg_pass" > "$DIR/.pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/.pwfile"
    chmod 600 "$DIR/.pwfile"
    if ! as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$DIR/.pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1; then
      rm -f "$DIR/.pwfile"
      tail -n 20 "$DIR/initdb.log" >&2
      die "initdb failed (log: $DIR/initdb.log)"
    fi
    rm -f "$DIR/.pwfile"
    printf '%s\n' "$pg_pass" > "$DIR/.pgpass-secret"
  else
    pg_pass=$(cat "$DIR/.pgpass-secret" 2>/dev/null) || die "$PGDATA_DIR exists but its password file is missing; remove $DIR and start again"
  fi
  chmod 600 "$DIR/.pgpass-secret"
  pg_port=$(free_port)
  if ! as_pg "$bin/pg_ctl" start -D "$PGDATA_DIR" -l "$DIR/pg.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories='$DIR'" >/dev/null 2>&1; then
    tail -n 20 "$DIR/pg.log" >&2 || true
    die "PostgreSQL did not start (log: $DIR/pg.log)"
  fi

  # Redis (no persistence)
  redis_pass=$(random_secret)
  redis_port=$(free_port)
  if ! "$redis" --bind 127.0.0.1 --port "$redis_port" --daemonize yes --pidfile "$REDIS_PID" \
      --dir "$DIR" --logfile "$DIR/redis.log" --save '' --appendonly no \
      --requirepass "$redis_pass" --protected-mode yes >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" stop -D "$PGDATA_DIR" -m fast >/dev/null 2>&1 || true
    die "redis-server did not start (log: $DIR/redis.log)"
  fi
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && redis_running; then break; fi
    [ "$i" -eq 100 ] && { stop >/dev/null 2>&1 || true; die "redis-server did not become ready on port $redis_port (log: $DIR/redis.log)"; }
    sleep 0.1
  done

  umask 077
  cat > "$DIR/env" <<ENV
PGURL=postgres://postgres:$pg_pass@127.0.0.1:$pg_port/postgres
REDIS_URL=redis://default:$redis_pass@127.0.0.1:$redis_port/0
PGHOST=127.0.0.1
PGPORT=$pg_port
PGUSER=postgres
PGPASSWORD=$pg_pass
PGDATABASE=postgres
PGSOCKET_DIR=$DIR
REDIS_PORT=$redis_port
ENV
  echo "services started: postgres 127.0.0.1:$pg_port, redis 127.0.0.1:$redis_port (env: $DIR/env)"
}

stop() {
  local rc=0 pid i
  if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    if ! as_pg "$(pg_bin)/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 >/dev/null 2>&1; then
      if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
        echo "services: error: could not stop PostgreSQL in $PGDATA_DIR" >&2
        rc=1
      fi
    fi
  fi
  if [ -f "$REDIS_PID" ]; then
    pid=$(cat "$REDIS_PID")
    if redis_running; then
      kill "$pid"
      for i in $(seq 1 100); do
        [ -e "/proc/$pid" ] || break
        sleep 0.1
      done
      if [ -e "/proc/$pid" ]; then
        echo "services: error: redis-server (pid $pid) did not exit" >&2
        rc=1
      fi
    fi
    [ "$rc" -ne 0 ] || rm -f "$REDIS_PID"
  fi
  [ "$rc" -ne 0 ] || rm -f "$DIR/env"
  [ "$rc" -eq 0 ] && echo "services stopped in $DIR"
  return "$rc"
}

status() {
  local s=0
  if pg_running; then echo "postgres: running ($PGDATA_DIR)"; else echo "postgres: stopped"; s=1; fi
  if redis_running; then echo "redis: running (pid $(cat "$REDIS_PID"))"; else echo "redis: stopped"; s=1; fi
  return "$s"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
