"""Fixtures: an app per test on a fresh database, on SQLite and on MySQL/MariaDB.

Database-backed tests run once per backend. MySQL comes from TEST_DATABASE_URL (default: the
local MariaDB, root without a password); each test run creates its own database and drops it
at the end. Under CI (CI=true) a MySQL that does not answer fails the run; elsewhere the MySQL
half of the tests skips with the reason.
"""

from __future__ import annotations

import contextvars
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from authserver import clock as clock_module
from authserver import create_app, session_checks
from authserver.extensions import db
from tests.fakes.smtp_server import FakeSmtp

DEFAULT_MYSQL = "mysql+pymysql://root@127.0.0.1:3306/"
SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _mysql_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_MYSQL)


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A fresh MySQL database for this test run (dropped afterwards)."""
    server = make_url(_mysql_server_url())
    name = f"authserver_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        conn = pymysql.connect(host=server.host or "127.0.0.1", port=server.port or 3306,
                               user=server.username or "root", password=server.password or "",
                               connect_timeout=3)
    except pymysql.err.OperationalError as exc:
        message = f"MySQL/MariaDB not reachable at {server.host}:{server.port}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "sqlite:///" + str(tmp_path_factory.mktemp("sqlite") / "test.db")


_schemas_made: set[str] = set()


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def base_config(tmp_path: Any, database_url: str) -> dict[str, Any]:
    return {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "PUBLIC_BASE_URL": "https://auth.example.test",
        "JWT_AUDIENCE": "test-audience",
        "SMS_BACKEND": "file",
        "EMAIL_BACKEND": "file",
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "REDIRECT_ALLOWLIST": ["https://app.example.test/callback", "myapp://auth"],
        "RATELIMIT_STORAGE_URI": "memory://",
        # Offline: no test asks the real range API; breach tests opt in with a loopback fake.
        "PWNED_PASSWORDS_URL": "",
        "TESTING": True,
        # Races of 20 threads on a loaded 2-core machine may queue on a row for longer than
        # production's 2 s lock-wait bound; the fault tests set their own bounds.
        "DATABASE_LOCK_WAIT_TIMEOUT": 10,
        "DATABASE_READ_TIMEOUT": 15,
    }


def _reset_schema(database_url: str) -> None:
    """Create the tables once per database, then empty them before every test."""
    if database_url not in _schemas_made:
        db.drop_all()
        db.create_all()
        _schemas_made.add(database_url)
        return
    with db.engine.begin() as conn:
        if conn.dialect.name == "mysql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in db.metadata.sorted_tables:
                conn.execute(text(f"TRUNCATE TABLE `{table.name}`"))
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def app(tmp_path: Any, database_url: str, config_overrides: dict[str, Any]) -> Iterator[Any]:
    app = create_app({**base_config(tmp_path, database_url), **config_overrides})
    with app.app_context():
        _reset_schema(database_url)
        yield app
        db.session.remove()
        db.engine.dispose()
        checks = session_checks.engine()
        if checks is not None:
            checks.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    """A real SMTP server on loopback that keeps what it is sent (tests/fakes/smtp_server.py);
    `fake_smtp.app_settings()` points an app at it."""
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def clock() -> Iterator[Any]:
    """The server's clock; `clock.travel(seconds)` moves it."""
    clock_module.reset()
    yield clock_module
    clock_module.reset()


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock_module.reset()


PASSWORD = "correct horse battery staple"


@pytest.fixture
def signup(client: Any) -> Any:
    """Sign a new user up through the API; returns the token response."""

    def _signup(email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
        response = client.post("/api/v1/signup", json={"email": email, "password": password})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return _signup


@pytest.fixture
def admin_token(app: Any, client: Any) -> str:
    """An access token of a user with the admin role, signed in with password and an
    authenticator app (the admin API needs a second factor: MFA_REQUIRED_ROLES)."""
    from authserver import accounts, passwords
    from tests.helpers import enrol_totp, totp_code

    admin = accounts.create(email="root@example.com",
                            password_hash=passwords.hash_password(PASSWORD), roles=["admin"])
    secret = enrol_totp(admin.id)
    response = client.post("/api/v1/signin",
                           json={"email": "root@example.com", "password": PASSWORD})
    assert response.status_code == 401, response.get_json()
    response = client.post("/api/v1/mfa/verify", json={
        "mfa_token": response.get_json()["mfa_token"], "code": totp_code(secret)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


class IsolatedClient(FlaskClient):
    """A test client whose requests each get their own app context (own `g`, own DB session).

    The `app` fixture keeps an app context open for the test body, and Flask reuses an open
    context for requests; that shares `g` (e.g. Flask-WTF's CSRF token) across requests in a
    way production never does. Running each request in an empty contextvars.Context restores
    one context per request.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return contextvars.Context().run(super().open, *args, **kwargs)
