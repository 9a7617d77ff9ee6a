#!/bin/bash
# mmdebstrap --customize-hook of imagefactory's bootstrap source. $1 is the chroot.
#
# Runs on the host once every package is installed, before mmdebstrap's final cleanup:
#  - builds the DKMS modules of installed packages for the IMAGE's kernel(s), never the
#    host's `uname -r`, and fails if any module is not installed for every image kernel;
#  - refreshes the initramfs so it carries those modules;
#  - enables systemd-networkd (cloud-init renders networkd config; ifupdown races it);
#  - marks /etc and /var up to date so first boot skips systemd's update services.
set -euo pipefail

root="${1:?usage: customize.sh CHROOT}"

note() { echo "imagefactory-bootstrap: $*" >&2; }
fail() { echo "imagefactory-bootstrap: error: $*" >&2; exit 1; }
in_chroot() { chroot "$root" "$@"; }

kernels=()
for image in "$root"/boot/vmlinuz-*; do
    [ -e "$image" ] || continue
    kernels+=("${image##*/vmlinuz-}")
done
[ "${#kernels[@]}" -gt 0 ] || fail "no kernel in /boot of the image: is the kernel package installed?"

# Print the tail of the make.log DKMS left for a module, wherever this dkms version puts it.
show_dkms_log() {
    local module="$1" kver="$2" log
    for log in "$root/var/lib/dkms/$module/build/make.log" \
               "$root/var/lib/dkms/$module/$kver"/*/log/make.log; do
        if [ -f "$log" ]; then
            note "last lines of ${log#"$root"}:"
            tail -n 12 "$log" >&2
        fi
    done
}

dkms_modules() {
    # `dkms status` lines look like "zfs/2.3.9, 6.12.x-cloud-amd64, x86_64: installed" or
    # "zfs/2.3.9: added"; keep the unique "name/version" prefixes.
    in_chroot dkms status | sed -n 's|^\([^,:/]*/[^,:]*\)[,:].*|\1|p' | sort -u
}

built_any=no
if [ -x "$root/usr/sbin/dkms" ]; then
    mapfile -t modules < <(dkms_modules)
    if [ "${#modules[@]}" -gt 0 ]; then
        for kver in "${kernels[@]}"; do
            note "building DKMS modules (${modules[*]}) for the image kernel $kver"
            if ! in_chroot dkms autoinstall -k "$kver" >&2; then
                note "dkms autoinstall -k $kver failed; checking each module"
            fi
            for module in "${modules[@]}"; do
                status="$(in_chroot dkms status -m "${module%%/*}" -v "${module#*/}" -k "$kver")"
                if ! grep -q ': installed' <<<"$status"; then
                    show_dkms_log "$module" "$kver"
                    fail "DKMS module $module is not built for the image kernel $kver" \
                        "(dkms status: ${status:-nothing}); a build error is shown above," \
                        "or the kernel headers for $kver are missing from the package list"
                fi
                note "DKMS module $module is installed for $kver"
            done
        done
        built_any=yes
    fi
fi

if [ "$built_any" = yes ]; then
    in_chroot update-initramfs -u -k all >&2
fi

networkd=""
for unit_dir in usr/lib/systemd/system lib/systemd/system; do
    if [ -e "$root/$unit_dir/systemd-networkd.service" ]; then
        networkd=yes
    fi
done
[ -n "$networkd" ] || fail "systemd-networkd is not in the image (systemd too old or missing?)"
in_chroot systemctl enable systemd-networkd.service >&2
# cloud-init's networkd renderer counts as available only when `ip` exists.
[ -x "$root/usr/bin/ip" ] || [ -x "$root/usr/sbin/ip" ] || [ -x "$root/sbin/ip" ] ||
    fail "iproute2 is not in the image: cloud-init could not configure the network"

if [ -e "$root/usr/lib/systemd/system/systemd-resolved.service" ]; then
    # The host's resolv.conf was copied in for the build; the guest asks resolved instead.
    ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
fi

# Mark /etc and /var as up to date with /usr, as a booted system would be: otherwise the
# first boot of every clone rebuilds the linker cache and journal catalog (ConditionNeedsUpdate),
# seconds of guest time under TCG for caches dpkg has just built.
touch "$root/etc/.updated" "$root/var/.updated"

if [ -e "$root/usr/sbin/ifup" ] || [ -e "$root/sbin/ifup" ]; then
    note "warning: ifupdown is installed; it races cloud-init's networkd config at boot"
fi
