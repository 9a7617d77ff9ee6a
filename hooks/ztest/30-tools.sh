#!/usr/bin/env bash
# The test suite's runtime dependencies and the lab's tools, per distro family.
#
# Required everywhere: ksh, fio, stress-ng, bpftrace, perf, and what zfs-tests.sh links into
# its constrained PATH (tests/zfs-tests/include/commands.cfg; package names as OpenZFS CI
# installs them, reference/distros.md §6-§6.2).  Optional (installed where the distro
# packages them, reported where it does not): iozone (Debian non-free, Ubuntu multiverse;
# not packaged for EL or Fedora), pax, dbench, Ubuntu's linux-modules-extra (scsi_debug).
# Then: zinject must exist, and 2.4's zarcstat/zarcsummary get the old names as links.
# Missing optional tools are listed in /etc/imagefactory/tools-missing.
# KLAB_PLAN=1 prints the commands a fresh image would run and runs none (tests pin them).
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

missing_list=/etc/imagefactory/tools-missing

available() {
    case $KLAB_FAMILY in
    el | fedora) [[ -n $(dnf -q repoquery --available "$1" 2>/dev/null) ]] ;;
    *) apt-cache show --no-all-versions "$1" >/dev/null 2>&1 ;;
    esac
}

# Install each package the distro has; say so for each one it has not.
install_optional() {
    local want=() pkg absent=()
    if [[ $plan == 1 ]]; then
        printf '? %s (each installed only where packaged)\n' "$*"
        return 0
    fi
    if [[ $KLAB_FAMILY == debian || $KLAB_FAMILY == ubuntu ]] && ! apt_update; then
        # Optional tools only: the golden is still usable, and the gap is recorded.
        say "warning: cannot refresh the package lists (no network?): not installing $*"
        mkdir -p "${missing_list%/*}"
        printf '%s\n' "$@" >"$missing_list"
        return 0
    fi
    for pkg in "$@"; do
        if pkg_installed "$pkg" || available "$pkg"; then
            want+=("$pkg")
        else
            say "not packaged on ${KLAB_DISTRO:-this distro}: $pkg"
            absent+=("$pkg")
        fi
    done
    ((${#want[@]} == 0)) || install_packages "${want[@]}"
    mkdir -p "${missing_list%/*}"
    printf '%s\n' "${absent[@]}" | sed '/^$/d' >"$missing_list"
}

enable_services() {
    local unit
    for unit in "$@"; do
        if [[ $plan != 1 ]] && systemctl is-enabled --quiet "$unit" 2>/dev/null &&
            systemctl is-active --quiet "$unit"; then
            continue
        fi
        act systemctl enable --now "$unit"
    done
}

# The suite needs these; names per OpenZFS CI (qemu-3-deps-vm.sh) and commands.cfg.
rpm_common=(ksh fio stress-ng bpftrace perf sysstat lsscsi mdadm parted bc acl attr rsync jq
    nfs-utils samba samba-common-tools cryptsetup openssl python3 openssh-clients e2fsprogs
    xfsprogs device-mapper util-linux which file bzip2 procps-ng iputils hostname pamtester
    xxhash)
# zfs-zed: the suite starts its own zed (40-testenv.sh disables the service, not the binary);
# apt would only bring it as a Recommends, which the ZFS hook does not install.
deb_common=(ksh fio stress-ng bpftrace sysstat lsscsi mdadm parted bc acl attr rsync jq
    nfs-kernel-server samba samba-common-bin cryptsetup openssl python3 openssh-client
    e2fsprogs xfsprogs dmsetup file bzip2 procps iputils-ping pamtester xxhash curl zfs-zed)

# pamtester, xxhash and dbench come from EPEL, whose -devel friends need CRB; 10-zfs.sh
# enables both for packaged ZFS, but a PR build (provider git) skips that hook's work.
el_extra_repos() {
    install_packages dnf-plugins-core
    if [[ $plan == 1 ]] || ! dnf -q repolist --enabled crb 2>/dev/null | grep -q '^crb'; then
        act dnf config-manager --set-enabled crb
    fi
    install_packages epel-release
}

# The replication-chaos recipe's packet loss: tc is iproute-tc, and sch_netem lives in
# kernel-modules-extra (for the running kernel) on EL9 and Fedora.

tools_el() {
    local kver=$1
    el_extra_repos
    install_packages "${rpm_common[@]}"
    install_optional pax dbench iozone iproute-tc "kernel-modules-extra-$kver"
    enable_services nfs-server smb
}

tools_fedora() {
    local kver=$1
    # Fedora 42+ moved /usr/bin/script out of util-linux.
    install_packages "${rpm_common[@]}" util-linux-script
    install_optional pax dbench iozone iproute-tc "kernel-modules-extra-$kver"
    enable_services nfs-server smb
}

tools_debian() {
    export DEBIAN_FRONTEND=noninteractive
    enable_component non-free
    install_packages "${deb_common[@]}" linux-perf
    install_optional pax dbench iozone3 tzdata-legacy
    enable_services nfs-kernel-server smbd
}

tools_ubuntu() {
    local kver=$1
    export DEBIAN_FRONTEND=noninteractive
    install_packages "${deb_common[@]}" linux-tools-common
    install_optional pax dbench iozone3 tzdata-legacy "linux-tools-$kver" \
        "linux-modules-extra-$kver"
    enable_services nfs-kernel-server smbd
}

# 2.4 renamed arcstat/arc_summary and dropped the old names; the lab uses the old ones.
link_old_name() {
    local old=$1 new=$2 target
    command -v "$old" >/dev/null && return 0
    target=$(command -v "$new") || die "neither $old nor $new is installed"
    ln -sfn "$target" "/usr/local/bin/$old"
    say "linked /usr/local/bin/$old -> $target"
}

check_tools() {
    [[ $plan != 1 ]] || return 0
    local tool
    for tool in ksh fio stress-ng bpftrace zinject; do
        command -v "$tool" >/dev/null || die "$tool is missing after the install"
    done
    link_old_name arcstat zarcstat
    link_old_name arc_summary zarcsummary
}

main() {
    local kver
    kver=$(running_kernel)
    case ${KLAB_FAMILY:?} in
    el) tools_el "$kver" ;;
    fedora) tools_fedora "$kver" ;;
    debian) tools_debian ;;
    ubuntu) tools_ubuntu "$kver" ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
    check_tools
}

main "$@"
