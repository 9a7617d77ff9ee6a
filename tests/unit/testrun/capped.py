"""Run the console parser on hostile input in a child process under time and memory caps.

A parser bug on outside text shows up as a hang (a regex backtracking for minutes) or a bomb
(memory without bound), and neither must take the test session down with it.  The child
(this file run as a script) caps its own address space with RLIMIT_AS and parses one input
after another from its stdin; the parent waits for each answer up to a timeout.  The caps
are generous: they catch hangs and bombs, never measure speed (figures are in bench/).

Protocol: the parent sends a mode byte (`b` raw bytes, as `parse_file` reads them; `t`
UTF-8 text, as `parse_log` gets it), an 8-byte length and the payload; the child answers
with an 8-byte length and JSON: the run's `to_json()` plus `unexpected_failures`,
`unseen_failures` and `mismatch_line`, or `{"error": traceback}`.  The JSON is encoded
strictly (no lone surrogate may survive into a report).
"""

from __future__ import annotations

import json
import os
import selectors
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, BinaryIO

TIMEOUT_S = 60.0
"""Per input: the old super-linear regex needed minutes on a 1 MiB line; the parser ms."""
MEMORY_CAP = 2 * 1024**3
"""Address space of the child: a 1 MiB line must not come near it."""

_HEADER = struct.Struct(">cQ")
_LENGTH = struct.Struct(">Q")


class CappedParser:
    """A child process that parses inputs one at a time; restarted after a hang or a crash."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._stderr: BinaryIO | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._child is None:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
            self._child = subprocess.Popen(
                [sys.executable, __file__, str(MEMORY_CAP)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        return self._child

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            if child.poll() is None:
                child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _failed(self, why: str) -> AssertionError:
        stderr = b""
        if self._stderr is not None:
            self._stderr.seek(0)
            stderr = self._stderr.read()[-2000:]
        self.close()
        return AssertionError(f"{why}\nchild stderr: {stderr.decode(errors='replace')}")

    def parse(self, payload: bytes, *, mode: str = "b") -> dict[str, Any]:
        """The child's answer for one input; AssertionError on a hang, crash or traceback."""
        child = self._start()
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(_HEADER.pack(mode.encode(), len(payload)) + payload)
            child.stdin.flush()
        except BrokenPipeError:
            raise self._failed("the parser process died before reading its input") from None
        answer = self._read(child.stdout, len(payload))
        if "error" in answer:
            raise AssertionError(f"the parser raised on {len(payload)} bytes:\n{answer['error']}")
        return answer

    def _read(self, stdout: IO[bytes], size: int) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        data = b""
        wanted = _LENGTH.size
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while len(data) < wanted:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise self._failed(f"the parser hung: no answer in {TIMEOUT_S:.0f}s ({size} B)")
                chunk = os.read(stdout.fileno(), 1 << 20)
                if not chunk:
                    raise self._failed(f"the parser process died on {size} bytes (memory cap?)")
                data += chunk
                if wanted == _LENGTH.size and len(data) >= wanted:
                    wanted += _LENGTH.unpack(data[: _LENGTH.size])[0]
        result: dict[str, Any] = json.loads(data[_LENGTH.size :].decode("utf-8"))
        return result


def _serve(memory_cap: int) -> None:
    import resource
    import traceback

    resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))
    from imagefactory.testrun.results import parse_bytes, parse_log

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while header := stdin.read(_HEADER.size):
        mode, size = _HEADER.unpack(header)
        payload = stdin.read(size)
        try:
            if mode == b"t":
                run = parse_log(payload.decode("utf-8", "surrogatepass"))
            else:
                run = parse_bytes(payload)
            answer: dict[str, Any] = {
                **run.to_json(),
                "unexpected_failures": run.unexpected_failures(),
                "unseen_failures": run.unseen_failures,
                "mismatch_line": run.mismatch_line(),
            }
            body = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        except BaseException:  # MemoryError included: reported as an answer, not fatal
            body = json.dumps({"error": traceback.format_exc()}).encode()
        stdout.write(_LENGTH.pack(len(body)) + body)
        stdout.flush()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    _serve(int(sys.argv[1]))
