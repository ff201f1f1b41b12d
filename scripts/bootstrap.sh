#!/usr/bin/env bash
# Installs what `make up` and `make test` need on a fresh machine, idempotently:
#   - Debian packages: PostgreSQL, Redis, a JDK and Maven (Kafka's jars come from Maven later)
#   - Debian's chromium (the web UI's browser tests drive it through Playwright; no browser
#     download works here, so never `playwright install`) and Node.js with npm
#   - uv (in a tools venv under the user's cache dir) and the project's .venv from uv.lock
#   - the web UI's node_modules (`npm ci`, only when services/web/package-lock.json changed)
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
command -v chromium >/dev/null || missing_packages+=(chromium)
command -v node >/dev/null || missing_packages+=(nodejs)
command -v npm >/dev/null || missing_packages+=(npm)

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

# The web UI's dependencies: `npm ci` wipes and reinstalls node_modules, so it runs only when
# the lockfile differs from the one last installed (its hash kept inside node_modules).
web_dir="$repo_root/services/web"
if [[ -f "$web_dir/package-lock.json" ]]; then
  # Next.js 16 needs Node.js >= 20.9; Debian 12's own nodejs package is 18.
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if ((node_major < 20)); then
    log "Node.js $(node --version) is too old for the web UI (Next.js needs >= 20.9); install a newer nodejs package"
    exit 1
  fi
  lock_hash="$(sha256sum "$web_dir/package-lock.json" | cut -d' ' -f1)"
  stamp="$web_dir/node_modules/.cex-lock-sha256"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
    log "installing the web UI's npm packages (services/web/package-lock.json changed)"
    (cd "$web_dir" && npm ci --no-audit --no-fund --cache "$cache_dir/npm" --loglevel=error)
    printf '%s\n' "$lock_hash" >"$stamp"
  fi
fi
