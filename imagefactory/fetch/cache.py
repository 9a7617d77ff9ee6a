"""The content-addressed image cache: ``<root>/sha256/<hex>``, filled only with verified bytes.

Layout under the root (every directory is created on demand)::

    sha256/<hex>, sha512/<hex>   the objects, read-only, named by their verified digest
    meta/<alg>/<hex>.json        stat fingerprint recorded when the object was last verified
    meta/<alg>/<hex>.used        empty marker whose mtime is the last use (LRU order)
    index/<sha256(key)>.json     key -> digest: URLs and input hashes, an accelerator only
    locks/<name>.lock            fcntl locks, one per object or key being produced
    tmp/                         ``.part`` files, renamed into place after verification
    http/                        validators (ETag, Last-Modified) of fetched checksum files

Corruption on use, and its trade-off: re-hashing a 1 GiB object costs seconds, far more than
the 50 ms a cache hit may take, so `get` compares the object's (size, mtime, ctime, inode)
with the fingerprint recorded when it was last verified and re-hashes only when they differ.
Any write, truncation, replacement or ``touch`` changes that fingerprint (ctime cannot be set
from user space), so accidental or tool-made damage is caught on the next use.  What is not
caught is silent media corruption that leaves the inode untouched: `verify` (``imagefactory
cache verify``) re-hashes everything for that, and the store's own checks come later.

The index maps keys to digests but is never trusted alone: a lookup only names a digest,
and the object behind it still goes through `get`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from imagefactory import settings
from imagefactory.atomic import fsync_dir, write_atomic
from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.fetch.errors import DiskFullError
from imagefactory.fetch.hashing import hash_file
from imagefactory.flock import acquire
from imagefactory.spec.digest import HEX_LENGTH, Digest

log = structlog.get_logger(__name__)

_ALGORITHMS = ("sha256", "sha512")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: ``.part`` files untouched for this long are abandoned downloads that `gc` may remove.
STALE_PART_SECONDS = 24 * 3600


def default_cache_root() -> Path:
    """``$IMAGEFACTORY_CACHE``, else ``/var/cache/imagefactory`` for root, else the XDG cache
    (`settings.cache_dir`, the one declaration)."""
    return settings.cache_dir()


@dataclass(frozen=True)
class CacheEntry:
    """One cached object, as `imagefactory cache ls` shows it."""

    digest: Digest
    path: Path
    size: int
    last_used: float
    keys: tuple[str, ...]


def _stat_fingerprint(st: os.stat_result) -> dict[str, int]:
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "dev": st.st_dev,
    }


def _write_json_atomic(path: Path, data: object) -> None:
    """Replace a record atomically (`imagefactory.atomic`); a full disk leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(path, json.dumps(data, sort_keys=True).encode())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                f"no space left in the cache at {path.parent}",
                hint="free space, run `imagefactory cache gc`, or choose --cache-dir",
            ) from exc
        raise


