#!/usr/bin/env bash
# imagefactory hook runner: runs the build's hooks in order inside the guest, each under its
# own timeout, and tells the host what happened over a virtio-serial port.
#
# Why it exists: the host cannot see into the guest without SSH, and a build must know
# exactly which hook failed, with which status, and how long each one took.  So every hook
# gets a start and an end (or timeout) status line as JSON on the port, its output goes to
# the serial console with a "NN-name| " prefix (the host cuts a failed hook's output out of
# the console log by that prefix), and the guest powers itself off when it is done or after
# the first failure -- the host only waits for QEMU to exit.
#
# Usage: run-hooks STATE_DIR
#   STATE_DIR/hooks.list   one hook per line: "TIMEOUT_SECONDS<TAB>NN-name.sh", in order
#   STATE_DIR/hooks/       the scripts, plus an optional NN-name.env (KEY=VALUE lines) each
# Environment (all optional):
#   IMAGEFACTORY_STATUS_PORT   status port (default /dev/virtio-ports/org.imagefactory.status)
#   IMAGEFACTORY_CONSOLE       where hook output goes (default /dev/console)
#   IMAGEFACTORY_POWEROFF      1 (default): power off when finished; 0: stay up
#   IMAGEFACTORY_BUILD_KEY     comment of the build's SSH key, removed from the default
#                              user's authorized_keys after the last hook succeeded
#   IMAGEFACTORY_DEFAULT_USER  the user whose authorized_keys holds that key
#   IMAGEFACTORY_AUTHORIZED_KEYS  that file, if not ~USER/.ssh/authorized_keys (tests)
#   IMAGEFACTORY_CLEANUP       1 (default): on success remove the runner, its unit and
#                              STATE_DIR, so the image keeps no build machinery
set -euo pipefail

state_dir=${1:?usage: run-hooks STATE_DIR}
port=${IMAGEFACTORY_STATUS_PORT:-/dev/virtio-ports/org.imagefactory.status}
console=${IMAGEFACTORY_CONSOLE:-/dev/console}
poweroff=${IMAGEFACTORY_POWEROFF:-1}
build_key=${IMAGEFACTORY_BUILD_KEY:-}
default_user=${IMAGEFACTORY_DEFAULT_USER:-}
cleanup=${IMAGEFACTORY_CLEANUP:-1}
# Seconds the runner waits for udev to create the status port's link.
port_wait=${IMAGEFACTORY_PORT_WAIT:-60}
# Seconds between TERM and KILL when a hook overruns its timeout.
kill_grace=10

finished=0

# Console first: every later message, even "status port missing", must reach the host's log.
if ! exec 4>>"$console"; then
    exec 4>&2
fi

say() {
    printf 'imagefactory: %s\n' "$*" >&4
    printf 'imagefactory: %s\n' "$*"
}

# Microseconds since the epoch, as an integer (bash has no floating point).
now_us() {
    local t=${EPOCHREALTIME/[.,]/}
    echo "$t"
}

# Seconds as a decimal string from a microsecond count.
seconds() {
    printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000))
}

uptime_s() {
    local up _rest
    read -r up _rest </proc/uptime
    echo "$up"
}

# One JSON status line to the host, and a copy on the console for people reading the log.
# Hook names are restricted to [A-Za-z0-9_.-] by the host, so no escaping is needed.
status() {
    printf '%s\n' "$1" >&3
    printf 'imagefactory-status: %s\n' "$1" >&4
}

power_off() {
    sync
    if [[ $poweroff == 1 ]]; then
        say "powering off"
        systemctl --no-block poweroff
    fi
}

on_exit() {
    local rc=$?
    if [[ $finished == 0 ]]; then
        # The runner itself broke (bad state dir, missing hook...): tell the host, stop the VM.
        status "{\"event\":\"error\",\"rc\":$rc,\"message\":\"runner exited unexpectedly\"}" || true
        power_off || true
    fi
}
trap on_exit EXIT

