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

# Start order; down.sh stops them in reverse.
CEX_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

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
