"""Drift between two fingerprints of one distro's golden: which measurements moved, how far.

A metric drifts when its relative change exceeds its threshold: ±25 % by default, or the
first `PATTERN=RATIO` rule whose glob matches the metric's name (`zio/*=50%`,
`duration/rsend/*=0.4`).  Two guards keep noise out: durations under `MIN_SECONDS` on both
sides are not compared (a 0.2 s test that takes 0.3 s is not news), and fingerprints from
different accelerators are never compared at all (TCG is many times slower than KVM: every
figure would "drift").  Changed facts (kernel, OpenZFS, module parameters) are listed as the
likely explanation, never as drift themselves.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagefactory.errors import UsageError

DEFAULT_THRESHOLD = 0.25
MIN_SECONDS = 1.0
"""Durations below this on both sides are too short to compare."""


@dataclass(frozen=True)
class Rule:
    pattern: str
    ratio: float


def parse_rule(text: str) -> Rule:
    """`PATTERN=RATIO`: `zio/*=50%` or `duration/*=0.4` (a fraction, or a percentage)."""
    pattern, sep, value = text.partition("=")
    if not sep or not pattern.strip():
        raise ValueError(f"{text!r} is not PATTERN=RATIO (zio/*=50%)")
    value = value.strip()
    try:
        ratio = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ValueError(f"{text!r}: {value!r} is not a ratio (0.4 or 40%)") from None
    if not math.isfinite(ratio) or not 0 < ratio <= 100:
        raise ValueError(f"{text!r}: the ratio must be above 0 and at most 100 (10,000 %)")
    return Rule(pattern.strip(), ratio)


@dataclass(frozen=True)
class Moved:
    metric: str
    before: float
    after: float
    threshold: float

    @property
    def change(self) -> float:
        return (self.after - self.before) / self.before if self.before else math.inf

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "before": _figure(self.metric, self.before),
            "after": _figure(self.metric, self.after),
            "change": _percent(self.change),
            "threshold": f"±{self.threshold * 100:.0f} %",
        }


@dataclass
class Drift:
    distro: str
    current: str | None
    against: str | None
    moved: list[Moved] = field(default_factory=list)
    compared: int = 0
    facts: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str | None = None
    """Why nothing was compared (no earlier fingerprint, another accelerator)."""

    @property
    def drifted(self) -> bool:
        return bool(self.moved)

    def to_json(self) -> dict[str, Any]:
        return {
            "distro": self.distro,
            "current": self.current,
            "against": self.against,
            "compared": self.compared,
            "moved": [m.to_json() for m in self.moved],
            "facts": {k: {"before": b, "after": a} for k, (b, a) in self.facts.items()},
            "note": self.note,
        }


def _figure(metric: str, value: float) -> str:
    if metric.endswith("hit_ratio"):
        return f"{value * 100:.1f} %"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def _percent(change: float) -> str:
    return "new" if math.isinf(change) else f"{change * 100:+.0f} %"


def threshold_for(metric: str, rules: Sequence[Rule]) -> float:
    for rule in rules:
        if fnmatch.fnmatchcase(metric, rule.pattern):
            return rule.ratio
    return DEFAULT_THRESHOLD


def _param_changes(before: object, after: object) -> dict[str, tuple[str | None, str | None]]:
    """The module parameters whose value differs, one by one (a few hundred are collected:
    the whole map in a table line would hide the one that moved); nothing when either
    build's run did not collect them (unknown is not a change)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return {}
    return {
        name: (before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def compare(before: dict[str, Any], after: dict[str, Any], rules: Sequence[Rule] = ()) -> Drift:
    """What moved from fingerprint `before` to `after` (same distro, same accelerator)."""
    drift = Drift(after["distro"], after.get("build_id"), before.get("build_id"))
    accel_before, accel_after = before["facts"].get("accel"), after["facts"].get("accel")
    if accel_before != accel_after:
        drift.note = (
            f"not compared: build {before.get('build_id')} ran under {accel_before}, "
            f"build {after.get('build_id')} under {accel_after}"
        )
        return drift
    for fact in ("kernel", "zfs_version"):
        b, a = before["facts"].get(fact), after["facts"].get(fact)
        if b != a:
            drift.facts[fact] = (b, a)
    params = _param_changes(
        before["facts"].get("module_params"), after["facts"].get("module_params")
    )
    for name, (b, a) in params.items():
        drift.facts[f"zfs module parameter {name}"] = (b, a)
    old, new = before["metrics"], after["metrics"]
    for metric in sorted(set(old) & set(new)):
        b, a = old[metric], new[metric]
        if not isinstance(b, (int, float)) or not isinstance(a, (int, float)):
            continue
        if metric.startswith("duration/") and b < MIN_SECONDS and a < MIN_SECONDS:
            continue
        drift.compared += 1
        limit = threshold_for(metric, rules)
        if b == 0:
            if a != 0:
                drift.moved.append(Moved(metric, float(b), float(a), limit))
            continue
        if abs(a - b) / abs(b) > limit:
            drift.moved.append(Moved(metric, float(b), float(a), limit))
    drift.moved.sort(key=lambda m: -abs(m.change) if not math.isinf(m.change) else -math.inf)
    return drift


def previous_of(
    fingerprints: Sequence[dict[str, Any]], current: dict[str, Any], against: str | None = None
) -> dict[str, Any] | None:
    """The fingerprint to compare `current` with: build `against`, else the newest earlier
    one of another build under the same accelerator."""
    if against is not None:
        for f in fingerprints:
            if f.get("build_id") == against:
                return f
        known = ", ".join(str(f.get("build_id")) for f in fingerprints) or "none"
        raise UsageError(
            f"no fingerprint of {current['distro']} build {against} (stored: {known})",
            hint=f"klab fingerprint capture {current['distro']} records the current golden's",
        )
    accel = current["facts"].get("accel")
    earlier = [
        f
        for f in fingerprints
        if f.get("build_id") != current.get("build_id")
        and f["facts"].get("accel") == accel
        and str(f.get("captured")) <= str(current.get("captured"))
    ]
    return earlier[-1] if earlier else None


def markdown(drifts: Sequence[Drift]) -> list[str]:
    """summary.md's drift section (informational: it never changes an exit status)."""
    lines = ["## Fingerprint drift (informational)", ""]
    for d in drifts:
        head = f"### {d.distro}: build `{d.current}`"
        lines += [head + (f" against `{d.against}`" if d.against else ""), ""]
        if d.note:
            lines += [d.note, ""]
            continue
        for fact, (b, a) in d.facts.items():
            lines.append(f"- {fact} changed: `{b}` → `{a}`")
        if d.moved:
            if d.facts:
                lines.append("")
            lines += ["| metric | before | now | change | threshold |", "|---|---|---|---|---|"]
            for m in d.moved:
                j = m.to_json()
                cells = (f"`{m.metric}`", j["before"], j["after"], j["change"], j["threshold"])
                lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"Nothing moved beyond its threshold ({d.compared} metrics compared).")
        lines.append("")
    return lines
