"""Causal reads on a multi-primary MySQL cluster (DB_CAUSAL_READS), for the token check's
revocation lookup (session_checks.py).

A node of a Galera cluster applies other nodes' writes a moment after they commit there; a
read in between sees the old row. For the token check that moment is a logout on node 1
still accepted on node 2. A causal read waits until the node has applied everything the
cluster had committed when the read began:

- MariaDB Galera: the statement runs as `SET STATEMENT wsrep_sync_wait=1 FOR SELECT …`, the
  same round trip (the variable is set for that one statement only);
- MySQL Group Replication: each connection of the token check's own engine sets its
  `group_replication_consistency` to `BEFORE` once, when it connects (that engine runs
  nothing but the check, so nothing else waits).

On a single server either costs next to nothing (nothing to wait for), but the option is off
by default: only a cluster needs it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Dialect, Engine, event

MARIADB_PREFIX = "SET STATEMENT wsrep_sync_wait=1 FOR "
GROUP_REPLICATION_BEFORE = "SET SESSION group_replication_consistency = 'BEFORE'"


def causal(sql: str, dialect: Dialect) -> str:
    """`sql` (one SELECT) as a causal read on `dialect`'s server, where a statement can say so."""
    if dialect.name == "mysql" and getattr(dialect, "is_mariadb", False):
        return MARIADB_PREFIX + sql
    return sql


def group_replication_consistency(engine: Engine) -> None:
    """Make every connection `engine` opens to a MySQL (not MariaDB) server read causally."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "mysql" and not getattr(engine.dialect, "is_mariadb", False):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(GROUP_REPLICATION_BEFORE)
            finally:
                cursor.close()

    event.listen(engine, "connect", on_connect)
