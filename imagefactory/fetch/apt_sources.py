"""Find the package mirror in the host's apt configuration, and read a suite's Release date.

The bootstrap source builds images from "the mirror this machine already uses", so that an
air-gapped site needs no extra configuration and no mirror host name ever lands in a spec or
in this repository.  Both apt formats are read: deb822 ``*.sources`` files and one-line
``sources.list`` / ``*.list`` files.

The suite's Release ``Date:`` is part of the bootstrap cache key: the archive rewrites the
Release file whenever any package index changes, so a new date means the same inputs could
now produce a different image.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import requests
import structlog
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from imagefactory.errors import UsageError
from imagefactory.fetch.download_errors import check_mirror_url, describe
from imagefactory.fetch.errors import FetchError, HTTPStatusError

log = structlog.get_logger(__name__)

DEFAULT_ETC_APT = Path("/etc/apt")
_MIRROR_HINT = "pass --mirror http://<your-mirror>/debian, or set bootstrap.mirror in the spec"


@dataclass(frozen=True)
class AptSource:
    """One apt source entry (a deb822 stanza or a one-line `deb` line)."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool
    origin: str


def _split_stanzas(text: str) -> Iterable[list[str]]:
    """deb822 paragraphs, with comment lines dropped (they may sit inside a paragraph)."""
    stanza: list[str] = []
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
                stanza = []
            continue
        stanza.append(raw)
    if stanza:
        yield stanza


def _stanza_fields(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        if line[0] in " \t" and current is not None:
            fields[current] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        current = name.strip().lower()
        fields[current] = value.strip()
    return fields


def parse_deb822_sources(text: str, origin: str) -> list[AptSource]:
    """Entries of a ``*.sources`` file; stanzas without Types/URIs/Suites are ignored."""
    sources: list[AptSource] = []
    for stanza in _split_stanzas(text):
        fields = _stanza_fields(stanza)
        types, uris, suites = (fields.get(k, "").split() for k in ("types", "uris", "suites"))
        if not (types and uris and suites):
            continue
        sources.append(
            AptSource(
                types=tuple(types),
                uris=tuple(uris),
                suites=tuple(suites),
                components=tuple(fields.get("components", "").split()),
                enabled=fields.get("enabled", "yes").lower() not in ("no", "false", "0"),
                origin=origin,
            )
        )
    return sources


_ONE_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$")


def parse_one_line_sources(text: str, origin: str) -> list[AptSource]:
    """Entries of a ``sources.list`` style file (``deb [options] uri suite components...``)."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = _ONE_LINE.match(line)
        if match is None:
            continue
        kind, uri, suite, components = match.groups()
        sources.append(
            AptSource(
                types=(kind,),
                uris=(uri,),
                suites=(suite,),
                components=tuple(components.split()),
                enabled=True,
                origin=origin,
            )
        )
    return sources


def read_host_sources(etc_apt: Path = DEFAULT_ETC_APT) -> list[AptSource]:
    """Every entry apt itself would read, in apt's order (sources.list, then sources.list.d)."""
    sources: list[AptSource] = []
    main_list = etc_apt / "sources.list"
    if main_list.is_file():
        sources += parse_one_line_sources(main_list.read_text(), str(main_list))
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                sources += parse_deb822_sources(path.read_text(), str(path))
            elif path.suffix == ".list":
                sources += parse_one_line_sources(path.read_text(), str(path))
    return sources


def _is_plain_suite(suite: str) -> bool:
    """`trixie`, `stable`, `noble` - not `-security`, `-updates`, `-backports`, `/updates`."""
    return not re.search(r"[-/]", suite)


def choose_mirror(sources: Iterable[AptSource]) -> str | None:
    """The archive mirror among `sources`: the first enabled http(s) `deb` entry that serves a
    plain release suite; failing that, one serving `-updates`/`-backports` (which live in
    the same archive).  Security archives are separate trees and never chosen."""
    candidates = [
        (uri, source.suites)
        for source in sources
        if source.enabled and "deb" in source.types
        for uri in source.uris
        if re.match(r"^https?://", uri)
    ]
    for uri, suites in candidates:
        if any(_is_plain_suite(s) for s in suites):
            return normalize_mirror(uri)
    for uri, suites in candidates:
        if any(s.endswith(("-updates", "-backports")) for s in suites):
            return normalize_mirror(uri)
    return None


def normalize_mirror(uri: str) -> str:
    """One spelling per mirror, so cache keys do not depend on a trailing slash."""
    return uri.rstrip("/")


def discover_mirror(etc_apt: Path = DEFAULT_ETC_APT) -> str:
    """The host's Debian-family archive mirror, or a UsageError saying how to name one."""
    mirror = choose_mirror(read_host_sources(etc_apt))
    if mirror is None:
        raise UsageError(
            f"no package mirror found in {etc_apt}/sources.list or {etc_apt}/sources.list.d",
            hint=_MIRROR_HINT,
        )
    log.debug("bootstrap.mirror.discovered", etc_apt=str(etc_apt))
    return mirror


def resolve_mirror(*candidates: str | None, etc_apt: Path = DEFAULT_ETC_APT) -> str:
    """The first mirror given (command line, then spec), else the host's own."""
    for candidate in candidates:
        if candidate:
            return normalize_mirror(check_mirror_url(candidate, "the package mirror"))
    return discover_mirror(etc_apt)


def parse_release_date(text: str) -> str:
    """The ``Date:`` field of a Release or InRelease file, as an ISO 8601 UTC timestamp.

    InRelease wraps the same fields in a clear-signed PGP message; the first ``Date:`` line
    belongs to the Release paragraph either way.  Normalising means a mirror that spells the
    same instant differently still hits the cache.
    """
    match = re.search(r"^Date:[ \t]*(.+?)[ \t]*$", text, re.MULTILINE)
    if match is None:
        raise FetchError("the suite's Release file has no Date field")
    try:
        when = email.utils.parsedate_to_datetime(match.group(1))
    except (TypeError, ValueError) as exc:
        raise FetchError(f"unreadable Release Date: {match.group(1)!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


class _Missing(Exception):
    """This Release variant is not on the mirror (404): try the next one."""


class _ServerError(FetchError):
    """A 5xx answer: worth a retry, unlike a 4xx."""


@retry(
    retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _ServerError)),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, max=8),
    reraise=True,
)
def _get_text(url: str, timeout: float) -> str:
    response = requests.get(url, timeout=timeout)
    if response.status_code == 404:
        raise _Missing(url)
    if response.status_code >= 500:
        raise _ServerError(f"HTTP {response.status_code} from {url}")
    if response.status_code != 200:
        raise HTTPStatusError(url, response.status_code)
    return response.text


def fetch_release_date(mirror: str, suite: str, *, timeout: float = 30.0) -> str:
    """Fetch ``dists/<suite>/InRelease`` (or ``Release``) from `mirror` and return its Date."""
    base = f"{normalize_mirror(mirror)}/dists/{suite}"
    for name in ("InRelease", "Release"):
        try:
            text = _get_text(f"{base}/{name}", timeout)
        except _Missing:
            continue
        except requests.RequestException as exc:
            raise FetchError(
                f"cannot read the {suite} Release file from the mirror: {describe(exc)}",
                hint="check the mirror is reachable, or pass another with --mirror",
            ) from exc
        return parse_release_date(text)
    raise FetchError(
        f"the mirror has no dists/{suite}/InRelease or Release",
        hint=f"is {suite!r} a suite this mirror serves? check the spelling or --mirror",
    )
