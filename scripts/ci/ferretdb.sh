#!/usr/bin/env bash
# FerretDB as the MongoDB of CI. There is no MongoDB binary on our machines
# and none can be downloaded, but FerretDB (MongoDB wire protocol on top of
# PostgreSQL or SQLite) builds from the Go module proxy.
#
#   scripts/ci/ferretdb.sh install   build once, cache the binary
#   scripts/ci/ferretdb.sh start     fresh database, run in background;
#                                    prints the MONGODB_URI on stdout
#   scripts/ci/ferretdb.sh stop      stop what `start` started
#
# Environment:
#   MEDIVOY_CACHE        cache root (default ~/.cache/medivoy)
#   FERRETDB_PORT        preferred port (default 27017; the next free port
#                        is used if it is taken, e.g. by a developer's own)
#   FERRETDB_RUN_DIR     pid file, log and state (default $MEDIVOY_CACHE/run)
#   FERRETDB_PG_DB       PostgreSQL database, dropped and recreated on every
#                        start so runs are independent (default medivoy_ci)
set -euo pipefail

version=v1.24.2
cache="${MEDIVOY_CACHE:-$HOME/.cache/medivoy}"
bin="$cache/bin/ferretdb-${version#v}"
run_dir="${FERRETDB_RUN_DIR:-$cache/run}"
pid_file="$run_dir/ferretdb.pid"
log_file="$run_dir/ferretdb.log"
pg_db="${FERRETDB_PG_DB:-medivoy_ci}"
pg=(-h 127.0.0.1 -p 5432 -U postgres)

log() { echo "ferretdb: $*" >&2; }

# Capture first, then match: `bin --version | grep -q` can fail under
# pipefail when grep exits early and the binary gets SIGPIPE.
works() {
  local out
  out="$("$bin" --version 2>/dev/null)" && [[ "$out" == *"version: $version"* ]]
}

