"""How a failed transfer is told to the user: a few words for a network error, one line
and a hint for the failure that ends a download, and the check of a mirror URL a user gave.

urllib3's own messages run to several lines of nested reprs; a redirect loop or a bad URL
is not worth retrying; a user's mirror value is input (exit 2), not a network failure.
"""

from __future__ import annotations

from typing import NoReturn

import requests

from imagefactory.errors import UsageError
from imagefactory.fetch.errors import FetchError, HTTPStatusError
from imagefactory.spec.types import check_http_url

MAX_REDIRECTS = 10


class RetryableStatus(Exception):
    def __init__(self, url: str, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.url = url
        self.status = status
        self.retry_after = retry_after


def check_mirror_url(value: str, what: str) -> str:
    """A mirror base URL a user gave (`--mirror`, `$IMAGEFACTORY_MIRROR`...), checked by the
    spec's own URL rule, without its trailing `/`; a UsageError naming `what` if bad."""
    try:
        return check_http_url(value.strip()).rstrip("/")
    except ValueError as exc:
        raise UsageError(
            f"{what}: {exc}", hint="give an http(s) base URL: http://HOST[:PORT]/PATH"
        ) from None


def short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


_NETWORK_REASONS = (
    ("NameResolutionError", "cannot resolve the host name"),
    ("Name or service not known", "cannot resolve the host name"),
    ("Temporary failure in name resolution", "cannot resolve the host name"),
    ("Connection refused", "connection refused"),
    ("Connection reset", "connection reset by the server"),
    ("Read timed out", "read timed out"),
    ("timed out", "connection timed out"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
)


def describe(exc: BaseException) -> str:
    """A short reason for a network failure; urllib3's own messages run to several lines."""
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped in the middle of the body"
    text = str(exc)
    for needle, reason in _NETWORK_REASONS:
        if needle in text:
            return reason
    return short(exc)


def final_error(url: str, exc: BaseException) -> NoReturn:
    """Turn the last retryable failure into the one-line error the user sees."""
    if isinstance(exc, RetryableStatus):
        raise HTTPStatusError(url, exc.status, hint="the server kept failing; retry later") from exc
    raise FetchError(
        f"download of {url} failed: {describe(exc)}",
        hint="check the network or the mirror; an interrupted download resumes on the next run",
    ) from exc


def unretried_error(url: str, exc: requests.RequestException) -> NoReturn:
    """A failure `requests` raised that retrying cannot fix: a redirect loop, a bad URL."""
    if isinstance(exc, requests.TooManyRedirects):
        raise FetchError(
            f"{url} redirects in a loop (more than {MAX_REDIRECTS} redirects)",
            hint="the server or mirror is misconfigured; check the URL or use another mirror",
        ) from exc
    raise FetchError(f"cannot fetch {url}: {describe(exc)}") from exc
