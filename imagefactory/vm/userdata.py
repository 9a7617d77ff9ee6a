"""The seed's `#cloud-config`: repository fragments, the default user, and the hook runner.

Assembly order: `cloud-init/base.yaml`, the spec's fragments, the generated parts (user,
runner, hooks), then `cloud-init/hook-runner.yaml`, which starts the runner.  Mappings merge
key by key, lists concatenate (two fragments may both add `packages` or `runcmd`), and a
scalar from a later piece replaces an earlier one.  Guest shell stays in files under
`hooks/`; this module only packs those files into `write_files`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imagefactory.errors import SpecError
from imagefactory.paths import cloud_init_dir, hooks_dir
from imagefactory.vm.hookplan import HookPlan

CLOUD_CONFIG_HEADER = "#cloud-config"
BASE_FRAGMENT = "base.yaml"
RUNNER_FRAGMENT = "hook-runner.yaml"

# Where the runner and its inputs live in the guest (see hooks/runner/run-hooks.sh).
GUEST_STATE_DIR = "/var/lib/imagefactory"
GUEST_RUNNER = "/usr/local/libexec/imagefactory/run-hooks"
GUEST_UNIT = "/etc/systemd/system/imagefactory-hooks.service"
RUNNER_SCRIPT = "runner/run-hooks.sh"
RUNNER_UNIT = "runner/imagefactory-hooks.service"


@dataclass(frozen=True)
class UserDataInputs:
    """Everything the user-data depends on, as plain values (no spec needed)."""

    default_user: str
    ssh_public_key: str
    build_key_comment: str
    hooks: HookPlan
    sudo: bool = True
    fragments: Sequence[Path] = ()
    poweroff: bool = True
    cloud_init_root: Path = field(default_factory=cloud_init_dir)
    hooks_root: Path = field(default_factory=hooks_dir)


def load_fragment(path: Path) -> dict[str, Any]:
    """A fragment is a `#cloud-config` YAML mapping; anything else is a spec error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read cloud-init fragment {path}: {exc.strerror}") from exc
    if not text.startswith(CLOUD_CONFIG_HEADER):
        raise SpecError(
            f"{path}: a cloud-init fragment must start with '{CLOUD_CONFIG_HEADER}'",
            hint="only cloud-config fragments can be merged; scripts belong in hooks/",
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a cloud-init fragment must be a mapping")
    return data


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings recurse, lists concatenate, other values from `extra` win."""
    merged: dict[str, Any] = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            merged[key] = [*old, *value]
        else:
            merged[key] = value
    return merged


def _file_entry(path: str, content: bytes, permissions: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "owner": "root:root", "permissions": permissions}
    try:
        entry["content"] = content.decode("utf-8")
    except UnicodeDecodeError:
        entry["encoding"] = "b64"
        entry["content"] = base64.b64encode(content).decode("ascii")
    return entry


def _read_runner_file(root: Path, relative: str) -> bytes:
    path = root / relative
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the hook runner {path}: {exc.strerror}") from exc


def _runner_env(inputs: UserDataInputs) -> bytes:
    lines = [
        f"IMAGEFACTORY_DEFAULT_USER={inputs.default_user}",
        f"IMAGEFACTORY_BUILD_KEY={inputs.build_key_comment}",
        f"IMAGEFACTORY_POWEROFF={1 if inputs.poweroff else 0}",
    ]
    return ("\n".join(lines) + "\n").encode()


def runner_files(inputs: UserDataInputs) -> list[dict[str, Any]]:
    """`write_files` entries for the runner, its unit, its settings, and every hook."""
    hooks_state = f"{GUEST_STATE_DIR}/hooks"
    listing = "".join(f"{hook.timeout:g}\t{hook.name}\n" for hook in inputs.hooks.hooks)
    files = [
        _file_entry(GUEST_RUNNER, _read_runner_file(inputs.hooks_root, RUNNER_SCRIPT), "0755"),
        _file_entry(GUEST_UNIT, _read_runner_file(inputs.hooks_root, RUNNER_UNIT), "0644"),
        _file_entry(f"{GUEST_STATE_DIR}/runner.env", _runner_env(inputs), "0600"),
        _file_entry(f"{GUEST_STATE_DIR}/hooks.list", listing.encode(), "0644"),
    ]
    for hook in inputs.hooks.hooks:
        files.append(_file_entry(f"{hooks_state}/{hook.name}", hook.content, "0755"))
        if hook.env:
            env = "".join(f"{key}={value}\n" for key, value in hook.env.items())
            stem = hook.name.removesuffix(".sh")
            files.append(_file_entry(f"{hooks_state}/{stem}.env", env.encode(), "0600"))
    return files


def default_user_entry(inputs: UserDataInputs) -> dict[str, Any]:
    """The only login: the build's SSH key; the password stays locked."""
    user: dict[str, Any] = {
        "name": inputs.default_user,
        "shell": "/bin/bash",
        "lock_passwd": True,
        "ssh_authorized_keys": [inputs.ssh_public_key.strip()],
    }
    if inputs.sudo:
        user["sudo"] = "ALL=(ALL) NOPASSWD:ALL"
    return user


def build_cloud_config(inputs: UserDataInputs) -> dict[str, Any]:
    """The merged cloud-config mapping, in the assembly order described above."""
    config = load_fragment(inputs.cloud_init_root / BASE_FRAGMENT)
    for fragment in inputs.fragments:
        config = merge(config, load_fragment(fragment))
    generated = {"users": [default_user_entry(inputs)], "write_files": runner_files(inputs)}
    config = merge(config, generated)
    return merge(config, load_fragment(inputs.cloud_init_root / RUNNER_FRAGMENT))


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so scripts stay readable in `imagefactory seed` output."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_user_data(config: Mapping[str, Any]) -> str:
    body = yaml.dump(dict(config), Dumper=_Dumper, sort_keys=False, width=100)
    return f"{CLOUD_CONFIG_HEADER}\n{body}"


def resolve_fragments(names: Sequence[str], root: Path | None = None) -> list[Path]:
    """Spec fragment names are paths under cloud-init/; they must stay inside it."""
    base = (root if root is not None else cloud_init_dir()).resolve()
    paths = []
    for name in names:
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise SpecError(f"cloud_init.fragments: {name!r} is outside {base}")
        paths.append(path)
    return paths
