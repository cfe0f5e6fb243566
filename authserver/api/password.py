"""POST /signup, POST /signin."""

from __future__ import annotations

from flask import Response, jsonify

from authserver.api import bp
from authserver.api.body import json_body
from authserver.flows import password


@bp.post("/signup")
def signup() -> tuple[Response, int]:
    body = json_body(required=("email", "password"), optional=("name",))
    return jsonify(password.sign_up(body["email"], body["password"], body["name"])), 201


@bp.post("/signin")
def signin() -> Response:
    body = json_body(required=("email", "password"))
    return jsonify(password.sign_in(body["email"], body["password"]))
