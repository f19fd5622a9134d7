# shellcheck shell=bash
# Shared settings of the e2e stack scripts: versions, cache and run directories, ports, helpers.
# Sourced, never executed. Everything binds to 127.0.0.1.

CACHE_DIR=${PANOPTICON_CACHE:-$HOME/.cache/panopticon}
RUN_DIR=${PANOPTICON_RUN:-$CACHE_DIR/run}

K8S_VERSION=1.34.4
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0
KAFKA_VERSION=3.9.1
OPENSEARCH_VERSION=2.19.3
REDIS_PORT=${PANOPTICON_REDIS_PORT:-16379}
KAFKA_PORT=${PANOPTICON_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${PANOPTICON_KAFKA_CONTROLLER_PORT:-19093}
KAFKA_SASL_PORT=${PANOPTICON_KAFKA_SASL_PORT:-19094}
KAFKA_TLS_PORT=${PANOPTICON_KAFKA_TLS_PORT:-19095}
# Credentials of the local test broker's SASL listener: a test fixture, not a secret.
KAFKA_SASL_USER=panopticon
KAFKA_SASL_PASSWORD=e2e-sasl-password
OPENSEARCH_PORT=${PANOPTICON_OPENSEARCH_PORT:-19200}
OPENSEARCH_TRANSPORT_PORT=${PANOPTICON_OPENSEARCH_TRANSPORT_PORT:-19300}
ETCD_PORT=${PANOPTICON_ETCD_PORT:-12379}
ETCD_PEER_PORT=${PANOPTICON_ETCD_PEER_PORT:-12380}
APISERVER_PORT=${PANOPTICON_APISERVER_PORT:-16443}
KCM_PORT=${PANOPTICON_KCM_PORT:-10257}
SCHEDULER_PORT=${PANOPTICON_SCHEDULER_PORT:-10259}
KWOK_PORT=${PANOPTICON_KWOK_PORT:-10247}

K8S_DIR="$CACHE_DIR/k8s/v$K8S_VERSION"
ETCD_DIR="$CACHE_DIR/etcd/v$ETCD_VERSION"
KWOK_DIR="$CACHE_DIR/kwok/v$KWOK_VERSION"
KAFKA_DIR="$CACHE_DIR/kafka/$KAFKA_VERSION"
OPENSEARCH_DIR="$CACHE_DIR/opensearch/$OPENSEARCH_VERSION"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# A Go toolchain fetched by e2e/setup (only when the machine has none recent enough).
if [ -x "$CACHE_DIR/go/1.26.8/go/bin/go" ]; then PATH="$CACHE_DIR/go/1.26.8/go/bin:$PATH"; fi

# Waits until every named CRD is Established. A CRD applied a moment ago may have no
# status.conditions at all yet, which `kubectl wait --for=condition=...` reports as an error
# instead of waiting, so this polls the condition itself.
wait_crds_established() { # TIMEOUT_SECONDS CRD_NAME...
  local timeout=$1 crd deadline status
  shift
  deadline=$((SECONDS + timeout))
  for crd in "$@"; do
    until status=$(kubectl get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) &&
      [ "$status" = True ]; do
      [ "$SECONDS" -lt "$deadline" ] || die "CRD $crd was not Established within ${timeout}s"
      sleep 0.5
    done
  done
}
