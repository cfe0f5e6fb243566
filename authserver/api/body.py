"""Reading JSON bodies: one place decides what a well-formed request looks like."""

from __future__ import annotations

from typing import Any

from flask import request

from authserver.errors import Problem

MAX_FIELD_LENGTH = 4096


def _encodable(value: str) -> bool:
    """False for lone surrogates ("\\ud800" is valid JSON but not text any database stores)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_body(required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The request's JSON object with the named string fields; 400 invalid_request otherwise."""
    if not request.is_json:
        raise Problem(400, "invalid_request", "Send a JSON object with Content-Type: "
                                              "application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        # json.loads gives up on deep nesting with RecursionError, not ValueError.
        data = None
    if not isinstance(data, dict):
        raise Problem(400, "invalid_request", "The body must be a JSON object.")
    missing = [name for name in required if data.get(name) in (None, "")]
    if missing:
        raise Problem(400, "invalid_request", f"Missing field: {', '.join(missing)}.",
                      field=missing[0])
    out: dict[str, Any] = {}
    for name in (*required, *optional):
        value = data.get(name)
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, str):
            raise Problem(400, "invalid_request", f"Field '{name}' must be a string.",
                          field=name)
        if len(value) > MAX_FIELD_LENGTH or "\x00" in value or not _encodable(value):
            raise Problem(400, "invalid_request", f"Field '{name}' is not acceptable.",
                          field=name)
        out[name] = value
    return out
