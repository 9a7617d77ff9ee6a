"""The distro index `klab status` reads gives the names the validating loader gives.

Real spec files throughout: the shipped distros, and copies of them in a scratch
directory edited the way a person edits a spec (a git source, a wrong short name).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagefactory.errors import SpecError
from imagefactory.paths import distros_dir
from imagefactory.spec.index import release_goldens
from imagefactory.spec.loader import load_spec_file
from imagefactory.spec.model import LINEAGES
from imagefactory.spec.names import DOCUMENTED_ORDER, golden_leaf


@pytest.fixture
def distros(tmp_path: Path) -> Path:
    copy = tmp_path / "distros"
    shutil.copytree(distros_dir(), copy)
    return copy


def validated_leaves(path: Path) -> dict[str, str]:
    spec, _ = load_spec_file(path, env={})
    return {lineage: golden_leaf(spec, lineage) for lineage in LINEAGES}


def test_every_shipped_spec_has_the_names_the_loader_gives_in_the_documented_order() -> None:
    index = release_goldens()
    assert [d.short for d in index] == list(DOCUMENTED_ORDER)
    assert [d.spec for d in index] == ["centos9", "rocky9", "fedora44", "debian13", "ubuntu24"]
    for distro in index:
        path = distros_dir() / f"{distro.spec}.yaml"
        assert dict(distro.leaves) == validated_leaves(path)
        assert load_spec_file(path, env={})[0].short == distro.short


def test_a_spec_with_a_git_source_is_named_by_the_validated_spec(distros: Path) -> None:
    path = distros / "debian13.yaml"
    text = path.read_text().replace("  provider: distro\n", "  provider: git\n", 1)
    text = text.replace(
        "  packages: [linux-headers-cloud-amd64, zfs-dkms, zfsutils-linux, zfs-test]\n",
        "  git: {url: 'https://example.org/zfs.git', branch: feature/Fast_Status}\n",
        1,
    )
    path.write_text(text)

    debian = next(d for d in release_goldens(distros) if d.short == "debian")

    assert dict(debian.leaves) == validated_leaves(path)
    assert debian.leaves["ztest"].startswith("klab-ztest-debian-feature-fast-status-")


def test_a_short_name_the_model_refuses_is_reported_by_the_loader_with_its_line(
    distros: Path,
) -> None:
    path = distros / "rocky9.yaml"
    path.write_text(path.read_text().replace("short: rocky\n", "short: [rocky]\n", 1))
    with pytest.raises(SpecError, match=r"rocky9\.yaml:3: short: "):
        release_goldens(distros)


def test_a_field_the_names_do_not_depend_on_is_not_validated_here(distros: Path) -> None:
    # Names only: `klab status` shows the distro whatever else its spec says;
    # `imagefactory validate` is where the rest is checked.
    path = distros / "ubuntu24.yaml"
    path.write_text(path.read_text() + "vm: {memory: lots}\n")
    with pytest.raises(SpecError):
        load_spec_file(path, env={})
    ubuntu = next(d for d in release_goldens(distros) if d.short == "ubuntu")
    assert dict(ubuntu.leaves) == {"lean": "klab-golden-ubuntu", "ztest": "klab-ztest-ubuntu"}


def test_the_defaults_layer_is_read_as_the_loader_reads_it(distros: Path) -> None:
    # A defaults layer that does not parse fails the index as it fails every command.
    (distros / "_defaults.yaml").write_text("disk: [unclosed\n")
    with pytest.raises(SpecError, match=r"_defaults\.yaml"):
        release_goldens(distros)
