#!/usr/bin/env bash
# Seal the image: remove every trace of this build's identity so each clone boots as a new
# machine, keep the payload.  Runs last; the hook runner powers the guest off afterwards.
#
# Settings come from the spec's `seal` section through the environment:
#   KLAB_SEAL_MACHINE_ID, KLAB_SEAL_SSH_HOST_KEYS, KLAB_SEAL_CLOUD_INIT, KLAB_SEAL_RANDOM_SEED,
#   KLAB_SEAL_DHCP_LEASES, KLAB_SEAL_LOGS, KLAB_SEAL_SHELL_HISTORY, KLAB_SEAL_PACKAGE_CACHE
#   (1 = remove), KLAB_SEAL_KEEP (colon-separated paths never removed), KLAB_DEFAULT_USER.
set -euo pipefail

enabled() { [[ ${!1:-1} == 1 ]]; }

kept() {
  local path=$1 keep
  IFS=: read -r -a keep <<<"${KLAB_SEAL_KEEP:-}"
  for k in "${keep[@]}"; do
    [[ -n $k && ( $path == "$k" || $path == "$k"/* || $k == "$path"/* ) ]] && return 0
  done
  return 1
}

# Remove the children of a directory, sparing kept paths (and their parents).
clear_dir() {
  local dir=$1 entry
  [[ -d $dir ]] || return 0
  shopt -s nullglob dotglob
  for entry in "$dir"/*; do
    if kept "$entry"; then
      echo "seal: keeping $entry"
      continue
    fi
    rm -rf -- "$entry"
  done
  shopt -u nullglob dotglob
}

echo "seal: start"

if enabled KLAB_SEAL_PACKAGE_CACHE; then
  if command -v apt-get >/dev/null; then
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  fi
  if command -v dnf >/dev/null; then
    dnf clean all
  fi
fi

if enabled KLAB_SEAL_CLOUD_INIT && command -v cloud-init >/dev/null; then
  cloud-init clean --logs --seed
fi

# Multi-datasource: a golden (and its exports) boots on the lab's NoCloud seeds, OpenStack
# (a config-2 drive or the metadata service) and the public clouds.  The file sorts after
# the bootstrap image's 95_imagefactory.cfg ([NoCloud, None]) and any vendor file, so its
# list wins.  ds-identify picks the sources it can see (a seed's label, the DMI product),
# so a clone with a NoCloud seed never waits on a metadata service; Ec2 is the one it
# would otherwise enable on a guess ("maybe"), and strict_id (read by ds-identify only
# from a file named *ec2*.cfg) keeps it to platforms that identify as EC2.
if [[ -d /etc/cloud/cloud.cfg.d ]]; then
  cat >/etc/cloud/cloud.cfg.d/99_zz-klab-datasources.cfg <<'EOF_DS'
# Written by the seal (imagefactory hooks/common/90-seal.sh).
datasource_list: [NoCloud, ConfigDrive, OpenStack, Ec2, GCE, Azure, None]
EOF_DS
  cat >/etc/cloud/cloud.cfg.d/99_zz-klab-ec2.cfg <<'EOF_EC2'
# Written by the seal (imagefactory hooks/common/90-seal.sh).
datasource:
  Ec2:
    strict_id: true
EOF_EC2
  echo "seal: cloud-init datasources: NoCloud ConfigDrive OpenStack Ec2 GCE Azure None"
fi

if enabled KLAB_SEAL_SSH_HOST_KEYS; then
  rm -f /etc/ssh/ssh_host_*
fi

# The per-build login key must never ship in a golden.  A user that does not exist has no
# key (getent exits 2); any other failure to look it up stops the seal.
if [[ -n ${KLAB_DEFAULT_USER:-} ]]; then
  rc=0
  entry=$(getent passwd "$KLAB_DEFAULT_USER") || rc=$?
  if ((rc == 0)); then
    home=$(cut -d: -f6 <<<"$entry")
    [[ -z $home ]] || rm -f "$home/.ssh/authorized_keys"
  elif ((rc == 2)); then
    echo "seal: no user $KLAB_DEFAULT_USER: no login key to remove"
  else
    echo "seal: error: getent passwd $KLAB_DEFAULT_USER failed (rc $rc)" >&2
    exit 1
  fi
fi

if enabled KLAB_SEAL_RANDOM_SEED; then
  rm -f /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
fi

if enabled KLAB_SEAL_DHCP_LEASES; then
  rm -rf /var/lib/dhcp/* /var/lib/dhclient/* /var/lib/NetworkManager/*
  rm -rf /var/lib/systemd/network/* /run/systemd/netif/leases/*
fi

if enabled KLAB_SEAL_SHELL_HISTORY; then
  rm -f /root/.bash_history /root/.lesshst /root/.python_history
  for home in /home/*; do
    [[ -d $home ]] || continue
    rm -f "$home/.bash_history" "$home/.lesshst" "$home/.python_history"
  done
fi

clear_dir /tmp
clear_dir /var/tmp

if enabled KLAB_SEAL_LOGS; then
  if command -v journalctl >/dev/null; then
    journalctl --rotate >/dev/null 2>&1 || echo "seal: journal rotation failed (continuing)"
  fi
  rm -rf /var/log/journal/*
  find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
  find /var/log -type f -exec truncate -s 0 {} +
fi

# machine-id last: tools above may read it.  "uninitialized" makes systemd treat the next
# boot as a first boot; the dbus copy is removed so it is regenerated from the new id.
if enabled KLAB_SEAL_MACHINE_ID; then
  printf 'uninitialized\n' >/etc/machine-id
  rm -f /var/lib/dbus/machine-id
fi

sync
echo "seal: done"
