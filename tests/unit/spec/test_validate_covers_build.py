"""`validate` refuses everything `seed` and `build` would refuse, at the spec's line.

Each case pairs a spec value with the check that used to refuse it late (in the seed, the
QEMU command line, the bootstrap, the store) and shows both refuse it: the spec model and
the loader hold those rules now, so `validate`, `plan`, `seed` and `build` agree.  The
converse: every shipped spec that validates assembles its seed for both lineages.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from imagefactory.errors import SpecError, UsageError
from imagefactory.fetch.bootstrap import package_list
from imagefactory.paths import project_root
from imagefactory.spec.loader import all_distro_names, load_distro, load_spec_file
from imagefactory.spec.source import BootstrapSource
from imagefactory.store.names import check_leaf
from imagefactory.vm.fromspec import hook_plan, seed_files
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.qemu_args import VmConfig, check_extra_args
from imagefactory.vm.seed import SshKeyPair
from imagefactory.vm.userdata import resolve_fragments
from tests.unit.spec.test_errors import GOOD


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def spec_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec_file(path, env={})
    return str(info.value)


def with_section(section: str) -> str:
    """GOOD plus a top-level section (GOOD has none of vm, hooks, seal)."""
    return GOOD + section


def _hook(env: dict[str, str] | None = None, name: str = "20-x.sh") -> Hook:
    return Hook(name, b"#!/bin/sh\n", 60.0, env or {})


def _bootstrap(**fields: object) -> None:
    # BootstrapSource.model_construct skips the model's checks: the bootstrap's own runs.
    values: dict[str, object] = {
        "suite": "trixie",
        "components": ["main"],
        "kernel": "linux-image-amd64",
    }
    values.update(fields)
    package_list(BootstrapSource.model_construct(**values), firmware="bios")  # type: ignore[arg-type]
    from imagefactory.fetch.bootstrap import _validate_source

    _validate_source(BootstrapSource.model_construct(**values))  # type: ignore[arg-type]


BOOTSTRAP = (
    "source:\n  default: bootstrap\n  bootstrap:\n    suite: {suite}\n"
    "    components: {components}\n    kernel: linux-image-amd64\n"
    "    packages: {packages}\n"
)


def bootstrap_spec(suite: str = "trixie", components: str = "[main]", packages: str = "[]") -> str:
    head, _, rest = GOOD.partition("source:\n")
    tail = rest[rest.index("disk:") :]
    return head + BOOTSTRAP.format(suite=suite, components=components, packages=packages) + tail


CASES: list[tuple[str, str, str, Callable[[], object]]] = [
    (
        "newline in a hook's env value",
        with_section(
            'hooks:\n  lean:\n    - script: common/90-seal.sh\n      env: {FOO: "a\\nb"}\n'
        ),
        "spec.yaml:21: hooks.lean[0].env: control character U+000A in the value of FOO",
        lambda: _hook({"FOO": "a\nb"}),
    ),
    (
        "NUL in a hook's env value",
        with_section(
            'hooks:\n  lean:\n    - script: common/90-seal.sh\n      env: {FOO: "a\\0b"}\n'
        ),
        "spec.yaml:21: hooks.lean[0].env: control character U+0000 in the value of FOO",
        lambda: _hook({"FOO": "a\0b"}),
    ),
    (
        "newline in a value every hook gets (KLAB_RELEASE)",
        GOOD.replace('release: "13"', 'release: "13\\n"'),
        "spec.yaml:4: release: '13\\n' is not allowed here",
        lambda: _hook({"KLAB_RELEASE": "13\n"}),
    ),
    (
        "hook name the guest runner refuses",
        with_section("hooks:\n  lean:\n    - script: common/20-_x.sh\n"),
        "spec.yaml:20: hooks.lean[0].script: hook scripts are named NN-name.sh",
        lambda: _hook(name="20-_x.sh"),
    ),
    (
        "two hooks with one name in the guest",
        with_section(
            "hooks:\n  lean:\n    - script: common/90-seal.sh\n    - script: ztest/90-seal.sh\n"
        ),
        "spec.yaml:19: hooks.lean: common/90-seal.sh and ztest/90-seal.sh have the same name",
        lambda: HookPlan.of([_hook(name="90-seal.sh"), _hook(name="90-seal.sh")]),
    ),
    (
        "memory that is not whole MiB",
        with_section("vm:\n  memory: 4GB\n"),
        "spec.yaml:19: vm.memory: memory must be a whole number of MiB (4GiB, not 4GB)",
        lambda: VmConfig(name="x", disk=Path("/d"), memory=4 * 10**9),
    ),
    (
        "extra_args replacing what the factory sets",
        with_section("vm:\n  extra_args: [-m, 8G]\n"),
        "spec.yaml:19: vm.extra_args: -m conflicts with spec.vm.memory",
        lambda: check_extra_args(["-m", "8G"]),
    ),
    (
        "a fragment outside cloud-init/",
        GOOD.replace("    name: debian\n", "    name: debian\n  fragments: [../keys/x.yaml]\n"),
        "spec.yaml:15: cloud_init.fragments: must be a path inside cloud-init/",
        lambda: resolve_fragments(["../keys/x.yaml"]),
    ),
    (
        "a bootstrap package mmdebstrap would not take",
        bootstrap_spec(packages="['sudo vim']"),
        "spec.yaml:11: source.bootstrap.packages[0]: not a package name: 'sudo vim'",
        lambda: _bootstrap(packages=["sudo vim"]),
    ),
    (
        "a bootstrap suite that is not a suite name",
        bootstrap_spec(suite="Trixie!"),
        "spec.yaml:8: source.bootstrap.suite: 'Trixie!' is not allowed here",
        lambda: _bootstrap(suite="Trixie!"),
    ),
    (
        "no bootstrap components",
        bootstrap_spec(components="[]"),
        "spec.yaml:9: source.bootstrap.components: List should have at least 1 item",
        lambda: _bootstrap(components=[]),
    ),
    (
        "a PR branch whose golden name the store refuses",
        GOOD.replace(
            "  provider: distro\n",
            f"  provider: git\n  git:\n    url: https://github.com/openzfs/zfs\n"
            f"    branch: {'b' * 300}\n",
        ),
        "spec.yaml:20: zfs.git.branch: gives the golden name klab-golden-debian-bbb",
        lambda: check_leaf("klab-golden-debian-" + "b" * 300),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected", "late_check"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validate_refuses_what_seed_or_build_refuses(
    tmp_path: Path, text: str, expected: str, late_check: Callable[[], object]
) -> None:
    with pytest.raises(UsageError):
        late_check()  # the late check still refuses it (the behaviour validate must match)
    assert expected in spec_error(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            with_section(
                "hooks:\n  lean:\n    - script: common/90-seal.sh\n"
                "      env: {KLAB_DISTRO: other}\n"
            ),
            "spec.yaml:21: hooks.lean[0].env: KLAB_DISTRO is set by the factory from the spec",
        ),
        (
            with_section("seal:\n  keep: ['/var/a:/var/b']\n"),
            "spec.yaml:19: seal.keep[0]: '/var/a:/var/b' must be an absolute guest path",
        ),
        (
            GOOD.replace("name: debian\n", "name: 0day\n"),
            "spec.yaml:14: cloud_init.default_user.name: '0day' is not a portable user name",
        ),
        (
            GOOD.replace("https://images.example.test/", "http://[::1/"),
            "spec.yaml:7: source.cloud_image.url: not a valid URL: 'http://[::1/",
        ),
        (
            GOOD.replace("https://images.example.test/", "http://images.example.test:99999/"),
            "Port out of range",
        ),
        (
            GOOD.replace("https://images.example.test/", "https://user:secret@example.test/"),
            "URL carries credentials; they would be logged",
        ),
        (
            with_section("vm:\n  machine: q35,accel=kvm\n"),
            "spec.yaml:19: vm.machine: 'q35,accel=kvm' is not allowed here",
        ),
        (
            with_section("vm:\n  boot_timeout: 30d\n"),
            "spec.yaml:19: vm.boot_timeout: invalid duration '30d'",
        ),
        (
            with_section(f"vm:\n  boot_timeout: {'9' * 400}s\n"),
            "spec.yaml:19: vm.boot_timeout: a duration must be positive and at most a week",
        ),
        (
            GOOD.replace('release: "13"', 'release: "13"\ndescription: "tab\\there, esc \\e"'),
            "spec.yaml:5: description: control character U+001B is not allowed",
        ),
    ],
    ids=[
        "hook env redefines a common variable",
        "seal.keep path with ':' (KLAB_SEAL_KEEP is ':'-joined)",
        "user name useradd refuses",
        "unterminated IPv6 URL",
        "port out of range",
        "credentials in a URL",
        "QEMU sub-options smuggled into vm.machine",
        "unknown duration unit",
        "infinite duration",
        "ESC in the description",
    ],
)
def test_spec_refuses_values_that_would_fail_or_mislead_later(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in spec_error(tmp_path, text)


def test_a_multi_line_description_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace('release: "13"', 'release: "13"\ndescription: "two\\nlines"'))
    spec, _ = load_spec_file(path, env={})
    assert spec.description == "two\nlines"


def test_a_fragment_seed_would_refuse_is_refused_by_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fragment is read with the seed's own loader: no `#cloud-config`, no spec."""
    home = tmp_path / "home"
    home.mkdir()
    for part in ("hooks", "keys", "distros"):
        (home / part).symlink_to(project_root() / part)
    shutil.copytree(project_root() / "cloud-init", home / "cloud-init")
    (home / "cloud-init" / "extra.yaml").write_text("packages: [vim]\n")
    monkeypatch.setenv("IMAGEFACTORY_HOME", str(home))
    text = GOOD.replace("    name: debian\n", "    name: debian\n  fragments: [extra.yaml]\n")
    assert spec_error(tmp_path, text).startswith(
        "spec.yaml:15: cloud_init.fragments[0]: "
    ) and "must start with '#cloud-config'" in spec_error(tmp_path, text)
    (home / "cloud-init" / "extra.yaml").write_text("#cloud-config\npackages: [vim]\n")
    load_spec_file(tmp_path / "spec.yaml", env={})


@pytest.mark.parametrize("distro", all_distro_names())
@pytest.mark.parametrize("kind", ["lean", "ztest"])
def test_every_shipped_spec_that_validates_assembles_its_seed(
    distro: str, kind: str, tmp_path: Path
) -> None:
    resolved = load_distro(distro, lineage=kind, env={})
    key = SshKeyPair(tmp_path / "id", "ssh-ed25519 AAAAC3Nza test", "imagefactory-build-x-1")
    seed = seed_files(resolved.spec, hook_plan(resolved), key)
    assert b"#cloud-config" in seed.as_dict()["user-data"]
