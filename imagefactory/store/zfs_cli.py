"""The `zfs` command, for what libzfs_core cannot do: read and list properties, set
`readonly`, `volsize` and user properties on existing datasets, inherit (remove) them.

Output is read with `-H -p` (tab-separated, exact numbers), the format meant for scripts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imagefactory.run import require_tool, run

_HINT = "the zfs command comes with zfsutils-linux: apt-get install zfsutils-linux"


def zfs_command() -> str:
    return require_tool("zfs", package="zfsutils-linux")


@dataclass(frozen=True)
class Prop:
    """One property as `zfs get` reports it; `source` is `local`, `default`, `-`,
    `inherited from X`, `temporary` or `received`."""

    value: str
    source: str

    @property
    def is_set(self) -> bool:
        """For user properties: set here or inherited (unset ones read `-` / `-`)."""
        return self.source != "-"

    @property
    def is_local(self) -> bool:
        return self.source == "local"


Props = dict[str, Prop]


def get(
    names: Sequence[str],
    props: Sequence[str],
    *,
    depth: int | None = None,
    types: Sequence[str] | None = None,
) -> dict[str, Props]:
    """`zfs get` of `props` on `names` (and their descendants to `depth`), by dataset name."""
    argv = [zfs_command(), "get", "-H", "-p", "-o", "name,property,value,source"]
    if depth is not None:
        argv += ["-d", str(depth)]
    if types:
        argv += ["-t", ",".join(types)]
    argv += [",".join(props), *names]
    proc = run(argv, hint=_HINT)
    result: dict[str, Props] = {}
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        name, prop, value, source = fields
        result.setdefault(name, {})[prop] = Prop(value, source)
    return result


def set_props(name: str, values: Mapping[str, str]) -> None:
    """`zfs set a=1 b=2 NAME`, all properties in one command."""
    if values:
        run([zfs_command(), "set", *(f"{k}={v}" for k, v in values.items()), name], hint=_HINT)


def inherit(name: str, prop: str) -> None:
    """`zfs inherit`: for a user property set here, this removes it."""
    run([zfs_command(), "inherit", prop, name], hint=_HINT)


def snapshots_of(name: str) -> list[str]:
    """The snapshots of one dataset, oldest first."""
    proc = run(
        [
            zfs_command(),
            "list",
            "-H",
            "-o",
            "name",
            "-t",
            "snapshot",
            "-s",
            "createtxg",
            "-d",
            "1",
            name,
        ],
        hint=_HINT,
    )
    return [line for line in proc.stdout.splitlines() if line]
