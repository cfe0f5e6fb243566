"""Token and session endpoints: refresh, logout, me, isAuthenticated, isAdmin."""

from __future__ import annotations

from flask import Response, g, jsonify

from authserver import ratelimits, tokens
from authserver.api import bp
from authserver.api.body import json_body
from authserver.api.token_response import token_json
from authserver.flows import handoff
from authserver.transactions import committed


@bp.post("/token/refresh")
@ratelimits.route(ratelimits.TOKEN_IP)
@committed
def refresh() -> Response:
    body = json_body(required=("refresh_token",))
    return token_json(tokens.refresh(body["refresh_token"]))


@bp.post("/logout")
@tokens.require_auth
@committed
def logout() -> Response:
    tokens.revoke_session(g.claims.session_id, reason="logout")
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


@bp.get("/me")
@tokens.require_auth
def me() -> Response:
    return jsonify(tokens.current_user().to_dict())


@bp.get("/isAuthenticated")
@tokens.require_auth(allow_legacy_header=True)
def is_authenticated() -> Response:
    claims = g.claims
    return jsonify({"user_id": claims.user_id, "session_id": claims.session_id,
                    "roles": claims.roles})


@bp.get("/isAdmin")
@tokens.require_auth
def is_admin() -> Response:
    return jsonify({"is_admin": "admin" in tokens.current_user().role_names})


@bp.post("/token/exchange")
@ratelimits.route(ratelimits.TOKEN_IP)
@committed
def exchange() -> Response:
    body = json_body(required=("code",), optional=("code_verifier",))
    return token_json(handoff.exchange(body["code"], body["code_verifier"]))