install() {
  if works; then
    log "using cached $bin"
    return
  fi
  command -v go >/dev/null || { log "go is required to build FerretDB"; exit 1; }
  log "building FerretDB $version (takes a few minutes, once per machine)"
  local scratch
  scratch="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand $scratch now: it is local
  trap "rm -rf '$scratch'" EXIT
  # `go install module@version` would build a binary whose embedded
  # build/version/version.txt is empty, and FerretDB panics at start on that.
  # So: let `go get` fetch the module into the module cache, copy its source,
  # fill in the version file and build the copy.
  (
    cd "$scratch"
    go mod init scratch/ferretdb >/dev/null 2>&1
    go get -tool "github.com/FerretDB/FerretDB/cmd/ferretdb@$version"
  )
  # The module cache spells upper-case letters as !lower-case.
  cp -r "$(go env GOMODCACHE)/github.com/!ferret!d!b/!ferret!d!b@$version" "$scratch/src"
  chmod -R u+w "$scratch/src" # the module cache is read-only
  echo "$version" >"$scratch/src/build/version/version.txt"
  mkdir -p "$(dirname "$bin")"
  # -buildvcs=false: the copied source is not a git checkout.
  (cd "$scratch/src" && GOFLAGS=-buildvcs=false go build -o "$bin.tmp" ./cmd/ferretdb)
  mv "$bin.tmp" "$bin" # atomic, so a half-written binary is never cached
  works || { log "built $bin but it does not report $version"; exit 1; }
  log "installed $bin"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Our FerretDB is alive if the pid from the pid file runs our binary (a bare
# pid could have been reused by an unrelated process since).
running_pid() {
  local pid cmdline
  pid="$(cat "$pid_file" 2>/dev/null)" && [[ -n "$pid" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == "$bin "* ]] || return 1
  echo "$pid"
}

pg_up() { pg_isready -q "${pg[@]}" 2>/dev/null; }

start() {
  works || install >&2 # keep stdout for the URI alone
  mkdir -p "$run_dir"
  # A FerretDB left over from an earlier `start` here that never got its
  # `stop` (e.g. an interrupted run) is ours: replace it.
  if running_pid >/dev/null; then
    log "stopping a FerretDB left over from an earlier start"
    stop
  fi

  local port="${FERRETDB_PORT:-27017}"
  while port_in_use "$port"; do
    log "port $port is taken, trying $((port + 1))"
    port=$((port + 1))
    ((port < ${FERRETDB_PORT:-27017} + 50)) || { log "no free port found"; exit 1; }
  done

  # PostgreSQL normally runs on these machines; if it is down, try to start
  # it (and let `stop` stop it again) before falling back to SQLite.
  rm -f "$run_dir/postgresql.started"
  if ! pg_up && command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
    local pg_version
    pg_version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    log "PostgreSQL is down, starting cluster $pg_version/main"
    if pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start; then
      echo "$pg_version" >"$run_dir/postgresql.started"
      for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
    fi
  fi

  local backend
  if pg_up; then
    # WITH (FORCE) also ends connections a crashed earlier run left open;
    # PGOPTIONS hides the NOTICE that IF EXISTS prints on a first run.
    export PGOPTIONS='--client-min-messages=warning'
    psql "${pg[@]}" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >&2
    psql "${pg[@]}" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$pg_db\"" >&2
    backend=(--handler=postgresql "--postgresql-url=postgres://postgres@127.0.0.1:5432/$pg_db")
    # The server adds GIN indexes to FerretDB's tables through it (FERRETDB_POSTGRES_URL).
    echo "postgres://postgres@127.0.0.1:5432/$pg_db" >"$run_dir/ferretdb.pg-url"
    log "backend: PostgreSQL database $pg_db"
  else
    rm -rf "$run_dir/ferretdb-sqlite" "$run_dir/ferretdb.pg-url"
    mkdir -p "$run_dir/ferretdb-sqlite"
    backend=(--handler=sqlite "--sqlite-url=file:$run_dir/ferretdb-sqlite/")
    log "PostgreSQL is not reachable; backend: SQLite in $run_dir/ferretdb-sqlite"
  fi

  mkdir -p "$run_dir/ferretdb-state"
  # --debug-addr=-: the metrics endpoint (default 127.0.0.1:8088) would clash
  # with any other FerretDB on the machine, and we do not need it.
  nohup "$bin" "${backend[@]}" \
    --listen-addr="127.0.0.1:$port" --debug-addr=- \
    --telemetry=disable --state-dir="$run_dir/ferretdb-state" --log-level=WARN \
    </dev/null >"$log_file" 2>&1 &
  echo $! >"$pid_file"

  # Wait (bounded) until it accepts connections; bail out early if it died.
  for _ in $(seq 1 60); do
    if port_in_use "$port"; then
      log "listening on 127.0.0.1:$port (pid $(cat "$pid_file"), log $log_file)"
      echo "mongodb://127.0.0.1:$port/" | tee "$run_dir/ferretdb.uri"
      return
    fi
    # Alive is enough here: just after the fork the pid may not have exec'd our binary yet, so its
    # command line is still the shell's and running_pid would call a starting FerretDB dead.
    kill -0 "$(cat "$pid_file")" 2>/dev/null || break
    sleep 0.5
  done
  log "FerretDB did not start; last lines of $log_file:"
  tail -n 20 "$log_file" >&2 || true
  stop
  exit 1
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped pid $pid"
  fi
  rm -f "$pid_file" "$run_dir/ferretdb.uri"
  if [[ -f "$run_dir/postgresql.started" ]]; then
    local pg_version
    pg_version="$(cat "$run_dir/postgresql.started")"
    log "stopping PostgreSQL $pg_version/main, which start started"
    pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop || true
    rm -f "$run_dir/postgresql.started"
  fi
}

# Prints the PostgreSQL URL of the running FerretDB's backend (nothing on SQLite).
pg-url() {
  cat "$run_dir/ferretdb.pg-url" 2>/dev/null || true
}

case "${1:-}" in
  install | start | stop | pg-url) "$1" ;;
  *)
    echo "usage: $0 install|start|stop|pg-url" >&2
    exit 2
    ;;
esac
