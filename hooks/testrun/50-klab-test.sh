#!/usr/bin/env bash
# shellcheck disable=SC2317  # collection runs from the EXIT trap, which shellcheck cannot see
# The test stage's in-guest runner: run the OpenZFS test suite (or recipes) in this clone,
# with zio/txg bpftrace alongside, and write every artifact to the results disk.
#
# Why a results disk: the host needs the suite's whole output tree, not a summary, and must
# not depend on SSH or networking inside a guest under test.  QEMU gives the clone a raw
# second disk (virtio serial `klab-results`); this script writes a header block and a
# tar.gz after it, and the host reads the file once QEMU has exited.  The header goes last,
# so a half-written archive is never mistaken for a complete one.
#
# Layout of the results disk: bytes 0-4095 a text header, NUL-padded:
#     KLAB-RESULTS 1 / format=tar.gz / size=<bytes> / sha256=<hex>   (one per line)
# then the archive from byte 4096.  In the archive: test.log (the suite's console, or the
# recipes' output), test_results/ (the first run's /var/tmp/test_results/<stamp>),
# selection.run and selection.json (what ran, what is absent in this suite), dmesg.txt,
# zpool-status.txt, system.txt, bpftrace/{zio,txg}.txt, recipes.tsv and recipes/*.log,
# zfs-tests.rc, golden.json and runner.log; with retries, retry<N>.run, retry<N>.json,
# test_results-retry<N>/ and retries.tsv (attempt, zfs-tests.sh exit status, seconds).
#
# Retries (KLAB_TEST_RETRIES=N): each FAIL/KILLED test reruns in its runfile section (setup,
# cleanup) up to N times while it fails and time is left; each rerun's console is appended to
# test.log, one segment per attempt for the host's parser, which judges them (flaky or not).
# A recipe that exits non-zero reruns the same way; recipes.tsv gets one row per attempt.
#
# Exit status: 0 when the results disk was written (whatever the tests did: the host
# judges them from test.log), 1 when it could not be.
#
# Env (set by the host, imagefactory/testrun/guest.py):
#   KLAB_TEST_MODE       zts | recipe
#   KLAB_TEST_TIMEOUT    seconds for the tests themselves (collection comes after)
#   KLAB_TEST_RUNFILES   zts: comma-separated runfile names in the suite's runfile directory
#   KLAB_TEST_GROUPS     zts: only sections tagged so, or under these directories
#   KLAB_TEST_RECIPES    recipe: comma-separated recipe names, run in order as root
#   KLAB_TEST_RETRIES    reruns of each failed test or recipe (default 0)
#   KLAB_TEST_USER       the suite's user (zfs-tests.sh refuses root)
#   KLAB_VDEV_DIR        the golden's vdev images (for recipes)
#   KLAB_RESULTS_SERIAL  serial of the results disk (default klab-results)
#   KLAB_ZTS_FILESIZE    optional: zfs-tests.sh -s (size of its file vdevs)
#   KLAB_BPF_SCRIPTS     bpftrace scripts to run alongside (default "zio txg arc spl"; empty: none)
#   KLAB_BPF_ATTACH_WAIT seconds to wait for bpftrace to attach before the tests start
# The payload appended to this script (imagefactory.testrun.guest) holds select_tests.py,
# tests.txt (zts: only these tests), absent.txt (zts: names the host found this suite
# lacks) and recipes/ (recipes sent from the host).
# Test-only overrides: KLAB_RESULTS_DEV (a file), KLAB_GOLDEN_FACTS, KLAB_ZTS_DIR,
# KLAB_TEST_RESULTS_DIR, KLAB_RECIPES_DIR, KLAB_BPF_DIR, KLAB_WORK_DIR, KLAB_TEST_INPUTS,
# KLAB_LOAD_ZFS=0 (do not modprobe zfs).
set -euo pipefail

