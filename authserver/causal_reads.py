"""Causal reads on a multi-primary MySQL cluster (DB_CAUSAL_READS), for the statements that
ask for one with the execution option `causal_read=True`.

A node of a Galera cluster applies other nodes' writes a moment after they commit there; a
read in between sees the old row. For the token check's revocation lookup that moment is a
logout on node 1 still accepted on node 2. A causal read waits until the node has applied
everything the cluster had committed when the read began:

- MariaDB Galera: the statement runs as `SET STATEMENT wsrep_sync_wait=1 FOR SELECT …`, the
  same round trip (the variable is set for that one statement only);
- MySQL Group Replication: the connection's `group_replication_consistency` is set to
  `BEFORE` the first time it makes such a read (once per pooled connection, not per read;
  it then holds for the connection's other statements too).

On a single server either costs nothing measurable (nothing to wait for), but the option
is off by default: only a cluster needs it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

#: The execution option that asks for a causal read.
OPTION = "causal_read"
MARIADB_PREFIX = "SET STATEMENT wsrep_sync_wait=1 FOR "
_GR_SET = "authserver_group_replication_before"


@event.listens_for(Engine, "before_cursor_execute", retval=True)
def _causal(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any,
            executemany: bool) -> tuple[str, Any]:
    if context is None or not context.execution_options.get(OPTION):
        return statement, parameters
    dialect = conn.dialect
    if dialect.name != "mysql":
        return statement, parameters  # SQLite: one file, nothing to wait for
    if getattr(dialect, "is_mariadb", False):
        return MARIADB_PREFIX + statement, parameters
    info = conn.connection.info  # the pooled DBAPI connection's: lives as long as it does
    if not info.get(_GR_SET):
        cursor.execute("SET SESSION group_replication_consistency = 'BEFORE'")
        info[_GR_SET] = True
    return statement, parameters
