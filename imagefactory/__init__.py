"""imagefactory: golden VM images for the OpenZFS ztest lineage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imagefactory")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
