"""The one-time-code engine's transactions: storing a code can't deadlock, and a code is used
only together with the session it opens."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from authserver.extensions import db
from authserver.models import OneTimeCode, Session
from tests.flows.sms_helpers import last_code

PHONE = "+16502530000"


def _connect(url: str) -> pymysql.connections.Connection:
    parsed = make_url(url)
    return pymysql.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 3306,
                           user=parsed.username or "root", password=parsed.password or "",
                           database=parsed.database, autocommit=False)


def _row_values(subject: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return {"id": str(uuid.uuid4()), "subject": subject, "now": now,
            "later": now + timedelta(minutes=5)}


INSERT = ("INSERT INTO one_time_codes (id, purpose, channel, subject, code_hash, attempts, "
          "created_at, expires_at) VALUES (%(id)s, 'sign_in_sms', 'sms', %(subject)s, 'h', 0, "
          "%(now)s, %(later)s)")
# What request_code ran before: supersede by (purpose, subject), then insert, in one
# REPEATABLE READ transaction.
OLD_SUPERSEDE = ("UPDATE one_time_codes SET invalidated_at = %(now)s WHERE purpose = "
                 "'sign_in_sms' AND subject = %(subject)s AND consumed_at IS NULL AND "
                 "invalidated_at IS NULL")
# What codes._store runs now: a plain read, the insert, then the older rows by primary key.
NEW_READ = ("SELECT id FROM one_time_codes WHERE purpose = 'sign_in_sms' AND subject = "
            "%(subject)s AND consumed_at IS NULL AND invalidated_at IS NULL")
NEW_SUPERSEDE = ("UPDATE one_time_codes SET invalidated_at = %(now)s WHERE id IN %(ids)s AND "
                 "consumed_at IS NULL AND invalidated_at IS NULL")


def _interleave(url: str, first_steps: list[str], then: str) -> list[str]:
    """Two transactions for two phones in one empty index gap: each runs `first_steps`, then
    both run `then` at once. Returns how each transaction ended."""
    a, b = _connect(url), _connect(url)
    values = [_row_values("+16502530001"), _row_values("+16502530002")]
    outcomes: list[str] = []
    try:
        for conn, vals in ((a, values[0]), (b, values[1])):
            with conn.cursor() as cur:
                for step in first_steps:
                    cur.execute(step, vals)
                    vals["ids"] = tuple(row[0] for row in cur.fetchall()) or ("-",)

        def finish(conn: Any, vals: dict[str, Any]) -> None:
            try:
                with conn.cursor() as cur:
                    cur.execute(then, vals)
                conn.commit()
                outcomes.append("committed")
            except pymysql.err.OperationalError as exc:
                conn.rollback()
                outcomes.append(f"error {exc.args[0]}")

        threads = [threading.Thread(target=finish, args=pair)
                   for pair in ((a, values[0]), (b, values[1]))]
        for thread in threads:
            thread.start()
            time.sleep(0.3)  # the first waits on the second's lock, then the second moves
        for thread in threads:
            thread.join(timeout=30)
    finally:
        a.close()
        b.close()
    return sorted(outcomes)


@pytest.fixture
def mysql_app(app: Any, database_url: str) -> Any:
    if not database_url.startswith("mysql"):
        pytest.skip("InnoDB gap locks are MySQL's")
    db.session.commit()
    return app


def test_the_old_statements_deadlock_and_the_new_ones_cannot(mysql_app, database_url):
    # Before: each transaction's supersede holds the empty gap, then each INSERT waits for
    # the other's gap lock: InnoDB breaks the cycle by failing one with 1213.
    assert _interleave(database_url, [OLD_SUPERSEDE], INSERT) == ["committed", "error 1213"]
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM one_time_codes"))
    # Now: a plain read takes no lock, so the two INSERTs never wait on each other ...
    assert _interleave(database_url, [NEW_READ], INSERT) == ["committed", "committed"]
    # ... and the older codes are killed by primary key: record locks on distinct rows.
    assert _interleave(database_url, [NEW_READ, INSERT], NEW_SUPERSEDE) == [
        "committed", "committed"]


def test_a_failed_session_leaves_the_code_unused_and_usable(app, client, database_url):
    """A code is used only together with the session it opens: a database error in between
    (here a real one, raised by a trigger on the sessions table) rolls both back."""
    assert client.post("/api/v1/otp/request", json={"phone": PHONE}).status_code == 202
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    mysql = database_url.startswith("mysql")
    with db.engine.begin() as conn:
        conn.execute(text(
            "CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no sessions today'" if mysql else
            "CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions BEGIN "
            "SELECT RAISE(ABORT, 'no sessions today'); END"))
    try:
        failed = client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code})
        assert failed.status_code >= 500
        db.session.commit()
        assert db.session.scalar(select(OneTimeCode.consumed_at)) is None
        assert db.session.scalar(select(db.func.count()).select_from(Session)) == 0
    finally:
        db.session.commit()  # let go of the tables' metadata locks before the DROP
        with db.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_sessions"))
    signed_in = client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code})
    assert signed_in.status_code == 200
