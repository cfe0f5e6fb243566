"""The MySQL pools after issue 14: the main engine pings a connection only after it sat idle
(db_pool.py) and the token check's engine retries a read once on a fresh connection
(session_checks.py). Either way, a connection the server dropped costs no request."""

from __future__ import annotations

import time
from typing import Any

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from authserver import db_pool, session_checks
from authserver.extensions import db


@pytest.fixture
def database_url(mysql_url: str) -> str:
    """MySQL only: SQLite has no server to drop a connection."""
    return mysql_url


def _kill(mysql_url: str, connection_id: int) -> None:
    url = make_url(mysql_url)
    killer = pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306,
                             user=url.username or "root", password=url.password or "",
                             database=url.database)
    try:
        with killer.cursor() as cursor:
            cursor.execute(f"KILL CONNECTION {int(connection_id)}")
    finally:
        killer.close()


def _connection_id(connection: Any) -> int:
    return int(connection.execute(text("SELECT CONNECTION_ID()")).scalar_one())


def test_a_connection_dropped_while_idle_is_replaced_at_checkout(app: Any, mysql_url: str):
    with db.engine.connect() as connection:
        dropped = _connection_id(connection)
    _kill(mysql_url, dropped)
    time.sleep(db_pool.IDLE_BEFORE_PING + 0.2)
    with db.engine.connect() as connection:  # pinged, found dead, replaced
        assert _connection_id(connection) != dropped


def test_a_connection_in_use_a_moment_ago_is_not_pinged(app: Any, mysql_url: str):
    with db.engine.connect() as connection:
        before = _connection_id(connection)
    with db.engine.connect() as connection:
        assert _connection_id(connection) == before  # the same one, handed out at once
        pings = connection.execute(text(
            "SHOW SESSION STATUS LIKE 'Com_admin_commands'")).one()[1]
    with db.engine.connect() as connection:
        again = connection.execute(text(
            "SHOW SESSION STATUS LIKE 'Com_admin_commands'")).one()[1]
    assert again == pings  # a ping is an admin command: none was sent in between


def test_the_token_check_survives_a_dropped_connection(app: Any, mysql_url: str):
    checks = session_checks.engine()
    assert checks is not None
    raw = checks.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            dropped = cursor.fetchone()[0]
    finally:
        raw.close()
    _kill(mysql_url, dropped)
    # The next check gets that pooled connection, fails on it, and retries on a new one.
    assert session_checks.is_open("no-such-session", "no-such-user") is False
    raw = checks.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            assert cursor.fetchone()[0] != dropped
    finally:
        raw.close()
