"""`imagefactory gc`: remove what crashed builds left behind, and unused retired goldens.

Everything it removes is provably the factory's: a store child with its role marker, a
temporary file in the store's own directory named after one, a VM temporary directory of
this user with its record naming a disk of this store, a lock or lease file in the
factory's own directories.  "Abandoned" is decided by locks (a dead owner's flock is
gone), never by pids, so a gc in another PID namespace never takes a live build for dead.
"""

from __future__ import annotations

import argparse

from imagefactory import settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gc",
        help="remove crashed builds' leftovers and retired goldens without clones",
        description="Kills this user's orphaned build QEMUs, removes abandoned build "
        "volumes, stale locks and the store's temporary files, finishes or undoes "
        "interrupted publishes, removes test clones whose run is over and which no process "
        "uses, this store's killed VMs' temporary directories, and retired goldens that no "
        "clone depends on.  Never touches anything without the store's role marker or the "
        "factory's own record.",
    )
    settings.add_store_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="only say what would go")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imagefactory.builder.leftovers import kill_orphans, stale_locks
    from imagefactory.store.owner import remove_dead_leases
    from imagefactory.store.select import open_store
    from imagefactory.testrun.kept import remove_forgotten_clones
    from imagefactory.vm.tempdir import stale_vm_dirs

    verb = "would remove" if args.dry_run else "removed"
    for orphan in kill_orphans(dry_run=args.dry_run):
        print(f"{'would kill' if args.dry_run else 'killed'} QEMU {orphan.pid} ({orphan.name})")
    store = open_store(args.store)
    # Test clones first (kept with `klab test --keep`, or left by a killed run): a retired
    # golden they pin can then go in the same gc.
    for name in remove_forgotten_clones(store, dry_run=args.dry_run):
        print(f"{verb} forgotten test clone {name}")
    report = store.gc(dry_run=args.dry_run)
    for name in report.removed:
        print(f"{verb} {name}")
    for name, why in report.kept:
        print(f"kept {name}: {why}")
    for directory in stale_vm_dirs(store.contains, dry_run=args.dry_run):
        print(f"{verb} a killed VM's temporary directory {directory}")
    for lock in stale_locks(dry_run=args.dry_run):
        print(f"{verb} stale lock {lock.name}")
    # Last: the leases of dead owners, whose volumes and files went above.
    leases = remove_dead_leases(dry_run=args.dry_run)
    if leases:
        print(f"{verb} {len(leases)} lease file(s) of killed processes")
    return 0
