# shellcheck shell=bash
# A real Kubernetes control plane without a container runtime: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler built from Go modules (build-k8s.sh), plus kwok
# managing one fake node so that Deployments get scheduled, Running and Ready pods.
# Sourced by e2e/stack.

KUBE_STATE="$RUN_DIR/kube"
KUBE_PKI="$KUBE_STATE/pki"
KUBECONFIG_FILE="$KUBE_STATE/kubeconfig"
KUBE_NODE=kwok-node-0

kube_build() { bash "$E2E_DIR/lib/build-k8s.sh" "$1"; }

# One CA, a serving certificate for 127.0.0.1/localhost, the service-account signing key and a
# static admin token. Made once per run directory.
kube_pki() {
  [ -f "$KUBE_PKI/.complete" ] && return 0
  rm -rf "$KUBE_PKI"; mkdir -p "$KUBE_PKI"
  (
    cd "$KUBE_PKI" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj /CN=panopticon-e2e-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj /CN=kube-apiserver 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out apiserver.crt -extfile apiserver.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    openssl rand -hex 24 > admin.token
    printf '%s,panopticon-admin,panopticon-admin,"system:masters"\n' "$(cat admin.token)" > tokens.csv
    chmod 600 ./*.key admin.token tokens.csv
  )
  cat > "$KUBECONFIG_FILE" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: panopticon-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $KUBE_PKI/ca.crt
users:
- name: panopticon-admin
  user:
    token: $(cat "$KUBE_PKI/admin.token")
contexts:
- name: panopticon-e2e
  context: {cluster: panopticon-e2e, user: panopticon-admin, namespace: default}
current-context: panopticon-e2e
KCFG
  chmod 600 "$KUBECONFIG_FILE"
  touch "$KUBE_PKI/.complete"
}

# curl against the apiserver as the admin.
kube_curl() {
  curl -fsS -m 10 --cacert "$KUBE_PKI/ca.crt" -H "Authorization: Bearer $(cat "$KUBE_PKI/admin.token")" "$@"
}

etcd_install() { kube_build etcd; }
etcd_start() {
  mkdir -p "$KUBE_STATE/etcd"
  spawn etcd "$ETCD_DIR/bin/etcd" --name e2e --data-dir "$KUBE_STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 2))" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
}
etcd_ready() { curl -fsS -m 3 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
etcd_version() { "$ETCD_DIR/bin/etcd" --version | head -1; }

apiserver_install() { kube_build kubernetes; kube_pki; }
apiserver_start() {
  spawn apiserver "$K8S_DIR/bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$KUBE_PKI/apiserver.crt" --tls-private-key-file "$KUBE_PKI/apiserver.key" \
    --client-ca-file "$KUBE_PKI/ca.crt" --token-auth-file "$KUBE_PKI/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer "https://127.0.0.1:$APISERVER_PORT" \
    --service-account-key-file "$KUBE_PKI/sa.pub" --service-account-signing-key-file "$KUBE_PKI/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
    --endpoint-reconciler-type none --cert-dir "$KUBE_STATE/apiserver-certs"
}
apiserver_ready() { kube_curl "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1; }
apiserver_version() { "$K8S_DIR/bin/kube-apiserver" --version | sed 's/^Kubernetes/kube-apiserver/'; }
apiserver_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  # kubectl (built with the control plane) first on PATH, for people and scripts alike.
  echo "export PATH=\"$K8S_DIR/bin:\$PATH\""
}

controller_manager_install() { kube_build kubernetes; kube_pki; }
controller_manager_start() {
  spawn controller-manager "$K8S_DIR/bin/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --root-ca-file "$KUBE_PKI/ca.crt" --service-account-private-key-file "$KUBE_PKI/sa.key" \
    --use-service-account-credentials=false --cluster-name panopticon-e2e
}
controller_manager_ready() { curl -fsSk -m 3 "https://127.0.0.1:$KCM_PORT/healthz" >/dev/null 2>&1; }
controller_manager_version() { "$K8S_DIR/bin/kube-controller-manager" --version | sed 's/^Kubernetes/kube-controller-manager/'; }

scheduler_install() { kube_build kubernetes; kube_pki; }
scheduler_start() {
  spawn scheduler "$K8S_DIR/bin/kube-scheduler" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false
}
scheduler_ready() { curl -fsSk -m 3 "https://127.0.0.1:$SCHEDULER_PORT/healthz" >/dev/null 2>&1; }
scheduler_version() { "$K8S_DIR/bin/kube-scheduler" --version | sed 's/^Kubernetes/kube-scheduler/'; }

# kwok plays the kubelet of one fake node (room for 1000 pods: the operator benchmark runs 200).
# The node carries no taint, so ordinary pods (the
# operator's) schedule onto it without tolerations.
kwok_install() { kube_build kwok; kube_pki; }
kwok_start() {
  spawn kwok "$KWOK_DIR/bin/kwok" --kubeconfig "$KUBECONFIG_FILE" -c "$KWOK_DIR/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --manage-nodes-with-label-selector= --manage-single-node= \
    --cidr 10.244.0.0/24 --node-ip 10.0.0.2 --node-lease-duration-seconds 40 \
    --server-address "127.0.0.1:$KWOK_PORT"
  kube_curl -X POST -H 'Content-Type: application/json' \
    "https://127.0.0.1:$APISERVER_PORT/api/v1/nodes" -d @- >/dev/null 2>&1 <<JSON || true
{"apiVersion":"v1","kind":"Node","metadata":{"name":"$KUBE_NODE",
 "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
 "labels":{"kubernetes.io/hostname":"$KUBE_NODE","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","type":"kwok"}},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"1000"},
           "capacity":{"cpu":"32","memory":"256Gi","pods":"1000"}}}
JSON
}
kwok_ready() {
  kube_curl "https://127.0.0.1:$APISERVER_PORT/api/v1/nodes/$KUBE_NODE" 2>/dev/null |
    python3 -c 'import json,sys; c=[x for x in json.load(sys.stdin)["status"].get("conditions",[]) if x["type"]=="Ready"]; sys.exit(0 if c and c[0]["status"]=="True" else 1)' 2>/dev/null
}
kwok_version() { echo "kwok $("$KWOK_DIR/bin/kwok" --version 2>&1 | head -1 | sed 's/^kwok version //')"; }
