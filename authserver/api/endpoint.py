"""`@endpoint`: one declaration per API operation that parses, shapes and documents it.

    @bp.post("/signin")
    @ratelimits.route(...)                      # rate limits and auth run first, as before
    @endpoint(summary="Sign in with e-mail and password", tag="auth",
              request=SignIn, response=TokenResponse,
              errors={401: [INVALID_CREDENTIALS], 403: [ACCOUNT_DISABLED], 429: [RATE_LIMITED]})
    def signin(body: SignIn) -> TokenResponse: ...

The view gets the validated body as `body` (and query parameters as `query`), calls a flow,
and returns the response model (or a mapping the model validates). The decorator renders it
with the declared status and headers, and keeps the declaration as `view.operation`, from
which authserver.openapi builds /openapi.json. Put it innermost (just above the function),
so auth and rate limits still answer before the body is read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, jsonify
from flask import request as flask_request
from pydantic import BaseModel

from authserver.api.body import parse_body
from authserver.errors import ErrorCode

View = Callable[..., Any]

#: Security scheme names used in the document (see authserver.openapi).
BEARER = "bearer"
ACCESS_TOKEN_HEADER = "accessTokenHeader"


@dataclass(frozen=True)
class Operation:
    """What one view accepts and answers: enough to run it and to document it."""

    summary: str
    tag: str
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: Mapping[int, tuple[ErrorCode, ...]] = field(default_factory=dict)
    security: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    #: The body may be left out (no bytes at all): the view then gets `body=None`.
    body_optional: bool = False

    def problems(self) -> dict[int, tuple[ErrorCode, ...]]:
        """Every documented error status with its codes, including the implied ones."""
        out: dict[int, list[ErrorCode]] = {}
        if self.request is not None:
            out.setdefault(400, []).append(ErrorCode.INVALID_REQUEST)
        if self.security:
            out.setdefault(401, []).append(ErrorCode.INVALID_TOKEN)
        for status, codes in self.errors.items():
            known = out.setdefault(status, [])
            known.extend(code for code in codes if code not in known)
        return {status: tuple(out[status]) for status in sorted(out)}


def endpoint(
    *,
    summary: str,
    tag: str,
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: Mapping[int, Iterable[ErrorCode]] | None = None,
    security: tuple[str, ...] = (),
    headers: Mapping[str, str] | None = None,
    description: str | None = None,
    body_optional: bool = False,
) -> Callable[[View], Callable[..., Response]]:
    """Declare a view's request, response and failures; see the module docstring."""
    operation = Operation(
        summary=summary, tag=tag, request=request, query=query, response=response,
        status=status, errors={s: tuple(codes) for s, codes in (errors or {}).items()},
        security=security, headers=dict(headers or {}), description=description,
        body_optional=body_optional,
    )

    def decorate(view: View) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            if request is not None:
                empty = body_optional and not flask_request.get_data(cache=True)
                kwargs["body"] = None if empty else parse_body(request)
            if query is not None:
                kwargs["query"] = query.model_validate(flask_request.args.to_dict())
            result = view(*args, **kwargs)
            # A view may answer another documented status itself (see `render`).
            return result if isinstance(result, Response) else render(operation, result)

        wrapper.operation = operation  # type: ignore[attr-defined]
        return wrapper

    return decorate


def render(operation: Operation, result: Any) -> Response:
    """The HTTP answer: the response model's JSON (members in field order), or no body."""
    if operation.response is None:
        response = current_app.response_class(status=operation.status)
        del response.headers["Content-Type"]  # a 204 has no body, so no type either
    else:
        model = operation.response
        shaped = result if isinstance(result, model) else model.model_validate(result)
        response = jsonify(shaped.model_dump(mode="json"))
        response.status_code = operation.status
    for name, value in operation.headers.items():
        response.headers[name] = value
    return response


def operation_of(view: Callable[..., Any]) -> Operation | None:
    """The declaration of a registered view, looking through the decorators around it."""
    seen: Callable[..., Any] | None = view
    while seen is not None:
        found = getattr(seen, "operation", None)
        if isinstance(found, Operation):
            return found
        seen = getattr(seen, "__wrapped__", None)
    return None
