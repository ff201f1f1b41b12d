#!/usr/bin/env bash
# Installs what `make up` and `make test` need on a fresh machine, idempotently:
#   - Debian packages: PostgreSQL, Redis, a JDK and Maven (Kafka's jars come from Maven later)
#   - uv (in a tools venv under the user's cache dir) and the project's .venv from uv.lock
# Safe to run every time: each step checks first and does nothing when already done.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/cex"
tools_venv="$cache_dir/tools"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1
  fi
}

missing_packages=()
pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
[[ -n "$(pg_bin_dir)" && -x "$(pg_bin_dir)/initdb" ]] || missing_packages+=(postgresql)
command -v redis-server >/dev/null || missing_packages+=(redis-server)
command -v java >/dev/null || missing_packages+=(default-jre-headless)
command -v mvn >/dev/null || missing_packages+=(maven)
command -v python3 >/dev/null || missing_packages+=(python3 python3-venv)

if ((${#missing_packages[@]})); then
  log "installing Debian packages: ${missing_packages[*]}"
  # Keep the packages' own init scripts from starting system-wide servers on the
  # default ports: the stack runs its own instances on loopback.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    created_policy=1
  fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing_packages[@]}" >/dev/null
  if ((created_policy)); then as_root rm -f "$policy"; fi
fi

if [[ ! -x "$tools_venv/bin/uv" ]]; then
  log "installing uv into $tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install --quiet --disable-pip-version-check uv
fi

cd "$repo_root"
"$tools_venv/bin/uv" sync --frozen --quiet
