# shellcheck shell=bash
# Redis from Debian's redis-server package. Sourced by e2e/stack.

redis_install() {
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
}

redis_start() {
  local dir="$RUN_DIR/redis"
  mkdir -p "$dir"
  spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
    --save '' --appendonly no --protected-mode yes --maxmemory 256mb --maxmemory-policy allkeys-lru
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_version() { redis-server --version | awk '{print "Redis " $3}' | sed 's/v=//'; }

redis_env() { echo "export PANOPTICON_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"; }
