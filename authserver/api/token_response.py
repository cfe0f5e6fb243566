"""The token response of every sign-in and refresh, as JSON."""

from __future__ import annotations

from flask import Response, jsonify

from authserver.tokens import IssuedTokens


def token_json(issued: IssuedTokens) -> Response:
    """`{"access_token", "token_type", "expires_in", "refresh_token", "user"}`, in that order."""
    return jsonify(issued.response())
