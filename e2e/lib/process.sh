# shellcheck shell=bash
# Starting and stopping the stack's processes, by pid file only (never by process name).
# Sourced by e2e/stack.

LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"

# spawn NAME CMD... : start CMD detached in its own session, stdout+stderr to logs/NAME.log,
# and record its pid. The wrapper shell writes its own pid and then execs CMD, so the recorded
# pid is the server itself. SPAWN_CWD sets the working directory.
spawn() {
  local name=$1; shift
  local pidfile="$PID_DIR/$name.pid"
  mkdir -p "$PID_DIR" "$LOG_DIR"
  rm -f "$pidfile"
  (
    cd "${SPAWN_CWD:-$RUN_DIR}" || exit 1
    exec setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >> "$LOG_DIR/$name.log" 2>&1 < /dev/null
  ) &

  for _ in $(seq 1 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  die "$name: no pid recorded after start"
}

is_running() {
  local pidfile="$PID_DIR/$1.pid"
  [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# stop NAME: SIGTERM, up to 30 s for a clean exit, then SIGKILL. Removes the pid file.
stop() {
  local name=$1 pidfile="$PID_DIR/$1.pid" pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not exit after 30s, killing"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

java_home() { dirname "$(dirname "$(readlink -f "$(command -v java)")")"; }
