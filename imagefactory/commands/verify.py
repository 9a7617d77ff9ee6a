"""`imagefactory verify [GOLDEN...]`: check goldens against the digest recorded at publish.

For a copied or restored files store (whose goldens `klab status` shows as "moved, not
verified") this hashes each image once and, if it matches, pins its manifest to the copy;
for a golden in place it re-checks the image (silent corruption) or records the digest an
older manifest lacks.  Damaged goldens are reported with the reason.  Exit status: 0 all
intact, 1 an image does not match its digest, 3 a golden could not be checked.
"""

from __future__ import annotations

import argparse
import sys

from imagefactory import settings
from imagefactory.errors import EXIT_OK, ImageFactoryError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check goldens against their recorded digest; trust a copied store's again",
    )
    parser.add_argument(
        "goldens", nargs="*", metavar="GOLDEN", help="golden names (default: every golden)"
    )
    settings.add_store_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imagefactory.store.select import open_store

    store = open_store(args.store)
    damaged = store.damaged()
    leaves = args.goldens or sorted({g.leaf for g in store.list_goldens()} | set(damaged))
    status = EXIT_OK
    for leaf in leaves:
        try:
            print(f"{leaf}: {store.verify(leaf)}")
        except ImageFactoryError as exc:
            print(f"{leaf}: FAILED: {exc}")
            if exc.hint:
                print(f"  hint: {exc.hint}", file=sys.stderr)
            status = max(status, exc.exit_status)
    if not leaves:
        print(f"no goldens in {store.spec}", file=sys.stderr)
    return status
