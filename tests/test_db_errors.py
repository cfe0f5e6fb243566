"""Database failures are logged by cause (error class and the driver's error number), never
with the statement or its parameters: an e-mail address, a token hash or a password hash
must not reach the logs through an exception's text."""

from __future__ import annotations

import logging
import socket

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from authserver import create_app
from authserver.errors import db_error_summary
from authserver.extensions import db
from tests.conftest import base_config

SECRET_PARAM = "victim-secret@example.com"
STATEMENT = "UPDATE users SET name=%(name)s WHERE email=%(email)s"


def _db_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "authserver.errors"]


def _assert_clean(lines: list[str]) -> None:
    assert lines, "no database error was logged"
    for line in lines:
        assert SECRET_PARAM not in line
        assert "UPDATE" not in line and "SELECT" not in line and "%(" not in line


def test_a_deadlock_logs_its_number_not_its_parameters(app, client, caplog):
    """A deadlock-like OperationalError (pymysql's, errno 1213) answers 503 and logs
    "1213 (deadlock)" with the path, but neither the statement nor its parameters."""
    def deadlocked() -> str:
        raise OperationalError(STATEMENT, {"name": "x", "email": SECRET_PARAM},
                               pymysql.err.OperationalError(
                                   1213, "Deadlock found when trying to get lock; "
                                   "try restarting transaction"))

    app.add_url_rule("/_test/deadlock", view_func=deadlocked)
    with caplog.at_level(logging.ERROR, logger="authserver.errors"):
        response = client.get("/_test/deadlock")
    assert response.status_code == 503
    assert response.get_json()["code"] == "service_unavailable"
    assert SECRET_PARAM not in response.get_data(as_text=True)
    lines = _db_lines(caplog)
    _assert_clean(lines)
    assert any("1213 (deadlock)" in line and "OperationalError" in line
               and "GET /_test/deadlock" in line for line in lines), lines


def test_a_duplicate_entry_logs_its_number_not_the_value(app, client, caplog):
    """The server's own message quotes the value ("Duplicate entry 'a@b' …"): only 1062."""
    from sqlalchemy.exc import IntegrityError

    def duplicate() -> str:
        raise IntegrityError("INSERT INTO users (email) VALUES (%(email)s)",
                             {"email": SECRET_PARAM}, pymysql.err.IntegrityError(
                                 1062, f"Duplicate entry '{SECRET_PARAM}' for key 'email'"))

    app.add_url_rule("/_test/duplicate", view_func=duplicate)
    with caplog.at_level(logging.ERROR, logger="authserver.errors"):
        assert client.get("/_test/duplicate").status_code == 500
    lines = _db_lines(caplog)
    _assert_clean(lines)
    assert any("IntegrityError: pymysql IntegrityError 1062" in line for line in lines), lines


def test_a_real_lock_wait_timeout_logs_1205(tmp_path, mysql_url, caplog):
    """On MariaDB: a row held by another transaction makes the request's UPDATE give up
    (1205); the log line says so, without the e-mail address the statement carried."""
    app = create_app(base_config(tmp_path, mysql_url))

    def update_locked() -> str:
        db.session.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
        db.session.execute(text("UPDATE _lockwait SET name = :name WHERE id = 1"),
                           {"name": SECRET_PARAM})
        return "unreachable"

    app.add_url_rule("/_test/lockwait", view_func=update_locked)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS _lockwait"))
            conn.execute(text("CREATE TABLE _lockwait (id INT PRIMARY KEY, name VARCHAR(200)) "
                              "ENGINE=InnoDB"))
            conn.execute(text("INSERT INTO _lockwait VALUES (1, 'x')"))
        holder = db.engine.connect()
        try:
            holder.begin()
            holder.execute(text("SELECT * FROM _lockwait WHERE id = 1 FOR UPDATE"))
            with caplog.at_level(logging.ERROR, logger="authserver.errors"):
                response = app.test_client().get("/_test/lockwait")
        finally:
            holder.rollback()
            holder.close()
            db.session.remove()  # the request ran in this app context: end its transaction
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS _lockwait"))
        db.engine.dispose()
    assert response.status_code == 503
    lines = _db_lines(caplog)
    _assert_clean(lines)
    assert any("1205 (lock wait timeout)" in line for line in lines), lines


def test_a_database_that_does_not_answer_logs_2003(tmp_path, caplog):
    """A sign-in against a MySQL port nobody listens on: 503, and "2003 (cannot connect)"
    in the log, never the address that was being looked up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens
    url = f"mysql+pymysql://root@127.0.0.1:{port}/nothing?connect_timeout=2"
    app = create_app({**base_config(tmp_path, url), "WTF_CSRF_ENABLED": False})
    with caplog.at_level(logging.ERROR, logger="authserver.errors"):
        response = app.test_client().post("/api/v1/signin", json={
            "email": SECRET_PARAM, "password": "a long enough passphrase"})
    assert response.status_code == 503
    lines = _db_lines(caplog)
    _assert_clean(lines)
    assert any("2003 (cannot connect)" in line for line in lines), lines


def test_summary_of_errors_without_a_driver_error():
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    assert db_error_summary(PoolTimeoutError("QueuePool limit reached")) == "TimeoutError"
    lost = OperationalError("SELECT 1", None, pymysql.err.OperationalError(
        2013, "Lost connection to server during query"))
    assert db_error_summary(lost) == "OperationalError: pymysql OperationalError 2013 " \
                                     "(lost connection)"
