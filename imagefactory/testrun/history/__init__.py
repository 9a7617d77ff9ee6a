"""The test history: every run, per distro and per test, in one SQLite file.

The history answers the questions a matrix alone cannot: since when does this test fail on
Ubuntu, what changed since the last run of the same selection, which tests are flaky and
how often, which got slower, which to rerun.  It is stdlib sqlite3 (one file, no server)
with a versioned schema (`schema`).  The package's parts, one job each:

- `location`: where the file lives;  `schema`: the migrations;
- `connection`: opening for writing or read-only, and SQLite errors as one-line errors;
- `writing`: recording runs and judged outcomes;  `queries`: runs, a test's record;
- `flaky`: flake rates and severity;  `diff`: run-to-run changes;  `trends`: timing rises;
- `suggest`: baseline entries from flake rates;  `values`: command-line values;
- `database`: `History`, the object everyone uses.

The names below are imported on first use (PEP 562): `klab history` and the CLI's parser
import `values` or `location` without loading the judge, its pydantic baselines and rich.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagefactory.testrun.history.connection import connect, connect_readonly
    from imagefactory.testrun.history.database import History, new_run_id
    from imagefactory.testrun.history.diff import RunDiff, TestChange
    from imagefactory.testrun.history.flaky import FlakyStat, severity
    from imagefactory.testrun.history.location import DB_NAME, default_db_path, state_dir
    from imagefactory.testrun.history.queries import StoredRun, StoredTest
    from imagefactory.testrun.history.rows import DistroRow, TestRow
    from imagefactory.testrun.history.schema import (
        MIGRATIONS,
        SCHEMA_VERSION,
        Migration,
        migrate,
        schema_version,
    )
    from imagefactory.testrun.history.trends import TimingRise, TimingThresholds, timing_markdown
    from imagefactory.testrun.history.values import RunRef, parse_run_ref

_HOME: dict[str, str] = {
    "connect": "connection",
    "connect_readonly": "connection",
    "History": "database",
    "new_run_id": "database",
    "RunDiff": "diff",
    "TestChange": "diff",
    "FlakyStat": "flaky",
    "severity": "flaky",
    "DB_NAME": "location",
    "default_db_path": "location",
    "state_dir": "location",
    "StoredRun": "queries",
    "StoredTest": "queries",
    "DistroRow": "rows",
    "TestRow": "rows",
    "MIGRATIONS": "schema",
    "SCHEMA_VERSION": "schema",
    "Migration": "schema",
    "migrate": "schema",
    "schema_version": "schema",
    "TimingRise": "trends",
    "TimingThresholds": "trends",
    "timing_markdown": "trends",
    "RunRef": "values",
    "parse_run_ref": "values",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DistroRow",
    "FlakyStat",
    "History",
    "Migration",
    "RunDiff",
    "RunRef",
    "StoredRun",
    "StoredTest",
    "TestChange",
    "TestRow",
    "TimingRise",
    "TimingThresholds",
    "connect",
    "connect_readonly",
    "default_db_path",
    "migrate",
    "new_run_id",
    "parse_run_ref",
    "schema_version",
    "severity",
    "state_dir",
    "timing_markdown",
]
