"""Distro specs: the models, loading with line-numbered errors, and golden names."""

from imagefactory.spec.digest import Digest
from imagefactory.spec.loader import ResolvedSpec, all_distro_names, load_distro, load_spec_file
from imagefactory.spec.model import DistroSpec, Lineage
from imagefactory.spec.names import golden_dataset, golden_leaf

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
