"""'Already done' markers keyed by the hash of a stage's inputs (never by names or times).

A rerun of a failed build computes each stage's input hash again; a marker with the same
hash means the stage's output is still valid and can be reused.  Markers are written
atomically after the stage's output is complete, so a crash never leaves a marker for
half-done work.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from imagefactory.atomic import write_atomic
from imagefactory.builder.statedir import markers_dir


def inputs_hash(**inputs: Any) -> str:
    canonical = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


class Markers:
    def __init__(self, leaf: str, directory: Path | None = None) -> None:
        self.directory = directory or markers_dir(leaf)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, stage: str) -> Path:
        return self.directory / f"{stage}.json"

    def get(self, stage: str, key: str) -> dict[str, Any] | None:
        """The outputs recorded for `stage` if its inputs hash is `key`, else None."""
        try:
            data = json.loads(self._path(stage).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("inputs") != key:
            return None
        outputs = data.get("outputs")
        return outputs if isinstance(outputs, dict) else None

    def put(self, stage: str, key: str, outputs: dict[str, Any]) -> None:
        record = {"inputs": key, "outputs": outputs}
        write_atomic(self._path(stage), json.dumps(record, sort_keys=True).encode())

    def clear(self, stage: str) -> None:
        self._path(stage).unlink(missing_ok=True)
