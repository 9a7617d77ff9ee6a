"""Shared pytest configuration; fixture modules live in tests/fixtures/ and are listed here."""

pytest_plugins = [
    "tests.fixtures.cache_dirs",
    "tests.fixtures.fault_http",
    "tests.fixtures.gpg_keys",
    "tests.fixtures.guest_images",
    "tests.fixtures.stores",
    "tests.fixtures.ztest_golden",
    "tests.fixtures.zfs_host",
]
