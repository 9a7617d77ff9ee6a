"""CLI verbs, one module each; every module defines `register(subparsers)`.

A verb's handler is stored as `handler` on its parser defaults and returns the exit status.

The CLI imports every module here to build its parser, for every command and for `--help`:
at the top a command module imports only argparse, `imagefactory.settings` (the shared
options, declared once) and other light modules; pydantic, requests, rich, structlog,
qemu.qmp and pycdlib are imported inside the handlers.  tests/unit/cli/test_cli_imports.py
fails the build when a registration pulls one of them in.
"""
