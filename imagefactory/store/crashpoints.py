"""Named points where a test can make the process die as if `kill -9` hit it right there.

Crash safety is a claim about every intermediate state of a multi-step operation; killing
a process at a random moment rarely lands on the interesting ones.  When the environment
variable `IMAGEFACTORY_CRASH_AT` names a point, the process sends itself SIGKILL there: a
real, uncatchable death, so the tests exercise exactly what a crash leaves behind.
"""

from __future__ import annotations

import os
import signal

from imagefactory import settings

ENV = settings.CRASH_AT.name


def crashpoint(name: str) -> None:
    if settings.CRASH_AT.value() == name:
        os.kill(os.getpid(), signal.SIGKILL)
