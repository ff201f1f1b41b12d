#!/usr/bin/env bash
# Build (or reuse) everything the local Kubernetes control plane needs:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (from k8s.io/kubernetes)
#   kwok, helm                                                        (go install)
#   etcd                                                              (Debian's etcd-server)
#   prometheus-operator's ServiceMonitor and PrometheusRule CRDs      (for the chart's tests)
# and for the real node (unless CEX_REAL_NODE=false):
#   kubelet, kube-proxy                                               (from k8s.io/kubernetes)
#   containerd, runc, the CNI plugins, socat, busybox-static          (Debian's packages)
#   CoreDNS                                                           (go install)
#   the pause image and a busybox image, as OCI archives              (pause.c, busybox-static)
# Binaries go to ${XDG_CACHE_HOME:-$HOME/.cache}/cex/k8s/<version>/bin; a second run with the
# same versions does nothing. Go's own module and build caches are left where Go keeps them.
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go first"

mkdir -p "${CEX_K8S_BIN}"
export CGO_ENABLED=0

K8S_MINOR="$(echo "${K8S_VERSION}" | cut -d. -f2)"
K8S_PATCH="$(echo "${K8S_VERSION}" | cut -d. -f3)"
STAGING_VERSION="v0.${K8S_MINOR}.${K8S_PATCH}"
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
[[ "${CEX_REAL_NODE}" == true ]] && K8S_COMMANDS+=(kubelet kube-proxy)

# A stamp file records which version a binary was built from, so a changed version rebuilds.
stamp_ok() { [[ -x "${CEX_K8S_BIN}/$1" && "$(cat "${CEX_K8S_BIN}/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"${CEX_K8S_BIN}/.$1.version"; }

build_kubernetes() {
  local missing=()
  local c
  for c in "${K8S_COMMANDS[@]}"; do
    stamp_ok "$c" "${K8S_VERSION}" || missing+=("$c")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "kubernetes ${K8S_VERSION}: cached"
    return
  fi
  log "kubernetes ${K8S_VERSION}: building ${missing[*]} (the first build takes a long while)"

  # k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
  # v0.0.0 and replaces them with paths inside its own repository, which `go install`
  # refuses. A wrapper module replaces each of them with its published v0.<minor>.<patch>.
  local mod_dir="${CEX_K8S_CACHE}/src"
  mkdir -p "${mod_dir}"
  local k8s_gomod
  k8s_gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "${k8s_gomod}" ]] || die "could not find the go.mod of k8s.io/kubernetes@${K8S_VERSION}"

  (
    cd "${mod_dir}"
    rm -f go.mod go.sum
    go mod init cex.local/k8s-control-plane >/dev/null 2>&1
    local staging
    staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "${k8s_gomod}" | sort -u)"
    [[ -n "${staging}" ]] || die "no k8s.io/* v0.0.0 requirements found in ${k8s_gomod}"
    local m
    for m in ${staging}; do
      go mod edit -replace="${m}=${m}@${STAGING_VERSION}"
    done
    go mod edit -require="k8s.io/kubernetes@${K8S_VERSION}"
    local pkgs=()
    for c in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${c}@${K8S_VERSION}"); done
    go get "${pkgs[@]}"
  )

  # Version stamps the way Kubernetes' release build sets them, so `--version` parses
  # (kwok and kubectl read it) and the API server reports the real version.
  local build_date ldflags="-s -w" pkg
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
    ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
  done

  local out="${CEX_K8S_CACHE}/build.tmp"
  rm -rf "${out}" && mkdir -p "${out}"
  local targets=()
  for c in "${missing[@]}"; do targets+=("k8s.io/kubernetes/cmd/${c}"); done
  (cd "${mod_dir}" && go build -trimpath -ldflags "${ldflags}" -o "${out}/" "${targets[@]}")
  for c in "${missing[@]}"; do
    mv -f "${out}/${c}" "${CEX_K8S_BIN}/${c}"
    stamp "$c" "${K8S_VERSION}"
  done
  rmdir "${out}"
  "${CEX_K8S_BIN}/${missing[0]}" --version >&2
}

go_install() { # name package version [extra ldflags]
  local name="$1" pkg="$2" version="$3" ldflags="-s -w ${4:-}"
  # The stamp records the flags too, so a changed recipe rebuilds.
  local id="${version} $(echo "${ldflags}" | cksum | cut -d' ' -f1)"
  if stamp_ok "${name}" "${id}"; then
    log "${name} ${version}: cached"
    return
  fi
  log "${name} ${version}: building"
  GOBIN="${CEX_K8S_BIN}" go install -trimpath -ldflags "${ldflags}" "${pkg}@${version}"
  stamp "${name}" "${id}"
}

