"""How the main engine's pool hands out MySQL connections: one round trip fewer, twice.

SQLAlchemy's `pool_pre_ping` pings every connection it hands out, and its reset-on-return
rolls every connection back as it comes back. A sign-in runs several short transactions (an
attempt is counted and committed before the password is compared), so that was three round
trips around each of them. Instead:

- A connection is pinged only when it sat in the pool for `IDLE_BEFORE_PING` seconds or more:
  one used a moment ago was answering a moment ago. A ping that fails discards the connection
  and the pool hands out another (SQLAlchemy's documented pessimistic-disconnect recipe). A
  database that restarts under load fails the statements in flight, and those connections are
  discarded as they fail (SQLAlchemy invalidates the pool on a disconnect error).
- No reset on return (`pool_reset_on_return=None`, config.py): every transaction here ends
  with a COMMIT or a ROLLBACK before its connection goes back (the Session and Connection
  both end theirs on close), so the pool's own ROLLBACK after it would roll back nothing.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

#: Seconds a pooled connection may sit unused and still be handed out without a ping.
IDLE_BEFORE_PING = 1.0
_IDLE_SINCE = "authserver.idle_since"


def ping_when_idle(engine: Engine) -> None:
    """Ping `engine`'s MySQL connections on checkout only after they sat idle."""
    event.listen(engine, "connect", _fresh)
    event.listen(engine, "checkin", _idle)
    event.listen(engine, "checkout", _checkout)


def _fresh(dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()  # just connected: answering now


def _idle(dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    since = record.info.get(_IDLE_SINCE)
    if since is not None and time.monotonic() - since < IDLE_BEFORE_PING:
        return
    try:
        dbapi_connection.ping(reconnect=False)
    except Exception as exc:  # the driver's error, whichever: this connection is gone
        # The pool discards this connection and checks out another (up to three times).
        raise DisconnectionError("a pooled connection no longer answers") from exc
