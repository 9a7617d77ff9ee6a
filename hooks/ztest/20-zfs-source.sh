#!/usr/bin/env bash
# OpenZFS from source: the whole of it for PR builds, or only a test suite that matches the
# running module.
#
# KLAB_ZFS_PROVIDER=git: build module, userland and test suite from KLAB_ZFS_GIT_URL at
#   KLAB_ZFS_GIT_COMMIT, the commit the host resolved KLAB_ZFS_GIT_BRANCH to (a branch, a
#   tag, or refs/pull/N/head for pr-N: KLAB_ZFS_GIT_REF), install them under /usr, load
#   that module, record the commit.
# Otherwise: compare the loaded module's version (/sys/module/zfs/version) with the packaged
#   suite's (zfs-test).  Equal: nothing to build.  Different (Ubuntu HWE kernels, a repo
#   that moved on): KLAB_ZFS_SUITE_MISMATCH decides -- fail, allow, or rebuild the suite and
#   a matching userland from the tag zfs-<module version> into /opt/klab/zfs-<version>
#   (linked from /usr/local, which comes first in the suite's constrained PATH); distro
#   packages are left untouched.
# Writes /etc/imagefactory/zfs-source.env for 80-golden-facts.sh.  A rerun with the same
# inputs rebuilds nothing.  KLAB_PLAN=1 prints the commands and runs none (tests pin them);
# KLAB_PLAN_KERNEL and KLAB_PLAN_MODULE_VERSION stand in for the machine's state there.
set -euo pipefail
# shellcheck source=_lib.sh
. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline

facts=/etc/imagefactory/zfs-source.env
build_root=/var/tmp/klab-zfs-build
upstream=${KLAB_ZFS_UPSTREAM:-https://github.com/openzfs/zfs}

# Run a command inside the source tree.
in_tree() {
    local dir=$1
    shift
    show cd "$dir" '&&' "$@"
    [[ $plan == 1 ]] || (cd "$dir" && "$@")
}

# Parallel make jobs; a fixed placeholder in plan mode so the printed plan is stable.
make_jobs() {
    if [[ $plan == 1 ]]; then
        echo 'N'
    else
        nproc
    fi
}

# What OpenZFS's configure needs (reference/openzfs-ci-and-test-suite.md §1.7, trimmed to a
# plain build: no packaging tools); `kernel` adds the headers for a module build.
build_deps() {
    local with_kernel=$1 kver=$2
    case $KLAB_FAMILY in
    el | fedora)
        if [[ $KLAB_FAMILY == el ]]; then
            # libtirpc-devel lives in CRB on EL9.
            install_packages dnf-plugins-core
            act dnf config-manager --set-enabled crb
        fi
        local deps=(gcc make autoconf automake libtool pkgconf git libtirpc-devel
            libblkid-devel libuuid-devel systemd-devel openssl-devel zlib-devel libaio-devel
            libattr-devel elfutils-libelf-devel libffi-devel libcurl-devel python3)
        [[ $with_kernel == 1 ]] && deps+=("kernel-devel-$kver")
        ;;
    debian | ubuntu)
        local deps=(build-essential autoconf automake libtool gawk pkgconf git uuid-dev
            libblkid-dev libudev-dev libssl-dev zlib1g-dev libaio-dev libattr1-dev libelf-dev
            libtirpc-dev libffi-dev libcurl4-openssl-dev python3)
        [[ $with_kernel == 1 ]] && deps+=("linux-headers-$kver")
        ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
    install_packages "${deps[@]}"
}

# Fresh shallow clone of one branch or tag.
clone() {
    local url=$1 ref=$2 dir=$3
    act rm -rf "$dir"
    act mkdir -p "${dir%/*}"
    act git clone --quiet --depth 1 --branch "$ref" "$url" "$dir"
}

