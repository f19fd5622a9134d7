# shellcheck shell=bash
# Shared by e2e/kind/{up,test,down}: names, and kubectl/helm pointed at the kind cluster only.
# kind, helm, kubectl and docker come from PATH (the kind-e2e workflow installs them).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PANOPTICON_CACHE=${PANOPTICON_CACHE:-$HOME/.cache/panopticon}
CLUSTER=panopticon-e2e
# The cluster's own kubeconfig, so nothing here touches ~/.kube/config or the local stack's.
export KUBECONFIG=$PANOPTICON_CACHE/kind/kubeconfig
TAG=kind-e2e
PANOPTICON_IMAGE=panopticon:$TAG
OPERATOR_IMAGE=panopticon-operator:$TAG
DEPS_NAMESPACE=observability
OPERATOR_NAMESPACE=panopticon-system
OPERATOR_RELEASE=panopticon-operator

step() { printf '==> %s\n' "$*"; }
die() {
  printf 'e2e/kind: %s\n' "$*" >&2
  exit 1
}
need() {
  local tool
  for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is not on PATH"; done
}
