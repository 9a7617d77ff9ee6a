"""CLI verbs, one module each; every module defines `register(subparsers)`.

A verb's handler is stored as `handler` on its parser defaults and returns the exit status.
"""
