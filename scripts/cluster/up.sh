#!/usr/bin/env bash
# Start a local Kubernetes control plane on 127.0.0.1:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, which plays the
#   kubelet of a fake Node so scheduled pods become Running and Ready,
# and, unless CEX_REAL_NODE=false, a real node beside it (node.sh): containerd, kubelet,
# kube-proxy, CoreDNS and a relay from the node's address to the API server.
# Runtime data (certificates, tokens, etcd data, logs, pid files) lives in .cex/cluster/.
# Components already running are left alone, so running it twice is harmless.
# Binaries come from install.sh. On success it prints, on stdout:
#   export KUBECONFIG=<repo>/.cex/cluster/kubeconfig
#   export PATH=<cache>/bin:$PATH
# so `eval "$(scripts/cluster/up.sh)"` points the shell at the cluster.
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

node_bins=()
[[ "${CEX_REAL_NODE}" == true ]] && node_bins=(kubelet kube-proxy coredns)
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kwok "${node_bins[@]}"; do
  [[ -x "${CEX_K8S_BIN}/${c}" ]] || die "${CEX_K8S_BIN}/${c} is missing; run scripts/cluster/install.sh first"
done
ETCD="$(etcd_bin)" || die "etcd is missing; run scripts/cluster/install.sh first"
command -v openssl >/dev/null 2>&1 || die "openssl is required"
command -v curl >/dev/null 2>&1 || die "curl is required"

D="${CEX_CLUSTER_DIR}"
PKI="${D}/pki"
mkdir -p "${PKI}" "${D}/run" "${D}/logs" "${D}/etcd" "${D}/kwok-home"
chmod 700 "${D}" "${PKI}"
KUBECTL="${CEX_K8S_BIN}/kubectl"
SERVER="https://${CEX_HOST}:${CEX_APISERVER_PORT}"

# --- credentials -------------------------------------------------------------------------

