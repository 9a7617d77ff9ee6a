"""structlog set-up: a readable console on a TTY, JSON lines everywhere else.

Builds run unattended in CI as often as at a terminal; JSON lines let CI logs be filtered
by field, while a person at a terminal wants aligned, coloured text.  stdlib logging
(qemu.qmp, urllib3) is routed through the same renderer so nothing prints twice or raw.

No secret is ever logged: every event passes `redact_event` last, which blanks private
keys (PEM/OpenSSH blocks), the password of a URL (`https://user:***@mirror/`), password
lines (user-data's `password:`, `chpasswd`) and fields named like secrets, wherever they
appear -- a guest's console tail or a command's stderr can carry any of them.
"""

from __future__ import annotations

import importlib.abc
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

    from structlog.stdlib import BoundLogger

from imagefactory.settings import FORCE_COLOR, NO_COLOR

REDACTED = "[redacted]"
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")
_PASSWORD_LINE = re.compile(
    r"(?i)(?P<head>\b[\w.-]*(?:passw(?:or)?d|passphrase|secret|token)[\w.-]*[\"']?"
    r"[ \t]*[:=][ \t]*)(?P<value>[^\s{].*)$",
    re.M,
)
_SECRET_FIELD = re.compile(r"(?i)passw(or)?d|passphrase|secret|token|private_?key|authorization")


def redact(text: str) -> str:
    """`text` without private keys, URL passwords or password lines."""
    if "PRIVATE KEY" in text:
        text = _PRIVATE_KEY.sub("[private key redacted]", text)
    if "@" in text:
        text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _PASSWORD_LINE.sub(rf"\g<head>{REDACTED}", text)


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if depth > 8:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and _SECRET_FIELD.search(k) and v
            else _redact_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v, depth + 1) for v in value]
    return value


def redact_event(_logger: Any, _method: str, event: Any) -> Any:
    """structlog processor: the event with every secret blanked (see the module docstring)."""
    if isinstance(event, Mapping):
        return _redact_value(event)
    if isinstance(event, str):
        return redact(event)
    return event


def _wants_color(stream: Any) -> bool:
    if NO_COLOR.value():
        return False
    if FORCE_COLOR.value():
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def configure_logging(verbosity: int = 0, *, json_lines: bool | None = None) -> None:
    """Configure structlog and stdlib logging; verbosity -1 quiet, 0 info, 1+ debug.

    structlog itself (with asyncio, ~100 ms) is configured the moment something imports it:
    a command that never logs (`klab history`, `--help`) never pays for it.  When it is
    already loaded (a test process), it is configured here and now.
    """
    level = logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    elif verbosity > 0:
        level = logging.DEBUG
    stream = sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    root = logging.getLogger()
    root.setLevel(level)
    # qemu.qmp logs every failed connect attempt at ERROR and is chatty at DEBUG.
    logging.getLogger("qemu.qmp").setLevel(
        logging.CRITICAL if level > logging.DEBUG else logging.INFO
    )
    logging.getLogger("urllib3").setLevel(max(level, logging.INFO))
    _HOOK.pending = (json_lines, stream)
    loaded = sys.modules.get("structlog")
    if loaded is not None:
        _apply(loaded)
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def _apply(structlog: ModuleType) -> None:
    """structlog's processors and the stdlib handler, as configure_logging asked."""
    if _HOOK.pending is None:
        return
    json_lines, stream = _HOOK.pending
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    tail: list[Any]
    if json_lines:
        tail = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redact_event,
            structlog.processors.JSONRenderer(),
        ]
    else:
        tail = [
            structlog.processors.format_exc_info,
            redact_event,
            structlog.dev.ConsoleRenderer(colors=_wants_color(stream)),
        ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    logging.getLogger().handlers[:] = [handler]


class _StructlogImport(importlib.abc.MetaPathFinder):
    """Imports structlog, when something first does, without rich, then configures it.

    structlog imports rich, when installed, only to offer rich tracebacks (~50 ms); our
    renderers format exceptions with `format_exc_info` or `ExceptionDictTransformer(
    show_locals=False)`, which never use it.  So while structlog's own modules run,
    `import rich` fails as if rich were absent; afterwards rich imports normally (tables,
    progress bars).
    """

    def __init__(self) -> None:
        self.pending: tuple[bool, TextIO] | None = None
        self.refusing = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.refusing and (fullname == "rich" or fullname.startswith("rich.")):
            raise ModuleNotFoundError(f"{fullname} is not loaded for structlog", name=fullname)
        if fullname != "structlog" or self.refusing:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ConfiguringLoader(spec.loader, self)
        return spec


class _ConfiguringLoader(importlib.abc.Loader):
    def __init__(self, inner: Loader, hook: _StructlogImport) -> None:
        self.inner = inner
        self.hook = hook

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.hook.refusing = True
        try:
            self.inner.exec_module(module)
        finally:
            self.hook.refusing = False
            if self.hook in sys.meta_path:
                sys.meta_path.remove(self.hook)
        _apply(module)


_HOOK = _StructlogImport()


def stdlib_ready() -> None:
    """Make a stdlib record render like every structlog event: the handler is installed
    when structlog loads (configure_logging), so load it."""
    import structlog  # noqa: F401


def get_logger(name: str) -> BoundLogger:
    """A logger that imports structlog on its first use, not at the module's import: for
    modules on the path of commands that usually log nothing (the history)."""
    return cast("BoundLogger", _LazyLogger(name))


class _LazyLogger:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import structlog

        logger = structlog.get_logger(self._name)
        return getattr(logger, attr)
