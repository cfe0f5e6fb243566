"""Endpoints about the server itself: liveness, readiness, the JWKS, security.txt, the
Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from authserver import clock, metrics
from authserver.api.endpoint import Operation, endpoint
from authserver.config import settings
from authserver.errors import ErrorCode as E
from authserver.errors import Problem, unavailable
from authserver.extensions import db, limiter
from authserver.keys import keyring
from authserver.openapi import document
from authserver.schemas.responses import Health, Jwks, OpenApiDocument, Ready

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
@endpoint(summary="Liveness: the process runs (waits on nothing)", tag="meta", response=Health)
def healthz() -> Health:
    return Health(status="ok")


#: Seconds the readiness probe waits for the database (connect, handshake, SELECT 1 each), so
#: /readyz answers within about 2 s even when the database hangs.
PROBE_TIMEOUT = 1
_PROBE_ENGINE = "authserver.readyz_engine"


def _probe_engine() -> Engine | None:
    """A MySQL engine of its own for /readyz: a fresh connection per probe with one-second
    timeouts, never the app's pool (whose waits are longer, and which a hung database may
    have filled). None on other databases (SQLite: the app's session is local and quick)."""
    if _PROBE_ENGINE not in current_app.extensions:
        url = db.engine.url
        engine = None
        if url.get_backend_name() == "mysql":
            engine = create_engine(url, poolclass=NullPool, connect_args={
                "connect_timeout": PROBE_TIMEOUT, "read_timeout": PROBE_TIMEOUT,
                "write_timeout": PROBE_TIMEOUT, "charset": "utf8mb4"})
        current_app.extensions[_PROBE_ENGINE] = engine
    engine = current_app.extensions[_PROBE_ENGINE]
    return engine if isinstance(engine, Engine) else None


def _database_answers() -> bool:
    engine = _probe_engine()
    try:
        if engine is None:
            db.session.execute(text("SELECT 1"))
        else:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    except Exception:
        if engine is None:
            db.session.rollback()
        return False
    return True


@bp.get("/readyz")
@endpoint(summary="Readiness: the database answers (and which other dependency is down)",
          tag="meta", response=Ready, errors={503: [E.SERVICE_UNAVAILABLE]})
def readyz() -> Ready:
    """503 when the database does not answer within a second or so: nothing works without it.
    A down rate-limit store (Redis) is 200 `degraded`: sign-in still works, with limits
    counted in each process's memory until the store answers again."""
    if not _database_answers():
        raise unavailable("The database is not answering.", retry_after=5)
    degraded: list[Any] = []
    if settings().ratelimit_enabled and not limiter.probe():
        degraded.append("rate_limit_store")
    return Ready(status="degraded" if degraded else "ready", degraded=degraded)


# Resource servers cache this; five minutes lets a rotated-in key appear quickly.
@bp.get("/.well-known/jwks.json")
@endpoint(summary="Public keys that verify access tokens", tag="meta", response=Jwks,
          headers={"Cache-Control": "public, max-age=300"})
def jwks() -> dict[str, Any]:
    return keyring().jwks()


SECURITY_TXT_TYPE = "text/plain; charset=utf-8"


@bp.get("/.well-known/security.txt")
def security_txt() -> Response:
    """RFC 9116: whom to tell about a vulnerability. Plain text, so it is not an @endpoint
    (which answers JSON); its declaration below puts it in the OpenAPI document all the same."""
    contacts = settings().security_contact
    if not contacts:
        raise Problem(404, E.NOT_FOUND, "There is nothing at this address.")
    # Expires is required and must be less than a year ahead; computed per request, a
    # running server never serves a stale file.
    expires = (clock.now() + timedelta(days=365) - timedelta(seconds=1)).replace(microsecond=0)
    lines = [f"Contact: {contact}" for contact in contacts]
    lines += [
        f"Expires: {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "Preferred-Languages: en",
        f"Canonical: {settings().public_base_url}/.well-known/security.txt",
    ]
    return current_app.response_class("\n".join(lines) + "\n", mimetype="text/plain",
                                      headers={"Cache-Control": "public, max-age=86400"})


security_txt.operation = Operation(  # type: ignore[attr-defined]
    summary="Security contact (RFC 9116), as text/plain",
    tag="meta",
    errors={404: (E.NOT_FOUND,)},
    headers={"Content-Type": SECURITY_TXT_TYPE, "Cache-Control": "public, max-age=86400"},
    description="`Contact:` lines from SECURITY_CONTACT, `Expires:` (a year ahead), "
                "`Preferred-Languages: en` and `Canonical:`. `404 not_found` when "
                "SECURITY_CONTACT is empty.",
)


def _metrics_token_given() -> bool:
    """No METRICS_TOKEN: open. Else `Authorization: Bearer <it>`, compared in constant time."""
    token = settings().metrics_token
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text format (not JSON, so not an @endpoint; declared below like
    security.txt). Under gunicorn, every worker's values added up (metrics.registry)."""
    if not _metrics_token_given():
        raise Problem(401, E.INVALID_TOKEN, "A valid metrics token is required.",
                      headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return current_app.response_class(generate_latest(metrics.registry()),
                                      headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


prometheus_metrics.operation = Operation(  # type: ignore[attr-defined]
    summary="Prometheus metrics, in the text exposition format",
    tag="meta",
    errors={401: (E.INVALID_TOKEN,)},
    headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
    description="Sign-ins, codes sent and refreshes counted by outcome, request and provider "
                "durations, open sessions (docs/api.md, \"Metrics\"). When METRICS_TOKEN is "
                "set, `Authorization: Bearer <METRICS_TOKEN>` is required (`401 "
                "invalid_token` otherwise). Under gunicorn, the sum over every worker.",
)


@bp.get("/openapi.json")
@endpoint(summary="This document (OpenAPI 3.1), generated from the endpoints' schemas",
          tag="meta", response=OpenApiDocument)
def openapi() -> dict[str, Any]:
    return document()
