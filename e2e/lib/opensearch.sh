# shellcheck shell=bash
# OpenSearch, single node, security off, from the integ-test-zip on Maven Central.
# Sourced by e2e/stack.
#
# OpenSearch refuses to run as root and offers no override, so as root the node runs as the
# system user `panopticon-search`, from a home outside /root (which other users cannot traverse).
# The downloaded zip stays in the cache either way.

OPENSEARCH_USER=panopticon-search
if [ "$(id -u)" -eq 0 ]; then
  OPENSEARCH_BASE=${PANOPTICON_OPENSEARCH_BASE:-/var/lib/panopticon-e2e}
else
  OPENSEARCH_BASE=$RUN_DIR
fi
OPENSEARCH_HOME="$OPENSEARCH_BASE/opensearch-$OPENSEARCH_VERSION"
OPENSEARCH_STATE="$OPENSEARCH_BASE/opensearch-state"

opensearch_install() {
  local zip="$OPENSEARCH_DIR/opensearch-$OPENSEARCH_VERSION.zip"
  if [ ! -f "$zip" ]; then
    log "opensearch: fetching integ-test-zip $OPENSEARCH_VERSION from Maven Central"
    mkdir -p "$OPENSEARCH_DIR"
    mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$CACHE_DIR/m2" dependency:copy \
      -Dartifact="org.opensearch.distribution.integ-test-zip:opensearch:$OPENSEARCH_VERSION:zip" \
      -DoutputDirectory="$OPENSEARCH_DIR.tmp"
    mv "$OPENSEARCH_DIR.tmp/opensearch-$OPENSEARCH_VERSION.zip" "$zip"
    rmdir "$OPENSEARCH_DIR.tmp"
  fi
  if [ ! -f "$OPENSEARCH_HOME/.complete" ]; then
    rm -rf "$OPENSEARCH_HOME"; mkdir -p "$OPENSEARCH_BASE"
    (cd "$OPENSEARCH_BASE" && unzip -q "$zip")
    touch "$OPENSEARCH_HOME/.complete"
  fi
  if [ "$(id -u)" -eq 0 ] && ! id "$OPENSEARCH_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$OPENSEARCH_USER"
  fi
}

opensearch_start() {
  local conf="$OPENSEARCH_STATE/config"
  mkdir -p "$conf" "$OPENSEARCH_STATE/data" "$OPENSEARCH_STATE/logs" "$OPENSEARCH_STATE/tmp"
  cp -r "$OPENSEARCH_HOME/config/." "$conf/"
  cat > "$conf/opensearch.yml" <<YML
cluster.name: panopticon-e2e
node.name: e2e-1
network.host: 127.0.0.1
http.port: $OPENSEARCH_PORT
transport.port: $OPENSEARCH_TRANSPORT_PORT
discovery.type: single-node
path.data: $OPENSEARCH_STATE/data
path.logs: $OPENSEARCH_STATE/logs
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: true
YML
  # The zip's JVM options ask for a 1g heap and name log paths relative to the home directory
  # (which bin/opensearch cd's into and which the server user cannot write): cap the heap,
  # make the paths absolute.
  sed -i -e 's/^-Xms.*/-Xms768m/' -e 's/^-Xmx.*/-Xmx768m/' \
    -e "s#file=logs/gc.log#file=$OPENSEARCH_STATE/logs/gc.log#" \
    -e "s#HeapDumpPath=data#HeapDumpPath=$OPENSEARCH_STATE/data#" \
    -e "s#ErrorFile=logs/#ErrorFile=$OPENSEARCH_STATE/logs/#" "$conf/jvm.options"
  local run_as=(env OPENSEARCH_TMPDIR="$OPENSEARCH_STATE/tmp")
  if [ "$(id -u)" -eq 0 ]; then
    chown -R "$OPENSEARCH_USER:" "$OPENSEARCH_STATE"
    run_as=(setpriv --reuid="$OPENSEARCH_USER" --regid="$OPENSEARCH_USER" --clear-groups "${run_as[@]}")
  fi
  # bin/opensearch execs the JVM in the foreground, so the spawned pid is the JVM's.
  OPENSEARCH_PATH_CONF="$conf" OPENSEARCH_JAVA_HOME="${OPENSEARCH_JAVA_HOME:-$(java_home)}" \
    SPAWN_CWD="$OPENSEARCH_STATE" spawn opensearch "${run_as[@]}" "$OPENSEARCH_HOME/bin/opensearch"
}

opensearch_ready() {
  curl -fsS -m 5 "http://127.0.0.1:$OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=4s" >/dev/null 2>&1
}

opensearch_version() {
  curl -fsS -m 5 "http://127.0.0.1:$OPENSEARCH_PORT/" |
    python3 -c 'import json,sys; v=json.load(sys.stdin)["version"]; print("OpenSearch", v["number"], "(" + v.get("distribution","?") + ", lucene " + v["lucene_version"] + ")")'
}

opensearch_env() {
  echo "export PANOPTICON_ELASTICSEARCH_URL=http://127.0.0.1:$OPENSEARCH_PORT"
  echo "export ELASTICSEARCH_NODE=http://127.0.0.1:$OPENSEARCH_PORT"   # what the components read
}
