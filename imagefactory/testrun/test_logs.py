"""Find each test's own output (stdout, stderr, merged) in a brought-home results tree."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def locate_test_logs(results_dir: Path, names: Iterable[str]) -> dict[str, Path]:
    """Find each test's output directory in a brought-home `test_results/<ts>` tree.

    test-runner names these dirs differently per version (2.4+: `output/<path minus the
    common prefix>/<test>`, section keys may carry `:Linux`; 2.2/2.3: the shortest unique
    trailing path), and the naming depends on the whole selection.  Rather than recompute
    it, look at what is there: a dir holding `merged`/`stdout` whose trailing components
    best match the test's name.
    """
    candidates: dict[str, list[tuple[tuple[str, ...], Path]]] = {}
    for marker in ("merged", "stdout", "stderr"):
        for file in results_dir.rglob(marker):
            rel = file.parent.relative_to(results_dir).parts
            parts = tuple(p.split(":", 1)[0] for p in rel if p != "output")
            if parts:
                entry = (parts, file.parent)
                bucket = candidates.setdefault(parts[-1], [])
                if entry not in bucket:
                    bucket.append(entry)
    found: dict[str, Path] = {}
    for name in names:
        wanted = tuple(name.split("/"))
        best: tuple[int, Path] | None = None
        for parts, directory in candidates.get(wanted[-1], []):
            common = 0
            for a, b in zip(reversed(parts), reversed(wanted), strict=False):
                if a != b:
                    break
                common += 1
            if best is None or common > best[0]:
                best = (common, directory)
        if best is not None:
            found[name] = best[1]
    return found
