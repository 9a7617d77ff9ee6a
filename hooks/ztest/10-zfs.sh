#!/usr/bin/env bash
# Install OpenZFS from packages for this distro family and load the module.
#
# Why per family: each distro gets ZFS differently (reference/distros.md §4-§7):
#   el      zfsonlinux zfs-release, the spec's per-branch repo (zfs-2.2) only, EPEL for dkms,
#           CRB for the suite's -devel deps, kernel-devel of the RUNNING kernel, DKMS build
#   fedora  the fedora zfs-release, the spec's branch repo (zfs-2.4), DKMS; the kernel is held
#           because 2.4.1 refuses kernels above KLAB_ZFS_KERNEL_MAX (6.19)
#   debian  contrib enabled, zfs-dkms against the headers of the kernel the image runs (the
#           genericcloud image runs the cloud flavour); a module the bootstrap source already
#           built is kept, never rebuilt
#   ubuntu  the module ships in the kernel: userland and zfs-test only, never zfs-dkms
# With KLAB_ZFS_PROVIDER=git nothing is installed here: 20-zfs-source.sh builds OpenZFS.
#
# Fails loudly when the module does not load or its version does not match the spec.
# KLAB_PLAN=1 prints the commands a fresh image would run and runs none (tests pin them);
# KLAB_PLAN_KERNEL stands in for `uname -r` in that mode.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

read -r -a zfs_packages <<<"${KLAB_ZFS_PACKAGES:-}"

# "6.19.3-200.fc44.x86_64" <= "6.19"?  Compares major.minor only, like zfs-dkms's Conflicts.
kernel_within() {
    local kver=$1 max=$2 kmaj kmin mmaj mmin
    IFS=. read -r kmaj kmin _ <<<"$kver"
    IFS=. read -r mmaj mmin _ <<<"$max"
    kmin=${kmin%%[!0-9]*}
    ((kmaj < mmaj || (kmaj == mmaj && kmin <= mmin)))
}

# The kernel stays where the pinned OpenZFS builds: dnf never upgrades it afterwards.
hold_kernel_dnf() {
    local family=$1 exclude="kernel kernel-core kernel-modules* kernel-devel*"
    if [[ $plan != 1 ]] && grep -qsxF -e "excludepkgs=$exclude" -e "excludepkgs = $exclude" \
        /etc/dnf/dnf.conf /etc/dnf/libdnf5.conf.d/*.conf; then
        return 0
    fi
    if [[ $family == fedora ]]; then
        act dnf config-manager setopt "excludepkgs=$exclude"
    else
        act dnf config-manager --save "--setopt=excludepkgs=$exclude"
    fi
}

select_repo_el() {
    act dnf config-manager --disable 'zfs*'
    act dnf config-manager --enable "$KLAB_ZFS_REPO"
}

select_repo_fedora() {
    act dnf config-manager setopt 'zfs*.enabled=0'
    act dnf config-manager setopt "$KLAB_ZFS_REPO.enabled=1"
}

install_el() {
    local kver=$1
    install_packages dnf-plugins-core
    act dnf config-manager --set-enabled crb
    install_packages epel-release
    install_rpm_from zfs-release "$KLAB_ZFS_RELEASE_RPM"
    select_repo_el
    # kernel-devel before zfs-dkms (openzfs-docs): DKMS builds for what is installed.
    install_packages "kernel-devel-$kver" dkms
    install_packages "${zfs_packages[@]}"
    [[ -z ${KLAB_ZFS_KERNEL_MAX:-} ]] || hold_kernel_dnf el
}

install_fedora() {
    local kver=$1
    install_packages dnf5-plugins
    install_rpm_from zfs-release "$KLAB_ZFS_RELEASE_RPM"
    select_repo_fedora
    install_packages "kernel-devel-$kver" dkms
    install_packages "${zfs_packages[@]}"
    printf 'zfs\n' | put_file /etc/dnf/protected.d/zfs.conf
    [[ -z ${KLAB_ZFS_KERNEL_MAX:-} ]] || hold_kernel_dnf fedora
}

dkms_built_for() {
    local kver=$1
    [[ $plan != 1 ]] || return 1
    command -v dkms >/dev/null || return 1
    dkms status -m zfs -k "$kver" 2>/dev/null | grep -q ': installed'
}

hold_apt() {
    local pkgs=("$@") held
    [[ $plan == 1 ]] || held=$(apt-mark showhold)
    local missing=() pkg
    for pkg in "${pkgs[@]}"; do
        grep -qx -- "$pkg" <<<"${held:-}" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) || act apt-mark hold "${missing[@]}"
}

install_debian() {
    local kver=$1
    export DEBIAN_FRONTEND=noninteractive
    enable_component contrib
    # The headers of the RUNNING kernel; the spec's list adds the flavour's metapackage.
    install_packages "linux-headers-$kver" "${zfs_packages[@]}"
    if dkms_built_for "$kver"; then
        say "zfs DKMS module already built for $kver: not rebuilding"
    else
        act dkms autoinstall -k "$kver"
    fi
    hold_apt "linux-image-$kver" "linux-headers-$kver" "${zfs_packages[@]}"
}

install_ubuntu() {
    local kver=$1
    export DEBIAN_FRONTEND=noninteractive
    if [[ $plan != 1 ]]; then
        apt_update || die "cannot refresh the apt package lists"
        # zfs-test depends on zfs-modules | zfs-dkms; the kernel must satisfy it, or apt
        # would quietly build a second, different module with DKMS.
        if apt-get -s install "${zfs_packages[@]}" | grep -q '^Inst zfs-dkms '; then
            die "installing ${zfs_packages[*]} would pull zfs-dkms: the running kernel $kver" \
                "does not provide zfs-modules (HWE or non-GA kernel?)"
        fi
    fi
    install_packages "${zfs_packages[@]}"
    hold_apt "linux-image-$kver" "linux-modules-$kver" "${zfs_packages[@]}"
}

show_dkms_failure() {
    local log
    command -v dkms >/dev/null && dkms status >&2
    for log in /var/lib/dkms/zfs/*/build/make.log /var/lib/dkms/zfs/*/*/*/log/make.log; do
        [[ -f $log ]] || continue
        printf '%s: last lines of %s:\n' "$self" "$log" >&2
        tail -n 25 "$log" >&2
    done
}

