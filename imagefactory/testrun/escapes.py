"""Remove terminal control sequences from console text before anything reads it.

A console log passes through terminals, CI log viewers and serial lines that colour, retitle
and reposition; any of that can land inside a result line (`[\\x1b[38:2::200:0:0mFAIL\\x1b[m]`),
and a parser that sees it there drops the line: a missing FAIL, a false green.  So every
ECMA-48 sequence goes, in one linear pass of one regex, before a line is read:

- CSI, 7-bit `ESC [` or 8-bit U+009B: parameter bytes 0x30-0x3F (digits, `;`, `:` of the
  colon-form SGR, `<=>?`), intermediate bytes 0x20-0x2F, one final byte 0x40-0x7E;
- command strings OSC (`ESC ]`, U+009D), DCS (`ESC P`), SOS (`ESC X`), PM (`ESC ^`), APC
  (`ESC _`) and their 8-bit forms, ended by ST (`ESC \\`, U+009C) or, as xterm accepts, BEL;
- nF escapes: charset designations `ESC ( B`, `ESC ) 0`, `ESC % G`, `ESC # 8`...;
- two-character escapes `ESC 7`, `ESC 8`, `ESC =`, `ESC >`, `ESC M`, `ESC c`...;
- whatever control character is left (a lone ESC of a cut-off sequence, BEL, SO/SI that
  go with charset switches, backspace, any C1): none is text.  Tab and CR stay: tabs
  separate the Results Summary's columns, and CR is handled where lines are split.

Each alternative either matches at an ESC/C1 introducer or fails before the next one (no
string body may contain a control character), so the scan is linear in the line's length.
A sequence that never ends (an OSC without its ST) loses only its introducer, never the text
after it: a terminal would hide that text, but a parser must not drop a result line for it.

8-bit controls are safe to remove from UTF-8 text: U+0080-U+009F are never printable, and a
raw 0x9B byte, which is a UTF-8 continuation byte and so cannot be matched in the bytes,
is recognised after decoding (`decode_console`), where only an invalid-UTF-8 0x9B survives.
"""

from __future__ import annotations

import re

# String bodies exclude every C0/C1 control: each attempt stops at the next introducer.
_BODY = r"[^\x00-\x1f\x7f-\x9f]*"
ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])" + _BODY + r"(?:\x07|\x1b\\|\x9c)"  # strings
    r"|\x1b[\x20-\x2f]+[\x30-\x7e]"  # nF: charset designations and the like
    r"|\x1b[\x30-\x7e]"  # Fp/Fe/Fs; also the bare introducer of an unfinished sequence
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # any control left: not text
)
# Every match starts with one of these; one character-class scan finds the first far faster
# than the alternation does, and most lines have none.
_FIRST = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# Bytes that are not UTF-8 come back from `surrogateescape` as U+DC80-U+DCFF; the 8-bit
# C1 controls among them become their characters (for ESCAPE), the rest U+FFFD.
_UNDECODED = re.compile(r"[\udc80-\udcff]")


def strip_escapes(text: str) -> str:
    """`text` without its terminal control sequences and stray control characters."""
    first = _FIRST.search(text)
    if first is None:
        return text
    start = first.start()
    return text[:start] + ESCAPE.sub("", text[start:])


def _undecoded(match: re.Match[str]) -> str:
    byte = ord(match.group()) - 0xDC00
    return chr(byte) if 0x80 <= byte <= 0x9F else "\ufffd"


def decode_console(data: bytes) -> str:
    """Decode a console's bytes as UTF-8: invalid bytes become U+FFFD, never an error.

    A lone 8-bit control byte (0x9B CSI, 0x9D OSC...) becomes its C1 character instead, so
    `strip_escapes` removes the sequence it introduces rather than leaving its parameters.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _UNDECODED.sub(_undecoded, data.decode("utf-8", "surrogateescape"))
