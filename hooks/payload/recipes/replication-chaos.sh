#!/usr/bin/env bash
# replication-chaos -- send/receive that survives trouble: a full send, a send over a
# local TCP socket while netem drops 5 % of the packets on loopback, an incremental cut
# off half way and resumed from its receive_resume_token, an incremental from a degraded
# source mirror, and one read while every read from one mirror side returns corrupt data.
# Each step must leave the target byte-identical to the source snapshot.
#
# Sized for 1 GiB vdevs: a two-way mirror as source, one vdev as target, under 150 MiB.
# Needs tc and sch_netem (kernel-modules-extra on EL9 and Fedora) and python3 (the
# receiving end of the socket; bash's /dev/tcp is the sending end).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "$(readlink -f "$0")")/_lib.sh"

require_root
left=$(vdev 0)
right=$(vdev 1)
make_pool klab_src mirror "$left" "$right"
make_pool klab_dst "$(vdev 2)"
src=klab_src/data
dst=klab_dst/data
zfs create "$src"
dir=$(mountpoint_of "$src")
work=$(scratch)

# The target's snapshot must hold exactly the source snapshot's files.
same_as_source() {
    local snap=$1 a b
    a=$(tree_sums "$dir/.zfs/snapshot/$snap")
    b=$(tree_sums "$(mountpoint_of "$dst")/.zfs/snapshot/$snap")
    [[ -n $a && $a == "$b" ]] || fail "$dst@$snap differs from $src@$snap"
}

for n in 1 2 3; do random_file "$dir/base$n" 16; done
zfs snapshot "$src@s1"
if ! zfs send "$src@s1" | zfs receive "$dst"; then
    fail "the full send of @s1 failed"
fi
same_as_source s1
note "full send @s1: identical"

# Over the network: `zfs send` into a TCP connection on loopback while netem drops 5 % of
# the packets; TCP must retransmit, and the stream must arrive whole.  The listener takes
# any free port and writes it to a file once it listens.
net=klab_src/net
zfs create "$net"
random_file "$(mountpoint_of "$net")/payload" 24
zfs snapshot "$net@n1"
portfile=$work/port
python3 - "$portfile" <<'PY' | timeout 900 zfs receive klab_dst/net &
import os, shutil, socket, sys

server = socket.create_server(("127.0.0.1", 0))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conn, _ = server.accept()
with conn, conn.makefile("rb") as stream:
    shutil.copyfileobj(stream, sys.stdout.buffer, 1 << 20)
PY
receiver=$!
child "$receiver"
for _ in $(seq 100); do [[ -s $portfile ]] && break; sleep 0.1; done
[[ -s $portfile ]] || fail "the receiving socket did not start listening"
packet_loss lo 5
retrans_before=$(tcp_retransmits)
if ! timeout 900 zfs send "$net@n1" >"/dev/tcp/127.0.0.1/$(<"$portfile")"; then
    fail "zfs send over the lossy loopback socket failed"
fi
wait "$receiver" || fail "zfs receive from the lossy loopback socket failed"
retransmitted=$(($(tcp_retransmits) - retrans_before))
no_packet_loss
((retransmitted > 0)) || fail "no TCP retransmission: netem dropped nothing on lo"
a=$(tree_sums "$(mountpoint_of "$net")/.zfs/snapshot/n1")
b=$(tree_sums "$(mountpoint_of klab_dst/net)/.zfs/snapshot/n1")
[[ -n $a && $a == "$b" ]] || fail "klab_dst/net@n1 differs from $net@n1"
note "send over TCP on lo with 5% loss: identical ($retransmitted segments retransmitted)"

# An incremental whose stream is cut off half way: the receive must fail, leave a resume
# token, and the send resumed from that token must complete it.
random_file "$dir/grow1" 32
rm -f "$dir/base2"
zfs snapshot "$src@s2"
zfs send -i @s1 "$src@s2" >"$work/s2.stream"
half=$(($(stat -c %s "$work/s2.stream") / 2))
if head -c "$half" "$work/s2.stream" | zfs receive -s "$dst" 2>/dev/null; then
    fail "a truncated stream was received as if complete"
fi
token=$(zfs get -H -o value receive_resume_token "$dst")
[[ -n $token && $token != - ]] || fail "the interrupted receive left no resume token"
if ! zfs send -t "$token" | zfs receive -s "$dst"; then
    fail "resuming the send from its token failed"
fi
same_as_source s2
note "incremental @s2 cut at $half bytes, resumed: identical"

# Degraded source: one side of the mirror offline during the send, then resilvered.
zpool offline klab_src "$right"
random_file "$dir/grow2" 16
zfs snapshot "$src@s3"
if ! zfs send -i @s2 "$src@s3" | zfs receive "$dst"; then
    fail "the incremental send from a degraded mirror failed"
fi
same_as_source s3
zpool online klab_src "$right"
zpool wait -t resilver klab_src
note "incremental @s3 from a degraded mirror: identical, resilvered"

# Every read from the left side comes back corrupted (zinject flips bits; device faults
# take io, nxio or corrupt, not checksum), so it fails its checksum and the mirror must
# serve the right side.  Export/import first, so the send reads disk rather than the ARC.
zpool export klab_src
zpool import -d "$vdev_dir" klab_src || fail "cannot re-import klab_src"
inject -d "$(vdev_guid "$left")" -e corrupt -T read -f 100 klab_src
if ! zfs send "$src@s3" | zfs receive "klab_dst/copy"; then
    fail "a send with one mirror side returning corrupt data failed"
fi
zinject -c all >/dev/null
a=$(tree_sums "$dir/.zfs/snapshot/s3")
b=$(tree_sums "$(mountpoint_of klab_dst/copy)/.zfs/snapshot/s3")
[[ $a == "$b" ]] || fail "the copy sent under injected corruption differs"
zpool scrub -w klab_src
require_no_data_errors klab_src
note "send under injected corruption ($(vdev_cksum klab_src "$left") checksum errors on" \
    "${left##*/}): identical"
pass
