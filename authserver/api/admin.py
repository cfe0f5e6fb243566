"""Administration: find users, grant and take roles, disable accounts. Role `admin` only."""

from __future__ import annotations

from flask import Response, jsonify, request

from authserver import accounts, tokens
from authserver.api import bp
from authserver.api.body import json_body
from authserver.identifiers import normalize_email
from authserver.transactions import committed


@bp.get("/admin/users")
@tokens.require_role("admin")
def list_users() -> Response:
    email = request.args.get("email")
    if email:
        email = normalize_email(email)
    return jsonify({"users": [user.to_dict() for user in accounts.search(email)]})


@bp.post("/admin/users/<user_id>/roles")
@tokens.require_role("admin")
@committed
def add_role(user_id: str) -> Response:
    body = json_body(required=("role",))
    user = accounts.get(user_id)
    return jsonify(accounts.add_role(user, body["role"]).to_dict())


@bp.delete("/admin/users/<user_id>/roles/<role>")
@tokens.require_role("admin")
@committed
def remove_role(user_id: str, role: str) -> Response:
    user = accounts.get(user_id)
    return jsonify(accounts.remove_role(user, role).to_dict())


@bp.post("/admin/users/<user_id>/disable")
@tokens.require_role("admin")
@committed
def disable(user_id: str) -> Response:
    user = accounts.get(user_id)
    return jsonify(accounts.disable(user).to_dict())
