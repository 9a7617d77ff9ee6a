"""HTTP downloads that survive slow, flaky vendor mirrors, hashing every byte as it arrives.

- Retries (tenacity) with exponential backoff and jitter on connection errors, read timeouts,
  truncated bodies and 5xx/429 answers; ``Retry-After`` is honoured.  404/403 and other client
  errors are not retried: asking again will not make a missing file appear.  An attempt that
  moved bytes resets the failure count, so a server that drops every few hundred MB still
  finishes as long as each attempt makes progress.
- Resume: the ``.part`` file is continued with ``Range`` (and ``If-Range`` with the validator
  the partial body came with).  ``Accept-Encoding: identity`` keeps byte offsets meaningful.
  A server that answers 200 to a Range request, a 416, or a range starting elsewhere makes
  us restart from zero in place.
- Hash while streaming: the digest is computed chunk by chunk as bytes arrive
  (`receive.receive_body`), never by re-reading the file; on resume the existing part is
  hashed once before appending.
- Disk full: the partial file is removed and `DiskFullError` raised (never retried).
- Small files (checksum files, signatures) are fetched with ``If-None-Match`` /
  ``If-Modified-Since`` against a copy kept in the cache's ``http/`` directory, so an
  unchanged checksum file costs one 304.
- A redirect loop, or any other failure `requests` does not retry, is a one-line
  `FetchError`; every URL a user gives (a mirror) passes `check_http_url` first.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from imagefactory import __version__
from imagefactory.fetch.download_errors import (
    MAX_REDIRECTS,
    RetryableStatus,
    describe,
    final_error,
    short,
    unretried_error,
)
from imagefactory.fetch.errors import (
    ChecksumMismatchError,
    DiskFullError,
    FetchError,
    HTTPStatusError,
)
from imagefactory.fetch.hashing import Hasher, new_hasher
from imagefactory.fetch.partfiles import (
    DISK_FULL,
    read_json,
    remove_part,
    sidecar,
    write_file,
    write_json,
)
from imagefactory.fetch.progress import NullProgress, ProgressSink
from imagefactory.fetch.receive import receive_body
from imagefactory.spec.digest import Algorithm, Digest

log = structlog.get_logger(__name__)

#: Some CDNs (CentOS's CloudFront) answer 403 to requests without a User-Agent.
USER_AGENT = f"imagefactory/{__version__} python-requests/{requests.__version__}"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.  Tests shrink the waits; the defaults suit real vendor mirrors."""

    attempts: int = 6  # consecutive attempts without progress before giving up on a URL
    total_seconds: float = 3600.0
    backoff_multiplier: float = 1.0  # waits ~1, 2, 4, 8 ... s, plus jitter
    backoff_max: float = 60.0
    jitter: float = 1.0
    max_retry_after: float = 300.0
    connect_timeout: float = 20.0
    read_timeout: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


@dataclass(frozen=True)
class Downloaded:
    """A finished transfer: the digest of the bytes in the part file, and where they came from."""

    digest: Digest
    size: int
    url: str


class _Restart(Exception):
    """The server cannot continue our partial file; start over at once (not a failure)."""


_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    RetryableStatus,
    _Restart,
)


def make_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.max_redirects = MAX_REDIRECTS
    return session


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Budget:
    """Stop condition and wait: failures reset whenever an attempt made progress."""

    def __init__(self, policy: RetryPolicy, url: str) -> None:
        self.policy = policy
        self.url = url
        self.failures = 0
        self.progressed = False
        self.started = time.monotonic()

    def stop(self, state: RetryCallState) -> bool:
        if self.progressed:
            self.failures = 0
            self.progressed = False
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, _Restart):
            self.failures += 1
        out_of_time = time.monotonic() - self.started > self.policy.total_seconds
        return self.failures >= self.policy.attempts or out_of_time

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Restart):
            return 0.0
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.max_retry_after)
        p = self.policy
        backoff = p.backoff_multiplier * 2 ** max(self.failures - 1, 0)
        return float(min(backoff + random.uniform(0, p.jitter), p.backoff_max))

    def before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Restart):
            log.info("fetch.restart", url=self.url, reason=str(exc))
            return
        sleep = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "fetch.retry",
            url=self.url,
            error=describe(exc) if exc else None,
            failures=self.failures,
            wait_s=round(sleep, 2),
        )


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.match((value or "").strip())
    if match is None:
        raise _Restart(f"unusable Content-Range {value!r}")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _unsatisfied_length(response: requests.Response) -> int | None:
    """The full length a 416 reports (``Content-Range: bytes */N``), if it does."""
    match = re.match(r"^bytes \*/(\d+)$", response.headers.get("Content-Range", "").strip())
    return int(match.group(1)) if match else None


