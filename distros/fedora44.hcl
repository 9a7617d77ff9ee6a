# The HCL twin of fedora44.yaml: it loads to the same model (tests/unit/spec pin that).
# Blocks are mappings; a block may appear once.  The same defaults layer applies.
name        = "fedora44"
short       = "fedora"
family      = "fedora"
release     = "44"
aliases     = ["fedora", "f44", "fedora-44"]
description = "Fedora 44 Cloud Base Generic, OpenZFS 2.4.1 (zfsonlinux zfs-2.4 repo, DKMS)"

source {
  cloud_image {
    url    = "https://download.fedoraproject.org/pub/fedora/linux/releases/44/Cloud/x86_64/images/Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2"
    format = "qcow2"
    checksum {
      url       = "https://download.fedoraproject.org/pub/fedora/linux/releases/44/Cloud/x86_64/images/Fedora-Cloud-44-1.7-x86_64-CHECKSUM"
      format    = "clearsigned"
      algorithm = "sha256"
    }
    signature {
      kind         = "clearsigned"
      keyring      = "fedora-44-primary.asc"
      fingerprints = ["36F6 12DC F27F 7D1A 48A8 35E4 DBFC F71C 6D9F 90A6"]
    }
  }
}

vm {
  firmware = "uefi"
}

cloud_init {
  default_user {
    name = "fedora"
  }
}

zfs {
  version     = "2.4.1"
  provider    = "zfsonlinux"
  repo        = "zfs-2.4"
  release_rpm = "https://zfsonlinux.org/fedora/zfs-release-3-1.fc44.noarch.rpm"
  packages    = ["zfs-2.4.1", "zfs-dkms-2.4.1", "zfs-test-2.4.1"]
  kernel_max  = "6.19"
}
