#!/usr/bin/env bash
# oci-archive.sh REF ROOTFS OUT ENTRYPOINT_JSON
# Pack the directory ROOTFS as a one-layer OCI image named REF (e.g. localhost/cex/pause:v1)
# into the OCI archive OUT, which `ctr images import` reads. Used by install.sh for the images
# the node needs before any image tooling exists (the pod sandbox's pause, a busybox); they
# are `FROM scratch` images, so a tar, two JSON documents and an index are the whole recipe.
set -euo pipefail
[[ $# -eq 4 ]] || {
  sed -n '2,2p' "$0" >&2
  exit 2
}
ref="$1" rootfs="$2" out="$3" entrypoint="$4"

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/blobs/sha256"

# blob FILE: move FILE into the blob store; prints "<digest> <size>".
blob() {
  local digest size
  digest="$(sha256sum "$1" | cut -d' ' -f1)"
  size="$(stat -c %s "$1")"
  mv "$1" "${work}/blobs/sha256/${digest}"
  echo "${digest} ${size}"
}

# Reproducible layer: fixed owner and times, sorted names.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "${rootfs}" -cf "${work}/layer" .
read -r layer_digest layer_size < <(blob "${work}/layer")

cat >"${work}/config" <<EOF
{"architecture":"amd64","os":"linux","config":{"Entrypoint":${entrypoint},"Env":["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]},"rootfs":{"type":"layers","diff_ids":["sha256:${layer_digest}"]}}
EOF
read -r config_digest config_size < <(blob "${work}/config")

cat >"${work}/manifest" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:${config_digest}","size":${config_size}},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:${layer_digest}","size":${layer_size}}]}
EOF
read -r manifest_digest manifest_size < <(blob "${work}/manifest")

cat >"${work}/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:${manifest_digest}","size":${manifest_size},"annotations":{"io.containerd.image.name":"${ref}","org.opencontainers.image.ref.name":"${ref##*:}"}}]}
EOF
echo '{"imageLayoutVersion":"1.0.0"}' >"${work}/oci-layout"

mkdir -p "$(dirname "${out}")"
tar --owner=0 --group=0 --numeric-owner -C "${work}" -cf "${out}.tmp" oci-layout index.json blobs
mv -f "${out}.tmp" "${out}"
