"""imagefactory: golden VM images for the OpenZFS ztest lineage."""

from functools import cache


@cache
def _version() -> str:
    # importlib.metadata costs ~30 ms: read on first use, not by every `klab` start.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imagefactory")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """`imagefactory.__version__`, resolved lazily (PEP 562)."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
