#!/usr/bin/env bash
# Grow the root partition and file system to the disk the spec asked for (disk.ztest), then
# make sure /var/tmp has the room the suite needs.
#
# Why here and not only cloud-init: cloud-init's growpart runs on most cloud images, but not
# on every image (or it may be disabled by a fragment), and the suite's file vdevs, results
# and the packages of the next hooks all land on the root file system.  Running growpart on a
# partition that already fills the disk is a no-op ("NOCHANGE"), so a rerun changes nothing.
# Env: KLAB_VAR_TMP_MIN_GIB (default 8): free space /var/tmp must have afterwards.
# KLAB_PLAN=1 prints the install and the grow commands for a stand-in root and runs none.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

min_gib=${KLAB_VAR_TMP_MIN_GIB:-8}

ensure_growpart() {
    case ${KLAB_FAMILY:?} in
    el | fedora) install_packages cloud-utils-growpart ;;
    debian | ubuntu) install_packages cloud-guest-utils ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
}

# The root file system's device and type.  Plan mode stands in a first partition of
# /dev/vda with the family's cloud-image file system (EL xfs, Fedora btrfs, else ext4).
root_source() {
    if [[ $plan == 1 ]]; then
        echo /dev/vda1
        return 0
    fi
    local source
    source=$(findmnt -n -o SOURCE /) || die "cannot find the root file system's device"
    # btrfs roots show as /dev/vda4[/root]: the device is before the bracket.
    echo "${source%%\[*}"
}

root_fstype() {
    if [[ $plan == 1 ]]; then
        case ${KLAB_FAMILY:?} in
        el) echo xfs ;;
        fedora) echo btrfs ;;
        *) echo ext4 ;;
        esac
        return 0
    fi
    findmnt -n -o FSTYPE / || die "cannot find the root file system's type"
}

# "disk number" of a partition, or nothing when it is not one.
partition_of() {
    local part=$1 name number disk
    if [[ $plan == 1 ]]; then
        echo "${part%%[0-9]*} ${part##*[!0-9]}"
        return 0
    fi
    name=${part##*/}
    [[ -r /sys/class/block/$name/partition ]] || return 0
    number=$(</sys/class/block/"$name"/partition)
    disk=/dev/$(lsblk -no PKNAME "$part" | head -n 1)
    [[ $disk != /dev/ ]] || die "cannot find the disk that holds $part"
    echo "$disk $number"
}

grow_partition() {
    local disk=$1 number=$2 out rc=0
    ensure_growpart
    show growpart "$disk" "$number"
    [[ $plan != 1 ]] || return 0
    # Not through act: growpart's "NOCHANGE" exit status is an answer, not a failure.
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
    ext4 | ext3 | ext2) act resize2fs "$source" ;;
    xfs) act xfs_growfs / ;;
    btrfs) act btrfs filesystem resize max / ;;
    *) die "cannot grow a $fstype root file system" ;;
    esac
}

main() {
    local source fstype where disk number avail
    # Plain assignments (not in an `if`): a die in these subshells stops the hook.
    source=$(root_source)
    fstype=$(root_fstype)
    where=$(partition_of "$source")
    if [[ -z $where ]]; then
        say "root is on $source, which is not a partition: not growing it"
    else
        read -r disk number <<<"$where"
        grow_partition "$disk" "$number"
        grow_filesystem "$source" "$fstype"
    fi
    [[ $plan != 1 ]] || return 0
    avail=$(df --output=avail -B1 /var/tmp | tail -n 1)
    say "/var/tmp has $((avail / 1024 ** 3)) GiB free on a $fstype root"
    ((avail >= min_gib * 1024 ** 3)) ||
        die "/var/tmp has only $((avail / 1024 ** 2)) MiB free, the suite needs ${min_gib} GiB:" \
            "raise disk.ztest in the spec"
}

main "$@"
