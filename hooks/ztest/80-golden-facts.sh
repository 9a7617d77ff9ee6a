#!/usr/bin/env bash
# imagefactory-payload: ztest/inventory
#
# Check the ztest payload and write its facts to /etc/imagefactory/golden.json, and the
# suite's inventory to /etc/imagefactory/inventory.json.
#
# Why: the host cannot look inside the guest; it reads these files from the sealed volume
# after shutdown, turns them into the golden's properties and `klab status` shows ✅/❌ from
# them.  Hard requirements fail the build here (a golden that cannot run the suite is worse
# than none): module loaded, suite present, suite version == module version (unless the
# spec allows a mismatch), the curated runfiles in place, the inventory written.
# Everything else is recorded as found, null when absent.  Runs before 90-seal.sh, which
# keeps /etc/imagefactory.
# The inventory (every test the suite ships, the runfile sections and tags that list it)
# is what `klab test --run/--group` resolves against on the host before a clone boots; its
# writer, ztest/inventory/suite_inventory.py, travels appended to this hook (the directive
# above, imagefactory/vm/payload.py).
# Env: KLAB_TEST_USER, KLAB_VDEV_DIR, KLAB_VDEV_SIZE, KLAB_VDEV_COUNT, KLAB_ZFS_SUITE_MISMATCH.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

out=/etc/imagefactory/golden.json
inventory=/etc/imagefactory/inventory.json
facts=/etc/imagefactory/zfs-source.env
missing_tools=/etc/imagefactory/tools-missing

# JSON string (values here are paths, versions and names: no control characters).
jstr() {
    local value=${1//\\/\\\\}
    printf '"%s"' "${value//\"/\\\"}"
}

# A JSON string, or null for an empty value.
jopt() {
    if [[ -n $1 ]]; then jstr "$1"; else printf 'null'; fi
}

jbool() {
    if [[ $1 == 1 ]]; then printf 'true'; else printf 'false'; fi
}

jlist() {
    local first=1 item
    printf '['
    for item in "$@"; do
        ((first)) || printf ', '
        jstr "$item"
        first=0
    done
    printf ']'
}

[[ -r /sys/module/zfs/version ]] || die "the zfs module is not loaded"
zfs_version=$(</sys/module/zfs/version)
[[ -r $facts ]] || die "$facts is missing: 20-zfs-source.sh did not run"
# shellcheck source=/dev/null
source "$facts"
suite_version=${KLAB_FACT_SUITE_VERSION:?}
zts_dir=${KLAB_FACT_ZTS_DIR:?}
zfs_tests_sh=$zts_dir/zfs-tests.sh
[[ -x $zfs_tests_sh ]] || die "$zfs_tests_sh is missing"

if [[ ${zfs_version%%-*} != "${suite_version%%-*}" ]]; then
    [[ ${KLAB_ZFS_SUITE_MISMATCH:-rebuild} == allow ]] ||
        die "test suite $suite_version does not match module $zfs_version"
    say "warning: test suite $suite_version does not match module $zfs_version (allowed)"
fi

for runfile in quick linux-fault common linux; do
    [[ -f $zts_dir/runfiles/$runfile.run ]] || die "$zts_dir/runfiles/$runfile.run is missing"
done

# A tool's path, or nothing when it is absent (recorded as null).
path_of() {
    local path
    if path=$(command -v "$1"); then
        printf '%s\n' "$path"
    fi
}

ksh=$(path_of ksh)
bpftrace=$(path_of bpftrace)

vdevs=0
for file in "${KLAB_VDEV_DIR:?}"/disk*.img; do
    [[ -f $file && $(stat -c %s "$file") == "${KLAB_VDEV_SIZE:?}" ]] && vdevs=$((vdevs + 1))
done
((vdevs == ${KLAB_VDEV_COUNT:?})) ||
    say "warning: $vdevs of $KLAB_VDEV_COUNT vdev images are in place"

zed_disabled=1
if systemctl is-enabled --quiet zfs-zed.service 2>/dev/null ||
    systemctl is-active --quiet zfs-zed.service; then
    zed_disabled=0
fi

test_user=""
if id -u "${KLAB_TEST_USER:?}" >/dev/null 2>&1 && runuser -u "$KLAB_TEST_USER" -- sudo -n true; then
    test_user=$KLAB_TEST_USER
fi

tools=()
if [[ -r $missing_tools ]]; then
    mapfile -t tools < <(sed '/^$/d' "$missing_tools")
fi

mkdir -p "${out%/*}"
{
    printf '{\n'
    printf '  "zfs_version": %s,\n' "$(jstr "$zfs_version")"
    printf '  "suite_version": %s,\n' "$(jstr "$suite_version")"
    printf '  "zfs_source": %s,\n' "$(jstr "${KLAB_FACT_ZFS_SOURCE:?}")"
    printf '  "zfs_commit": %s,\n' "$(jopt "${KLAB_FACT_ZFS_COMMIT:-}")"
    printf '  "ksh": %s,\n' "$(jopt "$ksh")"
    printf '  "zfs_tests_sh": %s,\n' "$(jstr "$zfs_tests_sh")"
    printf '  "vdevs": %d,\n' "$vdevs"
    printf '  "vdev_count": %d,\n' "$KLAB_VDEV_COUNT"
    printf '  "bpftrace": %s,\n' "$(jopt "$bpftrace")"
    printf '  "zed_disabled": %s,\n' "$(jbool "$zed_disabled")"
    printf '  "test_user": %s,\n' "$(jopt "$test_user")"
    printf '  "runfile_dir": %s,\n' "$(jstr "$zts_dir/runfiles")"
    printf '  "tools_missing": %s\n' "$(jlist "${tools[@]}")"
    printf '}\n'
} >"$out.tmp"
chmod 0644 "$out.tmp"
mv -f "$out.tmp" "$out"
say "wrote $out:"
cat "$out"

command -v python3 >/dev/null || die "python3 is missing: the suite's test-runner needs it too"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
unpack_payload "$work"
python3 "$work/suite_inventory.py" --suite-dir "$zts_dir/zfs-tests" \
    --runfile-dir "$zts_dir/runfiles" --suite-version "$suite_version" --out "$inventory" ||
    die "could not write the suite inventory $inventory"
say "wrote $inventory ($(stat -c %s "$inventory") bytes)"
exit 0
