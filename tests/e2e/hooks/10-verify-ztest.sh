#!/usr/bin/env bash
# Runs in a throw-away clone of the Debian ztest golden: checks that the golden boots ready
# for the OpenZFS test suite, that every bpftrace script traces a scrub, and that every
# recipe passes.  Each check prints "verify: ok <what>"; the first failure exits non-zero.
set -euo pipefail

ok() { printf 'verify: ok %s\n' "$*"; }
die() { printf 'verify: FAIL %s\n' "$*" >&2; exit 1; }

modprobe zfs
[[ -r /sys/module/zfs/version ]] || die "zfs module not loaded"
module=$(cat /sys/module/zfs/version)
ok "module $module"

suite=$(dpkg-query -W -f='${Version}' zfs-test)
[[ ${module%%-*} == "${suite%%-*}" ]] || die "suite $suite does not match module $module"
ok "suite $suite"

command -v ksh >/dev/null || die "ksh missing"
ok "ksh"
[[ -x /usr/share/zfs/zfs-tests.sh ]] || die "zfs-tests.sh missing"
ok "zfs-tests.sh"

count=0
for img in /var/tmp/zfs-test-vdevs/disk{0..7}.img; do
  [[ -f $img ]] || die "$img missing"
  size=$(stat -c %s "$img")
  blocks=$(stat -c %b "$img")
  [[ $size -eq 1073741824 ]] || die "$img is $size bytes"
  (( blocks * 512 < size / 10 )) || die "$img is not sparse"
  count=$((count + 1))
done
ok "$count sparse vdevs"

if systemctl is-enabled --quiet zfs-zed 2>/dev/null; then die "zfs-zed enabled"; fi
ok "zed disabled"
sudo -n -u zfs sudo -n true || die "zfs user has no passwordless sudo"
ok "zfs user sudo"

# bpftrace: each script runs during a scrub of a small mirror and prints a report.
zpool create -f verifypool mirror /var/tmp/zfs-test-vdevs/disk6.img /var/tmp/zfs-test-vdevs/disk7.img
trap 'zpool destroy -f verifypool 2>/dev/null || true' EXIT
dd if=/dev/urandom of=/verifypool/data bs=1M count=128 status=none
zpool sync verifypool
for script in zio txg arc spl; do
  out=/tmp/$script.out
  bpftrace "/usr/local/share/zfs-bt/$script.bt" >"$out" 2>&1 &
  tracer=$!
  # Attaching takes long under TCG: start the load only once the script is tracing.
  for _ in $(seq 120); do
    grep -q 'tracing' "$out" && break
    sleep 1
  done
  grep -q 'tracing' "$out" || die "$script.bt did not attach: $(tail -5 "$out")"
  zpool scrub -w verifypool
  dd if=/verifypool/data of=/dev/null bs=1M status=none
  sleep 12  # at least two 5 s reports
  kill -INT "$tracer"
  wait "$tracer" || die "$script.bt exited non-zero: $(tail -5 "$out")"
  lines=$(wc -l <"$out")
  [[ $lines -gt 3 ]] || die "$script.bt printed nothing: $(cat "$out")"
  sed "s/^/$script.bt| /" "$out"
  ok "bpftrace $script.bt ($lines lines)"
done
zpool destroy verifypool
trap - EXIT

for recipe in /usr/local/share/klab/recipes/*; do
  name=${recipe##*/}
  [[ $name == _* ]] && continue
  "$recipe" || die "recipe $name failed"
  ok "recipe $name"
done
ok "all"
