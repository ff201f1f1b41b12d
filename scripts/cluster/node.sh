# shellcheck shell=bash
# The real node, sourced by up.sh after the control plane is up (it uses up.sh's start,
# wait_for, write_kubeconfig, KUBECTL, D and PKI): containerd with runc and a CNI bridge,
# kubelet, kube-proxy (iptables), CoreDNS as a host process behind the kube-dns Service, and
# socat relaying the node's address to the loopback API server for pods. Everything it
# changes on the host is undone by down.sh (node_teardown in node-down.sh):
#   the node address on lo, the kubelet's sysctls (saved in run/sysctl.saved), cgroups under /cex,
#   the bridge, iptables chains (kube-proxy's, the kubelet's canaries, the bridge plugin's).

NODE="${D}/node"
NODE_NAME="${CEX_REAL_NODE_NAME}"
# Sysctls the kubelet sets, restored by down.sh. net.ipv4.ip_forward (pod traffic) is turned
# on and left on: every container tool on the host (podman's builds) needs it as well.
NODE_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

prepare_host() {
  local k
  if [[ ! -s "${D}/run/sysctl.saved" ]]; then
    for k in "${NODE_SYSCTLS[@]}"; do
      [[ -e "/proc/sys/${k//.//}" ]] && echo "${k}=$(sysctl -n "${k}")"
    done >"${D}/run/sysctl.saved.tmp"
    mv "${D}/run/sysctl.saved.tmp" "${D}/run/sysctl.saved"
  fi
  sysctl -qw net.ipv4.ip_forward=1
  if ! ip -4 -o addr show dev lo | grep -qF " ${CEX_NODE_IP}/32 "; then
    log "node: adding ${CEX_NODE_IP}/32 to lo"
    ip addr add "${CEX_NODE_IP}/32" dev lo
  fi
  # The kubelet's cgroup root: its pods' cgroups live under /cex in every hierarchy.
  local h
  for h in /sys/fs/cgroup/*/; do
    mountpoint -q "${h}" || continue
    mkdir -p "${h}cex"
    if [[ -e "${h}cpuset.cpus" && -z "$(cat "${h}cex/cpuset.cpus")" ]]; then
      cat "${h}cpuset.cpus" >"${h}cex/cpuset.cpus"
      cat "${h}cpuset.mems" >"${h}cex/cpuset.mems"
    fi
  done
}

# write_if_changed FILE < content: kube-proxy exits when its configuration file changes, so a
# second up.sh must leave identical files alone.
write_if_changed() {
  cat >"$1.tmp"
  if cmp -s "$1.tmp" "$1"; then rm -f "$1.tmp"; else mv -f "$1.tmp" "$1"; fi
}

write_node_configs() {
  mkdir -p "${NODE}/cni/net.d" "${NODE}/kubelet" "${NODE}/pod-logs" "${NODE}/containerd" \
    "${D}/run/containerd"
  write_if_changed "${NODE}/containerd/config.toml" <<EOF
version = 2
root = "${NODE}/containerd/root"
state = "${D}/run/containerd/state"
# The VM lacks CAP_SYS_RESOURCE: keep containerd's score and never lower a container's below it.
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "${CEX_CONTAINERD_SOCKET}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${NODE}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${CEX_PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CEX_CNI_BIN_DIR}"
    conf_dir = "${NODE}/cni/net.d"
EOF

  write_if_changed "${NODE}/cni/net.d/10-${CEX_CNI_NETWORK}.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "${CEX_CNI_NETWORK}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${CEX_CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${NODE}/cni/networks",
        "ranges": [[{"subnet": "${CEX_POD_CIDR}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  # The kubelet's serving certificate, signed by the cluster CA the API server trusts.
  if [[ ! -s "${PKI}/kubelet.crt" ]]; then
    log "pki: creating the kubelet's serving certificate"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:%s,DNS:%s\n' \
      "${CEX_NODE_IP}" "${NODE_NAME}" >"${PKI}/kubelet.ext"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "${PKI}/kubelet.key" \
      -out "${PKI}/kubelet.csr" -subj "/CN=${NODE_NAME}" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "${PKI}/kubelet.csr" -CA "${PKI}/ca.crt" \
      -CAkey "${PKI}/ca.key" -CAcreateserial -out "${PKI}/kubelet.crt" \
      -extfile "${PKI}/kubelet.ext" 2>/dev/null
    chmod 600 "${PKI}/kubelet.key"
  fi

  write_kubeconfig kubelet "${NODE}/kubelet.kubeconfig"
  write_if_changed "${NODE}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${CEX_NODE_IP}
port: ${CEX_KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${CEX_KUBELET_HEALTHZ_PORT}
tlsCertFile: ${PKI}/kubelet.crt
tlsPrivateKeyFile: ${PKI}/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI}/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://${CEX_CONTAINERD_SOCKET}
cgroupDriver: cgroupfs
cgroupRoot: /cex
failCgroupV1: false
failSwapOn: false
# Nothing can be pulled again, so images are never collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
clusterDNS: [${CEX_CLUSTER_DNS}]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: ${NODE}/pod-logs
serializeImagePulls: false
maxPods: 110
EOF

  write_kubeconfig kube-proxy "${NODE}/kube-proxy.kubeconfig"
  write_if_changed "${NODE}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${NODE}/kube-proxy.kubeconfig
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${CEX_POD_CIDR}
healthzBindAddress: 127.0.0.1:${CEX_KUBE_PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:${CEX_KUBE_PROXY_METRICS_PORT}
# NodePorts answer on the node's address only, never on the host's network.
nodePortAddresses: ["${CEX_NODE_IP}/32"]
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF

  write_kubeconfig coredns "${NODE}/coredns.kubeconfig"
  write_if_changed "${NODE}/Corefile" <<EOF
.:${CEX_COREDNS_PORT} {
    bind ${CEX_NODE_IP}
    errors
    ready 127.0.0.1:${CEX_COREDNS_READY_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${NODE}/coredns.kubeconfig cex-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 5
}
EOF
}

ctr_k8s() { ctr --address "${CEX_CONTAINERD_SOCKET}" -n "${CEX_CONTAINERD_NAMESPACE}" "$@"; }

start_containerd() {
  start containerd containerd --config "${NODE}/containerd/config.toml"
  wait_for containerd 30 ctr_k8s version
  # Imported every time (a second or so): a rebuilt archive replaces the image.
  local tar
  for tar in pause busybox; do
    tar="${CEX_NODE_IMAGES_DIR}/${tar}.tar"
    [[ -s "${tar}" ]] || die "${tar} is missing; run scripts/cluster/install.sh first"
    ctr_k8s images import "${tar}" >/dev/null
  done
}

start_relay() {
  # -lf names our runtime directory on the command line (is_our_process); the forked
  # per-connection children share the process group that down.sh signals.
  start apiserver-relay socat -lf "$(log_file apiserver-relay).socat" \
    "TCP-LISTEN:${CEX_APISERVER_PORT},bind=${CEX_NODE_IP},reuseaddr,fork" \
    "TCP:${CEX_HOST}:${CEX_APISERVER_PORT}"
  wait_for apiserver-relay 10 curl -fsS --max-time 2 --cacert "${PKI}/ca.crt" \
    -H "Authorization: Bearer $(token_of admin)" "https://${CEX_NODE_IP}:${CEX_APISERVER_PORT}/readyz"
}

start_coredns() {
  # A Service without a selector and an EndpointSlice naming the host process.
  "${KUBECTL}" apply --server-side --force-conflicts --field-manager=cex-cluster -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: ${CEX_CLUSTER_DNS}
  ports:
    - {name: dns, port: 53, protocol: UDP, targetPort: ${CEX_COREDNS_PORT}}
    - {name: dns-tcp, port: 53, protocol: TCP, targetPort: ${CEX_COREDNS_PORT}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: cex.dev-cluster-scripts
addressType: IPv4
endpoints:
  - addresses: ["${CEX_NODE_IP}"]
    conditions: {ready: true}
ports:
  - {name: dns, port: ${CEX_COREDNS_PORT}, protocol: UDP}
  - {name: dns-tcp, port: ${CEX_COREDNS_PORT}, protocol: TCP}
EOF
  start coredns "${CEX_K8S_BIN}/coredns" -conf "${NODE}/Corefile"
  wait_for coredns 30 curl -fsS --max-time 2 "http://127.0.0.1:${CEX_COREDNS_READY_PORT}/ready"
}

kube_proxy_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:${CEX_KUBE_PROXY_HEALTHZ_PORT}/healthz"; }

# kube-proxy is healthy once it has synced its rules, which waits for the kubelet's Node.
start_kube_proxy() {
  start kube-proxy "${CEX_K8S_BIN}/kube-proxy" --config="${NODE}/kube-proxy.yaml" --v=1
}

start_kubelet() {
  start kubelet "${CEX_K8S_BIN}/kubelet" \
    --config="${NODE}/kubelet.yaml" \
    --kubeconfig="${NODE}/kubelet.kubeconfig" \
    --root-dir="${NODE}/kubelet" \
    --cert-dir="${NODE}/kubelet/pki" \
    --hostname-override="${NODE_NAME}" \
    --node-ip="${CEX_NODE_IP}" \
    --node-labels="${CEX_REAL_NODE_SELECTOR}" \
    --v=1
  wait_for kubelet 60 curl -fsS --max-time 2 "http://127.0.0.1:${CEX_KUBELET_HEALTHZ_PORT}/healthz"
}

real_node_ready() {
  [[ "$("${KUBECTL}" get node "${NODE_NAME}" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == "True" ]]
}

start_real_node() {
  prepare_host
  write_node_configs
  start_containerd
  start_relay
  start_coredns
  start_kube_proxy
  start_kubelet
  wait_for kubelet 90 real_node_ready
  wait_for kube-proxy 60 kube_proxy_healthy
  # default and kube-system run on the real node; other namespaces on kwok's unless annotated.
  local ns
  for ns in default kube-system; do
    "${KUBECTL}" annotate --overwrite namespace "${ns}" \
      "scheduler.alpha.kubernetes.io/node-selector=${CEX_REAL_NODE_SELECTOR}" >/dev/null
  done
  log "node ${NODE_NAME}: Ready (${CEX_NODE_IP}, containerd ${CEX_CONTAINERD_SOCKET})"
}
