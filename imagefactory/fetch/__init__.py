"""Fetch: get a verified base image into the content-addressed cache.

`image.fetch_cloud_image` downloads a vendor cloud image (retry, resume, mirrors), verifies it
against a pinned digest or the vendor's (optionally signed) checksum file, and stores it in
`cache.ImageCache`.  Submodules are imported directly; this package imports nothing so that
`imagefactory.fetch.cache` stays cheap for the stages that only read the cache.
"""
