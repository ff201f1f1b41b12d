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

stop_pid() { # name pid
  local name="$1" pid="$2" i
  kill -TERM "${pid}" 2>/dev/null || return 0
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

failed=false
for ((idx = ${#CEX_COMPONENTS[@]} - 1; idx >= 0; idx--)); do
  name="${CEX_COMPONENTS[idx]}"
  if pid="$(component_pid "${name}")"; then
    log "${name}: stopping (pid ${pid})"
    stop_pid "${name}" "${pid}"
  fi
  rm -f "$(pid_file "${name}")"
  # A component whose pid file was lost is still ours if its command line points into our
  # runtime directory; anything else on the port is reported, never killed.
  for port in $(component_ports "${name}"); do
    for pid in $(port_pids "${port}"); do
      if is_our_process "${pid}"; then
        log "${name}: stopping untracked pid ${pid} on port ${port}"
        stop_pid "${name}" "${pid}"
      fi
    done
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
