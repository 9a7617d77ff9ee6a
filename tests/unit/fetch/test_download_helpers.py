"""Small pieces of the downloader that need no server."""

from __future__ import annotations

import email.utils

import requests

from imagefactory.fetch.download import USER_AGENT, parse_retry_after
from imagefactory.fetch.download_errors import describe


def test_retry_after_in_seconds_and_as_http_date() -> None:
    assert parse_retry_after("120") == 120.0
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_network_errors_are_described_in_a_few_words() -> None:
    assert describe(requests.exceptions.ChunkedEncodingError("IncompleteRead(...)")) == (
        "connection dropped in the middle of the body"
    )
    long = requests.ConnectionError(
        "HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /x "
        "(Caused by NameResolutionError(\"...: Failed to resolve 'h'\"))"
    )
    assert describe(long) == "cannot resolve the host name"


def test_user_agent_names_imagefactory() -> None:
    assert USER_AGENT.startswith("imagefactory/")
