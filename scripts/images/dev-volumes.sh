#!/usr/bin/env bash
# The persistent volumes of the chart's devInfra (Kafka, PostgreSQL, Redis) on the local
# cluster's real node, which has no volume provisioner:
#
#   scripts/images/dev-volumes.sh create RELEASE_FULLNAME NAMESPACE   # before helm install
#   scripts/images/dev-volumes.sh delete RELEASE_FULLNAME NAMESPACE   # after helm uninstall
#
# create: the StorageClass `cex-local` (no provisioner) and, per devInfra StatefulSet, a
# `local` PersistentVolume on a directory of the node (${CEX_CLUSTER_DIR}/volumes/<namespace>/
# <claim>), bound in advance to the claim the StatefulSet makes (data-<statefulset>-0) and
# kept when released (Retain). Those claims belong to the StatefulSets, not to the release:
# `helm uninstall` leaves them and their data, and the next install finds them again.
# delete: the claims, the volumes and their directories (make k8s-down; a clean slate).
# scripts/cluster/down.sh --purge removes the directories with the rest of .cex/cluster.
set -euo pipefail
# shellcheck source=scripts/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action="${1:?usage: dev-volumes.sh create|delete RELEASE_FULLNAME NAMESPACE}"
fullname="${2:?release fullname (e.g. cex)}"
namespace="${3:?namespace}"
CLASS=cex-local
# The chart's default sizes (devInfra.*.storage); a local volume's capacity is nominal.
SIZE=8Gi
VOLUMES_DIR="${CEX_CLUSTER_DIR:-${CEX_REPO_ROOT}/.cex/cluster}/volumes/${namespace}"
COMPONENTS=(kafka postgres redis)

claim() { echo "data-${fullname}-$1-0"; }
volume() { echo "${namespace}-$(claim "$1")"; }

create() {
  local node
  node="$(kubectl get nodes -l cex.dev/node=real -o jsonpath='{.items[0].metadata.name}')"
  [[ -n "${node}" ]] || die "no real node (label cex.dev/node=real); make cluster-up starts it"
  local manifest
  manifest="$(cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${CLASS}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
)"
  local c dir existing
  existing="$(kubectl get pv -o name)"
  for c in "${COMPONENTS[@]}"; do
    dir="${VOLUMES_DIR}/$(claim "${c}")"
    mkdir -p "${dir}"
    # A volume already there stays as it is (its spec is immutable, its data maybe in use).
    grep -qxF "persistentvolume/$(volume "${c}")" <<<"${existing}" && continue
    manifest+="$(cat <<YAML

---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $(volume "${c}")
  labels: {app.kubernetes.io/part-of: cex, app.kubernetes.io/component: ${c}}
spec:
  capacity: {storage: ${SIZE}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ${CLASS}
  claimRef: {namespace: ${namespace}, name: $(claim "${c}")}
  local: {path: ${dir}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [${node}]}
YAML
)"
  done
  kubectl apply -f - >&2 <<<"${manifest}"
}

delete() {
  local c claims=() volumes=()
  for c in "${COMPONENTS[@]}"; do
    claims+=("$(claim "${c}")")
    volumes+=("$(volume "${c}")")
  done
  kubectl delete pvc -n "${namespace}" "${claims[@]}" --ignore-not-found --timeout=120s >&2
  kubectl delete pv "${volumes[@]}" --ignore-not-found --timeout=120s >&2
  for c in "${COMPONENTS[@]}"; do rm -rf "${VOLUMES_DIR:?}/$(claim "${c}")"; done
  rmdir "${VOLUMES_DIR}" 2>/dev/null || true
}

case "${action}" in
  create) create ;;
  delete) delete ;;
  *) die "unknown action ${action} (create or delete)" ;;
esac
