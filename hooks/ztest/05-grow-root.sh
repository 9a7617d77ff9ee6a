#!/usr/bin/env bash
# Grow the root partition and file system to the disk the spec asked for (disk.ztest), then
# make sure /var/tmp has the room the suite needs.
#
# Why here and not only cloud-init: cloud-init's growpart runs on most cloud images, but not
# on every image (or it may be disabled by a fragment), and the suite's file vdevs, results
# and the packages of the next hooks all land on the root file system.  Running growpart on a
# partition that already fills the disk is a no-op ("NOCHANGE"), so a rerun changes nothing.
# Env: KLAB_VAR_TMP_MIN_GIB (default 8): free space /var/tmp must have afterwards.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

min_gib=${KLAB_VAR_TMP_MIN_GIB:-8}

ensure_growpart() {
    command -v growpart >/dev/null && return 0
    case ${KLAB_FAMILY:?} in
    el | fedora) dnf -y install cloud-utils-growpart ;;
    debian | ubuntu) DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends cloud-guest-utils ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
}

grow_partition() {
    local part=$1 name disk number out rc=0
    name=${part##*/}
    if [[ ! -r /sys/class/block/$name/partition ]]; then
        say "root is on $part, which is not a partition: not growing it"
        return 1
    fi
    number=$(</sys/class/block/"$name"/partition)
    disk=/dev/$(lsblk -no PKNAME "$part" | head -n 1)
    [[ $disk != /dev/ ]] || die "cannot find the disk that holds $part"
    ensure_growpart
    out=$(growpart "$disk" "$number" 2>&1) || rc=$?
    if ((rc == 0)); then
        say "grew $disk partition $number: $out"
    elif [[ $out == *NOCHANGE* ]]; then
        say "$disk partition $number already fills the disk"
    else
        die "growpart $disk $number failed (rc $rc): $out"
    fi
}

grow_filesystem() {
    local source=$1 fstype=$2
    case $fstype in
    ext4 | ext3 | ext2) resize2fs "$source" ;;
    xfs) xfs_growfs / ;;
    btrfs) btrfs filesystem resize max / ;;
    *) die "cannot grow a $fstype root file system" ;;
    esac
}

main() {
    local source fstype avail
    # btrfs roots show as /dev/vda4[/root]: the device is before the bracket.
    source=$(findmnt -n -o SOURCE /)
    source=${source%%\[*}
    fstype=$(findmnt -n -o FSTYPE /)
    if grow_partition "$source"; then
        grow_filesystem "$source" "$fstype"
    fi
    avail=$(df --output=avail -B1 /var/tmp | tail -n 1)
    say "/var/tmp has $((avail / 1024 ** 3)) GiB free on a $fstype root"
    ((avail >= min_gib * 1024 ** 3)) ||
        die "/var/tmp has only $((avail / 1024 ** 2)) MiB free, the suite needs ${min_gib} GiB:" \
            "raise disk.ztest in the spec"
}

main "$@"