open_port() {
    local waited=0
    while [[ ! -e $port ]]; do
        if ((waited >= port_wait * 10)); then
            say "status port $port did not appear after ${port_wait}s"
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    exec 3>"$port"
}

if ! open_port; then
    exec 3>/dev/null
    exit 1
fi

# Prefix every output line with the hook's name; also keep it in the journal (stdout).
prefix_lines() {
    local name=$1 line
    while IFS= read -r line || [[ -n $line ]]; do
        printf '%s| %s\n' "$name" "$line" >&4
        printf '%s| %s\n' "$name" "$line"
    done
}

read_env_file() {
    local file=$1 line
    env_args=()
    [[ -f $file ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -n $line ]] && env_args+=("$line")
    done <"$file"
}

remove_build_key() {
    [[ -n $build_key ]] || return 0
    local keys=${IMAGEFACTORY_AUTHORIZED_KEYS:-} home
    if [[ -z $keys && -n $default_user ]]; then
        if ! home=$(getent passwd "$default_user" | cut -d: -f6); then
            say "user $default_user does not exist: no build key to remove"
            return 0
        fi
        keys=$home/.ssh/authorized_keys
    fi
    if [[ -n $keys && -f $keys ]]; then
        sed -i "/ ${build_key}\$/d" "$keys"
        say "removed the build's SSH key from $keys"
    fi
}

remove_runner() {
    [[ $cleanup == 1 ]] || return 0
    rm -rf -- "$state_dir" /etc/systemd/system/imagefactory-hooks.service \
        /usr/local/libexec/imagefactory
}

list=$state_dir/hooks.list
if [[ ! -r $list ]]; then
    say "no hook list at $list"
    exit 1
fi
entries=()
while IFS= read -r entry || [[ -n $entry ]]; do
    [[ -n $entry ]] && entries+=("$entry")
done <"$list"
count=${#entries[@]}
status "{\"event\":\"begin\",\"hooks\":$count,\"uptime\":$(uptime_s)}"
say "running $count hook(s) from $state_dir"

run_start=$(now_us)
for entry in "${entries[@]}"; do
    timeout=${entry%%$'\t'*}
    name=${entry#*$'\t'}
    script=$state_dir/hooks/$name
    read_env_file "$state_dir/hooks/${name%.sh}.env"
    status "{\"hook\":\"$name\",\"event\":\"start\",\"timeout\":$timeout,\"uptime\":$(uptime_s)}"
    say "hook $name start (timeout ${timeout}s)"
    start=$(now_us)
    rc=0
    # timeout(1) signals the hook's whole process group, so its children stop with it.
    timeout --kill-after="$kill_grace" "$timeout" \
        env IMAGEFACTORY_HOOK="$name" "${env_args[@]}" "$script" </dev/null 2>&1 3>&- 4>&- |
        prefix_lines "$name" || rc=${PIPESTATUS[0]}
    elapsed=$(($(now_us) - start))
    secs=$(seconds "$elapsed")
    # 124: TERM at the timeout; 137: KILL after the grace.  A hook that exits 124 by itself
    # before its time is up is a plain failure, hence the elapsed-time check.
    limit_us=$(awk -v t="$timeout" 'BEGIN { printf "%d", t * 1000000 }')
    if ((rc == 124 || rc == 137)) && ((elapsed >= limit_us)); then
        status "{\"hook\":\"$name\",\"event\":\"timeout\",\"rc\":$rc,\"seconds\":$secs}"
        say "hook $name timed out after ${secs}s (limit ${timeout}s)"
        finished=1
        power_off
        exit 0
    fi
    status "{\"hook\":\"$name\",\"event\":\"end\",\"rc\":$rc,\"seconds\":$secs}"
    say "hook $name end rc=$rc after ${secs}s"
    if ((rc != 0)); then
        finished=1
        power_off
        exit 0
    fi
done

remove_build_key
total=$(seconds $(($(now_us) - run_start)))
status "{\"event\":\"done\",\"hooks\":$count,\"seconds\":$total,\"uptime\":$(uptime_s)}"
say "all $count hook(s) succeeded in ${total}s"
remove_runner
finished=1
power_off