# The one commit the host resolved (imagefactory/fetch/git_refs.py), fetched by its id: a
# branch or pull request that moved on since does not change what this golden holds.  A
# server that refuses fetches by id (GitHub allows them) gets the ref, which must still
# point at that commit.
checkout_commit() {
    local url=$1 ref=$2 commit=$3 dir=$4 head
    act rm -rf "$dir"
    act mkdir -p "${dir%/*}"
    act git init --quiet "$dir"
    act git -C "$dir" fetch --quiet --depth 1 "$url" "$commit" ||
        act git -C "$dir" fetch --quiet --depth 1 "$url" "$ref"
    act git -C "$dir" checkout --quiet --detach FETCH_HEAD
    [[ $plan == 1 ]] && return 0
    head=$(git -C "$dir" rev-parse HEAD)
    [[ $head == "$commit" ]] ||
        die "$url $ref is at $head now, not at $commit as resolved for this build: build again"
}

upstream_version() { echo "${1%%-*}"; }

write_facts() {
    local source=$1 suite=$2 commit=$3 zts_dir=$4 built=$5
    if [[ $plan == 1 ]]; then
        show write "$facts"
        return 0
    fi
    mkdir -p "${facts%/*}"
    {
        printf 'KLAB_FACT_ZFS_SOURCE=%q\n' "$source"
        printf 'KLAB_FACT_SUITE_VERSION=%q\n' "$suite"
        printf 'KLAB_FACT_ZFS_COMMIT=%q\n' "$commit"
        printf 'KLAB_FACT_ZTS_DIR=%q\n' "$zts_dir"
        printf 'KLAB_FACT_BUILT=%q\n' "$built"
    } >"$facts"
    say "recorded: source=$source suite=$suite${commit:+ commit=$commit} suite dir=$zts_dir"
}

previous_build() {
    [[ $plan != 1 && -r $facts ]] || return 0
    # shellcheck source=/dev/null
    (source "$facts" && printf '%s\n' "${KLAB_FACT_BUILT:-}")
}

module_version() {
    if [[ $plan == 1 ]]; then
        echo "${KLAB_PLAN_MODULE_VERSION:-}"
    elif [[ -r /sys/module/zfs/version ]]; then
        cat /sys/module/zfs/version
    fi
}

packaged_suite_version() {
    case $KLAB_FAMILY in
    el | fedora) rpm -q --qf '%{VERSION}-%{RELEASE}\n' zfs-test ;;
    debian | ubuntu) dpkg-query -W -f='${Version}\n' zfs-test ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
}

# META's "Version" and "Release": what the built module reports in /sys/module/zfs/version.
meta_version() {
    local dir=$1
    if [[ $plan == 1 ]]; then
        echo "<META version>"
        return 0
    fi
    awk '$1 == "Version:" { v = $2 } $1 == "Release:" { r = $2 } END { print v "-" r }' "$dir/META"
}

library_dir() {
    case $KLAB_FAMILY in
    el | fedora) echo /usr/lib64 ;;
    *) echo "/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)" ;;
    esac
}

# PR build: everything from the branch, installed like a distro package would be.
build_git() {
    local url=${KLAB_ZFS_GIT_URL:?} branch=${KLAB_ZFS_GIT_BRANCH:?} kver dir version
    local commit=${KLAB_ZFS_GIT_COMMIT:-} ref=${KLAB_ZFS_GIT_REF:-}
    if [[ -z $commit || -z $ref ]]; then
        [[ $plan == 1 ]] ||
            die "no commit for $branch: the host resolves it (KLAB_ZFS_GIT_COMMIT, KLAB_ZFS_GIT_REF)"
        commit="<commit>" ref="<ref>"
    fi
    local key="git $url $commit"
    if [[ $(previous_build) == "$key" && -r /sys/module/zfs/version ]]; then
        say "OpenZFS from $url at $commit already built and loaded: nothing to do"
        return 0
    fi
    kver=$(running_kernel)
    build_deps 1 "$kver"
    dir=$build_root/zfs
    checkout_commit "$url" "$ref" "$commit" "$dir"
    say "building OpenZFS $branch ($ref) at $commit for kernel $kver"
    in_tree "$dir" ./autogen.sh
    in_tree "$dir" ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
        "--libdir=$(library_dir)" "--with-linux=/lib/modules/$kver/build"
    in_tree "$dir" make -s "-j$(make_jobs)"
    in_tree "$dir" make -s install
    version=$(meta_version "$dir")
    # Ubuntu's kernel carries its own zfs.ko; the one just built in extra/ must win.
    printf 'override spl * extra\noverride zfs * extra\n' | put_file /etc/depmod.d/klab-zfs.conf
    act ldconfig
    act depmod -a "$kver"
    if [[ $plan != 1 && -r /sys/module/zfs/version && $(</sys/module/zfs/version) != "$version" ]]; then
        act modprobe -r zfs spl
    fi
    printf 'zfs\n' | put_file /etc/modules-load.d/zfs.conf
    act modprobe zfs
    if [[ $plan != 1 ]]; then
        [[ $(</sys/module/zfs/version) == "$version" ]] ||
            die "loaded zfs module is $(</sys/module/zfs/version), the build made $version"
    fi
    act rm -rf "$build_root"
    write_facts git "$version" "$commit" /usr/share/zfs "$key"
}

