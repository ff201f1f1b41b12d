# shellcheck shell=bash
# Common settings for the local Kubernetes control plane scripts.
# Sourced by install.sh, up.sh, down.sh and status.sh; not meant to be run.
#
# Every value can be overridden from the environment. Binaries and builds are
# cached per Kubernetes version under CEX_K8S_CACHE; runtime state (certs,
# etcd data, logs, pid files, kubeconfig) lives under CEX_CLUSTER_DIR, which is
# inside the git-ignored .cex/ directory of the repository.

CEX_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Kubernetes release to build. Its staging modules (k8s.io/api, ...) are
# published as v0.<minor>.<patch>.
K8S_VERSION="${CEX_K8S_VERSION:-v1.33.13}"
KWOK_VERSION="${CEX_KWOK_VERSION:-v0.7.0}"
HELM_VERSION="${CEX_HELM_VERSION:-v3.21.4}"
COREDNS_VERSION="${CEX_COREDNS_VERSION:-v1.12.4}"
# prometheus-operator release whose ServiceMonitor and PrometheusRule CRDs the chart tests
# apply (they come from the Go module proxy, like the binaries above).
PROMETHEUS_OPERATOR_VERSION="${CEX_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"

CEX_K8S_CACHE="${CEX_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cex/k8s/${K8S_VERSION}}"
CEX_K8S_BIN="${CEX_K8S_CACHE}/bin"
CEX_CLUSTER_DIR="${CEX_CLUSTER_DIR:-${CEX_REPO_ROOT}/.cex/cluster}"
# monitoring.coreos.com_servicemonitors.yaml and monitoring.coreos.com_prometheusrules.yaml.
CEX_PROMETHEUS_CRDS_DIR="${CEX_PROMETHEUS_CRDS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cex/prometheus-operator/${PROMETHEUS_OPERATOR_VERSION}/crds}"

# Loopback only, and away from the default ports (6443, 2379, 2380, 10257, 10259).
CEX_HOST=127.0.0.1
CEX_APISERVER_PORT="${CEX_APISERVER_PORT:-16443}"
CEX_ETCD_CLIENT_PORT="${CEX_ETCD_CLIENT_PORT:-12379}"
CEX_ETCD_PEER_PORT="${CEX_ETCD_PEER_PORT:-12380}"
CEX_KCM_PORT="${CEX_KCM_PORT:-20257}"
CEX_SCHEDULER_PORT="${CEX_SCHEDULER_PORT:-20259}"
CEX_KWOK_PORT="${CEX_KWOK_PORT:-20280}"
CEX_SERVICE_CIDR="${CEX_SERVICE_CIDR:-10.96.0.0/16}"
CEX_NODE_NAME="${CEX_NODE_NAME:-cex-node-0}"

# The real node beside kwok's fake one: containerd (Debian's, with runc and the CNI plugins),
# kubelet, kube-proxy, CoreDNS and a relay that lets pods reach the loopback API server.
# CEX_REAL_NODE=false gives the control plane with the fake node only. Only one real node
# can run on a host: kube-proxy's iptables chains are host-wide.
CEX_REAL_NODE="${CEX_REAL_NODE:-true}"
# Named by the host name, so the API server and kubectl find it as users expect.
CEX_REAL_NODE_NAME="${CEX_REAL_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}"
# The node's address, added to the loopback interface: pods reach it through their bridge's
# gateway, nothing outside the host does. The kubelet, CoreDNS and the API server relay
# listen on it; it is the API server's advertised address (the `kubernetes` Service's
# endpoint).
CEX_NODE_IP="${CEX_NODE_IP:-10.250.0.1}"
CEX_POD_CIDR="${CEX_POD_CIDR:-10.244.0.0/24}"
CEX_CLUSTER_DNS="${CEX_CLUSTER_DNS:-10.96.0.10}"
CEX_CNI_BRIDGE="${CEX_CNI_BRIDGE:-cex-br0}"
CEX_CNI_NETWORK=cex
CEX_CNI_BIN_DIR="${CEX_CNI_BIN_DIR:-/usr/lib/cni}"
CEX_KUBELET_PORT="${CEX_KUBELET_PORT:-20250}"
CEX_KUBELET_HEALTHZ_PORT="${CEX_KUBELET_HEALTHZ_PORT:-20248}"
CEX_KUBE_PROXY_HEALTHZ_PORT="${CEX_KUBE_PROXY_HEALTHZ_PORT:-20256}"
CEX_KUBE_PROXY_METRICS_PORT="${CEX_KUBE_PROXY_METRICS_PORT:-20249}"
CEX_COREDNS_PORT="${CEX_COREDNS_PORT:-20053}"
CEX_COREDNS_READY_PORT="${CEX_COREDNS_READY_PORT:-20181}"
# containerd's CRI socket and the namespace the kubelet's images live in: import images
# with `ctr --address "${CEX_CONTAINERD_SOCKET}" -n k8s.io images import <oci-archive>`.
CEX_CONTAINERD_SOCKET="${CEX_CLUSTER_DIR}/run/containerd/containerd.sock"
CEX_CONTAINERD_NAMESPACE=k8s.io
# The pod sandbox image (pause.c of the Kubernetes release, built by install.sh) and a
# busybox image for smoke tests; both are OCI archives cached here and imported by up.sh.
CEX_NODE_IMAGES_DIR="${CEX_NODE_IMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cex/node-images/${K8S_VERSION}}"
CEX_PAUSE_IMAGE="${CEX_PAUSE_IMAGE:-localhost/cex/pause:${K8S_VERSION}}"
CEX_BUSYBOX_IMAGE="${CEX_BUSYBOX_IMAGE:-localhost/cex/busybox:e2e}"
# Namespaces run their pods on the node their annotation selects; those without it (every
# test namespace of the kwok-based tests) get kwok's fake node. up.sh annotates default and
# kube-system for the real node; annotate another one with
#   kubectl annotate namespace NAME scheduler.alpha.kubernetes.io/node-selector=cex.dev/node=real
CEX_REAL_NODE_SELECTOR="cex.dev/node=real"
CEX_FAKE_NODE_SELECTOR="type=kwok"

