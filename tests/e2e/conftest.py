"""Everything under tests/e2e/ runs on the real Debian ztest golden: mark it `e2e`.

Building that golden cold takes about 30 minutes here (ZFS compiled at bootstrap, a TCG
boot through the payload hooks) and each test boots clones of it, so `make test` leaves
these out and `make test-e2e` runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
