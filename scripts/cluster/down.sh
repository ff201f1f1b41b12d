#!/usr/bin/env bash
# Stop the local control plane started by up.sh: every component, in reverse start order,
# politely (SIGTERM) and then firmly (SIGKILL after a grace period), and check that none of
# its ports is still listening. Runtime data stays for the next up.sh unless --purge is given,
# which also deletes .cex/cluster/ (certificates, etcd data, logs).
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=false
for arg in "$@"; do
  case "${arg}" in
    --purge) purge=true ;;
    -h | --help)
      sed -n '2,5p' "$0"
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
  done
  for i in "${!pids[@]}"; do
    wait_gone "${names[i]}" "${pids[i]}"
  done
  for name in "$@"; do
    rm -f "$(pid_file "${name}")"
  done
}

lock_scripts
# Clients of the API server first (together), then the API server, then etcd.
stop_group kwok kube-scheduler kube-controller-manager
stop_group kube-apiserver
stop_group etcd

failed=false
for name in "${CEX_COMPONENTS[@]}"; do
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
${failed} && die "some ports are still in use"
log "control plane stopped"
