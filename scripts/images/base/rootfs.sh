#!/usr/bin/env bash
# rootfs.sh SUITE MIRROR OUT.tar: the base image's root file system, made by debootstrap
# --variant=minbase (plus ca-certificates) and trimmed like Docker's Debian images. The
# host's extra certificate authorities (/usr/local/share/ca-certificates, a proxy's, say) are
# trusted inside, so builds reach package registries the way the host does. build.sh rebuilds
# the base when this file, the suite, the mirror or those CAs change.
set -euo pipefail
[[ $# -eq 3 ]] || { sed -n '2,2p' "$0" >&2; exit 2; }
suite="$1" mirror="$2" out="$3"

root="$(mktemp -d "${out%/*}/rootfs.XXXXXX")"
trap 'rm -rf "${root}"' EXIT
debootstrap --variant=minbase --include=ca-certificates "${suite}" "${root}" "${mirror}" >&2

# No daemons started by package scripts; no docs, manuals or translations; no recommends.
printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
chmod 755 "${root}/usr/sbin/policy-rc.d"
cat >"${root}/etc/dpkg/dpkg.cfg.d/cex-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
echo 'APT::Install-Recommends "false"; APT::Install-Suggests "false";' >"${root}/etc/apt/apt.conf.d/90cex"

find /usr/local/share/ca-certificates -type f -name '*.crt' -exec cp {} "${root}/usr/local/share/ca-certificates/" \; 2>/dev/null || true
chroot "${root}" update-ca-certificates >&2

rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/* \
  "${root}"/usr/share/doc/* "${root}"/usr/share/man/* "${root}"/usr/share/locale/*
tar --numeric-owner -C "${root}" -cf "${out}.tmp" .
mv "${out}.tmp" "${out}"
