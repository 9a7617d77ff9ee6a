"""YAML specs, read with a composer that refuses what a spec never needs.

Specs have layers for reuse (`_defaults.yaml`), so YAML's own reuse machinery is refused
before it can build anything: anchors, aliases and merge keys (nine levels of aliases in
500 bytes expand to gigabytes), explicit tags (`!!python/object`, `!!binary`), and nesting
deeper than MAX_DEPTH (the composer recurses per level).  The checks run on parser events,
as each node is about to be composed, so a hostile file fails at its first offending line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from imagefactory.errors import SpecError
from imagefactory.spec.located import (
    MAX_DEPTH,
    MAX_VALUES,
    LocatedDoc,
    Origin,
    PathKey,
    dotted,
    read_spec_text,
    spec_number,
    too_deep,
    too_many,
)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NO_REUSE_HINT = "specs are layered (distros/_defaults.yaml); repeat the value instead"


class _SpecComposer(yaml.SafeLoader):
    """SafeLoader whose composer raises on anchors, aliases, tags, deep nesting and more
    than MAX_VALUES nodes."""

    def __init__(self, text: str, display: str) -> None:
        super().__init__(text)
        self.display = display
        self.depth = 0
        self.nodes = 0

    def _origin(self, event: yaml.Event) -> Origin:
        mark = event.start_mark
        return Origin(self.display, mark.line + 1 if mark is not None else 0)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise SpecError(
                f"{self._origin(event)}: YAML alias *{event.anchor} is not allowed in specs",
                hint=_NO_REUSE_HINT,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise SpecError(
                f"{self._origin(event)}: YAML anchor &{anchor} is not allowed in specs",
                hint=_NO_REUSE_HINT,
            )
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise SpecError(
                f"{self._origin(event)}: YAML tag {tag} is not allowed in specs",
                hint="quote the value instead: a spec holds only strings, numbers, booleans, "
                "lists and mappings",
            )
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH:
                raise too_deep(self._origin(event))
            if self.nodes > MAX_VALUES:
                raise too_many(self._origin(event))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def compose(text: str, display: str) -> yaml.Node | None:
    """The document's node tree (None when empty), or a SpecError naming the line."""
    composer: _SpecComposer | None = None
    try:
        composer = _SpecComposer(text, display)  # the reader checks characters here
        return composer.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise SpecError(f"{display}:{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SpecError(
            f"{display}:{line}: invalid YAML: character U+{exc.character:04X} is not allowed",
            hint="remove it: a spec is plain text",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{display}: invalid YAML: {exc}") from None
    finally:
        if composer is not None:
            composer.dispose()


def load_yaml(path: Path, display: str) -> LocatedDoc:
    text = read_spec_text(path, display)
    return parse_yaml(text, display)


def parse_yaml(text: str, display: str) -> LocatedDoc:
    node = compose(text, display)
    doc = LocatedDoc({}, {(): Origin(display, 1)}, display)
    if node is None:
        return doc
    value = _value(node, (), doc, yaml.SafeLoader(""), display)
    if not isinstance(value, dict):
        raise SpecError(f"{display}:{node.start_mark.line + 1}: a spec must be a mapping")
    doc.data = value
    return doc


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader, where: Origin, path: PathKey) -> Any:
    try:
        value = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        # An integer of 5000 digits, a date such as 2024-02-30: readable YAML, no value.
        problem = getattr(exc, "problem", None) or str(exc).split(";")[0]
        raise SpecError(
            f"{where}: {dotted(path)}: cannot read {node.value[:40]!r}: {problem}"
        ) from None
    return spec_number(value, where, path)


def _value(
    node: yaml.Node, path: PathKey, doc: LocatedDoc, loader: yaml.SafeLoader, display: str
) -> Any:
    where = Origin(display, node.start_mark.line + 1)
    doc.origins[path] = where
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise SpecError(
                    f"{display}:{line}: YAML merge key << is not allowed in specs",
                    hint=_NO_REUSE_HINT,
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(f"{display}:{line}: keys must be strings")
            key = _scalar(key_node, loader, Origin(display, line), path)
            if not isinstance(key, str):
                raise SpecError(f"{display}:{line}: keys must be strings, got {key!r}")
            if key in result:
                raise SpecError(f"{display}:{line}: {dotted((*path, key))}: duplicate key")
            child = (*path, key)
            result[key] = _value(value_node, child, doc, loader, display)
            doc.origins[child] = Origin(display, line)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _value(item, (*path, index), doc, loader, display)
            for index, item in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, loader, where, path)
