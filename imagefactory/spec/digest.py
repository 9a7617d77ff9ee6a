"""Content digests as they appear in specs and cache paths: `sha256:<hex>` / `sha512:<hex>`.

One type for both so a digest can never be compared with, or stored under, the wrong
algorithm, and a malformed pinned digest is rejected when the spec loads rather than
after a download.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

Algorithm = Literal["sha256", "sha512"]
HEX_LENGTH: dict[str, int] = {"sha256": 64, "sha512": 128}
_PATTERN = re.compile(r"^(sha256|sha512):([0-9a-fA-F]+)$")


@dataclass(frozen=True, slots=True)
class Digest:
    """An algorithm plus its lowercase hex digest."""

    algorithm: Algorithm
    hexdigest: str

    def __post_init__(self) -> None:
        if self.algorithm not in HEX_LENGTH:
            raise ValueError(f"unsupported digest algorithm {self.algorithm!r}")
        expected = HEX_LENGTH[self.algorithm]
        if len(self.hexdigest) != expected or not re.fullmatch(r"[0-9a-f]+", self.hexdigest):
            raise ValueError(
                f"{self.algorithm} digest must be {expected} lowercase hex characters, "
                f"got {len(self.hexdigest)}"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `sha256:<hex>`; hex may be upper case in vendor files, so normalise it."""
        match = _PATTERN.match(text.strip())
        if match is None:
            raise ValueError(f"digest must look like sha256:<hex> or sha512:<hex>, got {text!r}")
        algorithm = match.group(1)
        assert algorithm in ("sha256", "sha512")
        return cls(algorithm, match.group(2).lower())  # type: ignore[arg-type]

    def hasher(self) -> Any:
        """A fresh hashlib object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Digest:
            if isinstance(value, Digest):
                return value
            if not isinstance(value, str):
                raise ValueError("digest must be a string like sha256:<hex>")
            return cls.parse(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=core_schema.str_schema(
                pattern=r"^(sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$"
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )
