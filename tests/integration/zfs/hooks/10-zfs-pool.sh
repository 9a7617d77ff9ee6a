#!/usr/bin/env bash
# ZFS-host guest, step 1: load the OpenZFS module DKMS built at bootstrap for this kernel,
# and make a throw-away pool on a sparse file with the dataset the store tests work under.
#
# Environment (from the host): IMAGEFACTORY_ZFS_POOL (pool name), IMAGEFACTORY_ZFS_RESULTS
# (directory collecting the results), IMAGEFACTORY_ZFS_OUT (block device the results go to,
# as a tar; 20-zfs-suite.sh rewrites it, so this copy only matters when this hook fails).
set -euo pipefail

pool=${IMAGEFACTORY_ZFS_POOL:?pool name}
results=${IMAGEFACTORY_ZFS_RESULTS:?results directory}
out_dev=${IMAGEFACTORY_ZFS_OUT:?results device}
vdev=/var/tmp/$pool.vdev
mkdir -p "$results"

fact() { printf '%s=%s\n' "$1" "$2" >>"$results/facts"; }

# shellcheck disable=SC2317  # runs from the EXIT trap
hand_back() {
    local rc=$?
    fact pool_hook_rc "$rc"
    tar -c -f "$out_dev" -C "$results" . && sync
}
trap hand_back EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

fact kernel "$(uname -r)"
started=$(now)
modprobe zfs
fact module_load_seconds "$(elapsed "$started")"
[[ -c /dev/zfs ]] || { echo "no /dev/zfs after modprobe zfs" >&2; exit 1; }
fact zfs_module "$(cat /sys/module/zfs/version)"
fact zfs_userland "$(zfs version | head -n 1)"
echo "zfs $(cat /sys/module/zfs/version) loaded for $(uname -r)"

# Sparse: the tests write a few hundred MiB at most; nothing of the pool outlives the boot.
truncate -s 4G "$vdev"
zpool create -f -o cachefile=none -O mountpoint=none "$pool" "$vdev"
zfs create "$pool/vms"
# zvol links come from udev: make sure it has caught up with the module's devices.
udevadm trigger --subsystem-match=block --action=add
udevadm settle --timeout=60
zpool list -v "$pool"
