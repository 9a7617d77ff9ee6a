"""The runner skips a step whose output is cached under its key (`key`, `restore`), records
it as `cached`, and still ends it with the others; a step without a key, or whose key has
nothing cached, runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from imagefactory.builder.steps import Step, StepRunner


@dataclass
class Ctx:
    events: list[str] = field(default_factory=list)
    cache: dict[str, str] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)


class Cached:
    """Produces `value`; keyed by it, so a second run finds it in `ctx.cache`."""

    def __init__(self, name: str, key: str | None) -> None:
        self.name = name
        self._key = key

    def key(self, ctx: Ctx) -> str | None:
        return self._key

    def restore(self, ctx: Ctx, key: str) -> bool:
        if key not in ctx.cache:
            return False
        ctx.output[self.name] = ctx.cache[key]
        return True

    def run(self, ctx: Ctx) -> None:
        ctx.events.append(f"run {self.name}")
        ctx.output[self.name] = f"made by {self.name}"
        if self._key is not None:
            ctx.cache[self._key] = ctx.output[self.name]

    def cleanup(self, ctx: Ctx) -> None:
        ctx.events.append(f"cleanup {self.name}")


class Plain:
    name = "plain"

    def run(self, ctx: Ctx) -> None:
        ctx.events.append("run plain")

    def cleanup(self, ctx: Ctx) -> None:
        ctx.events.append("cleanup plain")


def test_a_step_cached_under_its_key_is_skipped_and_reported_cached() -> None:
    ctx = Ctx(cache={"k1": "from the cache"})
    steps: list[Step[Ctx]] = [Cached("fetch", "k1"), Plain()]
    report = StepRunner(steps).run(ctx)
    assert ctx.output["fetch"] == "from the cache"
    assert "run fetch" not in ctx.events
    assert [(t.name, t.status) for t in report.timings] == [("fetch", "cached"), ("plain", "done")]
    # Cached or not, a started step is ended with the rest (reverse order).
    assert ctx.events[-2:] == ["cleanup plain", "cleanup fetch"]


def test_a_key_with_nothing_cached_runs_and_the_next_run_finds_it() -> None:
    ctx = Ctx()
    first = StepRunner([Cached("fetch", "k1")]).run(ctx)
    assert [t.status for t in first.timings] == ["done"]
    ctx.events.clear()
    second = StepRunner([Cached("fetch", "k1")]).run(ctx)
    assert [t.status for t in second.timings] == ["cached"]
    assert ctx.events == ["cleanup fetch"]


def test_a_step_without_a_key_always_runs() -> None:
    ctx = Ctx(cache={"None": "never used"})
    steps: list[Step[Ctx]] = [Cached("fetch", None), Plain()]
    report = StepRunner(steps).run(ctx)
    assert [t.status for t in report.timings] == ["done", "done"]
    assert ctx.output["fetch"] == "made by fetch"
