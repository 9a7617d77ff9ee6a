# shellcheck shell=bash
# _lib.sh -- what the klab recipes share; sourced by each recipe, never run.
#
# A recipe builds its own throw-away pools on the golden's sparse vdev images
# (KLAB_VDEV_DIR, default /var/tmp/zfs-test-vdevs, disk0.img ...), checks one behaviour,
# prints "<recipe>: PASS" and exits 0, or prints "<recipe>: FAIL: <reason>" and exits 1.
# Whatever happens, the exit trap removes its pools, injections and tuning changes, so
# recipes can run one after another on the same vdevs.  Recipes run as root.

recipe=${0##*/}
recipe=${recipe%.sh}
vdev_dir=${KLAB_VDEV_DIR:-/var/tmp/zfs-test-vdevs}
_pools=()
_params=()
_injected=0
_netem=""
_children=()
_tmp=""

note() { printf '%s: %s\n' "$recipe" "$*"; }

fail() {
    printf '%s: FAIL: %s\n' "$recipe" "$*" >&2
    exit 1
}

pass() {
    printf '%s: PASS\n' "$recipe"
}

_cleanup() {
    local rc=$? pool param pid
    set +e
    for pid in "${_children[@]}"; do kill "$pid" 2>/dev/null; done
    ((_injected)) && zinject -c all >/dev/null
    [[ -n $_netem ]] && tc qdisc del dev "$_netem" root 2>/dev/null
    for pool in "${_pools[@]}"; do
        zpool list "$pool" >/dev/null 2>&1 && zpool destroy -f "$pool"
    done
    # Restored in reverse order: arc_max must grow back before arc_min may.
    for ((i = ${#_params[@]} - 1; i >= 0; i--)); do
        param=${_params[i]}
        printf '%s\n' "${param#*=}" >"/sys/module/zfs/parameters/${param%%=*}"
    done
    [[ -n $_tmp ]] && rm -rf -- "$_tmp"
    exit "$rc"
}
trap _cleanup EXIT

require_root() {
    ((EUID == 0)) || fail "run me as root (sudo $0)"
    [[ -r /sys/module/zfs/version ]] || fail "the zfs module is not loaded"
}

# A scratch directory, removed on exit.
scratch() {
    [[ -n $_tmp ]] || _tmp=$(mktemp -d "/var/tmp/klab-$recipe.XXXXXX")
    printf '%s\n' "$_tmp"
}

# Path of vdev image N; it must exist and hold at least 1 GiB (the recipes are sized for it).
vdev() {
    local file=$vdev_dir/disk$1.img
    [[ -f $file ]] || fail "$file is missing (the golden's vdev images)"
    (($(stat -c %s "$file") >= 1024 ** 3)) || fail "$file is smaller than 1 GiB"
    printf '%s\n' "$file"
}

# zpool create with the recipe's defaults; the pool is destroyed on exit.  A pool of the
# same name left by an earlier, killed run is destroyed first.
make_pool() {
    local pool=$1
    shift
    if zpool list "$pool" >/dev/null 2>&1; then
        note "destroying $pool left over from an earlier run"
        zpool destroy -f "$pool"
    fi
    _pools+=("$pool")
    zpool create -f -o ashift=12 -O compression=off -O atime=off "$pool" "$@" ||
        fail "zpool create $pool $* failed"
}

mountpoint_of() { zfs get -H -o value mountpoint "$1"; }

# Content hash of a file, read through the file system.
file_sum() {
    local sum
    sum=$(sha256sum "$1") || fail "cannot read $1"
    printf '%s\n' "${sum%% *}"
}

# Content hashes of every file under a directory, as sorted "hash  relative-path" lines.
tree_sums() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# N MiB of random data at a path (written once, then copied: /dev/urandom is slow under TCG).
random_file() {
    local path=$1 mib=$2
    head -c "$((mib * 1024 * 1024))" /dev/urandom >"$path" || fail "cannot write $path"
}

# The guid of the vdev whose label is on a file (zinject takes a guid unambiguously).
vdev_guid() {
    local guid
    guid=$(zdb -l "$1" | awk '$1 == "guid:" { print $2; exit }')
    [[ -n $guid ]] || fail "no ZFS label on $1"
    printf '%s\n' "$guid"
}

# Set a zfs module parameter for the recipe's lifetime; on exit the old value is written
# back.  Some parameters ignore 0 ("automatic"): writing 0 back would not undo the change,
# so a third argument names the effective value to write first (e.g. the old arcstats
# c_max for zfs_arc_max), and the original raw value after it.
set_param() {
    local name=$1 value=$2 effective=${3:-} file=/sys/module/zfs/parameters/$1
    [[ -w $file ]] || fail "module parameter $name is not writable"
    _params+=("$name=$(<"$file")")
    [[ -z $effective ]] || _params+=("$name=$effective")
    printf '%s\n' "$value" >"$file" || fail "cannot set $name=$value"
}

# Wait up to N seconds, syncing the pool each second, until a command succeeds.
wait_synced() {
    local pool=$1 seconds=$2
    shift 2
    for ((s = 0; s < seconds; s++)); do
        "$@" && return 0
        zpool sync "$pool"
        sleep 1
    done
    "$@"
}

inject() {
    _injected=1
    zinject "$@" >/dev/null || fail "zinject $* failed"
}

# Packet loss on a network device (netem) for the recipe's lifetime: removed on exit.
# sch_netem ships in kernel-modules-extra on EL9 and Fedora (30-tools.sh installs it).
packet_loss() {
    local dev=$1 percent=$2
    command -v tc >/dev/null || fail "tc is missing (iproute2, iproute-tc on EL/Fedora)"
    modprobe sch_netem 2>/dev/null ||
        fail "the sch_netem module is missing (kernel-modules-extra on EL9 and Fedora)"
    _netem=$dev
    tc qdisc add dev "$dev" root netem loss "$percent%" ||
        fail "tc qdisc add dev $dev root netem loss $percent% failed"
    tc qdisc show dev "$dev" | grep -q "netem.*loss $percent%" ||
        fail "no netem loss on $dev: $(tc qdisc show dev "$dev")"
}

no_packet_loss() {
    [[ -z $_netem ]] || tc qdisc del dev "$_netem" root || fail "cannot remove netem from $_netem"
    _netem=""
}

# Remember a background job (its pid) so the exit trap stops it if the recipe fails first.
child() { _children+=("$1"); }

# TCP segments this host has retransmitted (the kernel's counter, all sockets).
tcp_retransmits() {
    awk '$1 == "Tcp:" { if (!hdr) { for (i = 1; i <= NF; i++) col[$i] = i; hdr = 1 }
                        else { print $col["RetransSegs"]; exit } }' /proc/net/snmp
}

# One arcstats counter.
arcstat() {
    awk -v k="$1" '$1 == k { print $3; found = 1 } END { exit !found }' \
        /proc/spl/kstat/zfs/arcstats || fail "arcstats has no $1"
}

# The CKSUM column of one vdev in `zpool status -p`.
vdev_cksum() {
    zpool status -p "$1" | awk -v d="$2" '$1 == d { print $5; found = 1 } END { exit !found }' ||
        fail "$2 is not in zpool status $1"
}

require_healthy() {
    local status
    status=$(zpool status -x "$1")
    [[ $status == "pool '$1' is healthy" ]] || fail "pool $1 is not healthy: $status"
}

require_no_data_errors() {
    zpool status "$1" | grep -q '^errors: No known data errors' ||
        fail "pool $1 reports data errors: $(zpool status "$1" | grep '^errors:')"
}
