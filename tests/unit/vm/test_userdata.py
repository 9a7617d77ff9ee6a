"""The seed's user-data: fragment merging, the login policy, the runner, and cloud-init's schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagefactory.errors import SpecError
from imagefactory.paths import hooks_dir
from imagefactory.spec import all_distro_names, load_distro
from imagefactory.vm.fromspec import hook_plan, seed_files
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.seed import SshKeyPair
from imagefactory.vm.userdata import (
    GUEST_RUNNER,
    GUEST_STATE_DIR,
    GUEST_UNIT,
    UserDataInputs,
    build_cloud_config,
    load_fragment,
    merge,
    render_user_data,
    resolve_fragments,
)

KEY = SshKeyPair(Path("/nonexistent"), "ssh-ed25519 AAAAC3Nza-test imagefactory-build-t-1", "t-1")


def cloud_init_schema(user_data: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("cloud-init")
    if tool is None:
        pytest.skip("cloud-init is not installed (scripts/host-deps.sh installs it)")
    path = tmp_path / "user-data"
    path.write_text(user_data)
    return subprocess.run(
        [tool, "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )


def inputs(**overrides: Any) -> UserDataInputs:
    values: dict[str, Any] = {
        "default_user": "builder",
        "ssh_public_key": KEY.public_key,
        "build_key_comment": "imagefactory-build-t-1",
        "hooks": HookPlan.of(
            [
                Hook("20-b.sh", b"#!/bin/bash\necho b\n", 30, {"ANSWER": "42"}),
                Hook("10-a.sh", b"#!/bin/bash\necho a\n", 12.5),
            ]
        ),
    }
    values.update(overrides)
    return UserDataInputs(**values)


def files_by_path(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in config["write_files"]}


def test_merge_recurses_into_mappings_concatenates_lists_and_later_scalars_win() -> None:
    base = {"a": {"x": 1, "y": [1]}, "runcmd": [["one"]], "s": "old"}
    extra = {"a": {"y": [2], "z": 3}, "runcmd": [["two"]], "s": "new"}
    assert merge(base, extra) == {
        "a": {"x": 1, "y": [1, 2], "z": 3},
        "runcmd": [["one"], ["two"]],
        "s": "new",
    }
    assert base["runcmd"] == [["one"]]  # inputs are not modified


def test_a_fragment_must_be_a_cloud_config_mapping(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(SpecError, match="must start with '#cloud-config'"):
        load_fragment(script)
    listing = tmp_path / "list.yaml"
    listing.write_text("#cloud-config\n- a\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_fragment(listing)


def test_fragment_names_cannot_leave_the_cloud_init_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="outside"):
        resolve_fragments(["../etc/passwd"], tmp_path)
    assert resolve_fragments(["x.yaml"], tmp_path) == [(tmp_path / "x.yaml").resolve()]


def test_the_default_user_logs_in_by_the_build_key_only() -> None:
    config = build_cloud_config(inputs())
    (user,) = config["users"]
    assert user["name"] == "builder"
    assert user["lock_passwd"] is True
    assert user["ssh_authorized_keys"] == [KEY.public_key]
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert config["ssh_pwauth"] is False
    assert not {"passwd", "hashed_passwd", "plain_text_passwd"} & set(user)
    assert "chpasswd" not in config and "password" not in config


def test_no_sudo_when_the_spec_says_so() -> None:
    (user,) = build_cloud_config(inputs(sudo=False))["users"]
    assert "sudo" not in user


def test_the_runner_its_unit_and_every_hook_travel_in_write_files() -> None:
    files = files_by_path(build_cloud_config(inputs()))
    runner = (hooks_dir() / "runner" / "run-hooks.sh").read_text()
    assert files[GUEST_RUNNER]["content"] == runner
    assert files[GUEST_RUNNER]["permissions"] == "0755"
    assert "ExecStart=/usr/local/libexec/imagefactory/run-hooks" in files[GUEST_UNIT]["content"]
    assert files[f"{GUEST_STATE_DIR}/hooks.list"]["content"] == "12.5\t10-a.sh\n30\t20-b.sh\n"
    assert files[f"{GUEST_STATE_DIR}/hooks/10-a.sh"]["content"] == "#!/bin/bash\necho a\n"
    assert files[f"{GUEST_STATE_DIR}/hooks/20-b.env"]["content"] == "ANSWER=42\n"
    assert f"{GUEST_STATE_DIR}/hooks/10-a.env" not in files
    env = files[f"{GUEST_STATE_DIR}/runner.env"]["content"]
    assert "IMAGEFACTORY_BUILD_KEY=imagefactory-build-t-1\n" in env
    assert "IMAGEFACTORY_DEFAULT_USER=builder\n" in env


def test_binary_hook_content_is_base64_encoded() -> None:
    plan = HookPlan.of([Hook("10-bin.sh", b"\xff\xfe\x00binary", 5)])
    files = files_by_path(build_cloud_config(inputs(hooks=plan)))
    entry = files[f"{GUEST_STATE_DIR}/hooks/10-bin.sh"]
    assert entry["encoding"] == "b64" and entry["content"] == "//4AYmluYXJ5"


def test_spec_fragments_merge_between_base_and_runner(tmp_path: Path) -> None:
    fragment = tmp_path / "extra.yaml"
    fragment.write_text("#cloud-config\npackages: [jq]\nruncmd:\n  - [echo, from-fragment]\n")
    config = build_cloud_config(inputs(fragments=[fragment]))
    assert config["packages"] == ["jq"]
    # The runner is started last, after anything a fragment runs.
    assert config["runcmd"][0] == ["echo", "from-fragment"]
    start_runner = ["systemctl", "start", "--no-block", "imagefactory-hooks.service"]
    assert config["runcmd"][-1] == start_runner


def test_rendered_user_data_round_trips_and_keeps_scripts_readable() -> None:
    config = build_cloud_config(inputs())
    text = render_user_data(config)
    assert text.startswith("#cloud-config\n")
    assert yaml.safe_load(text) == config
    assert "  content: |\n    #!/bin/bash\n    echo a\n" in text


def test_user_data_passes_cloud_init_schema(tmp_path: Path) -> None:
    result = cloud_init_schema(render_user_data(build_cloud_config(inputs())), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_rejects_a_broken_user_data(tmp_path: Path) -> None:
    """The check has teeth: a wrongly typed key fails it."""
    result = cloud_init_schema("#cloud-config\nusers: 5\n", tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("kind", ["lean", "ztest"])
@pytest.mark.parametrize("distro", all_distro_names())
def test_every_distros_user_data_passes_cloud_init_schema(
    distro: str, kind: str, tmp_path: Path
) -> None:
    resolved = load_distro(distro, lineage=kind, env={})
    seed = seed_files(resolved.spec, hook_plan(resolved), KEY)
    result = cloud_init_schema(seed.user_data, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    user = yaml.safe_load(seed.user_data)["users"][0]
    assert user["name"] == resolved.spec.cloud_init.default_user.name
