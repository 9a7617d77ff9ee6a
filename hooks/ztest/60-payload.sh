#!/usr/bin/env bash
# imagefactory-payload: payload
#
# Install the lab's payload: bpftrace scripts, recipes and curated runfiles.
#
# Why self-extracting: the seed carries hook scripts only.  The directive above tells the
# host-side packer (imagefactory/vm/payload.py) to append hooks/payload/ to this script as a
# base64 tar.gz after a marker line; bash never reads past `exit`, so the data is inert.
# Installs (a rerun rewrites identical files, nothing else):
#   zfs-bt/*.bt      -> /usr/local/share/zfs-bt/
#   recipes/*.sh     -> /usr/local/share/klab/recipes/<name>.sh (the names `make install`
#                       gives them on the host, so the documented `cp` works in both places)
#   runfiles/*.run   -> /usr/local/share/klab/runfiles/ and the suite's runfiles directory
#                       (from 20-zfs-source.sh's facts; /usr/share/zfs/runfiles by default)
# Env (tests only): KLAB_PAYLOAD_ROOT installs under that directory instead of /.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

root=${KLAB_PAYLOAD_ROOT:-}
facts=$root/etc/imagefactory/zfs-source.env
work=""

# install(1) with a content check, so unchanged files keep their timestamps.
place() {
    local mode=$1 source=$2 target=$3
    if [[ -f $target ]] && cmp -s "$source" "$target"; then
        chmod "$mode" "$target"
        return 0
    fi
    install -D -m "$mode" "$source" "$target"
    say "installed ${target#"$root"}"
}

suite_dir() {
    local dir=/usr/share/zfs
    if [[ -r $facts ]]; then
        # shellcheck source=/dev/null
        dir=$(source "$facts" && printf '%s\n' "${KLAB_FACT_ZTS_DIR:-/usr/share/zfs}")
    fi
    printf '%s\n' "$root$dir"
}

main() {
    local file name runfiles
    work=$(mktemp -d)
    trap 'rm -rf -- "$work"' EXIT
    unpack_payload "$work"
    for file in "$work"/zfs-bt/*.bt; do
        place 0644 "$file" "$root/usr/local/share/zfs-bt/${file##*/}"
    done
    for file in "$work"/recipes/*.sh; do
        name=${file##*/}
        if [[ $name == _* ]]; then
            place 0644 "$file" "$root/usr/local/share/klab/recipes/$name"
        else
            place 0755 "$file" "$root/usr/local/share/klab/recipes/$name"
        fi
    done
    runfiles=$(suite_dir)/runfiles
    [[ -d $runfiles ]] || die "the test suite's runfile directory $runfiles does not exist"
    for file in "$work"/runfiles/*.run; do
        place 0644 "$file" "$root/usr/local/share/klab/runfiles/${file##*/}"
        place 0644 "$file" "$runfiles/${file##*/}"
    done
    say "payload installed (runfiles in ${runfiles#"$root"})"
}

main "$@"
exit 0
