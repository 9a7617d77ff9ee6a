#!/usr/bin/env bash
# dedup-pressure -- dedup collapses identical blocks (8 copies of 32 MiB cost about one),
# the dedup table grows with unique small blocks (8192 4 KiB records), every copy reads
# back intact, and destroying the data frees the space and the table entries.
#
# Sized for 1 GiB vdevs: a stripe of two; 256 MiB logical, about 64 MiB physical.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "$(readlink -f "$0")")/_lib.sh"

require_root
mib=$((1024 * 1024))
pool=klab_dedup
make_pool "$pool" "$(vdev 0)" "$(vdev 1)"
zfs create -o dedup=on -o recordsize=128k "$pool/copies"
zfs create -o dedup=on -o recordsize=4k "$pool/small"
copies=$(mountpoint_of "$pool/copies")
small=$(mountpoint_of "$pool/small")

ddt_entries() {
    local line
    line=$(zpool status -D "$pool" | grep -E 'DDT entries|no DDT entries' | head -n 1)
    if [[ $line =~ DDT\ entries\ ([0-9]+) ]]; then
        printf '%s\n' "${BASH_REMATCH[1]}"
    elif [[ $line == *"no DDT entries"* ]]; then
        echo 0
    else
        fail "no dedup table line in zpool status -D: $(zpool status -D "$pool")"
    fi
}
allocated() { zpool list -Hp -o allocated "$pool"; }

seed=$(scratch)/seed
random_file "$seed" 32
want=$(file_sum "$seed")
for n in $(seq 8); do cp "$seed" "$copies/copy$n"; done
dedup_ratio() {
    local ratio
    ratio=$(zpool get -Hp -o value dedupratio "$pool")
    printf '%s\n' "${ratio%x}"
}
ratio_at_least() { awk -v r="$(dedup_ratio)" -v min="$1" 'BEGIN { exit !(r >= min) }'; }
entries_at_least() { (($(ddt_entries) >= $1)); }

# 2.3's fast dedup logs new entries first: give the table a few txgs to show them.
zpool sync "$pool"
wait_synced "$pool" 60 ratio_at_least 7.5 ||
    fail "dedupratio is $(dedup_ratio)x, expected about 8x"
ratio=$(dedup_ratio)
alloc=$(allocated)
((alloc < 64 * mib)) || fail "8 x 32 MiB of identical data allocated $((alloc / mib)) MiB"
wait_synced "$pool" 60 entries_at_least 256 ||
    fail "only $(ddt_entries) DDT entries for 256 unique 128 KiB blocks"
entries=$(ddt_entries)

# Pressure: 32 MiB of unique data in 4 KiB records adds 8192 entries.
random_file "$small/unique" 32
unique=$(file_sum "$small/unique")
zpool sync "$pool"
wait_synced "$pool" 120 entries_at_least $((entries + 8192)) ||
    fail "the DDT grew from $entries to only $(ddt_entries) entries"
grown=$(ddt_entries)
note "dedupratio ${ratio}x, $((alloc / mib)) MiB allocated, DDT $entries -> $grown entries"

for n in $(seq 8); do
    [[ $(file_sum "$copies/copy$n") == "$want" ]] || fail "copy $n reads back different data"
done
[[ $(file_sum "$small/unique") == "$unique" ]] || fail "the 4 KiB-record file reads back wrong"

rm -f "$copies"/copy* "$small/unique"
zpool sync "$pool"
zpool wait -t free "$pool"
entries_below() { (($(ddt_entries) < $1)); }
wait_synced "$pool" 120 entries_below 64 ||
    fail "$(ddt_entries) DDT entries remain after deleting everything"
alloc=$(allocated)
((alloc < 16 * mib)) || fail "$((alloc / mib)) MiB still allocated after deleting everything"
pass
