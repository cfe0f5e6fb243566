"""The token check's one round trip: is the session behind an access token still open and its
user enabled (`is_open`), and, for `GET /me`, that together with the user (`open_user`).

Every request of every service that relies on us may ask this, so each answer is one indexed
statement and nothing else. On MySQL it runs on the `checks` engine (config.py,
`checks_engine_options`): autocommit connections kept open in the pool, so there is no
transaction to begin and roll back, no reset when a connection goes back to the pool, and no
"pre-ping" round trip before each use. A connection the server dropped meanwhile (a restart, a
failover) fails its first statement instead; the read is then retried once on a fresh
connection, which is safe because it changes nothing. Nothing is cached: a logout committed
before the check is seen by it.

On SQLite (the embedded default), and for a check made inside a unit of work that has
already begun (see `_in_unit_of_work`), the same statements go through the ORM session.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from flask import Flask, current_app
from sqlalchemy import Dialect, Engine, Select, bindparam, create_engine, exists, func, select
from sqlalchemy.exc import DBAPIError

from authserver import causal_reads, clock
from authserver.config import Settings, settings
from authserver.extensions import db
from authserver.models import RecoveryCode, Role, Session, TotpFactor, User
from authserver.models.user import user_fields, user_roles

#: Where init_app keeps the app's checks engine (MySQL only).
EXTENSION_KEY = "authserver.checks_engine"


def init_app(app: Flask, loaded: Settings) -> None:
    """Give the app its checks engine when it runs on MySQL."""
    options = loaded.checks_engine_options()
    if options is not None:
        engine = create_engine(loaded.database_url, **options)
        if loaded.db_causal_reads:
            causal_reads.group_replication_consistency(engine)
        app.extensions[EXTENSION_KEY] = engine


def engine() -> Engine | None:
    """The current app's checks engine, or None (SQLite: the ORM session's)."""
    return cast(Engine | None, current_app.extensions.get(EXTENSION_KEY))

class _Statement:
    """A select run on a pooled DBAPI connection of the checks engine, without SQLAlchemy's
    per-execution machinery (a third of the check's time once the round trips were one):
    compiled once per dialect, its rows processed by the columns' own types (aware
    datetimes, booleans), a driver error raised as SQLAlchemy raises it."""

    def __init__(self, select: Select[*tuple[Any, ...]]) -> None:
        self.select = select
        columns = list(select.selected_columns)
        self._row = namedtuple("_Row", [column.key for column in columns])  # type: ignore[misc]
        self._compiled: dict[str, tuple[str, list[Any]]] = {}

    def compiled(self, dialect: Dialect, *, causal: bool = False) -> tuple[str, list[Any]]:
        """The SQL for `dialect` (a causal read on a cluster's node: causal_reads.py) and a
        result processor (or None) per column."""
        key = f"{dialect.name}:{causal}"
        compiled = self._compiled.get(key)
        if compiled is None:
            sql = str(self.select.compile(dialect=dialect))
            compiled = (causal_reads.causal(sql, dialect) if causal else sql,
                        [column.type.result_processor(dialect, None)
                         for column in self.select.selected_columns])
            self._compiled[key] = compiled
        return compiled

    def rows(self, engine: Engine, params: dict[str, Any], *, causal: bool = False
             ) -> list[Any]:
        dialect = engine.dialect
        try:
            connection = engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:  # no connection could be made
            raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error,
                                      dialect=dialect) from exc
        # After the connection: the dialect learns on its first one which server it talks to
        # (MariaDB or MySQL), which the causal form depends on.
        sql, processors = self.compiled(dialect, causal=causal)
        cursor = None
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            raw = cursor.fetchall()
        except dialect.loaded_dbapi.Error as exc:
            invalidated = dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if invalidated:
                connection.invalidate(exc)
            raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                      connection_invalidated=invalidated,
                                      dialect=dialect) from exc
        finally:
            if cursor is not None:
                cursor.close()
            connection.close()  # back to the pool, as it is: autocommit, nothing to reset
        return [self._row(*[value if process is None else process(value)
                            for process, value in zip(processors, row, strict=True)])
                for row in raw]


# Built once, compiled once: building the construct anew on every request would cost more
# than the check itself.
_OPEN = _Statement(
    select(Session.user_id, Session.revoked_at, Session.expires_at, User.disabled)
    .join(User, User.id == Session.user_id)
    .where(Session.id == bindparam("session_id"))
)

# One row per role (at least one). Not ORDER BY: on a join that costs the server a
# temporary table per check; the names are sorted here, as the ORM's User.roles orders
# them (by name, byte order: the tables' collation is utf8mb4_bin, SQLite's is BINARY).
_OPEN_USER = _Statement(
    select(
        Session.user_id, Session.revoked_at, Session.expires_at,
        User.id, User.email, User.phone, User.name, User.email_verified_at,
        User.phone_verified_at, User.disabled, User.created_at,
        Role.name.label("role"),
        exists().where(TotpFactor.user_id == User.id, TotpFactor.confirmed_at.is_not(None))
        .label("totp"),
        select(func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == User.id, RecoveryCode.used_at.is_(None))
        .scalar_subquery().label("recovery_codes_left"),
    )
    .join(User, User.id == Session.user_id)
    .outerjoin(user_roles, user_roles.c.user_id == User.id)
    .outerjoin(Role, Role.id == user_roles.c.role_id)
    .where(Session.id == bindparam("session_id"))
)

#: Every statement a check may run (SQLAlchemy's events don't see them: the EXPLAIN test of
#: the hot paths reads them here).
STATEMENTS = (_OPEN, _OPEN_USER)


@dataclass(frozen=True)
class OpenUser:
    """The user of an open session, as `GET /me` shows it (never a hash or a secret)."""

    id: str
    email: str | None
    phone: str | None
    name: str | None
    email_verified_at: datetime | None
    phone_verified_at: datetime | None
    disabled: bool
    created_at: datetime
    role_names: list[str]
    #: `/me`'s `mfa` member (what mfa.status gives).
    mfa: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The contract's user object, as User.to_dict makes it."""
        return user_fields(self, self.role_names)


def is_open(session_id: str, user_id: str) -> bool:
    """Whether the session is open, belongs to `user_id`, and its user is enabled."""
    rows = _read(_OPEN, session_id)
    return bool(rows) and _open(rows[0], user_id)


def open_user(session_id: str, user_id: str) -> OpenUser | None:
    """The user of the session when `is_open` holds for it, else None; one statement."""
    rows = _read(_OPEN_USER, session_id)
    if not rows or not _open(rows[0], user_id):
        return None
    first = rows[0]
    return OpenUser(
        id=first.id, email=first.email, phone=first.phone, name=first.name,
        email_verified_at=first.email_verified_at, phone_verified_at=first.phone_verified_at,
        disabled=first.disabled, created_at=first.created_at,
        role_names=sorted(row.role for row in rows if row.role is not None),
        mfa={"totp": bool(first.totp), "recovery_codes_left": int(first.recovery_codes_left)},
    )


def _open(row: Any, user_id: str) -> bool:
    return (row.user_id == user_id and row.revoked_at is None and not row.disabled
            and row.expires_at > clock.now())


def _read(statement: _Statement, session_id: str) -> list[Any]:
    checks = engine()
    if checks is None or _in_unit_of_work():
        return list(db.session.execute(statement.select, {"session_id": session_id}))
    # On a cluster: see a logout committed on any node (DB_CAUSAL_READS, causal_reads.py).
    causal = settings().db_causal_reads
    try:
        return statement.rows(checks, {"session_id": session_id}, causal=causal)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The pooled connection had gone away (it has been discarded): one more try, on a
        # new one. A database that is really down fails this too, and answers 503.
        return statement.rows(checks, {"session_id": session_id}, causal=causal)


def _in_unit_of_work() -> bool:
    # A check made after this request or command has used its ORM session reads through it,
    # and so sees what it sees, its own uncommitted writes included (a check made first,
    # as a token check is, has nothing to see there).
    return db.session.registry.has() and db.session().in_transaction()
