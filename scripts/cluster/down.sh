#!/usr/bin/env bash
# Stop the local control plane started by up.sh: every component, in reverse start order,
# politely (SIGTERM) and then firmly (SIGKILL after a grace period), and check that none of
# its ports is still listening. The real node's containers are killed and removed, and what
# the node changed on the host is undone and checked (node_teardown): a leftover process,
# mount, bridge, iptables chain, cgroup or address fails the script.
# Runtime data stays for the next up.sh unless --purge is given, which also deletes
# .cex/cluster/ (certificates, etcd data, images imported into the node, logs).
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=false
for arg in "$@"; do
  case "${arg}" in
    --purge) purge=true ;;
    -h | --help)
      sed -n '2,8p' "$0"
      exit 0
      ;;
    *) die "unknown argument ${arg} (expected --purge)" ;;
  esac
done

# wait_gone NAME PID: wait for a signalled process to exit; SIGKILL it after 10s.
wait_gone() {
  local name="$1" pid="$2" i
  for ((i = 0; i < 100; i++)); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.1
  done
  log "${name}: still running after 10s, sending SIGKILL"
  kill -KILL "${pid}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.1
  done
  die "${name}: pid ${pid} survived SIGKILL"
}

# stop_group NAME...: SIGTERM the components together, then wait for each. A component whose
# pid file was lost is still ours if its command line points into our runtime directory
# (is_our_process); anything else listening on one of our ports is reported, never killed.
stop_group() {
  local name pid port
  local names=() pids=()
  for name in "$@"; do
    if pid="$(component_pid "${name}")"; then
      names+=("${name}") && pids+=("${pid}")
    fi
    for port in $(component_ports "${name}"); do
      for pid in $(port_pids "${port}"); do
        if is_our_process "${pid}" && [[ " ${pids[*]} " != *" ${pid} "* ]]; then
          log "${name}: found untracked pid ${pid} on port ${port}"
          names+=("${name}") && pids+=("${pid}")
        fi
      done
    done
  done
  local i
  for i in "${!pids[@]}"; do
    log "${names[i]}: stopping (pid ${pids[i]})"
    kill -TERM "${pids[i]}" 2>/dev/null || true
    # up.sh starts each component as a session leader: its children (the relay's
    # per-connection processes) go with it.
    if [[ "$(ps -o pgid= -p "${pids[i]}" 2>/dev/null | tr -d ' ')" == "${pids[i]}" ]]; then
      kill -TERM -- "-${pids[i]}" 2>/dev/null || true
    fi
  done
  for i in "${!pids[@]}"; do
    wait_gone "${names[i]}" "${pids[i]}"
  done
  for name in "$@"; do
    rm -f "$(pid_file "${name}")"
  done
}

NODE="${CEX_CLUSTER_DIR}/node"
CTR=(ctr --address "${CEX_CONTAINERD_SOCKET}" -n "${CEX_CONTAINERD_NAMESPACE}")

# Every container of the node, killed and removed while containerd still runs (the kubelet
# is stopped first so it restarts none). The next up.sh's kubelet makes the pods again.
remove_containers() {
  [[ -S "${CEX_CONTAINERD_SOCKET}" ]] && component_pid containerd >/dev/null || return 0
  local ids
  ids="$("${CTR[@]}" tasks ls -q 2>/dev/null || true)"
  # shellcheck disable=SC2086
  [[ -z "${ids}" ]] || "${CTR[@]}" tasks delete --force ${ids} >/dev/null 2>&1 || true
  ids="$("${CTR[@]}" containers ls -q 2>/dev/null || true)"
  [[ -z "${ids}" ]] && return
  log "node: removing $(wc -w <<<"${ids}") containers"
  # shellcheck disable=SC2086
  "${CTR[@]}" containers delete ${ids} >/dev/null 2>&1 || true
}