# Start order; down.sh stops them in reverse.
CEX_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
if [[ "${CEX_REAL_NODE}" == true ]]; then
  CEX_COMPONENTS+=(containerd apiserver-relay coredns kube-proxy kubelet)
fi

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# Port of each component that up.sh checks before starting it and down.sh after stopping it.
component_ports() {
  case "$1" in
    etcd) echo "${CEX_ETCD_CLIENT_PORT} ${CEX_ETCD_PEER_PORT}" ;;
    kube-apiserver) echo "${CEX_APISERVER_PORT}" ;;
    kube-controller-manager) echo "${CEX_KCM_PORT}" ;;
    kube-scheduler) echo "${CEX_SCHEDULER_PORT}" ;;
    kwok) echo "${CEX_KWOK_PORT}" ;;
    kubelet) echo "${CEX_KUBELET_PORT} ${CEX_KUBELET_HEALTHZ_PORT}" ;;
    kube-proxy) echo "${CEX_KUBE_PROXY_HEALTHZ_PORT} ${CEX_KUBE_PROXY_METRICS_PORT}" ;;
    coredns) echo "${CEX_COREDNS_PORT} ${CEX_COREDNS_READY_PORT}" ;;
    # containerd listens on a socket; the relay shares the API server's port on another address.
  esac
}

pid_file() { echo "${CEX_CLUSTER_DIR}/run/$1.pid"; }
log_file() { echo "${CEX_CLUSTER_DIR}/logs/$1.log"; }

# True if pid is alive and is one of ours: every component's command line names a path
# inside CEX_CLUSTER_DIR, which guards against a recycled pid.
is_our_process() {
  local pid="$1"
  kill -0 "${pid}" 2>/dev/null || return 1
  [[ -r "/proc/${pid}/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${CEX_CLUSTER_DIR}/"
}

# Pid recorded for a component if that process is still alive, else nothing.
component_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -s "$f" ]] || return 1
  pid="$(cat "$f")"
  is_our_process "${pid}" || return 1
  echo "${pid}"
}

# Pids of the processes listening on a port.
port_pids() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# True if something listens on 127.0.0.1:<port> (or on a wildcard address).
port_in_use() {
  ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# Description of whoever listens on a port, for error messages.
port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
}

etcd_bin() {
  if [[ -x "${CEX_K8S_BIN}/etcd" ]]; then
    echo "${CEX_K8S_BIN}/etcd"
  elif command -v etcd >/dev/null 2>&1; then
    command -v etcd
  elif [[ -x /usr/bin/etcd ]]; then
    echo /usr/bin/etcd
  else
    return 1
  fi
}

export KUBECONFIG_CEX="${CEX_CLUSTER_DIR}/kubeconfig"

# Serialise up.sh and down.sh: several people and test sessions share one work tree.
lock_scripts() {
  mkdir -p "${CEX_CLUSTER_DIR}/run"
  exec 9>"${CEX_CLUSTER_DIR}/run/scripts.lock"
  if ! flock -w 300 9; then
    die "another up.sh/down.sh still holds ${CEX_CLUSTER_DIR}/run/scripts.lock after 300s"
  fi
}
