"""The downloader against a real loopback server that drops, fails, throttles and lies."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from imagefactory.fetch import receive
from imagefactory.fetch.download import Downloader, RetryPolicy
from imagefactory.fetch.errors import (
    ChecksumMismatchError,
    DiskFullError,
    FetchError,
    HTTPStatusError,
)
from imagefactory.fetch.receive import CHUNK_SIZE
from imagefactory.spec.digest import Digest
from tests.fixtures.fault_http import (
    Drop,
    FaultServer,
    IgnoreRange,
    NoLength,
    Stall,
    Status,
)

DATA = os.urandom(3 * 1024 * 1024 + 123)
DIGEST = Digest("sha256", hashlib.sha256(DATA).hexdigest())


class RecordingSleep:
    """Records the waits tenacity asks for and sleeps only briefly, so tests stay fast."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def downloader(sleeps: RecordingSleep) -> Downloader:
    policy = RetryPolicy(
        attempts=4, backoff_multiplier=0.01, jitter=0.01, read_timeout=1.0, sleep=sleeps
    )
    return Downloader(policy=policy)


@pytest.fixture
def server(fault_server: FaultServer) -> FaultServer:
    fault_server.put("img.qcow2", DATA)
    return fault_server


def get(downloader: Downloader, server: FaultServer, part: Path, path: str = "img.qcow2") -> None:
    result = downloader.download_verified([server.url(path)], part, DIGEST)
    assert result.digest == DIGEST
    assert part.read_bytes() == DATA


