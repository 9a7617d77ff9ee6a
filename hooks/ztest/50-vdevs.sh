#!/usr/bin/env bash
# Sparse file vdevs for the lab's recipes: KLAB_VDEV_COUNT files of KLAB_VDEV_SIZE bytes in
# KLAB_VDEV_DIR, named disk0.img ... (sealing keeps that directory; the suite makes its own
# file-vdev* at run time, so these never collide with it).
# Sparse so a golden costs nothing until a clone writes; a rerun leaves correct files alone.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

count=${KLAB_VDEV_COUNT:?}
size=${KLAB_VDEV_SIZE:?}
dir=${KLAB_VDEV_DIR:?}

[[ $count =~ ^[0-9]+$ && $size =~ ^[0-9]+$ ]] || die "bad vdev count/size: $count/$size"
mkdir -p "$dir"
chmod 0755 "$dir"
for ((i = 0; i < count; i++)); do
    file=$dir/disk$i.img
    if [[ -f $file && $(stat -c %s "$file") == "$size" ]]; then
        continue
    fi
    # A file of the wrong size may hold an old pool: start from an empty, sparse one.
    rm -f -- "$file"
    truncate -s "$size" "$file"
    say "created $file ($size bytes, sparse)"
done
used=$(du -sk "$dir" | cut -f1)
say "$count vdevs in $dir, ${used} KiB allocated"
