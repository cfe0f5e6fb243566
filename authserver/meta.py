"""Endpoints about the server itself: liveness, readiness, the JWKS and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from authserver.errors import unavailable
from authserver.extensions import db
from authserver.keys import keyring
from authserver.openapi import document

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        raise unavailable("The database is not answering.", retry_after=5) from None
    return jsonify({"status": "ready"})


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(keyring().jwks())
    # Resource servers cache this; five minutes lets a rotated-in key appear quickly.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())