def test_clean_download_hashes_while_streaming(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    result = downloader.download(server.url("img.qcow2"), tmp_path / "a.part", algorithm="sha256")
    assert (result.digest, result.size) == (DIGEST, len(DATA))
    [request] = server.log
    assert request.headers["User-Agent"].startswith("imagefactory/")
    assert request.headers["Accept-Encoding"] == "identity"


def test_dropped_connection_resumes_with_range(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.fault("img.qcow2", Drop(after=2 * CHUNK_SIZE))
    get(downloader, server, tmp_path / "a.part")
    first, second = server.log
    assert first.sent == 2 * CHUNK_SIZE
    assert second.headers["Range"] == f"bytes={2 * CHUNK_SIZE}-"
    assert second.headers["If-Range"] == first_etag(server)
    assert second.status == 206
    assert second.sent == len(DATA) - 2 * CHUNK_SIZE


def test_bytes_received_before_a_drop_are_kept(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.fault("img.qcow2", Drop(after=1_000_003))  # mid-chunk
    get(downloader, server, tmp_path / "a.part")
    assert server.log[1].headers["Range"] == "bytes=1000003-"


def test_fallback_body_reader_also_resumes(
    downloader: Downloader, server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend urllib3 no longer exposes http.client's response: the generic stream is used,
    # which discards a chunk cut short, so drop on a chunk boundary for an exact offset.
    monkeypatch.setattr(receive, "raw_readinto", lambda response: None)
    server.fault("img.qcow2", Drop(after=2 * CHUNK_SIZE), Stall(after=CHUNK_SIZE, seconds=1.5))
    get(downloader, server, tmp_path / "a.part")
    assert [r.headers.get("Range") for r in server.log] == [
        None,
        f"bytes={2 * CHUNK_SIZE}-",
        f"bytes={3 * CHUNK_SIZE}-",
    ]


def first_etag(server: FaultServer) -> str:
    return '"' + hashlib.sha256(DATA).hexdigest()[:16] + '"'


def test_part_left_by_an_earlier_run_is_resumed(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(DATA[:2_000_000])
    get(downloader, server, part)
    [request] = server.log
    assert request.headers["Range"] == "bytes=2000000-"
    assert "If-Range" not in request.headers  # no validator known for that part
    assert request.sent == len(DATA) - 2_000_000


def test_server_errors_are_retried_until_success(
    downloader: Downloader, server: FaultServer, tmp_path: Path, sleeps: RecordingSleep
) -> None:
    server.fault("img.qcow2", Status(500), Status(503))
    get(downloader, server, tmp_path / "a.part")
    assert [r.status for r in server.log] == [500, 503, 200]
    assert len(sleeps.waits) == 2
    assert sleeps.waits[1] > sleeps.waits[0] - 0.01  # exponential, jittered


def test_429_retry_after_is_honoured(
    downloader: Downloader, server: FaultServer, tmp_path: Path, sleeps: RecordingSleep
) -> None:
    server.fault("img.qcow2", Status(429, {"Retry-After": "7"}))
    get(downloader, server, tmp_path / "a.part")
    assert sleeps.waits == [7.0]
    assert [r.status for r in server.log] == [429, 200]


def test_server_ignoring_range_restarts_cleanly(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.fault("img.qcow2", Drop(after=CHUNK_SIZE), IgnoreRange())
    get(downloader, server, tmp_path / "a.part")
    _, second = server.log
    assert second.headers["Range"] == f"bytes={CHUNK_SIZE}-"
    assert second.status == 200
    assert second.sent == len(DATA)


def test_read_timeout_mid_body_is_retried_and_resumed(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.fault("img.qcow2", Stall(after=CHUNK_SIZE, seconds=2.0))
    get(downloader, server, tmp_path / "a.part")
    assert server.log[-1].headers["Range"] == f"bytes={CHUNK_SIZE}-"


def test_404_is_not_retried(
    downloader: Downloader, server: FaultServer, tmp_path: Path, sleeps: RecordingSleep
) -> None:
    with pytest.raises(HTTPStatusError, match="HTTP 404"):
        downloader.download_verified([server.url("missing.qcow2")], tmp_path / "a.part", DIGEST)
    assert len(server.log) == 1
    assert sleeps.waits == []


def test_403_is_not_retried(downloader: Downloader, server: FaultServer, tmp_path: Path) -> None:
    server.fault("img.qcow2", Status(403))
    with pytest.raises(FetchError, match="HTTP 403"):
        downloader.download_verified([server.url("img.qcow2")], tmp_path / "a.part", DIGEST)
    assert len(server.log) == 1


def test_persistent_failure_gives_up_after_the_attempt_budget(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.fault("img.qcow2", *[Status(502)] * 10)
    with pytest.raises(HTTPStatusError, match="HTTP 502"):
        downloader.download_verified([server.url("img.qcow2")], tmp_path / "a.part", DIGEST)
    assert len(server.log) == 4


def test_wrong_file_is_a_mismatch_and_the_part_is_removed(
    downloader: Downloader, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.put("img.qcow2", DATA[::-1])
    part = tmp_path / "a.part"
    with pytest.raises(ChecksumMismatchError, match=f"expected {DIGEST}"):
        downloader.download_verified([fault_server.url("img.qcow2")], part, DIGEST)
    assert list(tmp_path.iterdir()) == []


def test_size_from_checksum_file_rejects_wrong_length_before_download(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    with pytest.raises(ChecksumMismatchError, match="the checksum file says 42"):
        downloader.download_verified(
            [server.url("img.qcow2")], tmp_path / "a.part", DIGEST, expected_size=42
        )
    assert len(server.log) == 1
    assert list(tmp_path.iterdir()) == []


def test_mirrors_are_tried_in_order(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.put("stale/img.qcow2", DATA[:-1] + b"X")
    urls = [server.url("gone/img.qcow2"), server.url("stale/img.qcow2"), server.url("img.qcow2")]
    result = downloader.download_verified(urls, tmp_path / "a.part", DIGEST)
    assert result.url == server.url("img.qcow2")
    assert [r.path for r in server.log] == ["/gone/img.qcow2", "/stale/img.qcow2", "/img.qcow2"]


def test_all_mirrors_failing_names_each_failure(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    urls = [server.url("a/img.qcow2"), server.url("b/img.qcow2")]
    with pytest.raises(
        FetchError, match=r"all 2 sources failed: HTTP 404 .*a/img.*HTTP 404 .*b/img"
    ):
        downloader.download_verified(urls, tmp_path / "a.part", DIGEST)


def test_user_agent_is_sent_to_cdns_that_require_one(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.require_user_agent = True
    get(downloader, server, tmp_path / "a.part")


# -- small files: conditional re-fetch ------------------------------------------------------


def test_checksum_file_is_revalidated_with_a_conditional_get(
    downloader: Downloader, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.put("SHA256SUMS", b"one\n", mtime=1_700_000_000)
    url = fault_server.url("SHA256SUMS")
    assert downloader.fetch_small(url, tmp_path) == b"one\n"
    assert downloader.fetch_small(url, tmp_path) == b"one\n"
    first, second = fault_server.log
    assert (first.status, second.status) == (200, 304)
    assert second.headers["If-None-Match"] == first_etag_of(b"one\n")
    assert "If-Modified-Since" in second.headers
    fault_server.put("SHA256SUMS", b"two\n", mtime=1_800_000_000)
    assert downloader.fetch_small(url, tmp_path) == b"two\n"
    assert fault_server.log[-1].status == 200


def first_etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def test_stored_checksum_file_is_used_when_the_server_is_unreachable(
    downloader: Downloader, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.put("CHECKSUM", b"stored\n")
    url = fault_server.url("CHECKSUM")
    downloader.fetch_small(url, tmp_path)
    fault_server.close()
    assert downloader.fetch_small(url, tmp_path) == b"stored\n"


def test_missing_checksum_file_is_an_error_even_with_a_stored_copy(
    downloader: Downloader, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.put("CHECKSUM", b"stored\n")
    url = fault_server.url("CHECKSUM")
    downloader.fetch_small(url, tmp_path)
    fault_server.fault("CHECKSUM", Status(404))
    with pytest.raises(HTTPStatusError, match="404"):
        downloader.fetch_small(url, tmp_path)


# -- disk full ------------------------------------------------------------------------------


@pytest.mark.root
def test_disk_full_while_writing_leaves_nothing_behind(
    downloader: Downloader, server: FaultServer, tiny_fs: Path
) -> None:
    server.fault("img.qcow2", NoLength())  # no Content-Length: no up-front space check
    with pytest.raises(DiskFullError, match=r"disk full while writing a\.part"):
        downloader.download_verified([server.url("img.qcow2")], tiny_fs / "a.part", DIGEST)
    assert list(tiny_fs.iterdir()) == []
    assert len(server.log) == 1  # not retried, no other mirror tried


@pytest.mark.root
def test_known_size_larger_than_free_space_fails_before_writing(
    downloader: Downloader, server: FaultServer, tiny_fs: Path
) -> None:
    with pytest.raises(DiskFullError, match=r"not enough space for a\.part"):
        downloader.download_verified([server.url("img.qcow2")], tiny_fs / "a.part", DIGEST)
    assert list(tiny_fs.iterdir()) == []


def test_complete_part_from_a_crashed_run_is_not_downloaded_again(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(DATA)
    get(downloader, server, part)
    [request] = server.log
    assert (request.status, request.sent) == (416, 0)


def test_part_longer_than_the_file_restarts_from_zero(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(DATA + b"stale tail")
    get(downloader, server, part)
    assert [r.status for r in server.log] == [416, 200]


def test_body_without_length_is_received_and_verified(
    downloader: Downloader, server: FaultServer, tmp_path: Path
) -> None:
    server.fault("img.qcow2", NoLength())  # close-delimited: the end is the connection's end
    get(downloader, server, tmp_path / "a.part")


@pytest.mark.root
def test_space_taken_after_the_check_fails_cleanly_while_writing(
    downloader: Downloader, server: FaultServer, tiny_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process fills the disk between our free-space check and the write: skip the
    # check so the real tmpfs runs out under the writes themselves.
    monkeypatch.setattr(Downloader, "_check_free_space", staticmethod(lambda part, needed: None))
    with pytest.raises(DiskFullError, match=r"disk full while writing a\.part"):
        downloader.download_verified([server.url("img.qcow2")], tiny_fs / "a.part", DIGEST)
    assert list(tiny_fs.iterdir()) == []
