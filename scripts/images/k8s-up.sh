#!/usr/bin/env bash
# make k8s-up: the whole exchange on the local one-node Kubernetes cluster, in one command.
#   1. the cluster with its real node (scripts/cluster: install.sh, up.sh with CEX_REAL_NODE=true)
#   2. the images (build.sh: only what changed), imported into the node's containerd (import.sh)
#   3. `helm upgrade --install` of charts/cex as release `cex` in namespace `default` (the
#      node runs that namespace's pods): every shared service, the operator, devInfra, the web
#      UI when its image exists, with k8s-values.yaml and the images' hashed tags
#   4. `kubectl apply -f examples/` (the Markets, namespace default), then waits until every
#      Market is Ready, and prints where the public API, the gateway and the web UI answer and
#      the `export KUBECONFIG=…` / `export PATH=…` lines (on stdout, like up.sh: eval works).
# Idempotent: a second run changes nothing that has not changed.
set -euo pipefail
# shellcheck source=scripts/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CEX_REAL_NODE="${CEX_REAL_NODE:-true}"
RELEASE="${CEX_K8S_RELEASE:-cex}"
NAMESPACE="${CEX_K8S_NAMESPACE:-default}"
MARKET_TIMEOUT="${CEX_K8S_MARKET_TIMEOUT:-600s}"
started=${SECONDS}

step() { log "[$((SECONDS - started)) s] $*"; }

step "cluster: scripts/cluster/install.sh && up.sh (real node)"
"${CEX_REPO_ROOT}/scripts/cluster/install.sh"
exports="$("${CEX_REPO_ROOT}/scripts/cluster/up.sh")"
eval "${exports}"
# After up.sh: the processes it starts must not inherit the lock.
images_lock

step "images: build.sh && import.sh"
"${CEX_IMAGES_DIR}/build.sh" cex kafka postgres redis
# The web UI is the one image a half-edited checkout often cannot build: the exchange is
# deployed anyway, with the web image built last (if any).
if [[ -f "${CEX_REPO_ROOT}/services/web/Dockerfile" ]] && ! "${CEX_IMAGES_DIR}/build.sh" web; then
  log "web: the build failed (see above); deploying the web image built last, if any"
fi
"${CEX_IMAGES_DIR}/import.sh"

# The hashed tag build.sh recorded for an image (`0.1.0-<hash>`).
hashed_tag() { local ref; ref="$(cat "${CEX_IMAGES_CACHE}/refs/$1")"; echo "${ref##*:}"; }
values=(
  --set "image.tag=$(hashed_tag cex)"
  --set "devInfra.kafka.image.tag=$(hashed_tag kafka)"
  --set "devInfra.postgres.image.tag=$(hashed_tag postgres)"
  --set "devInfra.redis.image.tag=$(hashed_tag redis)"
)
if [[ -s "${CEX_IMAGES_CACHE}/refs/web" ]]; then
  values+=(--set "web.enabled=true" --set "web.image.tag=$(hashed_tag web)")
else
  values+=(--set "web.enabled=false")
fi

# The chart's object prefix (cex.fullname): the release name when it contains "cex".
fullname="${RELEASE}"
[[ "${RELEASE}" == *cex* ]] || fullname="${RELEASE}-cex"

step "devInfra's volumes on the node (dev-volumes.sh)"
# A StatefulSet of an exchange installed before devInfra had volumes keeps emptyDirs, and
# its volumeClaimTemplates cannot change: it goes (with the data it would lose on any restart).
for component in kafka postgres redis; do
  sts="$(kubectl get statefulset "${fullname}-${component}" -n "${NAMESPACE}" \
    -o jsonpath='{.metadata.name} {.spec.volumeClaimTemplates[0].metadata.name}' 2>/dev/null || true)"
  if [[ "${sts}" == "${fullname}-${component} " ]]; then
    log "${sts% }: deleting it (its data was in an emptyDir) for one with a persistent volume"
    kubectl delete statefulset "${sts% }" -n "${NAMESPACE}" --wait=true >&2
  fi
done
"${CEX_IMAGES_DIR}/dev-volumes.sh" create "${fullname}" "${NAMESPACE}"

step "helm upgrade --install ${RELEASE} charts/cex -n ${NAMESPACE}"
helm upgrade --install "${RELEASE}" "${CEX_CHART_DIR}" --namespace "${NAMESPACE}" \
  -f "${CEX_IMAGES_DIR}/k8s-values.yaml" "${values[@]}" \
  --wait --timeout 15m >&2

step "kubectl apply -f examples/ (namespace ${NAMESPACE})"
kubectl apply -n "${NAMESPACE}" -f "${CEX_REPO_ROOT}/examples/" >&2
step "waiting until every Market is Ready (${MARKET_TIMEOUT})"
if ! kubectl wait -n "${NAMESPACE}" --for=condition=Ready markets --all --timeout="${MARKET_TIMEOUT}" >&2; then
  kubectl get -n "${NAMESPACE}" markets,pods >&2 || true
  die "not every Market became Ready; see kubectl describe market, kubectl logs deploy/${RELEASE}-operator"
fi
kubectl get -n "${NAMESPACE}" markets >&2

# Services are ClusterIP: the host reaches them through kube-proxy, or on loopback with
# kubectl port-forward.
endpoint() { # service scheme path
  local ip port
  ip="$(kubectl get svc "$1" -n "${NAMESPACE}" -o jsonpath='{.spec.clusterIP}' 2>/dev/null)" || return 0
  port="$(kubectl get svc "$1" -n "${NAMESPACE}" -o jsonpath='{.spec.ports[0].port}')"
  printf '  %-11s %s://%s:%s%s   (or: kubectl port-forward -n %s svc/%s PORT:%s)\n' \
    "${1#"${fullname}"-}" "$2" "${ip}" "${port}" "$3" "${NAMESPACE}" "$1" "${port}" >&2
}
step "ready. The exchange answers on this machine at (Services, through kube-proxy):"
endpoint "${fullname}-api" http /api/v3/ping
endpoint "${fullname}-gateway" ws /ws
[[ -s "${CEX_IMAGES_CACHE}/refs/web" ]] && endpoint "${fullname}-web" http /
log "Then: kubectl apply -f examples/<market>.yaml   (namespace ${NAMESPACE}); make k8s-down stops it all."
echo "${exports}"