self=${0##*/}
marker=__IMAGEFACTORY_PAYLOAD_BELOW__
mode=${KLAB_TEST_MODE:?KLAB_TEST_MODE is not set}
timeout_s=${KLAB_TEST_TIMEOUT:?KLAB_TEST_TIMEOUT is not set}
retries=${KLAB_TEST_RETRIES:-0}
[[ $retries =~ ^[0-9]+$ ]] || retries=0
user=${KLAB_TEST_USER:-zfs}
facts=${KLAB_GOLDEN_FACTS:-/etc/imagefactory/golden.json}
results_root=${KLAB_TEST_RESULTS_DIR:-/var/tmp/test_results}
recipes_dir=${KLAB_RECIPES_DIR:-/usr/local/share/klab/recipes}
bpf_dir=${KLAB_BPF_DIR:-/usr/local/share/zfs-bt}
bpf_scripts=${KLAB_BPF_SCRIPTS-zio txg arc spl}
bpf_wait=${KLAB_BPF_ATTACH_WAIT:-120}
serial=${KLAB_RESULTS_SERIAL:-klab-results}
header_size=4096
started=$(date +%s)
deadline=$((started + timeout_s))

work=$(mktemp -d "${KLAB_WORK_DIR:-/var/tmp}/klab-test.XXXXXX")
out=$work/out
inputs=${KLAB_TEST_INPUTS:-$work/inputs}
# The suite's user reads the runfile written here.
chmod 0755 "$work"
mkdir -p "$out" "$inputs" "$work/run"
bpf_pids=()
bpf_names=()
written=0
runs=()   # the suite's output directory of each zfs-tests.sh run, first one first

log() {
    printf '%s: %s\n' "$self" "$*"
    printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >>"$out/runner.log"
}

remaining() {
    local left=$((deadline - $(date +%s)))
    ((left > 0)) || left=0
    printf '%d\n' "$left"
}

# A field of golden.json; empty when absent or null.
fact() {
    [[ -r $facts ]] || return 0
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print("" if v is None else v)' "$facts" "$1"
}

extract_payload() {
    local line
    [[ -z ${KLAB_TEST_INPUTS:-} ]] || return 0
    line=$(grep -n -m 1 -x -- "$marker" "$0" | cut -d: -f1) || {
        log "no payload appended to $0: the host must send select_tests.py"
        return 1
    }
    tail -n "+$((line + 1))" "$0" | base64 -d | tar -xz -C "$inputs"
}

system_info() {
    {
        printf 'date: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'kernel: %s\n' "$(uname -a)"
        printf 'zfs module: %s\n' "$(cat /sys/module/zfs/version 2>&1)"
        printf 'zfs-tests.sh: %s\n' "$zts"
        printf 'test user: %s\n' "$user"
        printf 'cpus: %s\n' "$(nproc)"
        printf '\n'
        free -m 2>&1
        printf '\n'
        df -h / /var/tmp 2>&1
    } >"$out/system.txt"
}

# --- bpftrace alongside the tests ----------------------------------------------------------

start_bpftrace() {
    local name script waited i trace
    [[ -n $bpf_scripts ]] || return 0
    if ! command -v bpftrace >/dev/null; then
        log "bpftrace is not installed: no zio/txg traces"
        return 0
    fi
    mkdir -p "$out/bpftrace"
    for name in $bpf_scripts; do
        script=$bpf_dir/$name.bt
        if [[ ! -r $script ]]; then
            log "bpftrace script $script is missing"
            continue
        fi
        bpftrace "$script" >"$out/bpftrace/$name.txt" 2>&1 </dev/null &
        bpf_pids+=("$!")
        bpf_names+=("$name")
        log "bpftrace $name.bt started (pid $!)"
    done
    # Tracing that attaches after the tests began misses their start: wait, but bounded
    # (compiling the probes takes a while under TCG).
    for i in "${!bpf_pids[@]}"; do
        trace=$out/bpftrace/${bpf_names[i]}.txt
        waited=0
        while kill -0 "${bpf_pids[i]}" 2>/dev/null && ((waited < bpf_wait * 2)); do
            grep -q '^Attaching' "$trace" && break
            sleep 0.5
            waited=$((waited + 1))
        done
        if grep -q '^Attaching' "$trace"; then
            log "bpftrace ${bpf_names[i]}.bt attached after $((waited / 2))s"
        else
            log "bpftrace ${bpf_names[i]}.bt has not attached yet (see bpftrace/${bpf_names[i]}.txt)"
        fi
    done
}

# Wait up to $2 half-seconds for pid $1 to end; true when it did.
ended() {
    local waited=0
    while kill -0 "$1" 2>/dev/null; do
        ((waited < $2)) || return 1
        sleep 0.5
        waited=$((waited + 1))
    done
}

# SIGINT makes the scripts print their totals (END), as Ctrl-C does; bpftrace installs its
# own handler, so the SIGINT-ignored state of a background job does not stop it.  TERM,
# then KILL, only for a bpftrace that does not stop.
stop_bpftrace() {
    local pid
    ((${#bpf_pids[@]})) || return 0
    for pid in "${bpf_pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || log "bpftrace pid $pid had already stopped"
    done
    for pid in "${bpf_pids[@]}"; do
        if ! ended "$pid" 60; then
            log "bpftrace pid $pid ignored SIGINT: TERM"
            kill -TERM "$pid" 2>/dev/null || log "bpftrace pid $pid vanished"
            ended "$pid" 20 || kill -KILL "$pid" 2>/dev/null || log "bpftrace pid $pid vanished"
        fi
        wait "$pid" 2>/dev/null || log "bpftrace pid $pid exited non-zero (see its output)"
    done
    bpf_pids=()
}

# --- the suite -------------------------------------------------------------------------------

# Options this zfs-tests.sh has, read from its own getopts string: an unknown option makes
# it print its usage and exit 0 having run nothing, so flags are never guessed from versions.
zts_flags() {
    local opts
    flags=(-v)
    opts=$(sed -n "s/^[[:space:]]*while getopts '\([^']*\)'.*/\1/p" "$zts" | head -n 1)
    if [[ -z $opts ]]; then
        log "cannot read the options of $zts: running it with -v only"
        return 0
    fi
    log "zfs-tests.sh options: $opts"
    # -K: each test's name goes to the kernel log, so dmesg.txt says which test caused what.
    [[ $opts == *K* ]] && flags+=(-K)
    # -O (2.2.9+, 2.4+; not 2.2.2 or 2.3.x): a timed-out test dumps stacks to the kernel log.
    [[ $opts == *O* ]] && flags+=(-O)
    if [[ -n ${KLAB_ZTS_FILESIZE:-} ]]; then
        flags+=(-s "$KLAB_ZTS_FILESIZE")
    fi
    return 0
}

# select_tests NAME [select_tests.py options]: write the runfile $work/run/NAME.run (and
# NAME.run, NAME.json in the results) from the runfiles of the selection.
select_tests() {
    local label=$1 runfile_dir names name args=()
    shift
    runfile_dir=$(fact runfile_dir)
    runfile_dir=${runfile_dir:-${zts%/*}/runfiles}
    IFS=, read -r -a names <<<"${KLAB_TEST_RUNFILES:?KLAB_TEST_RUNFILES is not set}"
    for name in "${names[@]}"; do
        args+=("$runfile_dir/$name")
    done
    python3 "$inputs/select_tests.py" --suite-dir "$suite" --out "$work/run/$label.run" \
        --report "$out/$label.json" "$@" "${args[@]}" 2>&1 | tee -a "$out/runner.log"
    chmod 0644 "$work/run/$label.run"
    cp "$work/run/$label.run" "$out/$label.run"
}

# zts_run RUNFILE CONSOLE: zfs-tests.sh on RUNFILE as the test user for the time left, its
# console to CONSOLE and appended to test.log; the suite's output directory joins `runs`.
zts_run() {
    local runfile=$1 console=$2 home left cmd
    left=$(remaining)
    # `timeout 0` means no limit at all: a run whose time is already used up gets 1 s.
    ((left > 0)) || left=1
    home=$(getent passwd "$user" | cut -d: -f6) || home=/
    cmd=("$zts" "${flags[@]}" -r "$runfile")
    if [[ $user != "$(id -un)" ]]; then
        cmd=(sudo -n -u "$user" -H -- "${cmd[@]}")
    fi
    log "running as $user for at most ${left}s: ${cmd[*]}"
    : >"$console"
    set +e
    (cd "$home" && timeout --kill-after=120 "$left" "${cmd[@]}") </dev/null 2>&1 |
        tee -a "$out/test.log" "$console"
    zts_rc=${PIPESTATUS[0]}
    set -e
    if ((zts_rc == 124 || zts_rc == 137)); then
        printf '\nklab: zfs-tests.sh stopped after the %ss timeout\n' "$timeout_s" |
            tee -a "$out/test.log"
    fi
    if [[ -e $results_root/current ]]; then
        runs+=("$(readlink -f "$results_root/current")")
    fi
    log "zfs-tests.sh exited $zts_rc"
}

run_suite() {
    local args=()
    [[ -f $inputs/tests.txt ]] && args+=(--tests "$inputs/tests.txt")
    [[ -f $inputs/absent.txt ]] && args+=(--absent "$inputs/absent.txt")
    [[ -n ${KLAB_TEST_GROUPS:-} ]] && args+=(--groups "$KLAB_TEST_GROUPS")
    select_tests selection "${args[@]}"
    if ! grep -q '^\[tests/' "$work/run/selection.run"; then
        log "no test of the selection is in this suite: zfs-tests.sh not run"
        printf 'klab: no test of the selection is in this suite: zfs-tests.sh not run\n' \
            >"$out/test.log"
        printf 'not-run\n' >"$out/zfs-tests.rc"
        return 0
    fi
    zts_flags
    zts_run "$work/run/selection.run" "$work/run/attempt1.log"
    printf '%s\n' "$zts_rc" >"$out/zfs-tests.rc"
    if ((zts_rc == 124 || zts_rc == 137)); then
        return 0 # the time is used up: nothing is retried
    fi
    retry_failures
}

# Rerun what failed in the previous attempt, up to $retries times, within the deadline.
retry_failures() {
    local attempt sections started_at
    for ((attempt = 2; attempt <= retries + 1; attempt++)); do
        select_tests "retry$((attempt - 1))" --failed-in "$work/run/attempt$((attempt - 1)).log"
        sections=$(grep -c '^\[tests/' "$work/run/retry$((attempt - 1)).run" || true)
        if ((sections == 0)); then
            ((attempt == 2)) || log "every retried test passed"
            return 0
        fi
        if (($(remaining) < 1)); then
            log "retry $((attempt - 1)) of $retries not started: the ${timeout_s}s timeout is used up"
            return 0
        fi
        # The suite names its output directory by the second: never reuse the last one's.
        sleep 1
        printf '\nklab: retry %d of %d: rerunning what failed in attempt %d\n' \
            "$((attempt - 1))" "$retries" "$((attempt - 1))" | tee -a "$out/test.log"
        started_at=$(date +%s)
        zts_run "$work/run/retry$((attempt - 1)).run" "$work/run/attempt$attempt.log"
        printf '%d\t%d\t%d\n' "$attempt" "$zts_rc" "$(($(date +%s) - started_at))" \
            >>"$out/retries.tsv"
        if ((zts_rc == 124 || zts_rc == 137)); then
            return 0
        fi
    done
}

# --- recipes -----------------------------------------------------------------------------

# run_recipe NAME ATTEMPT: one attempt of a recipe as root, for the time left; its output
# to recipes/NAME.log (later attempts appended under a header) and test.log, one row
# (name, exit status, seconds, attempt) to recipes.tsv.  Sets recipe_rc.
run_recipe() {
    local name=$1 attempt=$2 file left start secs attempt_log=$work/run/recipe.log
    file=$inputs/recipes/$name
    # Goldens carry <name>.sh (the host's names); older ones carry <name>.
    [[ -f $file ]] || file=$recipes_dir/$name.sh
    [[ -f $file ]] || file=$recipes_dir/$name
    left=$(remaining)
    start=${EPOCHREALTIME/[.,]/}
    if [[ ! -f $file ]]; then
        printf 'klab: no recipe %s (neither sent nor in %s)\n' "$name" "$recipes_dir" |
            tee "$attempt_log"
        recipe_rc=127
    elif ((left == 0)); then
        printf 'klab: recipe %s not started: the %ss timeout is used up\n' "$name" \
            "$timeout_s" | tee "$attempt_log"
        recipe_rc=124
    else
        chmod 0755 "$file"
        log "recipe $name, attempt $attempt: $file (at most ${left}s)"
        set +e
        if [[ $(head -c 2 "$file") == '#!' ]]; then
            timeout --kill-after=30 "$left" env KLAB_VDEV_DIR="${KLAB_VDEV_DIR:-}" "$file"
        else
            timeout --kill-after=30 "$left" env KLAB_VDEV_DIR="${KLAB_VDEV_DIR:-}" bash "$file"
        fi </dev/null 2>&1 | tee "$attempt_log"
        recipe_rc=${PIPESTATUS[0]}
        set -e
    fi
    secs=$(((${EPOCHREALTIME/[.,]/} - start) / 1000))
    printf '%s\t%d\t%d.%03d\t%d\n' "$name" "$recipe_rc" $((secs / 1000)) $((secs % 1000)) \
        "$attempt" >>"$out/recipes.tsv"
    if ((attempt == 1)); then
        cp "$attempt_log" "$out/recipes/$name.log"
    else
        {
            printf '\n=== klab: attempt %d ===\n' "$attempt"
            cat "$attempt_log"
        } >>"$out/recipes/$name.log"
    fi
    {
        printf '=== recipe %s: exit %d' "$name" "$recipe_rc"
        ((attempt == 1)) || printf ' (attempt %d)' "$attempt"
        printf ' ===\n'
        cat "$attempt_log"
    } >>"$out/test.log"
    log "recipe $name exited $recipe_rc (attempt $attempt)"
}

run_recipes() {
    local names name attempt
    IFS=, read -r -a names <<<"${KLAB_TEST_RECIPES:?KLAB_TEST_RECIPES is not set}"
    mkdir -p "$out/recipes"
    : >"$out/recipes.tsv"
    # Recipes sent from the host source _lib.sh from their own directory, like installed ones.
    if [[ -d $inputs/recipes && ! -e $inputs/recipes/_lib.sh && -r $recipes_dir/_lib.sh ]]; then
        cp "$recipes_dir/_lib.sh" "$inputs/recipes/_lib.sh"
    fi
    for name in "${names[@]}"; do
        for ((attempt = 1; attempt <= retries + 1; attempt++)); do
            run_recipe "$name" "$attempt"
            # 127: no such recipe; 124/137: the time is used up.  Neither gets better.
            case $recipe_rc in 0 | 124 | 127 | 137) break ;; esac
        done
    done
}

# --- collection ----------------------------------------------------------------------------

collect() {
    local i target
    for i in "${!runs[@]}"; do
        target=$out/test_results
        ((i == 0)) || target=$out/test_results-retry$i
        # -L: the suite's tree may hold links (2.4's output/), the host wants the files.
        cp -RL -- "${runs[i]}" "$target" || log "copying ${runs[i]} was incomplete"
    done
    dmesg >"$out/dmesg.txt" 2>&1 || log "dmesg failed"
    if command -v zpool >/dev/null; then
        {
            zpool status -v 2>&1
            printf '\n'
            zpool list -v 2>&1
        } >"$out/zpool-status.txt" || log "zpool status failed"
    fi
    [[ -r $facts ]] && cp "$facts" "$out/golden.json"
    # The module's parameters as this boot had them: part of the golden's fingerprint.
    if [[ -d /sys/module/zfs/parameters ]]; then
        local param
        for param in /sys/module/zfs/parameters/*; do
            printf '%s=%s\n' "${param##*/}" "$(<"$param")"
        done >"$out/zfs-params.txt" 2>/dev/null || log "reading the zfs module's parameters failed"
    fi
    log "collected $(du -sk "$out" | cut -f1) KiB of results"
}

results_device() {
    local tries dir
    if [[ -n ${KLAB_RESULTS_DEV:-} ]]; then
        printf '%s\n' "$KLAB_RESULTS_DEV"
        return 0
    fi
    for ((tries = 0; tries < 300; tries++)); do
        for dir in /sys/block/*; do
            if [[ -r $dir/serial && $(<"$dir/serial") == "$serial" ]]; then
                printf '/dev/%s\n' "${dir##*/}"
                return 0
            fi
        done
        sleep 0.1
    done
    return 1
}

capacity_of() {
    if [[ -b $1 ]]; then
        blockdev --getsize64 "$1"
    else
        stat -c %s "$1"
    fi
}

write_results() {
    local dev archive size capacity sum
    if ! dev=$(results_device); then
        log "no disk with serial $serial: the results cannot leave the guest"
        return 1
    fi
    archive=$work/results.tar.gz
    tar -C "$out" -czf "$archive" .
    size=$(stat -c %s "$archive")
    capacity=$(capacity_of "$dev")
    if ((size + header_size > capacity)) && [[ -d $out/test_results ]]; then
        log "results ($size bytes) exceed the results disk ($capacity): per-test output dropped"
        find "$out/test_results" -mindepth 1 -maxdepth 1 -type d -exec rm -rf -- {} +
        tar -C "$out" -czf "$archive" .
        size=$(stat -c %s "$archive")
    fi
    if ((size + header_size > capacity)); then
        log "results ($size bytes) do not fit the results disk ($capacity bytes)"
        return 1
    fi
    sum=$(sha256sum "$archive" | cut -d' ' -f1)
    dd if="$archive" of="$dev" bs=1M seek="$header_size" oflag=seek_bytes conv=notrunc,fsync \
        status=none
    printf 'KLAB-RESULTS 1\nformat=tar.gz\nsize=%d\nsha256=%s\n' "$size" "$sum" |
        dd of="$dev" bs="$header_size" count=1 iflag=fullblock conv=sync,notrunc,fsync status=none
    sync
    printf '%s: wrote %d bytes of results to %s\n' "$self" "$size" "$dev"
    written=1
}

finish() {
    local rc=$?
    set +e
    trap - EXIT
    ((rc == 0)) || log "the run stopped with status $rc"
    # The host's hang clock stops here: collection finishes no test (testrun/crash.py).
    printf 'klab-test: collecting the results\n'
    stop_bpftrace
    collect
    write_results
    rm -rf -- "$work"
    if ((written)); then
        exit 0
    fi
    exit 1
}

trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

extract_payload
zts=${KLAB_ZTS_DIR:+$KLAB_ZTS_DIR/zfs-tests.sh}
zts=${zts:-$(fact zfs_tests_sh)}
zts=${zts:-/usr/share/zfs/zfs-tests.sh}
suite=${zts%/*}/zfs-tests
system_info
log "mode $mode, timeout ${timeout_s}s, suite $suite"
if [[ ${KLAB_LOAD_ZFS:-1} == 1 && ! -e /sys/module/zfs ]] && command -v modprobe >/dev/null; then
    modprobe zfs || log "modprobe zfs failed"
fi
start_bpftrace
case $mode in
zts) run_suite ;;
recipe) run_recipes ;;
*)
    log "unknown KLAB_TEST_MODE $mode"
    exit 2
    ;;
esac
log "tests finished after $(($(date +%s) - started))s"
exit 0
