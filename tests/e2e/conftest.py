"""Everything under tests/e2e/ runs on the real Debian ztest golden: mark it `e2e`.

Building that golden cold takes about half an hour here (ZFS compiled at bootstrap -- the
same image the ZFS-host tests boot, so it is compiled once -- and a TCG boot through the
payload hooks); each test boots clones of it.  `make test` runs them last, after the
faster tests; `make test-e2e` runs only them, `-m 'not e2e'` leaves them out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
