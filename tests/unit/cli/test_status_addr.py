"""`klab status` reads the exporter's address file (`<state dir>/metrics.addr`): another
process writes it, so whatever it holds must read as an address or as "bad", never raise.

Property cases run in a capped child (tests/fixtures/capped.py): a hang or a bomb fails.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagefactory.commands.status import parse_addr
from tests.fixtures.capped import run_capped

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_what_the_exporter_writes_reads_back() -> None:
    assert parse_addr("127.0.0.1:9101") == ("127.0.0.1", 9101)
    assert parse_addr("[::1]:9101") == ("::1", 9101)
    assert parse_addr("localhost:80") == ("localhost", 80)


def test_anything_else_is_refused() -> None:
    for text in ("", ":9101", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                 "::1:9101", "[::1:9101", "host:9x", "a\x00b:1", "h:" + "9" * 5000):  # fmt: skip
        assert parse_addr(text) is None, text


def parse_any(text: str) -> None:
    found = parse_addr(text)
    if found is not None:
        host, port = found
        assert host and host.isprintable() and 0 < port < 65536


@PROPERTY
@given(st.text(max_size=200))
@example("[" * 100_000 + "]:1")
@example("1" * 100_000 + ":" + "9" * 100_000)
def test_any_file_content_reads_without_raising(text: str) -> None:
    run_capped(parse_any, text)
