"""`imagefactory cache ls|gc|verify`: inspect and trim the content-addressed image cache."""

from __future__ import annotations

import argparse
import sys
import time

from imagefactory import settings
from imagefactory.commands.fetch import cache_from_args
from imagefactory.errors import UsageError
from imagefactory.settings import add_cache_dir_option

MAX_SIZE = settings.CACHE_MAX_SIZE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("cache", help="list, verify or trim the image cache")
    verbs = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = verbs.add_parser("ls", help="list cached images, least recently used first")
    add_cache_dir_option(ls)
    ls.set_defaults(handler=run_ls)
    gc = verbs.add_parser("gc", help="evict least recently used images down to a size cap")
    add_cache_dir_option(gc)
    gc.add_argument(
        "--max-size",
        metavar="SIZE",
        help="size cap such as 20GiB or 500MB "
        f"(default: ${MAX_SIZE.name}, else {MAX_SIZE.default})",
    )
    gc.set_defaults(handler=run_gc)
    verify = verbs.add_parser("verify", help="re-hash every image; drop corrupted ones")
    add_cache_dir_option(verify)
    verify.set_defaults(handler=run_verify)


def parse_size(text: str, what: str = "--max-size") -> int:
    """A size such as 20GiB, 500MB or a byte count; anything else (empty included) is an
    error naming `what`, never a silent default."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    hint = "use e.g. 20GiB, 500MB or a byte count"
    if not text.strip():
        raise UsageError(f"{what}: empty; a size is required", hint=hint)
    try:
        return int(TypeAdapter(ByteSize).validate_python(text.strip()))
    except ValidationError:
        raise UsageError(f"{what}: not a size: {text!r}", hint=hint) from None


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TiB"


def run_ls(args: argparse.Namespace) -> int:
    cache = cache_from_args(args, create=False)
    entries = cache.entries()
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        keys = ", ".join(entry.keys) or "-"
        print(f"{human(entry.size):>9}  {used}  {entry.digest}  {keys}")
    total = sum(e.size for e in entries)
    print(f"{len(entries)} image(s), {human(total)} in {cache.root}", file=sys.stderr)
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from_env = MAX_SIZE.value()
    if args.max_size is not None:
        cap = parse_size(args.max_size)
    elif from_env is not None:
        cap = parse_size(from_env, f"${MAX_SIZE.name}")
    else:
        cap = parse_size(MAX_SIZE.default)
    cache = cache_from_args(args)
    removed = cache.gc(cap)
    for entry in removed:
        print(f"removed  {human(entry.size):>9}  {entry.digest}")
    kept = sum(e.size for e in cache.entries())
    print(
        f"removed {len(removed)} image(s); {human(kept)} kept (cap {human(cap)})", file=sys.stderr
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    cache = cache_from_args(args)
    bad = 0
    for entry in cache.entries():
        ok = cache.verify(entry.digest)
        bad += not ok
        print(f"{'ok  ' if ok else 'BAD '}  {entry.digest}")
    if bad:
        print(f"{bad} corrupted image(s) removed; they will be fetched again", file=sys.stderr)
        return 1
    return 0
