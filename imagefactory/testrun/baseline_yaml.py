"""A baseline file's YAML: a list of flat entries, every value with the line it came from.

Baseline files come from anywhere (`--baseline`, `KLAB_BASELINE`), so this reads outside
text: libyaml composes (it caps nesting at 1000), only a list of mappings of plain values or
lists of plain values is accepted (so no alias can expand into a bomb), and every problem
becomes a `file:line: field: message` line, never a traceback.  What the values mean is
`baseline.py`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from imagefactory.errors import SpecError
from imagefactory.spec.located import LocatedDoc, Origin, PathKey, dotted

_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when present: ten times faster on the seed baselines than pure Python."""


@dataclass
class RawEntry:
    """One list item as plain data, or why it is not one."""

    line: int
    data: dict[str, Any] = field(default_factory=dict)
    doc: LocatedDoc = field(default_factory=lambda: LocatedDoc({}))
    """Origins keyed by paths relative to the entry (`("result", 1)`)."""
    error: str | None = None


def _scalar(node: yaml.Node, loader: yaml.SafeLoader, where: str) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except Exception as exc:  # PyYAML's constructors raise AttributeError, ValueError... too
        raise SpecError(f"{where}: invalid value: {str(exc).splitlines()[0]}") from None


def _value(node: yaml.Node, path: PathKey, doc: LocatedDoc, loader: yaml.SafeLoader) -> Any:
    """A field's value: a scalar or a list of scalars (deeper nesting has no meaning here)."""
    where = f"{doc.file}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.origins[(*path, index)] = Origin(doc.file, item.start_mark.line + 1)
            if not isinstance(item, yaml.ScalarNode):
                raise SpecError(f"{where}: {dotted(path)}: expected a list of plain values")
            items.append(_scalar(item, loader, where))
        return items
    if isinstance(node, yaml.MappingNode):
        raise SpecError(f"{where}: {dotted(path)}: expected a value or a list, not a mapping")
    return _scalar(node, loader, where)


def _entry(node: yaml.Node, display: str, loader: yaml.SafeLoader) -> RawEntry:
    line = node.start_mark.line + 1
    raw = RawEntry(line, doc=LocatedDoc({}, {(): Origin(display, line)}, display))
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(f"{display}:{line}: an entry is a mapping (test, result, kind, reason)")
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        key = _scalar(key_node, loader, f"{display}:{key_line}")
        if not isinstance(key, str):
            raise SpecError(f"{display}:{key_line}: keys must be strings, got {key!r}")
        if key in raw.data:
            raise SpecError(f"{display}:{key_line}: {key}: duplicate key")
        raw.doc.origins[(key,)] = Origin(display, key_line)
        raw.data[key] = _value(value_node, (key,), raw.doc, loader)
    return raw


def read_entries(text: str, display: str) -> list[RawEntry]:
    """The file's entries in order; SpecError when the file as a whole is not a list."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{display}:{line}: invalid YAML: {problem}") from None
    except RecursionError:  # the pure-Python composer, without libyaml
        raise SpecError(f"{display}: invalid YAML: nested too deeply") from None
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise SpecError(
            f"{display}:{node.start_mark.line + 1}: a baseline is a list of entries "
            "(- test: ..., result: ..., kind: ..., reason: ...)"
        )
    loader = yaml.SafeLoader("")
    entries = []
    for item in node.value:
        try:
            entries.append(_entry(item, display, loader))
        except SpecError as exc:
            entries.append(RawEntry(item.start_mark.line + 1, error=str(exc)))
    return entries
