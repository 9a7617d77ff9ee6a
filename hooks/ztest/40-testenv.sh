#!/usr/bin/env bash
# The environment zfs-tests.sh insists on (reference/openzfs-ci-and-test-suite.md §0):
#  - a non-root user with passwordless sudo (the suite refuses root, and uses sudo -E);
#  - no running or enabled system ZED (the suite starts its own and stops on "ZED already
#    running"), no /etc/zfs/vdev_id.conf (zed_setup fails on it);
#  - no leftover /var/tmp/file-vdev* ("Failed file exists");
#  - EL9: io_uring enabled (EL ships it disabled; the io tests need it), persisted.
# Every step checks first, so a rerun changes nothing.
# Env: KLAB_TEST_USER (the user), KLAB_FAMILY.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

user=${KLAB_TEST_USER:?}
sudoers=/etc/sudoers.d/90-klab-zfs-tests

ensure_user() {
    if id -u "$user" >/dev/null 2>&1; then
        say "user $user exists"
    else
        useradd --create-home --shell /bin/bash "$user"
        say "created user $user"
    fi
    local want
    want=$(printf 'Defaults:%s !requiretty\n%s ALL=(ALL) NOPASSWD: ALL\n' "$user" "$user")
    if [[ -f $sudoers && $(<"$sudoers") == "$want" ]]; then
        return 0
    fi
    printf '%s\n' "$want" >"$sudoers.tmp"
    chmod 0440 "$sudoers.tmp"
    visudo -cq -f "$sudoers.tmp" || die "the generated sudoers file does not parse"
    mv -f "$sudoers.tmp" "$sudoers"
    say "passwordless sudo for $user in $sudoers"
}

check_sudo() {
    runuser -u "$user" -- sudo -n true ||
        die "$user has no passwordless sudo (zfs-tests.sh needs it)"
}

disable_zed() {
    local unit=zfs-zed.service
    if ! systemctl cat "$unit" >/dev/null 2>&1; then
        say "$unit is not installed"
    elif systemctl is-enabled --quiet "$unit" || systemctl is-active --quiet "$unit"; then
        systemctl disable --now "$unit"
        say "disabled $unit"
    fi
    if pgrep -x zed >/dev/null; then
        die "a zed process is still running; the suite would stop with 'ZED already running'"
    fi
}

remove_leftovers() {
    local path
    for path in /etc/zfs/vdev_id.conf /var/tmp/file-vdev*; do
        [[ -e $path ]] || continue
        rm -f -- "$path"
        say "removed $path"
    done
}

io_uring_el() {
    [[ ${KLAB_FAMILY:?} == el ]] || return 0
    local conf=/etc/sysctl.d/90-klab-io-uring.conf want='kernel.io_uring_disabled = 0'
    if [[ ! -f $conf || $(<"$conf") != "$want" ]]; then
        printf '%s\n' "$want" >"$conf"
        say "wrote $conf"
    fi
    sysctl -q -p "$conf"
    [[ $(sysctl -n kernel.io_uring_disabled) == 0 ]] || die "io_uring is still disabled"
}

ensure_user
check_sudo
disable_zed
remove_leftovers
io_uring_el
