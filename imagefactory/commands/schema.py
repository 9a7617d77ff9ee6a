"""`imagefactory schema`: the JSON Schema of a distro spec, generated from the models."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("schema", help="print the JSON Schema of a distro spec")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imagefactory.spec.model import DistroSpec

    schema = DistroSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "imagefactory distro spec"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0
