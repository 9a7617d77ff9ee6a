"""structlog set-up: a readable console on a TTY, JSON lines everywhere else.

Builds run unattended in CI as often as at a terminal; JSON lines let CI logs be filtered
by field, while a person at a terminal wants aligned, coloured text.  stdlib logging
(qemu.qmp, urllib3) is routed through the same renderer so nothing prints twice or raw.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def _wants_color(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def configure_logging(verbosity: int = 0, *, json_lines: bool | None = None) -> None:
    """Configure structlog and stdlib logging; verbosity -1 quiet, 0 info, 1+ debug."""
    level = logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    elif verbosity > 0:
        level = logging.DEBUG
    stream = sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
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
            structlog.processors.JSONRenderer(),
        ]
    else:
        tail = [structlog.dev.ConsoleRenderer(colors=_wants_color(stream))]
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # qemu.qmp logs every failed connect attempt at ERROR and is chatty at DEBUG.
    logging.getLogger("qemu.qmp").setLevel(
        logging.CRITICAL if level > logging.DEBUG else logging.INFO
    )
    logging.getLogger("urllib3").setLevel(max(level, logging.INFO))
