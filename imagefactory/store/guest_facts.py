"""The guest facts `klab status` shows, as the golden's provenance keeps them (`guest_facts`).

The seal check reads them from the sealed guest at build time (builder/seal_check.py);
they travel in the provenance so that any host reading the store sees them, not only the
one that ran the build.  This codec is all `klab status` needs of them, so it imports
nothing beyond json: the status must start fast.
"""

from __future__ import annotations

import json
from typing import Any

_SUMMARY_FLAGS = ("ksh", "zfs_tests_sh")
_SUMMARY_COUNTS = ("vdevs", "vdev_count")
_SUMMARY_TEXTS = ("zfs_commit", "zfs_source")
_SUMMARY_TEXT_MAX = 200


def guest_summary(facts: dict[str, Any]) -> str | None:
    """The provenance value for a build's facts (compact JSON), None when the guest recorded
    none of them (a lean golden)."""
    summary: dict[str, object] = {}
    for key in _SUMMARY_FLAGS:
        if key in facts:
            summary[key] = bool(facts[key])
    for key in _SUMMARY_COUNTS:
        if type(facts.get(key)) is int:
            summary[key] = facts[key]
    for key in _SUMMARY_TEXTS:
        value = facts.get(key)
        if isinstance(value, str) and value.isprintable() and value:
            summary[key] = value[:_SUMMARY_TEXT_MAX]
    if not summary:
        return None
    return json.dumps(summary, sort_keys=True, separators=(",", ":"))


def read_guest_summary(text: str | None) -> dict[str, Any]:
    """Inverse of `guest_summary`, for whatever a store holds: a value that is not what
    `guest_summary` writes (an old golden, a forged property) reads as unknown, never raises."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    summary: dict[str, Any] = {}
    for key in _SUMMARY_FLAGS:
        if type(data.get(key)) is bool:
            summary[key] = data[key]
    for key in _SUMMARY_COUNTS:
        if type(data.get(key)) is int and data[key] >= 0:
            summary[key] = data[key]
    for key in _SUMMARY_TEXTS:
        value = data.get(key)
        if isinstance(value, str) and value.isprintable():
            summary[key] = value[:_SUMMARY_TEXT_MAX]
    return summary
