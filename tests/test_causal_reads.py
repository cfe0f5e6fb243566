"""DB_CAUSAL_READS: the token check's revocation lookup (sessions.is_open) runs as a causal
read on MariaDB (`SET STATEMENT wsrep_sync_wait=1 FOR SELECT …`, one statement, the same
round trip), and only that lookup; off by default. tests/cluster/ shows what it is for: a
logout on one Galera node refused at once on another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from authserver import causal_reads, sessions
from authserver.extensions import db


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every statement as sent to the server (after causal_reads' listener)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


@pytest.mark.parametrize("config_overrides", [{"DB_CAUSAL_READS": True}])
def test_the_revocation_lookup_is_a_causal_read(app, statements, config_overrides):
    assert sessions.is_open("no-such-session", "no-such-user") is False
    db.session.execute(text("SELECT 1"))  # any other statement: untouched
    lookups = [s for s in statements if "FROM sessions" in s]
    assert lookups, statements
    if db.engine.dialect.name == "mysql":
        assert all(s.startswith(causal_reads.MARIADB_PREFIX + "SELECT") for s in lookups)
    else:  # SQLite: one file, nothing to wait for
        assert not any(s.startswith("SET STATEMENT") for s in lookups)
    assert statements[-1] == "SELECT 1"


def test_off_by_default(app, statements):
    assert sessions.is_open("no-such-session", "no-such-user") is False
    assert not any(s.startswith("SET STATEMENT") for s in statements)