# apt_install PACKAGE...: install the Debian packages that are missing (apt-get update once
# if the package lists are too old to know them).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and apt-get is not available"
  log "installing Debian's ${missing[*]}"
  local sudo=()
  [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

install_etcd() {
  if etcd_bin >/dev/null; then
    log "etcd: $("$(etcd_bin)" --version 2>/dev/null | head -1)"
    return
  fi
  command -v apt-get >/dev/null 2>&1 || die "etcd is missing and apt-get is not available; install etcd-server"
  log "etcd: installing Debian's etcd-server"
  local sudo=()
  [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends etcd-server; then
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends etcd-server
  fi
  # The package enables a system etcd on the default ports; the local plane runs its own.
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${sudo[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  etcd_bin >/dev/null || die "etcd-server installed but no etcd binary found"
}

# The CRDs of the monitoring objects the Helm chart renders, so tests can check them against a
# real API server. They ship in the prometheus-operator module's example/ directory.
fetch_prometheus_crds() {
  local files=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
  local f have=true
  for f in "${files[@]}"; do [[ -s "${CEX_PROMETHEUS_CRDS_DIR}/${f}" ]] || have=false; done
  if [[ "${have}" == true ]]; then
    log "prometheus-operator ${PROMETHEUS_OPERATOR_VERSION} CRDs: cached"
    return
  fi
  log "prometheus-operator ${PROMETHEUS_OPERATOR_VERSION} CRDs: downloading the module"
  # Outside any module (an empty directory), so no go.mod around changes what is resolved.
  local tmp dir
  tmp="$(mktemp -d)"
  dir="$(cd "${tmp}" && GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  rmdir "${tmp}"
  [[ -d "${dir}/example/prometheus-operator-crd" ]] ||
    die "no example/prometheus-operator-crd in prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}"
  mkdir -p "${CEX_PROMETHEUS_CRDS_DIR}"
  for f in "${files[@]}"; do
    cp "${dir}/example/prometheus-operator-crd/${f}" "${CEX_PROMETHEUS_CRDS_DIR}/${f}.tmp"
    chmod 644 "${CEX_PROMETHEUS_CRDS_DIR}/${f}.tmp"
    mv -f "${CEX_PROMETHEUS_CRDS_DIR}/${f}.tmp" "${CEX_PROMETHEUS_CRDS_DIR}/${f}"
  done
}

# The node's images: the pod sandbox's pause (the release's pause.c, static) and busybox (for
# smoke tests), each a FROM-scratch OCI archive that up.sh imports into containerd.
build_node_images() {
  local pause_tar="${CEX_NODE_IMAGES_DIR}/pause.tar" busybox_tar="${CEX_NODE_IMAGES_DIR}/busybox.tar"
  local id="${CEX_PAUSE_IMAGE} ${CEX_BUSYBOX_IMAGE} applets"
  if [[ -s "${pause_tar}" && -s "${busybox_tar}" && "$(cat "${CEX_NODE_IMAGES_DIR}/.version" 2>/dev/null)" == "${id}" ]]; then
    log "node images: cached"
    return
  fi
  log "node images: building ${CEX_PAUSE_IMAGE} and ${CEX_BUSYBOX_IMAGE}"
  command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
  local src tmp
  src="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/build/pause/linux/pause.c"
  [[ -f "${src}" ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@${K8S_VERSION}"
  tmp="$(mktemp -d)"
  mkdir -p "${tmp}/pause" "${tmp}/busybox/bin" "${tmp}/busybox/tmp" "${tmp}/busybox/etc"
  gcc -Os -Wall -static -DVERSION="${K8S_VERSION}" -o "${tmp}/pause/pause" "${src}"
  "$(dirname "${BASH_SOURCE[0]}")/oci-archive.sh" "${CEX_PAUSE_IMAGE}" "${tmp}/pause" "${pause_tar}" '["/pause"]'
  cp /bin/busybox "${tmp}/busybox/bin/busybox"
  # Every applet by its name (wget runs ssl_client for https, for one).
  local applet
  for applet in $(/bin/busybox --list); do
    [[ "${applet}" == busybox ]] || ln -s busybox "${tmp}/busybox/bin/${applet}"
  done
  chmod 1777 "${tmp}/busybox/tmp"
  "$(dirname "${BASH_SOURCE[0]}")/oci-archive.sh" "${CEX_BUSYBOX_IMAGE}" "${tmp}/busybox" "${busybox_tar}" '["/bin/busybox"]'
  rm -rf "${tmp}"
  echo "${id}" >"${CEX_NODE_IMAGES_DIR}/.version"
}

install_etcd
build_kubernetes
go_install kwok sigs.k8s.io/kwok/cmd/kwok "${KWOK_VERSION}"
# The version flags of helm's own release build: without them helm reports only its minor
# version, and `helm template` assumes Kubernetes v1.20 (so a chart's kubeVersion fails).
K8S_MINOR_NUMBER="$(echo "${K8S_VERSION}" | cut -d. -f2)"
go_install helm helm.sh/helm/v3/cmd/helm "${HELM_VERSION}" \
  "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
   -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${K8S_MINOR_NUMBER} \
   -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${K8S_MINOR_NUMBER}"
fetch_prometheus_crds
if [[ "${CEX_REAL_NODE}" == true ]]; then
  apt_install containerd runc containernetworking-plugins socat busybox-static iptables
  go_install coredns github.com/coredns/coredns "${COREDNS_VERSION}"
  mkdir -p "${CEX_NODE_IMAGES_DIR}"
  build_node_images
fi
log "binaries in ${CEX_K8S_BIN}; prometheus-operator CRDs in ${CEX_PROMETHEUS_CRDS_DIR}"
