"""Reading JSON bodies: one place decides what a well-formed request looks like.

The request's model (authserver.schemas.requests) says which fields there are; this module
reads the JSON object and turns a validation failure into the API's `400 invalid_request`,
worded as it always was, plus a field-level `errors` list.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from authserver.errors import ErrorCode, Problem
from authserver.schemas.fields import MAX_FIELD_LENGTH

M = TypeVar("M", bound=BaseModel)

_MISSING = "This field is required."
_NOT_A_STRING = "This field must be a string."
_TOO_LONG = f"This value is longer than {MAX_FIELD_LENGTH} characters."
_NOT_TEXT = "This value holds a NUL character or an unpaired surrogate."


def json_object() -> dict[str, Any]:
    """The request's JSON object; 400 invalid_request for anything else."""
    if not request.is_json:
        raise Problem(400, ErrorCode.INVALID_REQUEST, "Send a JSON object with Content-Type: "
                                                      "application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        # json.loads gives up on deep nesting with RecursionError, not ValueError.
        data = None
    if not isinstance(data, dict):
        raise Problem(400, ErrorCode.INVALID_REQUEST, "The body must be a JSON object.")
    return data


def parse_body(model: type[M]) -> M:
    """The request's JSON object validated by `model`; 400 invalid_request otherwise."""
    data = json_object()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _problem(model, data, exc.errors(include_url=False, include_input=False)) from None


def _problem(model: type[BaseModel], data: dict[str, Any],
             details: list[ErrorDetails]) -> Problem:
    """The one problem for all of a body's faults, about the first as the API always was:
    missing required fields first (null and "" count as missing), then the first bad field
    in the model's field order."""
    order = list(model.model_fields)
    missing: list[str] = []
    bad: list[tuple[str, str]] = []  # (field, message)
    for found in details:
        name = str(found["loc"][0]) if found["loc"] else ""
        field = model.model_fields.get(name)
        if field is None:  # not a field's fault (a model-level check): never expected here
            raise ValueError(f"{model.__name__} refused a body for a reason no field explains")
        if field.is_required() and data.get(name) in (None, ""):
            missing.append(name)
        elif found["type"] == "string_type":
            bad.append((name, _NOT_A_STRING))
        elif found["type"] == "string_too_long":
            bad.append((name, _TOO_LONG))
        else:  # string_unicode (lone surrogates), not_acceptable (NUL)
            bad.append((name, _NOT_TEXT))
    missing.sort(key=order.index)
    bad.sort(key=lambda item: order.index(item[0]))
    errors = [{"field": name, "message": _MISSING} for name in missing]
    errors += [{"field": name, "message": message} for name, message in bad]
    errors.sort(key=lambda item: order.index(item["field"]))
    if missing:
        return Problem(400, ErrorCode.INVALID_REQUEST, f"Missing field: {', '.join(missing)}.",
                       field=missing[0], errors=errors)
    name, message = bad[0]
    detail = (f"Field '{name}' must be a string." if message == _NOT_A_STRING
              else f"Field '{name}' is not acceptable.")
    return Problem(400, ErrorCode.INVALID_REQUEST, detail, field=name, errors=errors)
