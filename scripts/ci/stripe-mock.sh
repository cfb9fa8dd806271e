#!/usr/bin/env bash
# stripe-mock (Stripe's own mock of its API, github.com/stripe/stripe-mock) as the Stripe of the tests:
# the billing tests point the `stripe` SDK at it (STRIPE_API_BASE), so no test talks to the internet.
#
#   scripts/ci/stripe-mock.sh install   build once from the Go module proxy, cache the binary
#   scripts/ci/stripe-mock.sh start     run in background; prints STRIPE_API_BASE on stdout
#   scripts/ci/stripe-mock.sh stop      stop what `start` started
#
# Environment:
#   MEDIVOY_CACHE         cache root (default ~/.cache/medivoy)
#   STRIPE_MOCK_PORT      preferred HTTP port (default 12111; the next free port is used if it is taken)
#   STRIPE_MOCK_RUN_DIR   pid file and log (default $MEDIVOY_CACHE/run)
set -euo pipefail

version=v0.203.0
cache="${MEDIVOY_CACHE:-$HOME/.cache/medivoy}"
bin="$cache/bin/stripe-mock-${version#v}"
run_dir="${STRIPE_MOCK_RUN_DIR:-$cache/run}"
pid_file="$run_dir/stripe-mock.pid"
log_file="$run_dir/stripe-mock.log"

log() { echo "stripe-mock: $*" >&2; }

works() { [[ -x "$bin" ]] && "$bin" -version >/dev/null 2>&1; }

install() {
  if works; then
    log "using cached $bin"
    return
  fi
  command -v go >/dev/null || { log "go is required to build stripe-mock"; exit 1; }
  log "building stripe-mock $version (once per machine)"
  local gobin
  gobin="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand $gobin now: it is local
  trap "rm -rf '$gobin'" EXIT
  GOBIN="$gobin" go install "github.com/stripe/stripe-mock@$version"
  mkdir -p "$(dirname "$bin")"
  mv "$gobin/stripe-mock" "$bin.tmp"
  mv "$bin.tmp" "$bin" # atomic, so a half-written binary is never cached
  works || { log "built $bin but it does not run"; exit 1; }
  log "installed $bin"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {
  local pid cmdline
  pid="$(cat "$pid_file" 2>/dev/null)" && [[ -n "$pid" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == "$bin "* ]] || return 1
  echo "$pid"
}

start() {
  works || install >&2 # keep stdout for the URL alone
  mkdir -p "$run_dir"
  if running_pid >/dev/null; then
    log "stopping a stripe-mock left over from an earlier start"
    stop
  fi
  local port="${STRIPE_MOCK_PORT:-12111}"
  while port_in_use "$port" || port_in_use "$((port + 1))"; do
    log "port $port (or $((port + 1))) is taken, trying $((port + 2))"
    port=$((port + 2))
    ((port < ${STRIPE_MOCK_PORT:-12111} + 100)) || { log "no free port found"; exit 1; }
  done
  # -http-port serves plain HTTP; -https-port the same over a self-signed certificate (not used).
  nohup "$bin" -http-port "$port" -https-port "$((port + 1))" </dev/null >"$log_file" 2>&1 &
  echo $! >"$pid_file"
  for _ in $(seq 1 60); do
    if port_in_use "$port"; then
      log "listening on 127.0.0.1:$port (pid $(cat "$pid_file"), log $log_file)"
      echo "http://127.0.0.1:$port" | tee "$run_dir/stripe-mock.url"
      return
    fi
    # Alive is enough: just after the fork the pid may still be the shell's, not yet our binary.
    kill -0 "$(cat "$pid_file")" 2>/dev/null || break
    sleep 0.5
  done
  log "stripe-mock did not start; last lines of $log_file:"
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
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped pid $pid"
  fi
  rm -f "$pid_file" "$run_dir/stripe-mock.url"
}

case "${1:-}" in
  install | start | stop) "$1" ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