# A suite (and matching userland) for the running module, beside the distro's packages.
build_suite() {
    local tag=$1 version=$2 prefix=/opt/klab/zfs-$2 dir stage tool
    local key="suite $tag"
    if [[ $(previous_build) == "$key" && -x $prefix/share/zfs/zfs-tests.sh ]]; then
        say "test suite from $tag already built: nothing to do"
        return 0
    fi
    build_deps 0 ""
    dir=$build_root/zfs
    stage=$build_root/stage
    clone "$upstream" "$tag" "$dir"
    in_tree "$dir" ./autogen.sh
    # Userland only; rpath so these binaries never pick up the distro's libzfs.
    in_tree "$dir" ./configure --with-config=user "--prefix=$prefix" --sysconfdir=/etc \
        --localstatedir=/var --disable-pyzfs "LDFLAGS=-Wl,-rpath,$prefix/lib"
    in_tree "$dir" make -s "-j$(make_jobs)"
    # Staged, then only the prefix is kept: udev rules, units and /etc stay the distro's.
    in_tree "$dir" make -s install "DESTDIR=$stage"
    act rm -rf "$prefix"
    act mkdir -p /opt/klab
    act cp -a "$stage$prefix" "$prefix"
    act mkdir -p /usr/local/sbin /usr/local/bin
    if [[ $plan != 1 ]]; then
        for tool in "$prefix"/sbin/* "$prefix"/bin/*; do
            [[ -f $tool && -x $tool ]] || continue
            ln -sfn "$tool" "/usr/local/${tool#"$prefix"/}"
        done
    else
        show ln -sfn "$prefix/sbin/*" "$prefix/bin/*" /usr/local/...
    fi
    act rm -rf "$build_root"
    write_facts packages "$version" "" "$prefix/share/zfs" "$key"
}

check_suite() {
    local module suite
    module=$(module_version)
    [[ -n $module ]] || die "no zfs module is loaded: did 10-zfs.sh run?"
    if [[ $plan == 1 ]]; then
        suite="<packaged zfs-test version>"
    else
        suite=$(packaged_suite_version) || die "the zfs-test package is not installed"
    fi
    if [[ $plan != 1 && $(upstream_version "$module") == "$(upstream_version "$suite")" ]]; then
        say "module $module and test suite $suite match"
        write_facts packages "$suite" "" /usr/share/zfs ""
        return 0
    fi
    say "module $module and packaged test suite $suite differ"
    case ${KLAB_ZFS_SUITE_MISMATCH:-rebuild} in
    fail) die "test suite $suite does not match module $module (suite_mismatch: fail)" ;;
    allow)
        say "warning: keeping the mismatched suite (suite_mismatch: allow)"
        write_facts packages "$suite" "" /usr/share/zfs ""
        ;;
    rebuild) build_suite "zfs-$(upstream_version "$module")" "$(upstream_version "$module")" ;;
    *) die "unknown KLAB_ZFS_SUITE_MISMATCH=$KLAB_ZFS_SUITE_MISMATCH" ;;
    esac
}

main() {
    case ${KLAB_FAMILY:?} in
    el | fedora | debian | ubuntu) ;;
    *) die "unknown family $KLAB_FAMILY" ;;
    esac
    if [[ ${KLAB_ZFS_PROVIDER:?} == git ]]; then
        build_git
    else
        check_suite
    fi
}

# Sourced (the tests call checkout_commit against a local repository): define, run nothing.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
