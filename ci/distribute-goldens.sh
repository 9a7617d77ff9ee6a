#!/bin/bash
# ci/distribute-goldens.sh STORE NODE... -- send every @golden of a zfs store, and the suite
# inventories, to the same store on other machines (docs/scale.md).
#
# Why: a CI matrix runs shards on many runners, and each must clone the same golden from
# its own pool (a zvol clone is local to its pool).  Each golden travels once per node as a
# full `zfs send -p` stream of its `@golden` snapshot -- the properties carry the provenance
# (build id, versions, the image digest `klab verify` checks) -- and is skipped when the
# node already has that very snapshot (same guid).  The suite inventories the shards split
# by are content-addressed files (sha256-<hex>.json): copying them is safe, and the node
# checks each against its name when it loads it.  Run `klab verify` on the node afterwards.
#
#   STORE   zfs:POOL/PATH (the files store: copy its read-only qcow2 and manifest instead)
#   NODE    an ssh destination (user@host) whose pool has the same POOL/PATH
# Env: IMAGEFACTORY_STATE (the state directory holding inventories/, default as klab's).
# shellcheck disable=SC2029  # names are expanded here on purpose, then run on the node
set -euo pipefail

store=${1:?usage: distribute-goldens.sh zfs:POOL/PATH NODE...}
shift
[[ $store == zfs:* ]] || { echo "distribute-goldens: $store is not a zfs store" >&2; exit 2; }
root=${store#zfs:}
state=${IMAGEFACTORY_STATE:-$([[ $(id -u) == 0 ]] && echo /var/lib/imagefactory/state ||
    echo "${XDG_STATE_HOME:-$HOME/.local/state}/imagefactory")}
(($# > 0)) || { echo "distribute-goldens: no node given: nothing to do"; exit 0; }

mapfile -t goldens < <(zfs list -H -t snapshot -o name -r "$root" | grep '@golden$' || true)
((${#goldens[@]} > 0)) || { echo "distribute-goldens: no @golden under $root" >&2; exit 3; }

for node in "$@"; do
    ssh "$node" zfs create -p "$root"
    for snap in "${goldens[@]}"; do
        guid=$(zfs get -H -o value guid "$snap")
        theirs=$(ssh "$node" zfs get -H -o value guid "$snap" 2>/dev/null || true)
        if [[ $theirs == "$guid" ]]; then
            echo "$node: $snap is there already"
            continue
        fi
        echo "$node: sending $snap"
        # -F: an older golden of that name on the node is replaced (klab gc its clones first)
        zfs send -p "$snap" | ssh "$node" zfs receive -u -F "${snap%@*}"
        ssh "$node" zfs hold imagefactory "$snap"
    done
    if [[ -d $state/inventories ]]; then
        ssh "$node" mkdir -p "$state/inventories"
        rsync -a --ignore-existing "$state/inventories/" "$node:$state/inventories/"
    fi
done
