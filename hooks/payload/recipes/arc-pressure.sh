#!/usr/bin/env bash
# arc-pressure -- shrink the ARC to 160 MiB, stream 384 MiB through it twice and show that
# it stays within its limit by evicting, misses on the re-read, and returns correct data.
#
# Sized for 1 GiB vdevs: a stripe of two (room for 384 MiB with compression off).  The ARC
# limits are restored on exit, including the ARC's previous size (zfs_arc_max=0 alone
# would keep the shrunken one).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "$(readlink -f "$0")")/_lib.sh"

require_root
mib=$((1024 * 1024))
arc_min=$((64 * mib))
arc_max=$((160 * mib))
pool=klab_arc
make_pool "$pool" -O recordsize=128k "$(vdev 0)" "$(vdev 1)"
zfs create "$pool/data"
dir=$(mountpoint_of "$pool/data")

old_c_max=$(arcstat c_max)
old_c_min=$(arcstat c_min)
set_param zfs_arc_min "$arc_min" "$old_c_min"
set_param zfs_arc_max "$arc_max" "$old_c_max"
[[ $(arcstat c_max) == "$arc_max" ]] || fail "the ARC did not take c_max=$arc_max (c_max is $(arcstat c_max))"

seed=$(scratch)/seed
random_file "$seed" 16
for _ in $(seq 24); do cat "$seed"; done >"$dir/big" || fail "cannot write $dir/big"
want=$(for _ in $(seq 24); do cat "$seed"; done | sha256sum)
zpool sync "$pool"

evicted() {
    echo $(($(arcstat evict_l2_cached) + $(arcstat evict_l2_eligible) + $(arcstat evict_l2_ineligible)))
}
evicted_before=$(evicted)
misses_before=$(arcstat misses)
for pass_no in 1 2; do
    got=$(sha256sum <"$dir/big")
    [[ $got == "$want" ]] || fail "read $pass_no of the 384 MiB file returned wrong data"
done
evicted_after=$(evicted)
misses=$(($(arcstat misses) - misses_before))
((misses > 0)) || fail "re-reading 384 MiB through a 160 MiB ARC caused no misses"
((evicted_after > evicted_before)) || fail "the ARC evicted nothing"

# The size may overshoot while eviction catches up; it must settle near the limit.
limit=$((arc_max + arc_max / 5))
for _ in $(seq 30); do
    (($(arcstat size) <= limit)) && break
    sleep 1
done
size=$(arcstat size)
((size <= limit)) || fail "ARC size $((size / mib)) MiB stays above its $((arc_max / mib)) MiB limit"
note "ARC $((size / mib)) MiB (limit $((arc_max / mib))), $misses misses," \
    "$(((evicted_after - evicted_before) / mib)) MiB evicted"
pass
