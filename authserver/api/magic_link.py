"""POST /magic-link/request, POST /magic-link/verify."""

from __future__ import annotations

from flask import Response, jsonify

from authserver import ratelimits
from authserver.api import bp
from authserver.api.body import json_body
from authserver.api.token_response import token_json
from authserver.errors import Problem
from authserver.flows import magic_link
from authserver.transactions import committed


@bp.post("/magic-link/request")
@committed
def request_link() -> tuple[Response, int]:
    body = json_body(required=("email",),
                     optional=("redirect_to", "code_challenge", "code_challenge_method"))
    result = magic_link.request_link(body["email"], body["redirect_to"],
                                     body["code_challenge"], body["code_challenge_method"])
    return jsonify(result), 202


@bp.post("/magic-link/verify")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def verify() -> Response:
    body = json_body(optional=("token", "email", "code"))
    if body["token"]:
        return token_json(magic_link.verify_link(body["token"]))
    if body["email"] and body["code"]:
        return token_json(magic_link.verify_code(body["email"], body["code"]))
    raise Problem(400, "invalid_request", "Send either {token} or {email, code}.")
