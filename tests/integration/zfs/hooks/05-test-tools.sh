#!/usr/bin/env bash
# ZFS-host guest, step 0: the guest is the debian13 ztest image (OpenZFS already built for
# its kernel); add what the store's tests need on top of it from the image's own package
# mirror.  A failure here shows as this hook's output in the host's hook table.
#
# Environment (from the host): IMAGEFACTORY_ZFS_TEST_TOOLS (space-separated packages),
# IMAGEFACTORY_ZFS_RESULTS (directory collecting the results).
set -euo pipefail

read -r -a tools <<<"${IMAGEFACTORY_ZFS_TEST_TOOLS:?packages}"
results=${IMAGEFACTORY_ZFS_RESULTS:?results directory}
mkdir -p "$results"

started=$(date +%s.%N)
export DEBIAN_FRONTEND=noninteractive
# Retries: the guest's user-mode network goes through the host; a reset mirror connection
# should not fail the whole ZFS suite.
apt_opts=(-o Acquire::Retries=3 -o Dpkg::Use-Pty=0 -q)
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${tools[@]}"
printf 'tools_seconds=%s\n' "$(awk -v a="$started" -v b="$(date +%s.%N)" \
    'BEGIN { printf "%.1f", b - a }')" >>"$results/facts"
