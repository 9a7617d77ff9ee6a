"""Property-based tests of the spec loader (YAML and HCL): hostile input never escapes as a
traceback, only as a SpecError or UsageError (exit 2).

Inputs are random bytes and text, and a valid spec with hostile pieces spliced into it:
anchors, aliases, merge keys, tags, deep nesting, huge scalars and numbers, control
characters, calls and interpolations.  Each case runs the whole door from disk to a spec
(`load_spec_file`, the layer check and the distro-name lookup) in a forked child under a
generous time and memory cap (tests/fixtures/capped.py): a hang or a bomb fails the case;
nothing here measures speed.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagefactory.errors import UsageError
from imagefactory.paths import distros_dir
from imagefactory.spec.loader import find_spec_path, load_spec_file, validate_layer_file
from tests.fixtures.capped import run_capped
from tests.unit.spec.test_errors import GOOD
from tests.unit.spec.test_hostile_specs import HCL_GOOD, alias_bomb

PROPERTY = settings(
    max_examples=60,
    deadline=None,  # the cap in the child catches hangs; no timing assertions here
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FEDORA_HCL = (distros_dir() / "fedora44.hcl").read_text()


def load_everywhere(payload: bytes, suffix: str) -> None:
    """Feed `payload` to every reader of spec files; only UsageError may come out."""
    with tempfile.TemporaryDirectory(prefix="spec-property-") as tmp:
        directory = Path(tmp)
        spec = directory / f"spec{suffix}"
        spec.write_bytes(payload)
        with contextlib.suppress(UsageError):
            load_spec_file(spec, env={})
        layer = directory / f"_defaults{suffix}"
        layer.write_bytes(payload)
        with contextlib.suppress(UsageError):
            validate_layer_file(layer)
        with contextlib.suppress(UsageError):  # reads every spec there, for names and aliases
            find_spec_path("no-such-distro", directory)


# Warm the parent's caches (the HCL parser tables, the layer models) once, so each forked
# case starts from them instead of rebuilding them.
load_everywhere(GOOD.encode(), ".yaml")
load_everywhere(HCL_GOOD.encode(), ".hcl")


class Input:
    """A generated file; shown by its size and ends when hypothesis reports a failure (a
    1 MiB example printed whole would bury the report)."""

    def __init__(self, content: str | bytes) -> None:
        self.content = content

    def __repr__(self) -> str:
        head, tail = self.content[:60], self.content[-20:]
        return f"<{len(self.content)} {type(self.content).__name__}: {head!r} ... {tail!r}>"


def check(case: Input, suffix: str) -> None:
    content = case.content
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    run_capped(load_everywhere, data, suffix)


def splice(base: str, pieces: list[str], positions: list[int]) -> str:
    """`base` with each piece inserted at a line boundary (positions taken modulo lines)."""
    lines = base.splitlines(keepends=True)
    for piece, position in zip(pieces, positions, strict=False):
        lines.insert(position % (len(lines) + 1), piece)
    return "".join(lines)


# ---------------------------------------------------------------- YAML

YAML_PIECES = [
    "&a ", "*a", "<<: ", "<<: *a\n", "!!python/object:os.system ", "!!binary ", "!x ",
    "!!str ", "? ", "- ", ": ", "[", "]", "{", "}", ",", "\n", "  ", "\t", "'", '"', "#",
    "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "|\n", ">-\n", "\\", ".nan",
    ".inf", "-.inf", "1.0e+400", "2024-02-30", "0x1F", "0o17", "~", "null", "yes", "1_000",
    "12:30:00", "\x00", "\x1b", "\x85", "\u2028", "\ufeff", "\ud800", "é", "memory: ",
    "boot_timeout: ", "env: {A: ", "hooks:\n  lean:\n    - script: ", "9" * 5000,
]  # fmt: skip

yaml_text = st.lists(
    st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=12)), max_size=40
).map("".join)
spliced_yaml = st.builds(
    splice,
    st.just(GOOD),
    st.lists(yaml_text, min_size=1, max_size=4),
    st.lists(st.integers(0, 40), min_size=1, max_size=4),
)
repeated = st.builds(
    lambda piece, count, prefix: prefix + piece * count,
    st.sampled_from(["[", "{", "- ", "? ", "a: ", "&a ", "*a ", " ", "\n", "x", "9", "'", "#"]),
    st.integers(1_000, 100_000),
    st.sampled_from(["", "a: ", "name: "]),
)
bombs = st.builds(alias_bomb, st.integers(1, 12))


@PROPERTY
@given(st.one_of(yaml_text, spliced_yaml, repeated, bombs).map(Input))
@example(Input(alias_bomb(9)))
@example(Input("a: " + "[" * 100_000))
@example(Input("a: [" + "1, " * 10_000 + "1]"))
@example(Input("<<: {name: x}\n"))
@example(Input("aliases: 5\nname: 3\n"))
def test_yaml_specs_never_raise_anything_but_usage_errors(case: Input) -> None:
    check(case, ".yaml")


@PROPERTY
@given(st.binary(max_size=4096).map(Input))
@example(Input(b"\xff\xfe" + GOOD.encode("utf-16-le")))
@example(Input(b"name: \xe9\n"))
def test_random_bytes_as_yaml_never_raise_anything_but_usage_errors(case: Input) -> None:
    check(case, ".yaml")


# ---------------------------------------------------------------- HCL

HCL_PIECES = [
    "a = ", 'file("/etc/passwd")', '"${x}"', '"$${x}"', '"%{ if x }y%{ endif }"', "[", "]",
    "{", "}", "(", ")", "b {", 'c "label" {', '"\\u0000"', '"\\ud800"', '"\\U0010FFFF"',
    '"\\q"', "<<EOF\n", "<<-EOF\n", "EOF\n", "/*", "*/", "//", "#", "1e999", "1.0e999",
    "-", "9" * 5000, ".", "*", "[*]", ".*", "for x in y:", "?", ":", "=", "==", ",", "\n",
    " ", "true", "false", "null", "x.y", "...", "::", "~", "!", "%{", "\\", '"', "\x00",
    "\x1b", "\u2028", "é", "vm {\n", "memory = ", 'name = "x"\n',
]  # fmt: skip

hcl_text = st.lists(st.one_of(st.sampled_from(HCL_PIECES), st.text(max_size=12)), max_size=40).map(
    "".join
)
spliced_hcl = st.builds(
    splice,
    st.sampled_from([HCL_GOOD, FEDORA_HCL]),
    st.lists(hcl_text, min_size=1, max_size=4),
    st.lists(st.integers(0, 60), min_size=1, max_size=4),
)
repeated_hcl = st.builds(
    lambda piece, count, prefix: prefix + piece * count,
    st.sampled_from(["[", "{", "(", "/*", "<<A\n", "a = 1 + ", "-", '"', "#", " ", "b {\n", "x."]),
    st.integers(1_000, 200_000),
    st.sampled_from(["", "a = ", "b {\n"]),
)


@PROPERTY
@given(st.one_of(hcl_text, spliced_hcl, repeated_hcl).map(Input))
@example(Input("a = " + "[" * 100_000))
@example(Input("/*" * 200_000))
@example(Input("a = " + "1 + " * 100_000 + "1"))
@example(Input("a = <<A\n" * 50_000))
@example(Input(FEDORA_HCL.replace('"44"', 'file("/etc/passwd")')))
def test_hcl_specs_never_raise_anything_but_usage_errors(case: Input) -> None:
    check(case, ".hcl")


@PROPERTY
@given(st.binary(max_size=4096).map(Input))
def test_random_bytes_as_hcl_never_raise_anything_but_usage_errors(case: Input) -> None:
    check(case, ".hcl")
