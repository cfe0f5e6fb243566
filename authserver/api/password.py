"""POST /signup, POST /signin."""

from __future__ import annotations

from flask import Response

from authserver.api import bp
from authserver.api.body import json_body
from authserver.api.token_response import token_json
from authserver.flows import password
from authserver.transactions import committed


@bp.post("/signup")
@committed
def signup() -> tuple[Response, int]:
    body = json_body(required=("email", "password"), optional=("name",))
    return token_json(password.sign_up(body["email"], body["password"], body["name"])), 201


@bp.post("/signin")
@committed
def signin() -> Response:
    body = json_body(required=("email", "password"))
    return token_json(password.sign_in(body["email"], body["password"]))
