"""Distro specs: the models, loading with line-numbered errors, and golden names.

The names below load on first use (PEP 562): importing one light submodule (`spec.names`,
`spec.index`) must not import the models and pydantic, or `klab status` starts slowly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagefactory.spec.digest import Digest
    from imagefactory.spec.loader import (
        ResolvedSpec,
        all_distro_names,
        load_distro,
        load_spec_file,
    )
    from imagefactory.spec.model import DistroSpec, Lineage
    from imagefactory.spec.names import golden_dataset, golden_leaf

_WHERE = {
    "Digest": "digest",
    "DistroSpec": "model",
    "Lineage": "model",
    "ResolvedSpec": "loader",
    "all_distro_names": "loader",
    "golden_dataset": "names",
    "golden_leaf": "names",
    "load_distro": "loader",
    "load_spec_file": "loader",
}

__all__ = [
    "Digest",
    "DistroSpec",
    "Lineage",
    "ResolvedSpec",
    "all_distro_names",
    "golden_dataset",
    "golden_leaf",
    "load_distro",
    "load_spec_file",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
