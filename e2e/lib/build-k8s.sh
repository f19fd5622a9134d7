#!/usr/bin/env bash
# Builds the Kubernetes control plane the e2e stack runs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok) from Go modules, into the cache. Each binary set is built once per
# version and reused; a finished set is marked by a `.complete` file so an interrupted build is redone.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces every staging module with a
# local path), so we build it from a throw-away wrapper module that pins each staging module to
# its published v0.<minor>.<patch> tag. etcd's server module has the same problem and the same fix.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

# Go's module and build caches live in the project cache too, writable so it can be removed.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -modcacherw"
export GOMODCACHE="$CACHE_DIR/go/mod" GOCACHE="$CACHE_DIR/go/build"

build_kubernetes() {
  local dir="$K8S_DIR"
  [ -f "$dir/.complete" ] && return 0
  log "building kubernetes v$K8S_VERSION control plane into $dir (first time only; about 5 min on 2 cores)"
  rm -rf "$dir"; mkdir -p "$dir/bin" "$dir/wrapper"
  cd "$dir/wrapper"
  go mod init panopticon.local/k8sbuild >/dev/null 2>&1
  local kmod
  kmod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  # Every k8s.io/* module that k/k requires at v0.0.0 is a staging module: pin it to its tag.
  local m
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$kmod"); do
    go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
  done
  grep '^godebug' "$kmod" >> go.mod || true
  local cmd cmds=()
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    cmds+=("k8s.io/kubernetes/cmd/$cmd")
  done
  # `go get` of the packages (not just the module) records every go.sum entry they need.
  go get "${cmds[@]/%/@v$K8S_VERSION}" >/dev/null
  local minor; minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
  ld+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$ld" -o "$dir/bin/" "${cmds[@]}"
  touch "$dir/.complete"
}

build_etcd() {
  local dir="$ETCD_DIR"
  [ -f "$dir/.complete" ] && return 0
  log "building etcd v$ETCD_VERSION into $dir"
  rm -rf "$dir"; mkdir -p "$dir/bin" "$dir/wrapper"
  cd "$dir/wrapper"
  go mod init panopticon.local/etcdbuild >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" go.etcd.io/etcd/server/v3
  touch "$dir/.complete"
}

build_kwok() {
  local dir="$KWOK_DIR"
  [ -f "$dir/.complete" ] && return 0
  log "building kwok v$KWOK_VERSION into $dir"
  rm -rf "$dir"; mkdir -p "$dir/bin"
  GOBIN="$dir/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  # The bare kwok binary needs its stages (kwokctl would inject them); take the "fast" ones
  # from the module we just built.
  local src; src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  local f first=1
  : > "$dir/stages.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ $first -eq 1 ] || echo '---' >> "$dir/stages.yaml"
    first=0
    cat "$src/$f" >> "$dir/stages.yaml"
  done
  touch "$dir/.complete"
}

case "${1:-all}" in
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  all) build_etcd; build_kwok; build_kubernetes ;;
  *) die "usage: $0 [all|kubernetes|etcd|kwok]" ;;
esac
