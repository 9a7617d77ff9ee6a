#!/usr/bin/env bash
# ZFS-host guest, step 2: unpack the host's working tree, run the zfs store's tests against
# the pool made by 10-zfs-pool.sh, and write the results to the results disk, whatever
# happens, before exiting with pytest's status.
#
# Environment (from the host):
#   IMAGEFACTORY_ZFS_POOL      the pool (the tests work under POOL/vms)
#   IMAGEFACTORY_ZFS_TREE      block device holding a tar of the working tree (read-only)
#   IMAGEFACTORY_ZFS_OUT       block device the results go to, as a tar the host reads
#   IMAGEFACTORY_ZFS_RESULTS   directory collecting the results (shared with 10-zfs-pool.sh)
#   IMAGEFACTORY_ZFS_TESTS     space-separated test paths, relative to the tree
#   IMAGEFACTORY_ZFS_PYTEST_ARGS  extra pytest arguments (optional, space-separated)
set -euo pipefail

pool=${IMAGEFACTORY_ZFS_POOL:?pool name}
tree_dev=${IMAGEFACTORY_ZFS_TREE:?tree device}
out_dev=${IMAGEFACTORY_ZFS_OUT:?results device}
results=${IMAGEFACTORY_ZFS_RESULTS:?results directory}
read -r -a tests <<<"${IMAGEFACTORY_ZFS_TESTS:?test paths}"
read -r -a extra <<<"${IMAGEFACTORY_ZFS_PYTEST_ARGS:-}"
tree=/var/tmp/imagefactory-tree
mkdir -p "$results" "$tree"

fact() { printf '%s=%s\n' "$1" "$2" >>"$results/facts"; }

# shellcheck disable=SC2317  # runs from the EXIT trap
hand_back() {
    local rc=$?
    fact hook_rc "$rc"
    # The disk is read by the host after poweroff; the tar's end marker bounds it.
    tar -c -f "$out_dev" -C "$results" . && sync
}
trap hand_back EXIT

for dev in "$tree_dev" "$out_dev"; do
    udevadm settle --timeout=60
    [[ -b $dev ]] || { echo "missing disk $dev" >&2; ls -l /dev/disk/by-id >&2; exit 1; }
done
tar -x -f "$tree_dev" -C "$tree"
cd "$tree"

export IMAGEFACTORY_TEST_ZFS_ROOT=$pool/vms
export PYTHONDONTWRITEBYTECODE=1
# The repository's conftest loads every fixture module (HTTP servers, bootstrap, pydantic
# specs...); the store tests need only the stores fixtures, so load just those.
started=$(date +%s.%N)
rc=0
# --show-capture=no: the store logs every zfs command at debug level; a failure's report
# stays readable (the host shows it in its assertion message) without them.
python3 -m pytest -p no:cacheprovider --noconftest -p tests.fixtures.stores \
    -m zfs -v -rfEs --show-capture=no --durations=10 --junitxml="$results/junit.xml" \
    "${extra[@]}" "${tests[@]}" \
    2>&1 | tee "$results/pytest.log" || rc=${PIPESTATUS[0]}
fact suite_seconds "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
fact pytest_rc "$rc"
exit "$rc"
