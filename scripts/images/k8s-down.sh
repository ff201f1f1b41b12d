#!/usr/bin/env bash
# make k8s-down: undo make k8s-up. Deletes the example Markets (the operator drains them
# while it still runs), uninstalls the release (the CRDs stay), deletes devInfra's volumes and
# their data (dev-volumes.sh delete: the next k8s-up starts clean), then stops the cluster
# and its real node (scripts/cluster/down.sh).
# Safe to run when nothing is up.
set -euo pipefail
# shellcheck source=scripts/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CEX_REAL_NODE="${CEX_REAL_NODE:-true}"
RELEASE="${CEX_K8S_RELEASE:-cex}"
NAMESPACE="${CEX_K8S_NAMESPACE:-default}"
K8S_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/cex/k8s/${CEX_K8S_VERSION}/bin"
export KUBECONFIG="${CEX_CLUSTER_DIR:-${CEX_REPO_ROOT}/.cex/cluster}/kubeconfig"
export PATH="${K8S_BIN}:${PATH}"

if [[ -s "${KUBECONFIG}" ]] && kubectl get --raw /readyz >/dev/null 2>&1; then
  if kubectl get crd markets.cex.dev >/dev/null 2>&1; then
    log "deleting the example Markets (the operator drains them)"
    kubectl delete -n "${NAMESPACE}" -f "${CEX_REPO_ROOT}/examples/" --ignore-not-found \
      --timeout=180s >&2 || log "some Markets are still draining; stopping anyway"
  fi
  if helm status "${RELEASE}" -n "${NAMESPACE}" >/dev/null 2>&1; then
    log "helm uninstall ${RELEASE} -n ${NAMESPACE}"
    helm uninstall "${RELEASE}" -n "${NAMESPACE}" --wait --timeout 5m >&2
  fi
  fullname="${RELEASE}"
  [[ "${RELEASE}" == *cex* ]] || fullname="${RELEASE}-cex"
  log "deleting devInfra's volumes and their data, and the API keys' sealing keys"
  "${CEX_IMAGES_DIR}/dev-volumes.sh" delete "${fullname}" "${NAMESPACE}"
  # The chart keeps its generated Secret through helm uninstall (charts/cex/templates/api.yaml).
  kubectl delete secret "${fullname}-api" -n "${NAMESPACE}" --ignore-not-found >&2
fi
"${CEX_REPO_ROOT}/scripts/cluster/down.sh"
