#!/usr/bin/env bash
# pool-corruption-block -- overwrite one data block on one side of a mirror and show that
# a scrub detects it by checksum and repairs it from the other side, with no data lost.
#
# A mirror, not a stripe: only a redundant vdev can mask a bad block (on a stripe the same
# damage is a permanent data error).  The block is found with zdb (its DVA), not guessed,
# and damaged by writing to the vdev image directly -- real on-disk corruption, not an
# injected error.  Sized for 1 GiB vdevs: an 8 MiB file on a two-way mirror.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "$(readlink -f "$0")")/_lib.sh"

require_root
pool=klab_corrupt
left=$(vdev 0)
right=$(vdev 1)
make_pool "$pool" -O recordsize=128k mirror "$left" "$right"
zfs create "$pool/data"
file=$(mountpoint_of "$pool/data")/victim
random_file "$file" 8
want=$(file_sum "$file")
zpool sync "$pool"

# The first level-0 block of the file: "vdev:offset:asize" in hex, offsets relative to the
# vdev's allocatable space, which starts after the two front labels and the boot area.
object=$(stat -c %i "$file")
dva=$(zdb -ddddd "$pool/data" "$object" | awk '$2 == "L0" { print $3; exit }')
[[ $dva =~ ^[0-9]+:([0-9a-f]+):([0-9a-f]+)$ ]] || fail "no L0 block pointer in zdb output ($dva)"
offset=$((0x${BASH_REMATCH[1]} + 4 * 1024 * 1024))
size=$((0x${BASH_REMATCH[2]}))
note "corrupting $size bytes at byte $offset of ${left##*/} (DVA $dva)"

# Export first so nothing caches or rewrites the block while it is damaged underneath.
zpool export "$pool"
dd if=/dev/urandom of="$left" bs=4096 seek=$((offset / 4096)) count=$((size / 4096)) \
    conv=notrunc status=none
zpool import -d "$vdev_dir" "$pool" || fail "cannot import $pool after the corruption"

# Scrub before anything reads the file: a plain read could pick the damaged side and heal
# it on the spot, and the scrub would then have nothing left to find.  The scrub reads
# both sides, so it must see the bad checksum and rewrite the block from the good side.
zpool scrub -w "$pool"
repaired=$(zpool status "$pool" | sed -n 's/.*scrub repaired \([^ ]*\) in.*/\1/p')
[[ -n $repaired && $repaired != 0B ]] || fail "the scrub repaired nothing (${repaired:-no scan line})"
errors=$(vdev_cksum "$pool" "$left")
((errors > 0)) || fail "no checksum error was counted on ${left##*/}"
require_no_data_errors "$pool"
got=$(file_sum "$file")
[[ $got == "$want" ]] || fail "the mirror returned wrong data ($got, want $want)"
note "scrub repaired $repaired, $errors checksum error(s) on ${left##*/}, data intact"

# After clearing the counters a second scrub must find the pool clean.
zpool clear "$pool"
zpool scrub -w "$pool"
repaired=$(zpool status "$pool" | sed -n 's/.*scrub repaired \([^ ]*\) in.*/\1/p')
[[ $repaired == 0B ]] || fail "the second scrub still repaired $repaired"
require_healthy "$pool"
[[ $(file_sum "$file") == "$want" ]] || fail "the file changed after the repair"
pass
