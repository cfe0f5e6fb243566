"""authserver: sign in with a password, an SMS code or an e-mailed link; one token module.

`create_app()` builds the app: configuration, extensions, blueprints, error handlers, CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
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

    loaded = settings.load(overrides, app.instance_path)
    app.config.update(loaded.flask_config())
    # Flask's own keys (TESTING, WTF_CSRF_ENABLED, …) pass straight through.
    app.config.update({k: v for k, v in overrides.items() if k.upper() not in settings.NAMES})
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = _CookieSessions()
    _configure_logging(app, loaded.log_level, loaded.log_format)

    if loaded.proxy_fix_hops:
        hops = loaded.proxy_fix_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)  # type: ignore[method-assign]

    from authserver import (
        audit,
        cli,
        cors,
        errors,
        headers,
        logs,
        metrics,
        request_limits,
        services,
        session_checks,
    )
    from authserver.extensions import csrf, db, limiter, migrate

    db.init_app(app)
    _sqlite_foreign_keys(app, loaded.database_url)
    if loaded.database_url.startswith("mysql"):
        from authserver import db_pool

        with app.app_context():
            db_pool.ping_when_idle(db.engine)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    services.init_app(app, loaded)
    session_checks.init_app(app, loaded)
    audit.init_app(app)

    from authserver import api, meta, web

    app.register_blueprint(api.bp)
    app.register_blueprint(meta.bp)
    app.register_blueprint(web.bp)
    csrf.exempt(api.bp)
    csrf.exempt(meta.bp)

    errors.init_app(app)
    headers.init_app(app)
    cors.init_app(app)
    request_limits.init_app(app)
    cli.init_app(app)
    metrics.init_app(app)
    logs.init_app(app)
    from authserver import webhooks  # the webhook outbox's sink, when WEBHOOK_URL is set
    webhooks.init_app(app)
    return app


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened without building a signer when the request
    carries no session cookie: API callers never do, and the token check is on every request
    of every service that uses us."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def _sqlite_foreign_keys(app: Flask, database_url: str) -> None:
    """SQLite ignores foreign keys (and so ON DELETE CASCADE) unless each connection asks."""
    if not database_url.startswith("sqlite"):
        return
    from sqlalchemy import event

    from authserver.extensions import db

    def enable(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    with app.app_context():
        event.listen(db.engine, "connect", enable)


def _configure_logging(app: Flask, log_level: str, log_format: str) -> None:
    from authserver.logs import formatter

    level = getattr(logging, log_level.upper(), logging.INFO)
    logger = logging.getLogger("authserver")
    logger.setLevel(level)
    # The Twilio SDK logs each request URL (with the account SID) at INFO.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    # The pool's records come from child loggers (sqlalchemy.pool.impl.QueuePool), which a
    # logger filter here would not see: a handler of its own, with the filter, does.
    pool = logging.getLogger("sqlalchemy.pool")
    if not any(isinstance(f, _OneLineDatabaseErrors) for h in pool.handlers for f in h.filters):
        one_line = logging.StreamHandler()
        one_line.addFilter(_OneLineDatabaseErrors())
        pool.addHandler(one_line)
        pool.propagate = False
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler._authserver = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    # LOG_FORMAT (json | text, logs.py) on the handlers made here; under gunicorn the root
    # logger's handler comes with gunicorn.conf.py's logconfig_dict, in the same format.
    for own in [*pool.handlers, *logger.handlers]:
        if any(isinstance(f, _OneLineDatabaseErrors) for f in own.filters) or getattr(
                own, "_authserver", False):
            own.setFormatter(formatter(log_format))


class _OneLineDatabaseErrors(logging.Filter):
    """SQLAlchemy's pool logs a full traceback when a connection of a dead database can't be
    reset or closed; during an outage that is dozens of lines per request. Keep one line with
    the error's class and number (errors.db_error_summary: never SQL or parameters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            from authserver.errors import db_error_summary

            record.msg = f"{record.getMessage()}: {db_error_summary(record.exc_info[1])}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True
