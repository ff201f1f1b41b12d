#!/usr/bin/env bash
# Copy the built images into the node's containerd (namespace k8s.io, where the kubelet's
# CRI looks), so pods with `imagePullPolicy: IfNotPresent` start with no registry:
#
#   scripts/images/import.sh [IMAGE...]      # default: every image the cluster runs
#
# Each image goes over as `podman save --format oci-archive` + `ctr images import`, under its
# hashed name (`cex:0.1.0-<hash>`, what build.sh recorded), which is then tagged with the
# chart's name (`cex:0.1.0`). An image containerd already has under its hashed name is not
# copied again. The image's other names in containerd (older hashed builds, tags of a test's
# upgrade) go once no container and no pod uses them, so rebuilds do not pile up on the node
# (its image GC is off); so do images this script no longer imports (cex-pause: the pod
# sandbox's pause image is the cluster's, scripts/cluster/install.sh).
# CEX_CONTAINERD_ADDRESS is containerd's socket, by default the node's that scripts/cluster
# runs (.cex/cluster/run/containerd/containerd.sock).
set -euo pipefail
# shellcheck source=scripts/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CEX_CONTAINERD_ADDRESS="${CEX_CONTAINERD_ADDRESS:-$(node_containerd)}"
# Images only other images are built from stay in podman.
CEX_NODE_IMAGES=(cex web kafka postgres redis)
RETIRED_IMAGES=(cex-pause)

k8s_ctr() { ctr --address "${CEX_CONTAINERD_ADDRESS}" --namespace k8s.io "$@"; }

images_lock
[[ -S "${CEX_CONTAINERD_ADDRESS}" ]] || die "no containerd socket at ${CEX_CONTAINERD_ADDRESS} (is the node up? make cluster-up)"
podman_conf

wanted=("$@")
((${#wanted[@]})) || wanted=("${CEX_NODE_IMAGES[@]}")
have="$(k8s_ctr images ls -q)"

# The images that containers of the node or pods of the cluster refer to (the kubelet needs
# them to restart a container: nothing can be pulled again).
in_use() {
  k8s_ctr containers ls 2>/dev/null | awk 'NR > 1 {print $2}'
  local kubeconfig="${CEX_CLUSTER_DIR:-${CEX_REPO_ROOT}/.cex/cluster}/kubeconfig"
  if [[ -s "${kubeconfig}" ]] && command -v kubectl >/dev/null; then
    KUBECONFIG="${kubeconfig}" kubectl get pods -A --request-timeout=20s \
      -o jsonpath='{range .items[*]}{range .spec.containers[*]}{.image}{"\n"}{end}{range .spec.initContainers[*]}{.image}{"\n"}{end}{end}' |
      sed -E '/^[^/]+$/s|^|docker.io/library/|; /^[^/.:]+\/[^/]+$/s|^|docker.io/|' ||
      echo "unknown"  # the cluster did not answer: nothing is removed
  fi
}

# prune REPOSITORY KEEP...: remove the repository's other names unused by any container or pod.
prune() {
  local repo="$1" ref used
  shift
  used="$(in_use)"
  grep -qxF unknown <<<"${used}" && { log "${repo#docker.io/library/}: the cluster did not answer; nothing pruned"; return; }
  for ref in $(k8s_ctr images ls -q | grep -F "${repo}:" || true); do
    [[ "${ref%:*}" == "${repo}" ]] || continue
    printf '%s\n' "$@" | grep -qxF "${ref}" && continue
    if grep -qxF "${ref}" <<<"${used}"; then
      log "${ref#docker.io/library/}: still in use; kept"
    else
      k8s_ctr images rm "${ref}" >/dev/null && log "${ref#docker.io/library/}: removed from containerd"
    fi
  done
}
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
for name in "${wanted[@]}"; do
  refs="${CEX_IMAGES_CACHE}/refs/${name}"
  if [[ ! -s "${refs}" ]]; then
    [[ "${name}" == web ]] && { log "web: not built; skipped"; continue; }
    die "${name}: not built (scripts/images/build.sh ${name})"
  fi
  hashed="$(cat "${refs}")"
  plain="$(full_name "$(image_tag "${name}")")"
  if grep -qxF "${hashed}" <<<"${have}"; then
    log "${name}: already in containerd (${hashed#docker.io/library/})"
  else
    started=${SECONDS}
    pm save -q --format oci-archive -o "${tmp}/${name}.tar" "${hashed}" >/dev/null
    k8s_ctr images import "${tmp}/${name}.tar" >/dev/null
    rm -f "${tmp}/${name}.tar"
    log "${name}: imported ${hashed#docker.io/library/} in $((SECONDS - started)) s"
  fi
  k8s_ctr images tag --force "${hashed}" "${plain}" >/dev/null
  prune "${plain%:*}" "${hashed}" "${plain}"
done
for name in "${RETIRED_IMAGES[@]}"; do prune "$(full_name "${name}")"; done