class Downloader:
    """One HTTP session plus a retry policy; safe to reuse for several files."""

    def __init__(
        self, session: requests.Session | None = None, policy: RetryPolicy | None = None
    ) -> None:
        self.session = session or make_session()
        self.policy = policy or RetryPolicy()

    def _retrying(self, budget: _Budget) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(_RETRYABLE),
            stop=budget.stop,
            wait=budget.wait,
            sleep=self.policy.sleep,
            before_sleep=budget.before_sleep,
            reraise=True,
        )

    def _status_error(self, response: requests.Response) -> Exception:
        status, url = response.status_code, response.url
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RetryableStatus(url, status, retry_after)
        hint = {
            404: "the file is not there: the vendor may have pruned or renamed it",
            403: "the server refused access (some CDNs do so for unknown clients or regions)",
        }.get(status)
        return HTTPStatusError(url, status, hint=hint)

    # -- large files ---------------------------------------------------------------------

    def download(
        self,
        url: str,
        part: Path,
        *,
        algorithm: Algorithm,
        expected_size: int | None = None,
        progress: ProgressSink | None = None,
    ) -> Downloaded:
        """Fetch `url` into `part` (resuming what is there) and return the bytes' digest."""
        sink = progress or NullProgress()
        budget = _Budget(self.policy, url)
        try:
            for attempt in self._retrying(budget):
                with attempt:
                    result = self._attempt(url, part, algorithm, expected_size, sink, budget)
        except _RETRYABLE as exc:
            final_error(url, exc)
        except requests.RequestException as exc:
            unretried_error(url, exc)
        log.info("fetch.downloaded", url=url, size=result.size, digest=str(result.digest))
        return result

    def _attempt(
        self,
        url: str,
        part: Path,
        algorithm: Algorithm,
        expected_size: int | None,
        progress: ProgressSink,
        budget: _Budget,
    ) -> Downloaded:
        part.parent.mkdir(parents=True, exist_ok=True)
        saved = read_json(sidecar(part))
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = saved.get("etag") or saved.get("last_modified")
            if saved.get("url") == url and validator and not str(validator).startswith("W/"):
                headers["If-Range"] = str(validator)
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        with self.session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            status = response.status_code
            if status == 416 and offset:
                if _unsatisfied_length(response) == offset:
                    # The part is already complete (a run that died before the rename):
                    # hash it; the caller's digest check decides whether it is any good.
                    with part.open("rb") as existing:
                        digest = hashlib.file_digest(existing, algorithm).hexdigest()
                    log.info("fetch.part_complete", url=url, size=offset)
                    return Downloaded(Digest(algorithm, digest), offset, url)
                remove_part(part)
                raise _Restart("server cannot satisfy the range of our partial file")
            if status not in (200, 206):
                raise self._status_error(response)
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchError(f"{url} was sent with Content-Encoding {encoding}; cannot verify")
            hasher: Hasher
            total: int | None
            if status == 206:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    remove_part(part)
                    raise _Restart(f"server sent a range from {start}, wanted {offset}")
                with part.open("rb") as existing:  # hash what we already have, once
                    hasher = hashlib.file_digest(existing, algorithm)
                log.info("fetch.resume", url=url, offset=offset)
            else:
                if offset:
                    log.info("fetch.range_ignored", url=url, discarded=offset)
                offset = 0
                hasher = new_hasher(algorithm)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if expected_size is not None and total is not None and total != expected_size:
                remove_part(part)
                raise ChecksumMismatchError(
                    f"{url} is {total} bytes but the checksum file says {expected_size}"
                )
            self._check_free_space(part, None if total is None else total - offset)
            validators = {
                "url": url,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            }
            write_json(sidecar(part), validators)
            progress.start(total, offset)
            self._stream(response, part, status == 206, hasher, progress, budget)
        size = part.stat().st_size
        if total is not None and size != total:
            raise requests.exceptions.ChunkedEncodingError(f"got {size} of {total} bytes")
        return Downloaded(Digest(algorithm, hasher.hexdigest()), size, url)

    @staticmethod
    def _check_free_space(part: Path, needed: int | None) -> None:
        if needed is None:
            return
        free = shutil.disk_usage(part.parent).free
        if free < needed:
            remove_part(part)
            raise DiskFullError(
                f"not enough space for {part.name}: {needed} bytes needed, {free} free "
                f"in {part.parent}",
                hint="free space, run `imagefactory cache gc`, or choose --cache-dir",
            )

    @staticmethod
    def _stream(
        response: requests.Response,
        part: Path,
        append: bool,
        hasher: Hasher,
        progress: ProgressSink,
        budget: _Budget,
    ) -> None:
        def on_bytes(count: int) -> None:
            progress.advance(count)
            budget.progressed = True

        try:
            receive_body(response, part, append=append, hasher=hasher, on_bytes=on_bytes)
        except requests.RequestException:
            raise  # network trouble: retry and resume (RequestException is an OSError too)
        except OSError as exc:
            remove_part(part)
            if exc.errno in DISK_FULL:
                raise DiskFullError(
                    f"disk full while writing {part.name} in {part.parent}",
                    hint="free space, run `imagefactory cache gc`, or choose --cache-dir",
                ) from exc
            raise FetchError(f"cannot write {part}: {exc.strerror or exc}") from exc

    def download_verified(
        self,
        urls: Sequence[str],
        part: Path,
        expected: Digest,
        *,
        expected_size: int | None = None,
        progress: ProgressSink | None = None,
    ) -> Downloaded:
        """Try `urls` in order until one yields bytes with the `expected` digest.

        A mismatch removes the part file and moves on to the next URL (a stale mirror is the
        usual cause); a network failure keeps the part so the next URL or run can resume it.
        Disk-full is raised at once: another mirror will not help.
        """
        failures: list[FetchError | ChecksumMismatchError] = []
        for url in urls:
            try:
                result = self.download(
                    url,
                    part,
                    algorithm=expected.algorithm,
                    expected_size=expected_size,
                    progress=progress,
                )
            except DiskFullError:
                raise
            except (ChecksumMismatchError, FetchError) as exc:
                log.warning("fetch.source_failed", url=url, error=str(exc))
                failures.append(exc)
                continue
            if result.digest == expected:
                return result
            remove_part(part)
            log.warning("fetch.mismatch", url=url, expected=str(expected), got=str(result.digest))
            failures.append(
                ChecksumMismatchError(
                    f"checksum mismatch for {url}: expected {expected}, got {result.digest}",
                    hint="the download was discarded; the mirror may be stale or tampered with",
                )
            )
        if len(failures) == 1:
            raise failures[0]
        summary = f"all {len(urls)} sources failed: " + "; ".join(str(f) for f in failures)
        if any(isinstance(f, ChecksumMismatchError) for f in failures):
            raise ChecksumMismatchError(summary)
        raise FetchError(summary)

    # -- small files ---------------------------------------------------------------------

    def fetch_small(
        self, url: str, state_dir: Path, *, max_bytes: int = 16 << 20, allow_stale: bool = True
    ) -> bytes:
        """GET a checksum or signature file, revalidating a stored copy with a conditional GET.

        With `allow_stale`, a network failure falls back to the stored copy (with a warning):
        its content is still verified by whatever checks the caller applies next.
        """
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        body_path = state_dir / f"{key}.body"
        meta_path = state_dir / f"{key}.json"
        meta = read_json(meta_path)
        have_copy = meta.get("url") == url and body_path.is_file()
        headers: dict[str, str] = {}
        if have_copy:
            if meta.get("etag"):
                headers["If-None-Match"] = str(meta["etag"])
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = str(meta["last_modified"])
        budget = _Budget(self.policy, url)
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)

        def attempt() -> bytes:
            with self.session.get(url, headers=headers, timeout=timeout, stream=True) as response:
                if response.status_code == 304 and have_copy:
                    log.debug("fetch.not_modified", url=url)
                    return body_path.read_bytes()
                if response.status_code != 200:
                    raise self._status_error(response)
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_content(1 << 16):
                    received += len(chunk)
                    if received > max_bytes:
                        raise FetchError(f"{url} is larger than {max_bytes} bytes")
                    chunks.append(chunk)
                body = b"".join(chunks)
                state_dir.mkdir(parents=True, exist_ok=True)
                write_file(body_path, body)
                write_json(
                    meta_path,
                    {
                        "url": url,
                        "etag": response.headers.get("ETag"),
                        "last_modified": response.headers.get("Last-Modified"),
                    },
                )
                return body

        try:
            for retry_attempt in self._retrying(budget):
                with retry_attempt:
                    return attempt()
        except _RETRYABLE as exc:
            if allow_stale and have_copy:
                log.warning("fetch.stale_copy", url=url, error=short(exc))
                with contextlib.suppress(FileNotFoundError):
                    return body_path.read_bytes()
            final_error(url, exc)
        except requests.RequestException as exc:
            unretried_error(url, exc)
        raise AssertionError("unreachable: tenacity either returns or raises")
