"""authserver: sign in with a password, an SMS code or an e-mailed link; one token module.

`create_app()` builds the app: configuration, extensions, blueprints, error handlers, CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver import config as settings

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app. `config` overrides what the environment says (tests use this)."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    overrides = dict(config or {})
    if "INSTANCE_PATH" in overrides:
        app.instance_path = overrides.pop("INSTANCE_PATH")
    os.makedirs(app.instance_path, exist_ok=True)

    loaded = settings.load()
    loaded.update(overrides)
    app.config.update(settings.finalize(loaded, app.instance_path))
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _configure_logging(app)

    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)  # type: ignore[method-assign]

    from authserver import cli, errors, headers
    from authserver.extensions import csrf, db, limiter, migrate
    from authserver.keys import KeyRing

    db.init_app(app)
    _sqlite_foreign_keys(app)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    app.extensions["authserver.keyring"] = KeyRing(app)

    from authserver import api, meta, web

    app.register_blueprint(api.bp)
    app.register_blueprint(meta.bp)
    app.register_blueprint(web.bp)
    csrf.exempt(api.bp)
    csrf.exempt(meta.bp)

    errors.init_app(app)
    headers.init_app(app)
    cli.init_app(app)
    return app


def _sqlite_foreign_keys(app: Flask) -> None:
    """SQLite ignores foreign keys (and so ON DELETE CASCADE) unless each connection asks."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    from authserver.extensions import db

    def enable(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    with app.app_context():
        event.listen(db.engine, "connect", enable)


def _configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config["LOG_LEVEL"]).upper(), logging.INFO)
    logger = logging.getLogger("authserver")
    logger.setLevel(level)
    # The Twilio SDK logs each request URL (with the account SID) at INFO.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
