"""Validate a layer (`distros/_defaults.yaml`) on its own: known keys, right types, nothing
required.

A layer is merged under every distro file (mappings merge key by key), so any field of a
mapping may be missing and the cross-field rules (`provider git needs git.url`) belong to
the merged spec.  Everything else holds as in a spec: a typo is an unknown key, a value has
its field's type and the field's own checks.  The layer's models are derived from the spec
models, so the two can never drift apart.
"""

from __future__ import annotations

import copy
import functools
import types
from typing import Any, Union, get_args, get_origin

from pydantic import ValidationError, create_model, field_validator

from imagefactory.errors import SpecError
from imagefactory.spec.located import LocatedDoc, format_validation_error
from imagefactory.spec.model import DistroSpec
from imagefactory.spec.types import StrictModel


def _model_in(annotation: Any) -> type[StrictModel] | None:
    """The spec model `annotation` is (`Model` or `Model | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, StrictModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [_model_in(arg) for arg in get_args(annotation) if arg is not type(None)]
        if len(models) == 1:
            return models[0]
    return None


@functools.cache
def layer_model(model: type[StrictModel]) -> type[StrictModel]:
    """`model` with every field optional; mappings of models become layers themselves.

    Lists keep their full item models: a list in a layer is replaced whole by a distro's,
    never merged, so each item must be complete.  Field validators are kept; model
    validators (rules across fields) are not.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        inner = _model_in(info.annotation)
        annotation = layer_model(inner) if inner is not None else info.annotation
        layer_info = copy.copy(info)
        layer_info.default = None
        layer_info.default_factory = None
        fields[name] = (annotation, layer_info)
    validators = {
        f"{decorator.cls_var_name}": field_validator(
            *decorator.info.fields, mode=decorator.info.mode
        )(getattr(decorator.func, "__func__", decorator.func))  # the classmethod's function
        for decorator in model.__pydantic_decorators__.field_validators.values()
        if decorator.cls_var_name != "_printable"  # inherited from StrictModel already
    }
    layer: type[StrictModel] = create_model(
        f"{model.__name__}Layer",
        __base__=StrictModel,
        __validators__=validators,
        __doc__=f"A layer of {model.__name__}: every field optional.",
        **fields,
    )
    layer.multiline_fields = model.multiline_fields
    return layer


def validate_layer(doc: LocatedDoc) -> None:
    """Raise a SpecError with one `file:line: field: message` line per problem."""
    try:
        layer_model(DistroSpec).model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, doc)) from None