# Rules and chains in iptables' TABLE: lines of `iptables-save -t TABLE`.
kube_chains() { iptables-save -t "$1" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'; }
cni_chains() { # table: the bridge plugin's chains of our network (rules commented name: "cex")
  iptables-save -t "$1" 2>/dev/null | { grep -F -- "name: \\\"${CEX_CNI_NETWORK}\\\" id:" || true; } |
    sed -n 's/.* -j \(CNI-[0-9a-f]*\)$/\1/p' | sort -u
}

# drop_chains TABLE CHAIN...: delete every rule that jumps to one of CHAINs, then the chains.
drop_chains() {
  local table="$1" rule chain
  shift
  [[ $# -eq 0 ]] && return
  local pattern
  pattern="$(printf -- '-j %s( |$)|' "$@")"
  pattern="${pattern%|}"
  iptables-save -t "${table}" | { grep -E -- "^-A .*(${pattern})" || true; } | while read -r rule; do
    eval "iptables -t ${table} -D ${rule#-A }" 2>/dev/null || true
  done
  for chain in "$@"; do iptables -t "${table}" -F "${chain}" 2>/dev/null || true; done
  for chain in "$@"; do iptables -t "${table}" -X "${chain}" 2>/dev/null || true; done
}

our_mounts() { findmnt -rn -o TARGET | grep -F -- "${CEX_CLUSTER_DIR}/" | sort -r || true; }
our_cgroups() { find /sys/fs/cgroup/*/cex -depth -type d 2>/dev/null || true; }
# The node's leftover processes: those in the kubelet's cgroups (containers) and containerd's
# shims for our socket. Nothing else on the host is touched.
our_processes() {
  {
    cat /sys/fs/cgroup/*/cex/cgroup.procs /sys/fs/cgroup/*/cex/**/cgroup.procs 2>/dev/null || true
    pgrep -f -- "containerd-shim.* -address ${CEX_CONTAINERD_SOCKET}" || true
  } | sort -un
}

node_teardown() {
  local pid table
  # Pods' processes outlive containerd in their shims; anything still there is killed.
  for pid in $(our_processes); do
    log "node: killing leftover pid ${pid} ($(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | cut -c1-80))"
    kill -KILL "${pid}" 2>/dev/null || true
  done
  # Mounts: container root filesystems, network namespaces, the kubelet's volumes.
  local m
  for m in $(our_mounts); do umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true; done
  ip link show "${CEX_CNI_BRIDGE}" >/dev/null 2>&1 && ip link delete "${CEX_CNI_BRIDGE}"
  if [[ -x "${CEX_K8S_BIN}/kube-proxy" ]] && [[ -n "$(kube_chains nat)" ]]; then
    "${CEX_K8S_BIN}/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  for table in filter nat mangle; do
    # shellcheck disable=SC2046
    drop_chains "${table}" $(kube_chains "${table}") $(cni_chains "${table}")
  done
  rm -rf "${NODE}/cni/networks"
  local cg
  for cg in $(our_cgroups); do rmdir "${cg}" 2>/dev/null || true; done
  if ip -4 -o addr show dev lo | grep -qF " ${CEX_NODE_IP}/32 "; then
    ip addr del "${CEX_NODE_IP}/32" dev lo
  fi
  if [[ -s "${CEX_CLUSTER_DIR}/run/sysctl.saved" ]]; then
    sysctl -q -p "${CEX_CLUSTER_DIR}/run/sysctl.saved" >/dev/null 2>&1 || true
    rm -f "${CEX_CLUSTER_DIR}/run/sysctl.saved"
  fi
}

# What the node may have left behind, one line each; nothing printed means a clean host.
node_leftovers() {
  local pid table
  for pid in $(our_processes); do echo "process ${pid}: $(tr '\0' ' ' <"/proc/${pid}/cmdline" | cut -c1-100)"; done
  our_mounts | sed 's/^/mount /'
  ip link show "${CEX_CNI_BRIDGE}" >/dev/null 2>&1 && echo "bridge ${CEX_CNI_BRIDGE}"
  ip -o link show type veth 2>/dev/null | grep -F "master ${CEX_CNI_BRIDGE}" | sed 's/^/veth /'
  for table in filter nat mangle; do
    kube_chains "${table}" | sed "s/^/iptables chain ${table} /"
    cni_chains "${table}" | sed "s/^/iptables chain ${table} /"
  done
  our_cgroups | sed 's/^/cgroup /'
  ip -4 -o addr show dev lo | grep -qF " ${CEX_NODE_IP}/32 " && echo "address ${CEX_NODE_IP} on lo"
  [[ -e "${CEX_CLUSTER_DIR}/run/sysctl.saved" ]] && echo "sysctls not restored"
  return 0
}

shopt -s globstar
lock_scripts
# The node's clients of the API server and containerd, then the node's containers and
# containerd, then the control plane's clients (together), the API server, etcd.
stop_group kubelet kube-proxy coredns apiserver-relay
remove_containers
stop_group containerd
node_teardown
stop_group kwok kube-scheduler kube-controller-manager
stop_group kube-apiserver
stop_group etcd

failed=false
leftovers="$(node_leftovers)"
if [[ -n "${leftovers}" ]]; then
  log "the node left behind:"
  sed 's/^/    /' <<<"${leftovers}" >&2
  failed=true
fi
for name in "${CEX_COMPONENTS[@]}" containerd apiserver-relay coredns kube-proxy kubelet; do
  for port in $(component_ports "${name}"); do
    if port_in_use "${port}"; then
      log "port ${port} (${name}) is still in use by $(port_owner "${port}" || echo 'an unknown process')"
      failed=true
    fi
  done
done

if ${purge}; then
  log "removing ${CEX_CLUSTER_DIR}"
  rm -rf "${CEX_CLUSTER_DIR}"
fi
${failed} && die "some ports are still in use or the node left something behind"
log "control plane stopped"
