"""HCL specs: blocks become mappings, attributes keep literal values, nothing is evaluated.

A spec is data, so only literals are read: strings, numbers, booleans, null, lists and
objects.  A function call (`file("/etc/passwd")`), an interpolation (`"${var.x}"`), a
reference, an operator or a heredoc is an error at its line, never kept as text; a name
given twice is an error as in YAML (HCL would let the last one win silently).  The values
are built here from python-hcl2's parse tree, so what the tree holds is checked before a
value exists.

Before the parser runs, a linear scan bounds the nesting and the number of tokens (the
parser handles some ten thousand a second) and refuses what would make the parser slow:
unterminated block comments and heredocs (their patterns rescan to the end of the file at
every attempt).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeAlias

import hcl2
from lark import Token
from lark import Tree as _LarkTree

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

Tree: TypeAlias = _LarkTree[Token]

_LITERALS_HINT = "a spec holds data only: write the value itself (a quoted string, a number)"

# Strings (possibly unterminated), comments, heredoc starts and brackets, in one pass.
_SCAN = re.compile(
    r'"(?:[^"\\]|\\.)*"?|#[^\n]*|//[^\n]*|/\*(?:.*?\*/|.*)|<<-?[A-Za-z]|[\[\]{}()]', re.DOTALL
)
_OPEN, _CLOSE = "[{(", "]})"
# Lexical tokens, roughly as the parser sees them: a value takes one to four.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\w.+-]+|\S')
_MAX_TOKENS = 4 * MAX_VALUES
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}

# Parse-tree rules that are expressions, not literals, named for the error message.
_EXPRESSIONS = {
    "function_call": "a function call",
    "identifier": "a reference",
    "get_attr_expr_term": "a reference",
    "index_expr_term": "an index expression",
    "attr_splat_expr_term": "a splat expression",
    "full_splat_expr_term": "a splat expression",
    "binary_op": "an operator expression",
    "unary_op": "an operator expression",
    "conditional": "a conditional expression",
    "for_tuple_expr": "a for expression",
    "for_object_expr": "a for expression",
    "heredoc_template": "a heredoc",
    "heredoc_template_trim": "a heredoc",
    "template_string": "a template",
    "interpolation": "an interpolation",
}


def load_hcl(path: Path, display: str) -> LocatedDoc:
    return parse_hcl(read_spec_text(path, display), display)


def parse_hcl(text: str, display: str) -> LocatedDoc:
    _prescan(text, display)
    try:
        tree = hcl2.parses_to_tree(text)
    except Exception as exc:  # python-hcl2's lark raises errors of many kinds
        line = getattr(exc, "line", 0) or 0
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SpecError(f"{display}:{line}: invalid HCL: {first}") from None
    doc = LocatedDoc({}, {(): Origin(display, 1)}, display)
    body = next(c for c in tree.children if isinstance(c, _LarkTree) and c.data == "body")
    doc.data = _Reader(text, display, doc).body(body, ())
    return doc


def _prescan(text: str, display: str) -> None:
    depth = 0
    for match in _SCAN.finditer(text):
        token = match.group()
        head = token[:2]
        if token[0] in '"#' or head == "//":
            continue
        if token in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep(_origin_at(text, match.start(), display))
        elif token in _CLOSE:
            depth = max(depth - 1, 0)
        elif head == "<<":
            raise SpecError(
                f"{_origin_at(text, match.start(), display)}: heredocs are not allowed in specs",
                hint="use a quoted string (\\n for a newline)",
            )
        elif len(token) < 4 or not token.endswith("*/"):
            where = _origin_at(text, match.start(), display)
            raise SpecError(f"{where}: invalid HCL: unterminated /* comment")
    if len(_TOKEN.findall(text)) > _MAX_TOKENS:  # findall: counted at C speed
        raise too_many(Origin(display, 0))


def _origin_at(text: str, offset: int, display: str) -> Origin:
    return Origin(display, text.count("\n", 0, offset) + 1)


def _line(node: Tree | Token, fallback: int) -> int:
    if isinstance(node, Token):
        return node.line or fallback
    return fallback if node.meta.empty else node.meta.line


class _Reader:
    """Turns python-hcl2's lark tree into plain values, recording each value's line."""

    def __init__(self, text: str, display: str, doc: LocatedDoc) -> None:
        self.text = text
        self.display = display
        self.doc = doc

    def _where(self, node: Tree | Token, fallback: int = 0) -> Origin:
        return Origin(self.display, _line(node, fallback))

    def _snippet(self, node: Tree | Token) -> str:
        if not isinstance(node, _LarkTree) or node.meta.empty:
            return ""
        source = " ".join(self.text[node.meta.start_pos : node.meta.end_pos].split())
        return f": {source[:60]}{'...' if len(source) > 60 else ''}"

    def _not_literal(self, node: Tree, path: PathKey, what: str) -> SpecError:
        return SpecError(
            f"{self._where(node)}: {dotted(path)}: {what} is not allowed in specs"
            f"{self._snippet(node)}",
            hint=_LITERALS_HINT,
        )

    def _add(self, out: dict[str, Any], key: str, path: PathKey, where: Origin) -> PathKey:
        child = (*path, key)
        if key in out:
            first = self.doc.origins.get(child)
            also = f" (first at line {first.line})" if first and first.line else ""
            raise SpecError(f"{where}: {dotted(child)}: duplicate key{also}")
        if len(child) > MAX_DEPTH:
            raise too_deep(where)
        self.doc.origins[child] = where
        return child

    def body(self, tree: Tree, path: PathKey) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node in tree.children:
            if not isinstance(node, _LarkTree) or node.data == "new_line_or_comment":
                continue
            where = self._where(node)
            key = _name(node.children[0])
            child = self._add(out, key, path, where)
            if node.data == "attribute":
                out[key] = self.value(node.children[-1], child)
                continue
            labels = [c for c in node.children[1:] if isinstance(c, _LarkTree) and c.data != "body"]
            labels = [c for c in labels if c.data != "new_line_or_comment"]
            if labels:
                raise SpecError(
                    f"{where}: {dotted(child)}: block labels are not used in specs",
                    hint=f"write `{key} {{ ... }}`",
                )
            inner = next(c for c in node.children if isinstance(c, _LarkTree) and c.data == "body")
            out[key] = self.body(inner, child)
        return out

    def value(self, node: Tree | Token, path: PathKey) -> Any:
        where = self.doc.origins.get(path) or self._where(node)
        if isinstance(node, _LarkTree) and node.data == "expr_term":
            if any(isinstance(c, Token) and c.type == "LPAR" for c in node.children):
                raise self._not_literal(node, path, "a parenthesised expression")
            node = next(c for c in node.children if isinstance(c, _LarkTree))
        if not isinstance(node, _LarkTree):
            raise SpecError(f"{where}: {dotted(path)}: unexpected {node!r}")
        kind = node.data
        if kind == "string":
            return self.string(node, path)
        if kind in ("int_lit", "float_lit"):
            return self.number(str(node.children[0]), kind, self._where(node, where.line), path)
        if kind == "unary_op" and str(node.children[0]) == "-":
            term = node.children[1]
            operand = term.children[0] if isinstance(term, _LarkTree) else term
            if isinstance(operand, _LarkTree) and operand.data in ("int_lit", "float_lit"):
                text = "-" + str(operand.children[0])
                return self.number(text, operand.data, self._where(node, where.line), path)
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(node.children[0])]
        if kind == "tuple":
            items = [c for c in node.children if isinstance(c, _LarkTree)]
            out = []
            for index, item in enumerate(c for c in items if c.data != "new_line_or_comment"):
                child = (*path, index)
                if len(child) > MAX_DEPTH:
                    raise too_deep(where)
                self.doc.origins[child] = self._where(item, where.line)
                out.append(self.value(item, child))
            return out
        if kind == "object":
            result: dict[str, Any] = {}
            for elem in node.children:
                if isinstance(elem, _LarkTree) and elem.data == "object_elem":
                    key = self.object_key(elem.children[0], path)  # object_elem_key
                    child = self._add(result, key, path, self._where(elem, where.line))
                    result[key] = self.value(elem.children[-1], child)
            return result
        raise self._not_literal(node, path, _EXPRESSIONS.get(kind, f"{kind.replace('_', ' ')}"))

    def number(self, text: str, kind: str, where: Origin, path: PathKey) -> int | float:
        try:
            value: int | float = int(text) if kind == "int_lit" else float(text)
        except (ValueError, OverflowError) as exc:
            reason = str(exc).split(";")[0]
            raise SpecError(
                f"{where}: {dotted(path)}: cannot read number {text[:40]!r}: {reason}"
            ) from None
        return spec_number(value, where, path)  # type: ignore[no-any-return]

    def object_key(self, node: Tree | Token, path: PathKey) -> str:
        inner = node.children[0] if isinstance(node, _LarkTree) else node
        if isinstance(inner, _LarkTree) and inner.data == "expr_term":
            inner = next((c for c in inner.children if isinstance(c, _LarkTree)), inner)
        if isinstance(inner, _LarkTree) and inner.data in ("identifier", "keyword"):
            return _name(inner)
        if isinstance(inner, _LarkTree) and inner.data == "string":
            return self.string(inner, path)
        raise SpecError(
            f"{self._where(node)}: {dotted(path)}: object keys must be names or quoted strings"
            f"{self._snippet(node)}"
        )

    def string(self, node: Tree, path: PathKey) -> str:
        out: list[str] = []
        for part in node.children:
            if not isinstance(part, _LarkTree):
                continue  # the quotes
            piece = part.children[0]
            if isinstance(piece, _LarkTree):
                what = _EXPRESSIONS.get(piece.data, "a template directive")
                raise self._not_literal(node, path, what)
            if piece.type in ("ESCAPED_INTERPOLATION", "ESCAPED_DIRECTIVE"):
                out.append(str(piece)[1:])  # $${x} is the literal text ${x}, %%{x} is %{x}
            else:
                out.append(_unescape(str(piece), self._where(piece, _line(node, 0)), path))
        return "".join(out)


def _unescape(raw: str, where: Origin, path: PathKey) -> str:
    def replace(match: re.Match[str]) -> str:
        short, long, single = match.groups()
        if single is not None:
            if single in _SIMPLE_ESCAPES:
                return _SIMPLE_ESCAPES[single]
            raise SpecError(f"{where}: {dotted(path)}: unknown escape \\{single} in a string")
        code = int(short or long, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise SpecError(f"{where}: {dotted(path)}: \\u escape {code:X} is not a character")
        return chr(code)

    return _ESCAPE.sub(replace, raw)


def _name(node: Tree | Token) -> str:
    """An attribute, block or key name (an identifier, or a keyword such as `in`)."""
    if isinstance(node, Token):
        return str(node)
    token = node.children[0]
    return str(token) if isinstance(token, Token) else _name(token)