make_pki() {
  if [[ ! -s "${PKI}/ca.crt" ]]; then
    log "pki: creating the cluster CA"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -keyout "${PKI}/ca.key" -out "${PKI}/ca.crt" -subj "/CN=cex-local-ca" 2>/dev/null
  fi
  if [[ -s "${PKI}/apiserver.crt" ]] &&
    ! openssl x509 -noout -ext subjectAltName -in "${PKI}/apiserver.crt" 2>/dev/null | grep -qF "IP Address:${CEX_NODE_IP}"; then
    component_pid kube-apiserver >/dev/null &&
      die "the API server's certificate lacks the node address ${CEX_NODE_IP}; stop the control plane (scripts/cluster/down.sh) and run up.sh again"
    rm -f "${PKI}/apiserver.crt"
  fi
  if [[ ! -s "${PKI}/apiserver.crt" ]]; then
    log "pki: creating the API server serving certificate"
    # The first address of the service range is the in-cluster `kubernetes` Service.
    local svc_ip
    svc_ip="$(echo "${CEX_SERVICE_CIDR%/*}" | awk -F. '{printf "%d.%d.%d.%d", $1, $2, $3, $4 + 1}')"
    cat >"${PKI}/apiserver.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:${svc_ip},IP:${CEX_NODE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "${PKI}/apiserver.key" \
      -out "${PKI}/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "${PKI}/apiserver.csr" -CA "${PKI}/ca.crt" \
      -CAkey "${PKI}/ca.key" -CAcreateserial -out "${PKI}/apiserver.crt" \
      -extfile "${PKI}/apiserver.ext" 2>/dev/null
  fi
  if [[ ! -s "${PKI}/front-proxy-client.crt" ]]; then
    # Lets the API server proxy to aggregated APIs (metrics-server and the like) and gives
    # the components the request-header CA they look for in extension-apiserver-authentication.
    log "pki: creating the front-proxy client certificate"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
      >"${PKI}/front-proxy-client.ext"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "${PKI}/front-proxy-client.key" \
      -out "${PKI}/front-proxy-client.csr" -subj "/CN=front-proxy-client" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "${PKI}/front-proxy-client.csr" -CA "${PKI}/ca.crt" \
      -CAkey "${PKI}/ca.key" -CAcreateserial -out "${PKI}/front-proxy-client.crt" \
      -extfile "${PKI}/front-proxy-client.ext" 2>/dev/null
  fi
  if [[ ! -s "${PKI}/sa.key" ]]; then
    log "pki: creating the service-account signing key pair"
    openssl genrsa -out "${PKI}/sa.key" 2048 2>/dev/null
    openssl rsa -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
  fi
  # Static bearer tokens: one user per component, all in system:masters (a local test plane).
  local user added=false
  touch "${PKI}/tokens.csv"
  cp "${PKI}/tokens.csv" "${PKI}/tokens.csv.tmp"
  for user in admin kube-controller-manager kube-scheduler kwok kubelet kube-proxy coredns; do
    [[ -n "$(token_of "${user}")" ]] && continue
    printf '%s,%s,%s,"system:masters"\n' "$(openssl rand -hex 24)" "cex-${user}" "cex-${user}" \
      >>"${PKI}/tokens.csv.tmp"
    added=true
  done
  mv "${PKI}/tokens.csv.tmp" "${PKI}/tokens.csv"
  if ${added}; then
    log "pki: created bearer tokens"
    if component_pid kube-apiserver >/dev/null; then
      die "new bearer tokens need an API server restart: scripts/cluster/down.sh, then up.sh again"
    fi
  fi
  # The API server's client certificate towards the kubelet.
  if [[ ! -s "${PKI}/apiserver-kubelet-client.crt" ]]; then
    log "pki: creating the API server's kubelet client certificate"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
      >"${PKI}/apiserver-kubelet-client.ext"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "${PKI}/apiserver-kubelet-client.key" \
      -out "${PKI}/apiserver-kubelet-client.csr" -subj "/O=system:masters/CN=cex-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "${PKI}/apiserver-kubelet-client.csr" -CA "${PKI}/ca.crt" \
      -CAkey "${PKI}/ca.key" -CAcreateserial -out "${PKI}/apiserver-kubelet-client.crt" \
      -extfile "${PKI}/apiserver-kubelet-client.ext" 2>/dev/null
  fi
  # Which node a namespace's pods go to: those of a namespace without the annotation go to
  # kwok's fake node (README: the real node).
  cat >"${PKI}/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodNodeSelector
    path: ${PKI}/podnodeselector.yaml
EOF
  printf 'podNodeSelectorPluginConfig:\n  clusterDefaultNodeSelector: "%s"\n' "${CEX_FAKE_NODE_SELECTOR}" \
    >"${PKI}/podnodeselector.yaml"
  chmod 600 "${PKI}"/*.key "${PKI}/tokens.csv"
}

token_of() { awk -F, -v u="cex-$1" '$2 == u {print $1}' "${PKI}/tokens.csv"* | head -1; }

write_kubeconfig() { # user file
  local tmp="$2.tmp"
  cat >"${tmp}" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: cex-local
    cluster:
      server: ${SERVER}
      certificate-authority: ${PKI}/ca.crt
users:
  - name: cex-$1
    user:
      token: $(token_of "$1")
contexts:
  - name: cex-local
    context:
      cluster: cex-local
      user: cex-$1
      namespace: default
current-context: cex-local
EOF
  chmod 600 "${tmp}"
  mv "${tmp}" "$2"
}

# --- process handling --------------------------------------------------------------------

fail_component() { # name message [show-log]
  local lf
  lf="$(log_file "$1")"
  {
    printf '[cluster] ERROR: %s\n' "$2"
    if [[ "${3:-true}" == true && -s "${lf}" ]]; then
      printf '[cluster] last lines of %s:\n' "${lf}"
      tail -n 25 "${lf}" | sed 's/^/    /'
    fi
    printf '[cluster] components started before this error (if any) keep running; scripts/cluster/down.sh stops them\n'
  } >&2
  exit 1
}

# Fail before starting anything if a port of a component that is not running is taken.
check_ports() {
  local name port
  for name in "${CEX_COMPONENTS[@]}"; do
    component_pid "${name}" >/dev/null && continue
    for port in $(component_ports "${name}"); do
      if port_in_use "${port}"; then
        fail_component "${name}" "port ${port} needed by ${name} is taken by $(port_owner "${port}" || echo 'another process'); stop it or choose other ports with the CEX_*_PORT variables (scripts/cluster/lib.sh)" false
      fi
    done
  done
}

# start NAME CMD...: run detached in its own session, record its pid.
start() {
  local name="$1"
  shift
  local pid
  if pid="$(component_pid "${name}")"; then
    log "${name}: already running (pid ${pid})"
    return
  fi
  log "${name}: starting"
  local lf
  lf="$(log_file "${name}")"
  [[ -f "${lf}" ]] && mv -f "${lf}" "${lf}.prev"
  # Without job control the background shell is not a process group leader, so setsid runs
  # the command in a new session without forking and $! is the component's own pid.
  # fd 9 holds the scripts lock (lock_scripts); the component must not inherit it.
  setsid nohup "$@" >"${lf}" 2>&1 </dev/null 9>&- &
  echo $! >"$(pid_file "${name}")"
}

# wait_for NAME SECONDS CHECK...: poll CHECK until it succeeds, failing early if NAME died.
wait_for() {
  local name="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    # Liveness by pid alone: right after `start` the child may not have exec'd the
    # component yet, so its command line is still this script's (is_our_process says no).
    if ! kill -0 "$(cat "$(pid_file "${name}")" 2>/dev/null)" 2>/dev/null; then
      fail_component "${name}" "${name} exited during start-up"
    fi
    if ((SECONDS >= deadline)); then
      fail_component "${name}" "${name} did not become ready within ${timeout}s"
    fi
    sleep 0.5
  done
}

api_get() { # path
  curl -fsS --max-time 5 --cacert "${PKI}/ca.crt" -H "Authorization: Bearer $(token_of admin)" \
    "${SERVER}$1"
}

# --- components --------------------------------------------------------------------------

start_etcd() {
  start etcd "${ETCD}" \
    --name=cex-local \
    --data-dir="${D}/etcd" \
    --listen-client-urls="http://${CEX_HOST}:${CEX_ETCD_CLIENT_PORT}" \
    --advertise-client-urls="http://${CEX_HOST}:${CEX_ETCD_CLIENT_PORT}" \
    --listen-peer-urls="http://${CEX_HOST}:${CEX_ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls="http://${CEX_HOST}:${CEX_ETCD_PEER_PORT}" \
    --initial-cluster="cex-local=http://${CEX_HOST}:${CEX_ETCD_PEER_PORT}" \
    --initial-cluster-state=new \
    --auto-compaction-retention=1 \
    --quota-backend-bytes=2147483648 \
    --logger=zap
  wait_for etcd 30 curl -fsS --max-time 2 "http://${CEX_HOST}:${CEX_ETCD_CLIENT_PORT}/health"
}

start_apiserver() {
  # With the real node the API server advertises the node's address: the `kubernetes`
  # Service's endpoint, where the relay passes connections on to the loopback listener.
  # Without it, a loopback advertise address cannot be an Endpoints address, so the Service
  # gets no endpoints (--endpoint-reconciler-type=none).
  local advertise=("--advertise-address=${CEX_HOST}" --endpoint-reconciler-type=none)
  if [[ "${CEX_REAL_NODE}" == true ]]; then
    advertise=("--advertise-address=${CEX_NODE_IP}" --endpoint-reconciler-type=lease)
  fi
  start kube-apiserver "${CEX_K8S_BIN}/kube-apiserver" \
    --etcd-servers="http://${CEX_HOST}:${CEX_ETCD_CLIENT_PORT}" \
    --bind-address="${CEX_HOST}" \
    "${advertise[@]}" \
    --enable-admission-plugins=PodNodeSelector \
    --admission-control-config-file="${PKI}/admission.yaml" \
    --kubelet-client-certificate="${PKI}/apiserver-kubelet-client.crt" \
    --kubelet-client-key="${PKI}/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="${PKI}/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --secure-port="${CEX_APISERVER_PORT}" \
    --cert-dir="${PKI}" \
    --tls-cert-file="${PKI}/apiserver.crt" \
    --tls-private-key-file="${PKI}/apiserver.key" \
    --client-ca-file="${PKI}/ca.crt" \
    --token-auth-file="${PKI}/tokens.csv" \
    --authorization-mode=RBAC \
    --anonymous-auth=false \
    --allow-privileged=true \
    --service-cluster-ip-range="${CEX_SERVICE_CIDR}" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="${PKI}/sa.pub" \
    --service-account-signing-key-file="${PKI}/sa.key" \
    --requestheader-client-ca-file="${PKI}/ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="${PKI}/front-proxy-client.crt" \
    --proxy-client-key-file="${PKI}/front-proxy-client.key" \
    --profiling=false \
    --v=1
  wait_for kube-apiserver 90 api_get /readyz
}

start_controller_manager() {
  local kc="${D}/kube-controller-manager.kubeconfig"
  write_kubeconfig kube-controller-manager "${kc}"
  start kube-controller-manager "${CEX_K8S_BIN}/kube-controller-manager" \
    --kubeconfig="${kc}" \
    --authentication-kubeconfig="${kc}" \
    --authorization-kubeconfig="${kc}" \
    --bind-address="${CEX_HOST}" \
    --secure-port="${CEX_KCM_PORT}" \
    --cert-dir="${D}/run/kube-controller-manager-certs" \
    --leader-elect=false \
    --controllers='*' \
    --service-account-private-key-file="${PKI}/sa.key" \
    --root-ca-file="${PKI}/ca.crt" \
    --cluster-signing-cert-file="${PKI}/ca.crt" \
    --cluster-signing-key-file="${PKI}/ca.key" \
    --service-cluster-ip-range="${CEX_SERVICE_CIDR}" \
    --profiling=false \
    --v=1
  wait_for kube-controller-manager 60 \
    curl -fsSk --max-time 2 "https://${CEX_HOST}:${CEX_KCM_PORT}/healthz"
}

start_scheduler() {
  local kc="${D}/kube-scheduler.kubeconfig"
  write_kubeconfig kube-scheduler "${kc}"
  start kube-scheduler "${CEX_K8S_BIN}/kube-scheduler" \
    --kubeconfig="${kc}" \
    --authentication-kubeconfig="${kc}" \
    --authorization-kubeconfig="${kc}" \
    --bind-address="${CEX_HOST}" \
    --secure-port="${CEX_SCHEDULER_PORT}" \
    --cert-dir="${D}/run/kube-scheduler-certs" \
    --leader-elect=false \
    --profiling=false \
    --v=1
  wait_for kube-scheduler 60 \
    curl -fsSk --max-time 2 "https://${CEX_HOST}:${CEX_SCHEDULER_PORT}/healthz"
}

start_kwok() {
  local kc="${D}/kwok.kubeconfig"
  write_kubeconfig kwok "${kc}"
  # kwok reads ~/.kwok/kwok.yaml if it exists; a private HOME keeps a user's config out.
  # With no stages configured it uses its built-in ones (nodes Ready, pods Running).
  # A node lease: without one kwok refreshes the Node's status only about every 55 s, past
  # the controller manager's 50 s grace period, so the node flaps NotReady and every pod on
  # it is marked not ready, for good (kwok never sets them ready again).
  start kwok env HOME="${D}/kwok-home" "${CEX_K8S_BIN}/kwok" \
    --kubeconfig="${kc}" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --server-address="${CEX_HOST}:${CEX_KWOK_PORT}" \
    --node-ip="${CEX_HOST}" \
    --cidr=10.244.0.1/16
  wait_for kwok 30 curl -fsS --max-time 2 "http://${CEX_HOST}:${CEX_KWOK_PORT}/healthz"
}

create_node() {
  # A fake Node without taints; kwok keeps its status and lease fresh.
  "${KUBECTL}" apply --server-side --force-conflicts --field-manager=cex-cluster -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: ${CEX_NODE_NAME}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: ${CEX_NODE_NAME}
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
spec: {}
status:
  allocatable:
    cpu: "32"
    memory: 256Gi
    pods: "110"
  capacity:
    cpu: "32"
    memory: 256Gi
    pods: "110"
EOF
}

node_ready() {
  [[ "$("${KUBECTL}" get node "${CEX_NODE_NAME}" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == "True" ]]
}

default_service_account() { "${KUBECTL}" -n default get serviceaccount default; }

# --- main --------------------------------------------------------------------------------

started_at=${SECONDS}
lock_scripts
check_ports
make_pki
write_kubeconfig admin "${KUBECONFIG_CEX}"
export KUBECONFIG="${KUBECONFIG_CEX}"

start_etcd
start_apiserver
start_controller_manager
start_scheduler
start_kwok
create_node
wait_for kwok 60 node_ready
# Pods are refused until the service-account controller has made the namespace's default
# ServiceAccount, so wait for it before calling the cluster usable.
wait_for kube-controller-manager 60 default_service_account
if [[ "${CEX_REAL_NODE}" == true ]]; then
  # shellcheck source=scripts/cluster/node.sh
  source "$(dirname "${BASH_SOURCE[0]}")/node.sh"
  start_real_node
fi

log "control plane ready in $((SECONDS - started_at))s: ${SERVER} (logs in ${D}/logs)"
echo "export KUBECONFIG=${KUBECONFIG_CEX}"
echo "export PATH=${CEX_K8S_BIN}:\$PATH"
