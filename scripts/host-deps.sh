#!/usr/bin/env bash
# Install the host tools imagefactory and its tests need, only when missing.
#
# Debian 12's QEMU 7.2 cannot boot Debian 13's kernel under TCG, so QEMU comes
# from bookworm-backports.  The mirror is read from the machine's own apt
# configuration: no registry host name is ever written in this repository.
set -euo pipefail

readonly BACKPORTS_LIST=/etc/apt/sources.list.d/imagefactory-backports.sources
readonly HOST_PACKAGES=(
  mmdebstrap e2fsprogs fdisk gdisk extlinux syslinux-common dosfstools mtools
  gpg gpgv shellcheck curl ca-certificates cloud-init ovmf kmod bpftrace
  # the metrics tests run their own Prometheus and pushgateway (never the system service)
  prometheus prometheus-pushgateway
  # the report's browser test loads report.html in headless chromium (tests/unit/report)
  chromium
)
readonly BACKPORTS_PACKAGES=(qemu-system-x86 qemu-utils)

log() { printf 'host-deps: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "not root: skipping apt-get; install ${HOST_PACKAGES[*]} ${BACKPORTS_PACKAGES[*]} yourself"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  log "no apt-get on this host: install QEMU >= 8, qemu-img, mmdebstrap, shellcheck, gpgv by hand"
  exit 0
fi

# shellcheck source=/dev/null
. /etc/os-release
codename=${VERSION_CODENAME:-}

debian_mirror() {
  # First "URIs:" of a deb822 stanza that serves this release's main suite.
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -e $f ]] || continue
    awk -v suite="$codename" '
      /^URIs:/ {uri=$2}
      /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == suite) found=uri}
      /^$/ {uri=""}
      END {if (found) print found}' "$f"
  done | head -n1
}

missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

need_backports=0
if [[ $codename == bookworm ]]; then
  qemu_version=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
  if [[ -z $qemu_version ]] || dpkg --compare-versions "$qemu_version" lt 1:9; then
    need_backports=1
  fi
elif ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
  missing+=("${BACKPORTS_PACKAGES[@]}")
fi

if [[ ${#missing[@]} -eq 0 && $need_backports -eq 0 ]]; then
  exit 0
fi

if [[ $need_backports -eq 1 && ! -e $BACKPORTS_LIST ]]; then
  mirror=$(debian_mirror)
  if [[ -z $mirror ]]; then
    log "cannot find the Debian mirror in /etc/apt/sources.list.d/*.sources"
    exit 1
  fi
  log "adding ${codename}-backports from the configured mirror"
  cat >"$BACKPORTS_LIST" <<SOURCES
Types: deb
URIs: $mirror
Suites: ${codename}-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ $need_backports -eq 1 ]]; then
  log "installing QEMU from ${codename}-backports"
  apt-get install -y -qq --no-install-recommends -t "${codename}-backports" \
    "${BACKPORTS_PACKAGES[@]}" >/dev/null
fi
