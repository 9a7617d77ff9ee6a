"""Boot a guest and run the build's hooks in it.

The pieces, in the order a build uses them: `hookplan` (which scripts run, with which
timeouts), `userdata` and `seed` (the cloud-init NoCloud seed that carries them),
`accel` and `qemu_args` (how QEMU is started), `machine` (QEMU under QMP, always cleaned
up), `channel` (the guest's status lines) and `provision` (all of it together).
"""
