#!/usr/bin/env bash
# encryption-verify -- native encryption end to end: no plaintext on disk, no access
# without the key, the wrong key refused, a raw send that stays encrypted and opens with
# the original key.
#
# Two pools on their own 1 GiB vdevs, so the on-disk search is unambiguous: the same marker
# text written to an unencrypted dataset is found in its vdev image (the control proving
# the search works) and must not be found in the encrypted pool's image.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "$(readlink -f "$0")")/_lib.sh"

require_root
secret_vdev=$(vdev 0)
plain_vdev=$(vdev 1)
work=$(scratch)
key=$work/key
wrong=$work/wrong-key
head -c 32 /dev/urandom >"$key"
head -c 32 /dev/urandom >"$wrong"
chmod 0600 "$key" "$wrong"

make_pool klab_crypt "$secret_vdev"
make_pool klab_plain "$plain_vdev"
ds=klab_crypt/secret
zfs create -o encryption=aes-256-gcm -o keyformat=raw -o "keylocation=file://$key" "$ds"
zfs create klab_plain/open
[[ $(zfs get -H -o value encryption "$ds") == aes-256-gcm ]] || fail "$ds is not aes-256-gcm"
[[ $(zfs get -H -o value keystatus "$ds") == available ]] || fail "key of $ds not loaded"

marker="klab-plaintext-marker-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')"
for target in "$(mountpoint_of "$ds")" "$(mountpoint_of klab_plain/open)"; do
    for _ in $(seq 4096); do printf '%s\n' "$marker"; done >"$target/notes.txt"
done
want=$(file_sum "$(mountpoint_of "$ds")/notes.txt")

# Everything on disk before looking at the images.
zpool export klab_crypt
zpool export klab_plain
grep -q -a -F -m 1 "$marker" "$plain_vdev" ||
    fail "control failed: the marker is not in the unencrypted pool's image"
if grep -q -a -F -m 1 "$marker" "$secret_vdev"; then
    fail "plaintext found in the encrypted pool's image $secret_vdev"
fi
zpool import -d "$vdev_dir" klab_plain || fail "cannot re-import klab_plain"
zpool import -d "$vdev_dir" klab_crypt || fail "cannot re-import klab_crypt"

# Imported without keys: nothing mounts, the wrong key is refused, the right one works.
[[ $(zfs get -H -o value keystatus "$ds") == unavailable ]] || fail "key loaded without asking"
if zfs mount "$ds" 2>/dev/null; then
    fail "$ds mounted without its key"
fi
if zfs load-key -L "file://$wrong" "$ds" 2>/dev/null; then
    fail "$ds accepted a wrong key"
fi
zfs load-key "$ds" || fail "the right key did not load"
zfs mount "$ds" || fail "$ds does not mount with its key"
[[ $(file_sum "$(mountpoint_of "$ds")/notes.txt") == "$want" ]] || fail "decrypted data differs"

# A raw send carries ciphertext: the copy needs the same key and then reads the same data.
zfs snapshot "$ds@raw"
if ! zfs send -w "$ds@raw" | zfs receive klab_crypt/copy; then
    fail "raw send/receive failed"
fi
[[ $(zfs get -H -o value keystatus klab_crypt/copy) == unavailable ]] ||
    fail "the raw-received copy is readable without a key"
zfs load-key -L "file://$key" klab_crypt/copy || fail "the copy refuses the original key"
zfs mount klab_crypt/copy || fail "the copy does not mount"
[[ $(file_sum "$(mountpoint_of klab_crypt/copy)/notes.txt") == "$want" ]] ||
    fail "the raw-received copy holds different data"
zfs unmount klab_crypt/copy
zfs unload-key klab_crypt/copy
[[ $(zfs get -H -o value keystatus klab_crypt/copy) == unavailable ]] || fail "unload-key failed"
pass
