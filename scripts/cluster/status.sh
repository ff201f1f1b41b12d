#!/usr/bin/env bash
# Show which control-plane components are running, and the nodes; exit 0 only if all of them
# are and the API server answers /readyz.
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all=true
for name in "${CEX_COMPONENTS[@]}"; do
  if pid="$(component_pid "${name}")"; then
    printf '%-24s running  pid %-8s ports %s\n' "${name}" "${pid}" "$(component_ports "${name}")"
  else
    printf '%-24s stopped\n' "${name}"
    all=false
  fi
done
if ${all} && [[ -s "${CEX_CLUSTER_DIR}/pki/tokens.csv" ]]; then
  token="$(awk -F, '$2 == "cex-admin" {print $1}' "${CEX_CLUSTER_DIR}/pki/tokens.csv")"
  if curl -fsS --max-time 5 --cacert "${CEX_CLUSTER_DIR}/pki/ca.crt" \
    -H "Authorization: Bearer ${token}" \
    "https://${CEX_HOST}:${CEX_APISERVER_PORT}/readyz" >/dev/null 2>&1; then
    echo "api server ready: https://${CEX_HOST}:${CEX_APISERVER_PORT}"
    "${CEX_K8S_BIN}/kubectl" --kubeconfig="${KUBECONFIG_CEX}" get nodes -o wide 2>/dev/null || true
    echo "export KUBECONFIG=${KUBECONFIG_CEX}"
    exit 0
  fi
  echo "api server not ready"
fi
exit 1
