"""`klab status` as the lab's documentation shows it, from real goldens, history and exporter.

Real parts: a files store with goldens published from real images (each carrying the guest
facts in its provenance, as a build writes them), a SQLite history written through
`History`, an exporter address file naming a socket that really listens on loopback (or one
that does not), and the CLI run as a subprocess in a fresh state directory -- another host,
as far as the build's state goes: everything shown comes from the store and the history.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.store.guest_facts import guest_summary
from tests.fixtures.stores import MIB, make_raw_image

REPO = Path(__file__).resolve().parents[3]
VERSIONS = {"centos": "2.2.9", "rocky": "2.2.9", "fedora": "2.4.1", "debian": "2.3.9",
            "ubuntu": "2.2.2"}  # fmt: skip
FACTS = {"ksh": "/usr/bin/ksh", "zfs_tests_sh": "/usr/share/zfs/zfs-tests.sh", "vdevs": 8,
         "vdev_count": 8, "zfs_source": "https://github.com/openzfs/zfs"}  # fmt: skip
PR_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "IMAGEFACTORY_STATE": str(state),
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    env.pop("KLAB_STATE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", "status", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


class Lab:
    """A files store and a state directory, goldens published into the store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = FileStore(root / "store")
        self.state = root / "state"
        self.state.mkdir()
        self.image = make_raw_image(root / "golden.raw", 1, size=4 * MIB)
        self.built_at = (datetime.now(UTC) - timedelta(days=2, hours=3)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )

    def publish(
        self, leaf: str, lineage: str, *, zfs: str | None = None, facts: dict[str, object] | None
    ) -> None:
        build_id = f"b{abs(hash(leaf)) % 10**6}"
        volume = self.store.create_build_volume(leaf, build_id, 4 * MIB)
        volume = self.store.write_image(volume, self.image, source_format="raw")
        provenance = Provenance(
            distro=leaf,
            lineage=lineage,
            build_id=build_id,
            built_at=self.built_at,
            zfs_version=zfs,
            guest_facts=guest_summary(facts) if facts is not None else None,
        )
        self.store.publish(volume, provenance)

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = cli("--store", self.store.spec, *args, state=self.state)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        return proc


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


