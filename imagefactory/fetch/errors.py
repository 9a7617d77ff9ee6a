"""The fetch stage's failures, split by who has to act on them.

A network or disk problem (`FetchError`, exit 3) is worth retrying later or elsewhere; a
verification failure (`VerificationError`, exit 1) means the bytes or the vendor's metadata
cannot be trusted, and retrying the same source will not help.
"""

from __future__ import annotations

from imagefactory.errors import ImageFactoryError, InfrastructureError


class FetchError(InfrastructureError):
    """The network, a server or the local disk failed while fetching."""


class HTTPStatusError(FetchError):
    """A server answered with an HTTP status we do not retry (or retries ran out)."""

    def __init__(self, url: str, status: int, *, hint: str | None = None) -> None:
        super().__init__(f"HTTP {status} from {url}", hint=hint)
        self.url = url
        self.status = status


class DiskFullError(FetchError):
    """The filesystem holding the cache ran out of space; nothing was left behind."""


class VerificationError(ImageFactoryError):
    """Downloaded bytes or vendor metadata failed verification; they were not used."""


class ChecksumMismatchError(VerificationError):
    """The downloaded file's digest differs from the expected one."""


class ChecksumFileError(VerificationError):
    """A vendor checksum file is unreadable, in an unknown format, or lacks the image."""


class SignatureError(VerificationError):
    """A signature is missing, bad, or made by a key that is not pinned."""
