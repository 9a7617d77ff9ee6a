"""The README's metrics table is the exporter's catalogue; the dashboards are the generator's.

The committed dashboard JSON must be what `dashboards/generate.py` writes today, and each
must survive a round-trip through grafana-foundation-sdk's models unchanged.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from imagefactory.metrics.catalogue import FAMILIES

REPO = Path(__file__).resolve().parents[3]
_ROW = re.compile(r"^\| `(klab_\w+)` \| (gauge|histogram) \| ([^|]*) \|")


def readme_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            labels = tuple(re.findall(r"`(\w+)`", match.group(3)))
            rows[match.group(1)] = (match.group(2), labels)
    return rows


def test_readme_table_matches_the_catalogue() -> None:
    table = readme_table()
    expected = {f.name: (f.kind, f.labels) for f in FAMILIES.values()}
    assert table == expected


def test_committed_dashboards_are_the_generators_output(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "dashboards" / "generate.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in (REPO / "dashboards" / "json").glob("*.json"))
    assert fresh == committed and len(fresh) == 6
    for name in fresh:
        assert (tmp_path / name).read_text() == (REPO / "dashboards" / "json" / name).read_text(), (
            f"dashboards/json/{name} is stale: run dashboards/generate.py"
        )


def test_dashboards_round_trip_through_the_sdk_models() -> None:
    register_default_plugins()
    for path in sorted((REPO / "dashboards" / "json").glob("*.json")):
        original = json.loads(path.read_text(encoding="utf-8"))
        model = Dashboard.from_json(original)
        again = json.loads(json.dumps(model, cls=JSONEncoder))
        assert again == original, path.name
        assert model.uid == path.stem
        assert model.panels, path.name