class _HeldLocks(threading.local):
    """Locks this thread holds, so a nested `lock(name)` does not deadlock on itself."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}


class ImageCache:
    """Content-addressed store of verified images (downloaded or built), shared by builds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.http_dir = root / "http"
        self._held = _HeldLocks()

    def check_root(self, *, create: bool) -> ImageCache:
        """Fail now, in one line, if the cache's directory cannot serve: a file where the
        directory should be (a usage error), no permission or (with `create`) no way to
        make it (the host's, like every OS error: infrastructure)."""
        hint = "choose another --cache-dir (or $IMAGEFACTORY_CACHE)"
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"the image cache {self.root} is not a directory", hint=hint)
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InfrastructureError(
                    f"cannot create the image cache {self.root}: {exc.strerror}", hint=hint
                ) from None
        wanted = os.R_OK | os.X_OK | (os.W_OK if create else 0)
        if self.root.is_dir() and not os.access(self.root, wanted):
            raise InfrastructureError(
                f"no permission to {'use' if create else 'read'} the image cache {self.root}",
                hint=hint,
            )
        return self

    # -- paths --------------------------------------------------------------------------

    def object_path(self, digest: Digest) -> Path:
        return self.root / digest.algorithm / digest.hexdigest

    def part_path(self, digest: Digest) -> Path:
        """Where a download of `digest` is staged; on the cache's filesystem for atomic rename."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / f"{digest.algorithm}-{digest.hexdigest}.part"

    def _meta_path(self, digest: Digest) -> Path:
        return self.root / "meta" / digest.algorithm / f"{digest.hexdigest}.json"

    def _used_path(self, digest: Digest) -> Path:
        return self.root / "meta" / digest.algorithm / f"{digest.hexdigest}.used"

    def _index_path(self, key: str) -> Path:
        return self.root / "index" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _lock_path(self, name: str) -> Path:
        readable = _UNSAFE.sub("_", name)[:48]
        tag = hashlib.sha256(name.encode()).hexdigest()[:16]
        return self.root / "locks" / f"{readable}-{tag}.lock"

    # -- locking ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        """Hold an exclusive lock on `name` (a digest or a key) across processes.

        Yields True once held.  With ``blocking=False`` it yields False instead of waiting.
        Re-entrant within a thread.  Lock files may be removed by `gc` while it holds them, so
        after acquiring we check the file we locked is still the one at the path.
        """
        if self._held.depth.get(name):
            self._held.depth[name] += 1
            try:
                yield True
            finally:
                self._held.depth[name] -= 1
            return
        path = self._lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        waited = False

        def waiting() -> None:
            nonlocal waited
            if not waited:
                log.info("cache.lock.wait", name=name)
                waited = True

        fd = acquire(path, wait=blocking, on_busy=waiting)
        if fd is None:
            yield False
            return
        self._held.depth[name] = 1
        try:
            yield True
        finally:
            del self._held.depth[name]
            os.close(fd)

    # -- objects ------------------------------------------------------------------------

    def _read_meta(self, digest: Digest) -> dict[str, int] | None:
        try:
            data = json.loads(self._meta_path(digest).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _touch_used(self, digest: Digest) -> None:
        used = self._used_path(digest)
        try:
            os.utime(used)
        except FileNotFoundError:
            used.parent.mkdir(parents=True, exist_ok=True)
            used.touch()

    def get(self, digest: Digest) -> Path | None:
        """The object's path if it is present and intact, else None.

        Fast path: a stat compared with the recorded fingerprint.  If they differ (or no
        fingerprint was recorded) the object is re-hashed; a corrupt object is removed so the
        caller fetches it again.
        """
        path = self.object_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if self._read_meta(digest) == _stat_fingerprint(st):
            self._touch_used(digest)
            return path
        log.info("cache.reverify", digest=str(digest), reason="object changed since verified")
        actual = hash_file(path, digest.algorithm)
        if actual == digest:
            _write_json_atomic(self._meta_path(digest), _stat_fingerprint(path.stat()))
            self._touch_used(digest)
            return path
        log.warning("cache.corrupt", digest=str(digest), actual=str(actual), path=str(path))
        with self.lock(str(digest)):
            try:  # remove only the inode we hashed, not a fresh copy another process inserted
                if path.stat().st_ino == st.st_ino:
                    self._remove_object(digest)
            except FileNotFoundError:
                pass
        return None

    def verify(self, digest: Digest) -> bool:
        """Re-hash an object unconditionally (for silent media corruption); drop it if bad."""
        path = self.object_path(digest)
        if not path.exists():
            return False
        if hash_file(path, digest.algorithm) == digest:
            _write_json_atomic(self._meta_path(digest), _stat_fingerprint(path.stat()))
            return True
        log.warning("cache.corrupt", digest=str(digest), path=str(path))
        with self.lock(str(digest)):
            self._remove_object(digest)
        return False

    def insert(self, verified_file: Path, digest: Digest, *, keys: Sequence[str] = ()) -> Path:
        """Move a file whose digest the caller has verified into place; record `keys` for it.

        The file should live in `tmp_dir` (same filesystem) so the rename is atomic; a file
        elsewhere is copied in first.  If the object already exists the file is discarded.
        """
        dest = self.object_path(digest)
        with self.lock(str(digest)):
            if self.get(digest) is not None:
                verified_file.unlink(missing_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                staged = self._stage(verified_file, digest)
                staged.chmod(0o444)
                with staged.open("rb") as f:
                    os.fsync(f.fileno())
                staged.replace(dest)
                fsync_dir(dest.parent)
                _write_json_atomic(self._meta_path(digest), _stat_fingerprint(dest.stat()))
                self._touch_used(digest)
                log.info("cache.insert", digest=str(digest), size=dest.stat().st_size)
            for key in keys:
                self.record(key, digest)
        return dest

    def _stage(self, file: Path, digest: Digest) -> Path:
        """Return a path on the cache's filesystem holding `file`'s bytes."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if file.stat().st_dev == self.tmp_dir.stat().st_dev:
            return file
        staged = self.tmp_dir / f"{digest.algorithm}-{digest.hexdigest}.insert"
        try:
            shutil.copyfile(file, staged)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"no space left in the cache at {self.root}") from exc
            raise
        file.unlink()
        return staged

    def _remove_object(self, digest: Digest) -> None:
        for path in (self.object_path(digest), self._meta_path(digest), self._used_path(digest)):
            path.unlink(missing_ok=True)

    # -- index --------------------------------------------------------------------------

    def record(self, key: str, digest: Digest) -> None:
        """Remember that `key` (a URL, an input hash) last produced `digest`."""
        _write_json_atomic(self._index_path(key), {"key": key, "digest": str(digest)})

    def lookup(self, key: str) -> Digest | None:
        """The digest `key` last produced, if recorded; check the object with `get`."""
        try:
            data = json.loads(self._index_path(key).read_text())
            if data.get("key") != key:
                return None
            return Digest.parse(data["digest"])
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _index(self) -> dict[str, list[tuple[Path, str]]]:
        """digest string -> [(index file, key)]."""
        by_digest: dict[str, list[tuple[Path, str]]] = {}
        index_dir = self.root / "index"
        if not index_dir.is_dir():
            return by_digest
        for path in index_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                by_digest.setdefault(str(data["digest"]), []).append((path, str(data["key"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return by_digest

    # -- listing and eviction -----------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every object, least recently used first."""
        index = self._index()
        found: list[CacheEntry] = []
        for algorithm in _ALGORITHMS:
            directory = self.root / algorithm
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if len(path.name) != HEX_LENGTH[algorithm]:
                    continue
                try:
                    digest = Digest.parse(f"{algorithm}:{path.name}")
                    st = path.stat()
                except (ValueError, FileNotFoundError):
                    continue
                try:
                    last_used = self._used_path(digest).stat().st_mtime
                except FileNotFoundError:
                    last_used = st.st_mtime
                keys = tuple(sorted(k for _, k in index.get(str(digest), [])))
                found.append(CacheEntry(digest, path, st.st_size, last_used, keys))
        found.sort(key=lambda e: e.last_used)
        return found

    def gc(self, max_bytes: int) -> list[CacheEntry]:
        """Evict least recently used objects until the cache holds at most `max_bytes`.

        Objects locked by a running fetch or build are skipped.  Abandoned ``.part`` files
        older than a day are removed first.  Returns what was removed.
        """
        self._remove_stale_parts()
        entries = self.entries()
        total = sum(e.size for e in entries)
        index = self._index()
        removed: list[CacheEntry] = []
        for entry in entries:
            if total <= max_bytes:
                break
            with self.lock(str(entry.digest), blocking=False) as held:
                if not held:
                    log.info("cache.gc.skip_in_use", digest=str(entry.digest))
                    continue
                self._remove_object(entry.digest)
                for index_file, _ in index.get(str(entry.digest), []):
                    index_file.unlink(missing_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path(str(entry.digest)).unlink()
            total -= entry.size
            removed.append(entry)
            log.info("cache.gc.removed", digest=str(entry.digest), size=entry.size)
        return removed

    def _remove_stale_parts(self) -> None:
        if not self.tmp_dir.is_dir():
            return
        now = time.time()
        for part in self.tmp_dir.iterdir():
            try:
                if now - part.stat().st_mtime < STALE_PART_SECONDS:
                    continue
            except FileNotFoundError:
                continue
            name = part.name.split(".", 1)[0].replace("-", ":", 1)
            with self.lock(name, blocking=False) as held:
                if held:
                    part.unlink(missing_ok=True)
                    log.info("cache.gc.stale_part", path=str(part))
