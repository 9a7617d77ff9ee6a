"""The rows the history hands out: one distro's part of a run, one test's result."""

from __future__ import annotations

from dataclasses import dataclass


def result_key(test: str, identifier: str) -> str:
    """The key a test has in its run (`TestResult.key`): `(identifier)` for setup/cleanup."""
    return test if not identifier else f"{test} ({identifier})"


@dataclass(frozen=True, slots=True)
class DistroRow:
    """One distro's part of one run, as `klab history` lists it."""

    run_id: str
    started: str
    selection: str
    distro: str
    status: str
    golden_build_id: str | None
    zfs_version: str | None
    suite_version: str | None
    duration_s: float | None
    passed: int
    skipped: int
    failed: int
    killed: int
    absent: int
    artifacts_dir: str | None
    message: str | None
    kernel: str | None = None
    accel: str | None = None
    lineage: str | None = None
    baseline_digest: str | None = None


DISTRO_COLUMNS = """r.run_id, r.started, r.selection, d.distro, d.status, d.golden_build_id,
    d.zfs_version, d.suite_version, d.duration_s, d.passed, d.skipped, d.failed, d.killed,
    d.absent, d.artifacts_dir, d.message, d.kernel, d.accel, d.lineage, d.baseline_digest"""
"""The SELECT list of `DistroRow`, in field order (runs `r`, distro_results `d`)."""


@dataclass(frozen=True, slots=True)
class TestRow:
    """One test's result in one run on one distro."""

    __test__ = False

    run_id: str
    started: str
    distro: str
    zfs_version: str | None
    test: str
    identifier: str
    result: str
    duration_s: float | None
    reran: bool
    unexpected: bool
    log_path: str | None
    verdict: str | None = None
    attempts: tuple[str, ...] = ()
    """Every attempt's result word, first to last; empty when only their count is known."""
    reason: str | None = None

    @property
    def key(self) -> str:
        return result_key(self.test, self.identifier)
