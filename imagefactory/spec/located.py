"""Spec documents parsed with the line of every value, so errors can say `file:line: field`.

Both YAML and HCL are read into plain dicts plus a map from field path to (file, line);
the defaults layer and environment overrides keep their own origins, so an error always
points at the file (or variable) that supplied the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import yaml
from lark import Token, Tree

from imagefactory.errors import SpecError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class LocatedDoc:
    """A parsed document and where each of its values came from."""

    data: dict[str, Any]
    origins: dict[PathKey, Origin] = field(default_factory=dict)
    file: str = ""

    def origin_of(self, path: PathKey) -> Origin:
        """The origin of the longest prefix of `path` that has one (missing keys → parent)."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return Origin(self.file, 0)


# ---------------------------------------------------------------- YAML


def load_yaml(path: Path, display: str) -> LocatedDoc:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{display}:{line}: invalid YAML: {problem}") from None
    doc = LocatedDoc({}, {(): Origin(display, 1)}, display)
    if node is None:
        return doc
    loader = yaml.SafeLoader("")
    value = _yaml_value(node, (), doc, loader, display)
    if not isinstance(value, dict):
        raise SpecError(f"{display}:{node.start_mark.line + 1}: a spec must be a mapping")
    doc.data = value
    return doc


def _yaml_value(
    node: yaml.Node, path: PathKey, doc: LocatedDoc, loader: yaml.SafeLoader, display: str
) -> Any:
    doc.origins[path] = Origin(display, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise SpecError(f"{display}:{line}: keys must be strings, got {key!r}")
            if key in result:
                raise SpecError(f"{display}:{line}: {_dotted((*path, key))}: duplicate key")
            child = (*path, key)
            result[key] = _yaml_value(value_node, child, doc, loader, display)
            doc.origins[child] = Origin(display, line)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _yaml_value(item, (*path, index), doc, loader, display)
            for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


# ---------------------------------------------------------------- HCL

_HCL_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=True, with_comments=False, with_meta=False
)


def load_hcl(path: Path, display: str) -> LocatedDoc:
    """HCL blocks become mappings (a block may appear once); attributes keep their values."""
    text = path.read_text(encoding="utf-8")
    try:
        raw = hcl2.loads(text, serialization_options=_HCL_OPTIONS)
        tree = hcl2.parses_to_tree(text)
    except Exception as exc:  # python-hcl2 raises lark errors of many kinds
        line = getattr(exc, "line", 0) or 0
        raise SpecError(f"{display}:{line}: invalid HCL: {str(exc).splitlines()[0]}") from None
    doc = LocatedDoc({}, {(): Origin(display, 1)}, display)
    doc.data = _hcl_normalize(raw, (), display)
    _hcl_lines(tree, (), doc, display)
    return doc


def _hcl_normalize(value: Any, path: PathKey, display: str) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "__is_block__":
                continue
            if _is_block_list(item):
                if len(item) != 1:
                    raise SpecError(f"{display}: {_dotted((*path, key))}: block given twice")
                item = item[0]
            out[key] = _hcl_normalize(item, (*path, key), display)
        return out
    if isinstance(value, list):
        return [_hcl_normalize(item, (*path, i), display) for i, item in enumerate(value)]
    return value


def _is_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _hcl_lines(node: Any, path: PathKey, doc: LocatedDoc, display: str) -> None:
    """Walk python-hcl2's lark tree to record the line of each attribute, block and element."""
    if not isinstance(node, Tree):
        return
    line = node.meta.line if not node.meta.empty else 0
    if node.data in ("start", "body"):
        for child in node.children:
            _hcl_lines(child, path, doc, display)
    elif node.data == "attribute":
        key = _first_name(node.children[0])
        child_path = (*path, key)
        doc.origins[child_path] = Origin(display, line)
        for child in node.children[1:]:
            _hcl_lines(child, child_path, doc, display)
    elif node.data == "block":
        key = _first_name(node.children[0])
        child_path = (*path, key)
        doc.origins[child_path] = Origin(display, line)
        for child in node.children[1:]:
            if isinstance(child, Tree) and child.data == "body":
                _hcl_lines(child, child_path, doc, display)
    elif node.data == "tuple":
        items = [c for c in node.children if isinstance(c, Tree)]
        for index, item in enumerate(items):
            doc.origins[(*path, index)] = Origin(
                display, item.meta.line if not item.meta.empty else line
            )
            _hcl_lines(item, (*path, index), doc, display)
    elif node.data == "object_elem":
        key = _first_name(node.children[0])
        child_path = (*path, key)
        doc.origins[child_path] = Origin(display, line)
        for child in node.children[1:]:
            _hcl_lines(child, child_path, doc, display)
    else:
        for child in node.children:
            _hcl_lines(child, path, doc, display)


def _first_name(node: Any) -> str:
    if isinstance(node, Token):
        return str(node).strip('"')
    if isinstance(node, Tree):
        for child in node.children:
            name = _first_name(child)
            if name and name not in ('"',):
                return name
    return ""


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


dotted = _dotted
