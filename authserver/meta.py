"""Endpoints about the server itself: liveness, readiness, the JWKS and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text

from authserver.api.endpoint import endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import unavailable
from authserver.extensions import db
from authserver.keys import keyring
from authserver.openapi import document
from authserver.schemas.responses import Health, Jwks, OpenApiDocument, Ready

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
@endpoint(summary="Liveness: the process runs", tag="meta", response=Health)
def healthz() -> Health:
    return Health(status="ok")


@bp.get("/readyz")
@endpoint(summary="Readiness: the database answers", tag="meta", response=Ready,
          errors={503: [E.SERVICE_UNAVAILABLE]})
def readyz() -> Ready:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        raise unavailable("The database is not answering.", retry_after=5) from None
    return Ready(status="ready")


# Resource servers cache this; five minutes lets a rotated-in key appear quickly.
@bp.get("/.well-known/jwks.json")
@endpoint(summary="Public keys that verify access tokens", tag="meta", response=Jwks,
          headers={"Cache-Control": "public, max-age=300"})
def jwks() -> dict[str, Any]:
    return keyring().jwks()


@bp.get("/openapi.json")
@endpoint(summary="This document (OpenAPI 3.1), generated from the endpoints' schemas",
          tag="meta", response=OpenApiDocument)
def openapi() -> dict[str, Any]:
    return document()
