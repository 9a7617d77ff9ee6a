"""The content-addressed cache: insert, verified get, index, locks, LRU eviction."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from imagefactory.fetch.cache import ImageCache, default_cache_root
from imagefactory.spec.digest import Digest


def staged(cache: ImageCache, data: bytes, algorithm: str = "sha256") -> tuple[Path, Digest]:
    digest = Digest.parse(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")
    part = cache.part_path(digest)
    part.write_bytes(data)
    return part, digest


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    return ImageCache(tmp_path / "cache")


def test_insert_then_get_returns_the_content_addressed_path(cache: ImageCache) -> None:
    part, digest = staged(cache, b"image bytes")
    path = cache.insert(part, digest, keys=["https://example.invalid/a.img"])
    assert path == cache.root / "sha256" / digest.hexdigest
    assert cache.get(digest) == path
    assert path.read_bytes() == b"image bytes"
    assert not part.exists()
    assert path.stat().st_mode & 0o222 == 0  # objects are read-only


def test_sha512_objects_live_under_sha512(cache: ImageCache) -> None:
    part, digest = staged(cache, b"x" * 100, "sha512")
    assert cache.insert(part, digest).parent.name == "sha512"
    assert cache.get(digest) is not None


def test_get_of_absent_object_is_none(cache: ImageCache) -> None:
    assert cache.get(Digest("sha256", "0" * 64)) is None


def test_corrupted_object_is_detected_on_use_and_removed(cache: ImageCache) -> None:
    part, digest = staged(cache, b"A" * 4096)
    path = cache.insert(part, digest)
    path.chmod(0o644)
    with path.open("r+b") as f:  # same size, one byte flipped
        f.seek(100)
        f.write(b"B")
    assert cache.get(digest) is None
    assert not path.exists()


def test_unchanged_content_with_new_stat_is_reverified_and_kept(cache: ImageCache) -> None:
    part, digest = staged(cache, b"C" * 4096)
    path = cache.insert(part, digest)
    os.utime(path, (0, 0))  # e.g. restored from a backup: stat changed, bytes did not
    assert cache.get(digest) == path
    meta = (cache.root / "meta" / "sha256" / f"{digest.hexdigest}.json").read_text()
    assert str(path.stat().st_mtime_ns) in meta


def test_inserting_an_existing_object_discards_the_new_copy(cache: ImageCache) -> None:
    part, digest = staged(cache, b"same")
    first = cache.insert(part, digest)
    part2, _ = staged(cache, b"same")
    assert cache.insert(part2, digest, keys=["k2"]) == first
    assert not part2.exists()
    assert cache.lookup("k2") == digest


def test_insert_from_another_directory_copies_into_place(cache: ImageCache, tmp_path: Path) -> None:
    outside = tmp_path / "built.img"
    outside.write_bytes(b"built image")
    digest = Digest("sha256", hashlib.sha256(b"built image").hexdigest())
    path = cache.insert(outside, digest, keys=["input:abc"])
    assert path.read_bytes() == b"built image"


def test_index_maps_keys_to_digests(cache: ImageCache) -> None:
    part, digest = staged(cache, b"indexed")
    cache.insert(part, digest, keys=["https://vendor.invalid/img", "input:1234"])
    assert cache.lookup("https://vendor.invalid/img") == digest
    assert cache.lookup("input:1234") == digest
    assert cache.lookup("https://vendor.invalid/other") is None
    [entry] = cache.entries()
    assert entry.keys == ("https://vendor.invalid/img", "input:1234")


def test_lock_excludes_other_threads_and_is_reentrant(cache: ImageCache) -> None:
    order: list[str] = []
    inside = threading.Event()

    def other() -> None:
        inside.wait()
        with cache.lock("sha256:x"):
            order.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with cache.lock("sha256:x"), cache.lock("sha256:x"):  # re-entrant: no self-deadlock
        inside.set()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"]


def test_non_blocking_lock_reports_contention(cache: ImageCache) -> None:
    got: list[bool] = []
    with cache.lock("name"):
        thread = threading.Thread(target=lambda: got.append(_try(cache, "name")))
        thread.start()
        thread.join(5)
    assert got == [False]
    assert _try(cache, "name") is True


def _try(cache: ImageCache, name: str) -> bool:
    with cache.lock(name, blocking=False) as held:
        return held


def test_gc_evicts_least_recently_used_first(cache: ImageCache) -> None:
    digests = []
    for i in range(3):
        part, digest = staged(cache, bytes([i]) * 1000)
        cache.insert(part, digest, keys=[f"k{i}"])
        digests.append(digest)
    now = time.time()
    for age, digest in zip((300, 100, 200), digests, strict=True):
        used = cache.root / "meta" / "sha256" / f"{digest.hexdigest}.used"
        os.utime(used, (now - age, now - age))
    removed = cache.gc(max_bytes=1500)
    assert [e.digest for e in removed] == [digests[0], digests[2]]
    assert [e.digest for e in cache.entries()] == [digests[1]]
    assert cache.lookup("k0") is None
    assert cache.lookup("k1") == digests[1]


def test_get_refreshes_lru_position(cache: ImageCache) -> None:
    a_part, a = staged(cache, b"a" * 1000)
    b_part, b = staged(cache, b"b" * 1000)
    cache.insert(a_part, a)
    cache.insert(b_part, b)
    old = time.time() - 1000
    for digest in (a, b):
        os.utime(cache.root / "meta" / "sha256" / f"{digest.hexdigest}.used", (old, old))
    cache.get(a)
    assert [e.digest for e in cache.gc(max_bytes=1000)] == [b]


def test_gc_skips_objects_in_use(cache: ImageCache) -> None:
    part, digest = staged(cache, b"busy" * 100)
    cache.insert(part, digest)
    removed: list[int] = []
    with cache.lock(str(digest)):
        thread = threading.Thread(target=lambda: removed.append(len(cache.gc(0))))
        thread.start()
        thread.join(5)
    assert removed == [0]
    assert cache.get(digest) is not None
    assert len(cache.gc(0)) == 1


def test_gc_removes_abandoned_parts_only(cache: ImageCache) -> None:
    stale = cache.part_path(Digest("sha256", "1" * 64))
    fresh = cache.part_path(Digest("sha256", "2" * 64))
    stale.write_bytes(b"old")
    fresh.write_bytes(b"new")
    long_ago = time.time() - 3 * 24 * 3600
    os.utime(stale, (long_ago, long_ago))
    cache.gc(10**12)
    assert not stale.exists()
    assert fresh.exists()


def test_verify_rehashes_and_drops_silently_corrupted_objects(cache: ImageCache) -> None:
    part, digest = staged(cache, b"D" * 4096)
    path = cache.insert(part, digest)
    assert cache.verify(digest)
    st = path.stat()
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.write(b"E")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide the write from mtime
    assert not cache.verify(digest)
    assert not path.exists()


def test_default_root_follows_env_then_uid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEFACTORY_CACHE", str(tmp_path / "c"))
    assert default_cache_root() == tmp_path / "c"
    monkeypatch.delenv("IMAGEFACTORY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = (
        Path("/var/cache/imagefactory") if os.geteuid() == 0 else tmp_path / "xdg" / "imagefactory"
    )
    assert default_cache_root() == expected
