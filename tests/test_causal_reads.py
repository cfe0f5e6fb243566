"""DB_CAUSAL_READS: the token check's revocation lookup (session_checks.py) runs as a causal
read on MariaDB (`SET STATEMENT wsrep_sync_wait=1 FOR SELECT …`, one statement, the same
round trip); off by default. tests/cluster/ shows what it is for: a logout on one Galera node
refused at once on another."""

from __future__ import annotations

import pytest

from authserver import causal_reads, session_checks
from authserver.extensions import db


def _dialect():
    return (session_checks.engine() or db.engine).dialect


@pytest.mark.parametrize("config_overrides", [{"DB_CAUSAL_READS": True}])
def test_the_revocation_lookup_is_a_causal_read(app, config_overrides):
    # The server runs the prefixed statement (a MariaDB without a cluster has nothing to
    # wait for) and the check answers as ever.
    assert session_checks.is_open("no-such-session", "no-such-user") is False
    assert session_checks.open_user("no-such-session", "no-such-user") is None
    for statement in session_checks.STATEMENTS:
        sql = statement.compiled(_dialect(), causal=True)[0]
        if db.engine.dialect.name == "mysql":
            assert sql.startswith(causal_reads.MARIADB_PREFIX + "SELECT")
        else:  # SQLite: one file, nothing to wait for
            assert sql.startswith("SELECT")


def test_off_by_default(app):
    assert app.config["DB_CAUSAL_READS"] is False
    for statement in session_checks.STATEMENTS:
        assert statement.compiled(_dialect())[0].startswith("SELECT")
