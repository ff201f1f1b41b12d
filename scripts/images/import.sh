#!/usr/bin/env bash
# Copy the built images into the node's containerd (namespace k8s.io, where the kubelet's
# CRI looks), so pods with `imagePullPolicy: IfNotPresent` start with no registry:
#
#   scripts/images/import.sh [IMAGE...]      # default: every image the cluster runs
#
# Each image goes over as `podman save --format oci-archive` + `ctr images import`, under its
# hashed name (`cex:0.1.0-<hash>`, what build.sh recorded), which is then tagged with the
# chart's name (`cex:0.1.0`). An image containerd already has under its hashed name is not
# copied again. CEX_CONTAINERD_ADDRESS is containerd's socket, by default the node's that
# scripts/cluster runs (.cex/cluster/run/containerd/containerd.sock).
set -euo pipefail
# shellcheck source=scripts/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CEX_CONTAINERD_ADDRESS="${CEX_CONTAINERD_ADDRESS:-$(node_containerd)}"
# Images only other images are built from stay in podman.
CEX_NODE_IMAGES=(pause cex web kafka postgres redis)

k8s_ctr() { ctr --address "${CEX_CONTAINERD_ADDRESS}" --namespace k8s.io "$@"; }

images_lock
[[ -S "${CEX_CONTAINERD_ADDRESS}" ]] || die "no containerd socket at ${CEX_CONTAINERD_ADDRESS} (is the node up? make cluster-up)"
podman_conf

wanted=("$@")
((${#wanted[@]})) || wanted=("${CEX_NODE_IMAGES[@]}")
have="$(k8s_ctr images ls -q)"
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
done