@pytest.fixture
def listening() -> Iterator[str]:
    """HOST:PORT of a socket that accepts connections, like a serving exporter's."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def ready_lab(lab: Lab) -> None:
    for short, version in VERSIONS.items():
        lab.publish(f"klab-ztest-{short}", "ztest", zfs=f"{version}-1", facts=FACTS)
    lab.publish(
        "klab-ztest-debian-pr-12345",
        "ztest",
        zfs="2.4.99-1",
        facts={**FACTS, "zfs_commit": PR_COMMIT},
    )
    lab.publish("klab-golden-debian", "lean", facts=None)


def record_runs(state: Path) -> None:
    # Imported here: the history builder needs pydantic, which the ZFS-host guest (it runs
    # this folder's zfs tests) does not have; these tests are not among them.
    from tests.unit.testrun.history_builder import HistoryBuilder, t

    with HistoryBuilder.create(state / "history.sqlite") as history:
        history.run("20261201T0300Z-old", {"debian13": [t("a/x", "FAIL")]})
        history.run(
            "20261202T0300Z-new",
            {
                "debian13": [t("a/x"), t("a/y"), t("a/z", "FAIL", "PASS")],
                "fedora44": [t("a/x"), t("a/y", "FAIL"), t("a/z", "SKIP")],
            },
        )


def test_a_ready_lab_reads_as_documented(lab: Lab, listening: str) -> None:
    ready_lab(lab)
    record_runs(lab.state)
    (lab.state / "metrics.addr").write_text(listening + "\n")

    out = lab.status().stdout

    zfs = "ksh, zfs-tests.sh, vdev images ✅ (built 2d ago)"
    absent = [f"    {d}: absent ❌ (klab-golden-{d})" for d in ("centos", "rocky", "fedora")]
    assert out.splitlines() == [
        "=== klab status ===",
        f"store: {lab.store.spec}",
        "Lineages:",
        "  klab-golden-* : 1/5 ready",
        *absent,
        "    debian: ready ✅ (built 2d ago)",
        "    ubuntu: absent ❌ (klab-golden-ubuntu)",
        "  klab-ztest-* : 5/5 ready",
        f"    centos: zfs-2.2.9-1, {zfs}",
        f"    rocky: zfs-2.2.9-1, {zfs}",
        f"    fedora: zfs-2.4.1-1, {zfs}",
        f"    debian: zfs-2.3.9-1, {zfs}",
        f"      pr-12345: zfs-2.4.99-1, {zfs.removesuffix(')')}; commit 0123456789ab)",
        f"    ubuntu: zfs-2.2.2-1, {zfs}",
        "Observability:",
        f"  exporter: active ({listening})",
        "  last run: 20261202T0300Z-new (suite=quick): 1 flaky, 3 pass, 1 skip,"
        " 1 unexpected-failure",
        "",
        # As root (`sudo klab status`) the hint is typed with sudo, as documented.
        f"Try: {'sudo ' if os.geteuid() == 0 else ''}klab test all --suite quick",
    ]


def test_json_carries_the_same_facts(lab: Lab, listening: str) -> None:
    ready_lab(lab)
    record_runs(lab.state)
    (lab.state / "metrics.addr").write_text(listening + "\n")

    facts = json.loads(lab.status("--json").stdout)

    lean, ztest = facts["lineages"]
    assert (lean["pattern"], lean["ready"], lean["total"]) == ("klab-golden-*", 1, 5)
    assert (ztest["pattern"], ztest["ready"], ztest["total"]) == ("klab-ztest-*", 5, 5)
    rows = ztest["goldens"]
    assert [r["distro"] for r in rows] == ["centos", "rocky", "fedora", "debian", "ubuntu"]
    debian = rows[3]
    assert debian["zfs_version"] == "2.3.9-1" and debian["age"] == "2d"
    assert (debian["ksh"], debian["zfs_tests_sh"], debian["vdevs"]) == (True, True, 8)
    assert [(pr["golden"], pr["commit"], pr["ready"]) for pr in debian["prs"]] == [
        ("klab-ztest-debian-pr-12345", PR_COMMIT, True)
    ]
    assert facts["exporter"] == {"state": "active", "address": listening}
    assert facts["last_run"]["run_id"] == "20261202T0300Z-new"
    assert facts["last_run"]["verdicts"] == {
        "flaky": 1,
        "pass": 3,
        "skip": 1,
        "unexpected-failure": 1,
    }
    assert facts["last_run"]["distros"] == {"debian13": "passed", "fedora44": "failed"}


def test_what_is_missing_is_shown_and_nothing_is_greener_than_the_facts(lab: Lab) -> None:
    lab.publish("klab-ztest-centos", "ztest", zfs="2.2.9-1", facts={**FACTS, "ksh": None})
    lab.publish("klab-ztest-rocky", "ztest", zfs="2.2.9-1", facts={**FACTS, "vdevs": 7})
    lab.publish("klab-ztest-fedora", "ztest", zfs="2.4.1-1", facts=None)  # an older build
    lab.publish("klab-ztest-debian", "ztest", zfs="2.3.9-1", facts=FACTS)
    bad = lab.store.root / "klab-ztest-debian.json"
    bad.chmod(0o644)
    bad.write_text("[1, 2]")
    # An address file left behind by an exporter that is gone: nothing listens there.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        stale = f"127.0.0.1:{closed.getsockname()[1]}"
    (lab.state / "metrics.addr").write_text(stale)

    lines = lab.status().stdout.splitlines()

    assert "  klab-ztest-* : 0/5 ready" in lines
    row = {line.split(":")[0].strip(): line for line in lines if line.startswith("    ")}
    assert row["centos"].endswith("vdev images ❌ (built 2d ago; ksh missing)")
    assert row["rocky"].endswith("vdev images ❌ (built 2d ago; vdev images 7/8)")
    assert "❌" in row["fedora"] and "guest facts not recorded" in row["fedora"]
    assert row["debian"].startswith("    debian: damaged: ") and row["debian"].endswith(
        "❌ (klab-ztest-debian)"
    )
    assert row["ubuntu"] == "    ubuntu: absent ❌ (klab-ztest-ubuntu)"
    assert f"  exporter: not answering (stale address file) ({stale})" in lines
    assert "  last run: none (no test history yet)" in lines
    assert not any(line.startswith("Try:") for line in lines)


def test_an_empty_history_and_no_exporter(lab: Lab) -> None:
    from tests.unit.testrun.history_builder import HistoryBuilder

    HistoryBuilder.create(lab.state / "history.sqlite").history.close()
    lines = lab.status().stdout.splitlines()
    assert "  exporter: not running" in lines
    assert "  last run: none (the test history holds no runs)" in lines


@pytest.mark.parametrize("content", ["", "no-port", "127.0.0.1:99999", "[::1", "\x00" * 50])
def test_a_bad_address_file_is_named_never_a_traceback(lab: Lab, content: str) -> None:
    (lab.state / "metrics.addr").write_text(content)
    line = next(x for x in lab.status().stdout.splitlines() if x.startswith("  exporter:"))
    assert "bad address file" in line and "active" not in line
