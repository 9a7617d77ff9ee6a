#!/usr/bin/env bash
# pool-corruption-block -- zinject makes every read from one side of a mirror return
# corrupted blocks: the mirror must still return the right data (by checksum, from the
# other side), count the errors on the faulty side, heal it, and report no data errors;
# then, with the fault on the file's blocks everywhere, the read must fail and the pool
# must say a file is damaged -- never return wrong data.
#
# A mirror, not a stripe: only a redundant vdev can mask a bad block.  The dataset caches
# metadata only, so every read of the file goes to the vdevs and meets the injection.
# Sized for 1 GiB vdevs: an 8 MiB file on a two-way mirror.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "$(readlink -f "$0")")/_lib.sh"

require_root
pool=klab_corrupt
left=$(vdev 0)
right=$(vdev 1)
make_pool "$pool" -O recordsize=128k mirror "$left" "$right"
zfs create -o primarycache=metadata "$pool/data"
file=$(mountpoint_of "$pool/data")/victim
random_file "$file" 8
want=$(file_sum "$file")
zpool sync "$pool"

# 1. Every read from the left side comes back corrupted (bit flips, so its checksum fails).
inject -d "$(vdev_guid "$left")" -e corrupt -T read -f 100 "$pool"
got=$(file_sum "$file")
[[ $got == "$want" ]] || fail "the mirror returned wrong data under injection ($got, want $want)"
zinject -c all >/dev/null
errors=$(vdev_cksum "$pool" "$left")
((errors > 0)) || fail "no checksum error was counted on ${left##*/}"
require_no_data_errors "$pool"
note "read intact with ${left##*/} corrupt: $errors checksum error(s) counted, no data errors"

# The bad reads were repaired from the good side: after clearing the counters a scrub
# finds both sides whole.
zpool clear "$pool"
zpool scrub -w "$pool"
repaired=$(zpool status "$pool" | sed -n 's/.*scrub repaired \([^ ]*\) in.*/\1/p')
[[ $repaired == 0B ]] || fail "the scrub after the self-heal still repaired $repaired"
require_healthy "$pool"

# 2. The fault on the file's own blocks (every copy): no good side is left, so the read
# must fail with an I/O error and the pool must list a permanent error.
inject -t data -e checksum -f 100 "$file"
if cat "$file" >/dev/null 2>&1; then
    fail "the file read without error although every copy fails its checksum"
fi
zpool status -v "$pool" | grep -q 'Permanent errors have been detected' ||
    fail "zpool status does not report the damaged file: $(zpool status -v "$pool")"
zinject -c all >/dev/null
[[ $(file_sum "$file") == "$want" ]] || fail "the file changed (the injection wrote nothing)"
note "with every copy failing, the read failed and zpool status -v named the error"
pass
