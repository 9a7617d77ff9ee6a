"""The shipped CI files: valid for their engines, offline, and calling klab as klab parses it.

`ci/github/klab-rc.yml` is checked against the GitHub workflow schema that check-jsonschema
ships (`--builtin-schema vendor.github-workflows`), `ci/kubernetes/klab-shards.yaml` with
kubernetes-validate (its bundled schemas, `--strict`); both run without the network (inside
`unshare --net` where this user may create one).  Each validator is shown to reject a broken
copy, so a pass means something.  The klab command lines in the files are parsed by klab's
own argument parser: a renamed option fails here, not on the CI runners.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagefactory.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "ci" / "github" / "klab-rc.yml"
JOB = REPO / "ci" / "kubernetes" / "klab-shards.yaml"
BIN = Path(sys.executable).parent


def offline(argv: list[str]) -> list[str]:
    """`argv` in a network namespace of its own when one can be made (proves: no network)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--net", "true"], capture_output=True).returncode == 0:
        return [unshare, "--net", *argv]
    return argv


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
    return subprocess.run(
        offline([*argv, str(path)]), capture_output=True, text=True, timeout=300, check=False
    )


def check_job(path: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "kubernetes-validate"), "--strict", str(path)]
    return subprocess.run(offline(argv), capture_output=True, text=True, timeout=300, check=False)


def test_the_workflow_is_valid_for_github_actions() -> None:
    done = check_workflow(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout


def test_the_workflow_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = WORKFLOW.read_text().replace(
        "    runs-on: [self-hosted, linux, klab]\n", "    runs_on: x\n"
    )
    broken.write_text(text)
    done = check_workflow(broken)
    assert done.returncode == 1, done.stdout


def test_the_indexed_job_is_valid_for_kubernetes() -> None:
    done = check_job(JOB)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout + done.stderr


def test_the_job_validator_rejects_a_broken_job(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(JOB.read_text().replace("completions: 4", "completions: four"))
    assert check_job(broken).returncode != 0


def test_the_workflow_builds_once_runs_a_matrix_and_merges() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    jobs = flow["jobs"]
    assert set(jobs) == {"goldens", "shard", "merge"}
    matrix = jobs["shard"]["strategy"]["matrix"]
    assert matrix["shard"] == list(range(1, int(flow["env"]["SHARDS"]) + 1))
    assert jobs["shard"]["needs"] == "goldens" and jobs["merge"]["needs"] == "shard"
    assert jobs["merge"]["if"].startswith("always()")
    steps = " ".join(s.get("run", "") + str(s.get("uses", "")) for s in jobs["merge"]["steps"])
    assert "klab results merge" in steps and "junit" in steps.lower()
    shard_runs = " ".join(s.get("run", "") for s in jobs["shard"]["steps"])
    assert "--shard ${{ matrix.shard }}/$SHARDS --durations durations.json" in shard_runs


def test_the_job_runs_one_shard_per_pod() -> None:
    job = yaml.safe_load(JOB.read_text())
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["SHARDS"]) == spec["completions"]
    assert '--shard "$((JOB_COMPLETION_INDEX + 1))/$SHARDS"' in container["args"][0]
    assert container["securityContext"]["privileged"] is True


def klab_lines(text: str) -> list[str]:
    """The klab command lines of a CI file, folded and with CI expressions filled in."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    text = re.sub(r"\$\{\{[^}]*\}\}", "1", text)
    text = text.replace('"$((JOB_COMPLETION_INDEX + 1))/$SHARDS"', "1/4").replace("$SHARDS", "4")
    for name, value in {"SUITE": "quick", "DISTRO": "debian13", "KLAB_STORE": "zfs:tank/k"}.items():
        text = text.replace(f'"${name}"', value)
    lines = re.findall(r"(?:\.venv/bin/|exec )klab ([^\n|;&]*(?:\n\s+--[^\n]*)*)", text)
    return [" ".join(line.split()) for line in lines]


@pytest.mark.parametrize("path", [WORKFLOW, JOB], ids=["github", "kubernetes"])
def test_every_klab_command_line_parses(path: Path) -> None:
    parser = build_parser()
    lines = klab_lines(path.read_text())
    assert lines, "no klab command found"
    for line in lines:
        words = shlex.split(line.replace("\\", ""))
        words = [w for w in words if not w.startswith("shards/")] or words
        if words[:2] == ["results", "merge"]:
            words.insert(2, "RUNDIR")
        try:
            parser.parse_args(words)
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"klab {line}: refused ({exc.code})") from None
