# shellcheck shell=bash
# What every ztest hook shares: messages, plan mode, the package installer, Debian components.
#
# Hooks load it with the line
#     . "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline
# which works as it stands when a hook runs from the repository (the plan tests), and which
# imagefactory replaces by this file's text when it packs the hook into a seed: the guest
# gets self-contained scripts, one file per hook, as the runner expects.
#
# KLAB_PLAN=1: every state-changing command goes through `act`, which then prints it the way
# a reader would type it instead of running it (tests pin those lines per family), and the
# package queries answer as on a fresh image.

plan=${KLAB_PLAN:-0}
self=${0##*/}
# Whether apt's package lists are fresh: once per hook, and again after a new component.
apt_updated=0
APT=(apt-get -o DPkg::Lock::Timeout=600)

say() { printf '%s: %s\n' "$self" "$*"; }
die() {
    printf '%s: error: %s\n' "$self" "$*" >&2
    exit 1
}

# Print a command the way a reader would type it (quotes only where needed).
show() {
    local words=() arg
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@+,%-]+$ ]]; then
            words+=("$arg")
        else
            words+=("'${arg//\'/\'\\\'\'}'")
        fi
    done
    printf '+ %s\n' "${words[*]}"
}

# Every state-changing command goes through act: run it, or print it in plan mode.
act() {
    show "$@"
    [[ $plan == 1 ]] || "$@"
}

# Write a small config file (content from stdin) unless it already has that content.
put_file() {
    local path=$1 content
    content=$(cat)
    if [[ $plan == 1 ]]; then
        show write "$path"
        return 0
    fi
    if [[ -f $path && $(cat "$path") == "$content" ]]; then
        return 0
    fi
    mkdir -p "${path%/*}"
    printf '%s\n' "$content" >"$path"
    say "wrote $path"
}

running_kernel() {
    if [[ $plan == 1 ]]; then
        echo "${KLAB_PLAN_KERNEL:-$(uname -r)}"
    else
        uname -r
    fi
}

# Package queries: in plan mode the image is fresh, so nothing is installed yet.
rpm_installed() { [[ $plan != 1 ]] && rpm -q --quiet "$1"; }
deb_installed() {
    [[ $plan != 1 ]] || return 1
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

pkg_installed() {
    case ${KLAB_FAMILY:?} in
    el | fedora) rpm_installed "$1" ;;
    debian | ubuntu) deb_installed "$1" ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
}

# Refresh apt's package lists unless this hook already did (the one apt policy: a hook
# installs from lists at most as old as the hook; a component added since makes them stale).
# Returns non-zero when the refresh fails, for callers that can go on without it.
apt_update() {
    [[ $apt_updated == 0 ]] || return 0
    # Explicit return: callers may test this function, which suspends set -e inside it.
    act "${APT[@]}" update || return 1
    apt_updated=1
}

# The one package installer of the ztest hooks: installs the packages that are missing
# (all of them in plan mode), with the family's package manager; fails the hook when it
# cannot.  dnf refreshes its metadata itself when it is stale.
install_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]} > 0)) || return 0
    case $KLAB_FAMILY in
    el | fedora) act dnf -y install "${missing[@]}" ;;
    *)
        export DEBIAN_FRONTEND=noninteractive
        apt_update || die "cannot refresh the apt package lists"
        act "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
        ;;
    esac
}

# An RPM installed from a URL or file (zfs-release), unless the package NAME is installed.
install_rpm_from() {
    local name=$1 source=$2
    pkg_installed "$name" || act dnf -y install "$source"
}

# apt source files that need a component: the deb822 file of the cloud images, or the
# one-line sources.list a bootstrapped image has.  Plan mode assumes the cloud image.
apt_source_files() {
    if [[ $plan == 1 ]]; then
        echo /etc/apt/sources.list.d/debian.sources
        return 0
    fi
    local file
    for file in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
        [[ -f $file ]] && grep -Eq '^(Components:|deb(-src)?[[:space:]])' "$file" && echo "$file"
    done
    return 0
}

# Whether some source stanza or line of a file lacks a component.
lacks_component() {
    grep -E '^(Components:|deb(-src)?[[:space:]])' "$1" |
        grep -Evq "[[:space:]]$2([[:space:]]|\$)"
}

# Add a component (contrib, non-free) to every Debian source that lacks it; the next
# install refreshes the package lists (apt_updated=0).
enable_component() {
    local component=$1 file found=0
    while IFS= read -r file; do
        [[ -n $file ]] || continue
        found=1
        [[ $plan == 1 ]] || lacks_component "$file" "$component" || continue
        if [[ $file == *.sources ]]; then
            act sed -i -E "/^Components:/{/[[:space:]]$component([[:space:]]|\$)/!s/\$/ $component/}" "$file"
        else
            act sed -i -E "/^deb(-src)?[[:space:]]/{/[[:space:]]$component([[:space:]]|\$)/!s/([[:space:]]main)([[:space:]]|\$)/\\1 $component\\2/}" "$file"
        fi
        apt_updated=0
    done < <(apt_source_files)
    ((found)) || die "no apt source file found to enable $component in"
}

# Unpack into $1 the files the host appended to this hook: a hook that asks for them with
# a `# imagefactory-payload: DIR` line gets DIR as a base64 tar.gz after a marker line
# (imagefactory/vm/payload.py); the hook ends with `exit`, so bash never reads that far.
unpack_payload() {
    local into=$1 marker=__IMAGEFACTORY_PAYLOAD_BELOW__ line
    line=$(grep -n -m 1 -x -- "$marker" "$0" | cut -d: -f1) ||
        die "no payload in $0: the host must pack it into this hook" \
            "(imagefactory.vm.payload.with_payloads)"
    tail -n "+$((line + 1))" "$0" | base64 -d | tar -xz -C "$into" ||
        die "the payload appended to $0 is corrupt"
}