load_module() {
    printf 'zfs\n' | put_file /etc/modules-load.d/zfs.conf
    if [[ $plan != 1 && -r /sys/module/zfs/version ]]; then
        say "zfs module already loaded: $(</sys/module/zfs/version)"
        return 0
    fi
    if ! act modprobe zfs; then
        show_dkms_failure
        die "the zfs module did not load (see the DKMS log above)"
    fi
    [[ $plan == 1 || -r /sys/module/zfs/version ]] ||
        die "modprobe zfs succeeded but /sys/module/zfs/version is missing"
}

# "2.3.9-0+deb13u1" against "2.3.*" or "2.2.9": compares the upstream x.y.z part.
version_matches() {
    local measured=${1%%-*} pattern=$2
    if [[ $pattern == *'*' ]]; then
        [[ $measured == "${pattern%'*'}"* ]]
    else
        [[ $measured == "$pattern" ]]
    fi
}

check_version() {
    [[ $plan != 1 ]] || return 0
    local version
    version=$(</sys/module/zfs/version)
    if version_matches "$version" "$KLAB_ZFS_VERSION"; then
        say "zfs module $version loaded (spec: $KLAB_ZFS_VERSION)"
    elif [[ $KLAB_ZFS_PROVIDER == kernel ]]; then
        # The kernel brought this module (an HWE kernel, say); 20-zfs-source.sh matches
        # the suite to it, and the golden records the version it really has.
        say "warning: the kernel's zfs module is $version, the spec expects $KLAB_ZFS_VERSION"
    else
        die "the loaded zfs module is $version, the spec expects $KLAB_ZFS_VERSION"
    fi
}

main() {
    if [[ ${KLAB_ZFS_PROVIDER:?} == git ]]; then
        say "provider git: 20-zfs-source.sh builds OpenZFS from ${KLAB_ZFS_GIT_URL:-?}"
        return 0
    fi
    local kver
    kver=$(running_kernel)
    if [[ -n ${KLAB_ZFS_KERNEL_MAX:-} ]] && ! kernel_within "$kver" "$KLAB_ZFS_KERNEL_MAX"; then
        die "kernel $kver is newer than $KLAB_ZFS_KERNEL_MAX, the newest OpenZFS" \
            "$KLAB_ZFS_VERSION builds for: use an image whose kernel is at most that"
    fi
    case ${KLAB_FAMILY:?} in
    el) install_el "$kver" ;;
    fedora) install_fedora "$kver" ;;
    debian) install_debian "$kver" ;;
    ubuntu) install_ubuntu "$kver" ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
    load_module
    check_version
}

main "$@"
