"""The CLI starts fast: building its parser loads none of the heavy libraries.

`klab --help`, `klab status` and `klab history` were 14x a bare interpreter start because
building the parser imported requests, rich, pydantic, qemu.qmp and pycdlib for every
command.  A timing assertion would be flaky; this checks the cause instead, in a fresh
interpreter (a real subprocess: this test process has long imported them all).  The speed
itself is measured by bench/cli_start.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOG = Path(__file__).resolve().parents[1] / "testrun" / "logs" / "zts-rerun-maybes.log"
HEAVY = ("requests", "rich", "pydantic", "qemu", "pycdlib", "structlog", "hcl2", "yaml")

PROBE = """
import json, sys
{code}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


def loaded_by(code: str) -> set[str]:
    """Top-level packages a fresh interpreter has loaded after running `code`."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_and_building_every_parser_loads_no_heavy_library() -> None:
    loaded = loaded_by("import imagefactory.cli as cli\ncli.build_parser()")
    assert "imagefactory" in loaded  # the probe did import it
    assert sorted(loaded & set(HEAVY)) == []


def test_the_probe_sees_a_heavy_import_when_there_is_one() -> None:
    # The check above can fail: a command that needs pydantic does load it.
    loaded = loaded_by("from imagefactory.spec.loader import load_distro\nload_distro('debian')")
    assert {"pydantic", "yaml"} <= loaded


def test_help_and_version_run_without_the_heavy_libraries() -> None:
    for argv in (["--help"], ["--version"], ["history", "--help"], ["status", "--help"]):
        code = (
            "import imagefactory.cli as cli\n"
            "try:\n"
            f"    cli.main({argv!r})\n"
            "except SystemExit as exc:\n"
            "    assert exc.code == 0, exc.code\n"
        )
        loaded = loaded_by(code)
        assert sorted(loaded & set(HEAVY)) == [], argv


def test_history_reads_a_real_history_without_pydantic_structlog_or_network(
    tmp_path: Path,
) -> None:
    """`klab history` reads SQLite and draws a table: no spec models, no structlog (and its
    asyncio), no HTTP.  The history is a real one, recorded by `klab results judge`."""
    env = {**os.environ, "IMAGEFACTORY_STATE": str(tmp_path)}
    record = [sys.executable, "-m", "imagefactory", "results", "judge", str(LOG)]
    record += ["--no-baseline", "--distro", "debian13", "--record"]
    subprocess.run(record, env=env, capture_output=True, check=True, timeout=120)
    assert (tmp_path / "history.sqlite").is_file()
    for argv in (["history"], ["history", "--flaky"]):
        code = (
            "import os\n"
            f"os.environ['IMAGEFACTORY_STATE'] = {str(tmp_path)!r}\n"
            "import imagefactory.cli as cli\n"
            f"assert cli.main({argv!r}) == 0\n"
        )
        loaded = loaded_by(code)
        assert "sqlite3" in loaded  # it did read the history
        unwanted = {"pydantic", "structlog", "asyncio", "requests", "qemu", "pycdlib", "hcl2"}
        assert sorted(loaded & unwanted) == [], argv


def test_structlog_imported_after_configuration_is_configured_and_leaves_rich_out() -> None:
    """configure_logging defers structlog to its first import; that import is configured
    (JSON lines, redaction) and does not drag rich in; rich still imports afterwards."""
    code = (
        "import sys\n"
        "from imagefactory.log import configure_logging\n"
        "configure_logging(0, json_lines=True)\n"
        "assert 'structlog' not in sys.modules\n"
        "import structlog\n"
        "assert 'rich' not in sys.modules\n"
        "structlog.get_logger('probe').warning('probe.event', url='https://u:secret@m/x')\n"
        "import rich.table\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    event = json.loads(proc.stderr.strip().splitlines()[-1])
    assert event["event"] == "probe.event" and event["level"] == "warning"
    assert event["url"] == "https://u:***@m/x"


def test_status_reads_a_real_store_and_history_without_pydantic_or_structlog(
    tmp_path: Path,
) -> None:
    """`klab status` shows names, provenance and the last run: it reads the spec files
    without the models (spec/index.py), a files store holding a real golden with guest
    facts, and a real history -- no pydantic, no structlog (and its asyncio), no HTTP."""
    from imagefactory.store.base import Provenance
    from imagefactory.store.files import FileStore
    from imagefactory.store.guest_facts import guest_summary
    from tests.fixtures.stores import MIB, make_raw_image

    store = FileStore(tmp_path / "store")
    volume = store.create_build_volume("klab-ztest-debian", "b1", 4 * MIB)
    image = make_raw_image(tmp_path / "golden.raw", 1, size=4 * MIB)
    volume = store.write_image(volume, image, source_format="raw")
    facts = {"ksh": True, "zfs_tests_sh": True, "vdevs": 8, "vdev_count": 8}
    provenance = Provenance(
        distro="debian13", lineage="ztest", build_id="b1", zfs_version="2.3.9-1",
        guest_facts=guest_summary(facts),
    )  # fmt: skip
    store.publish(volume, provenance)
    env = {**os.environ, "IMAGEFACTORY_STATE": str(tmp_path / "state")}
    record = [sys.executable, "-m", "imagefactory", "results", "judge", str(LOG)]
    record += ["--no-baseline", "--distro", "debian13", "--record"]
    subprocess.run(record, env=env, capture_output=True, check=True, timeout=120)
    code = (
        "import contextlib, io, json, os\n"
        f"os.environ['IMAGEFACTORY_STATE'] = {str(tmp_path / 'state')!r}\n"
        "import imagefactory.cli as cli\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert cli.main(['status', '--json', '--store', {store.spec!r}]) == 0\n"
        "ztest = json.loads(out.getvalue())['lineages'][1]['goldens']\n"
        "assert [r['ready'] for r in ztest] == [False, False, False, True, False], ztest\n"
    )
    loaded = loaded_by(code)
    assert {"sqlite3", "yaml"} <= loaded  # it did read the history and the specs
    unwanted = {"pydantic", "structlog", "asyncio", "requests", "qemu", "pycdlib", "hcl2"}
    assert sorted(loaded & unwanted) == []
