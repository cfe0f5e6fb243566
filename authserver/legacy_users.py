"""Reading the users of the Node/Express "AuthService" out of its own database.

The source is that service's Sequelize schema on MySQL: `Users` (`id`, `email`, `password`
holding a bcrypt hash, `createdAt`, `updatedAt`), `Roles` (`id`, `name`) and the junction
`User_Roles` (`userId`/`roleId`, or `UserId`/`RoleId`). It is read with SQLAlchemy Core on an
engine of its own (the source's users are read into memory, a few hundred bytes each, so no
cursor stays open on the source while this database is written).

This module only knows that schema: what is imported, and how, is flows/seed_import.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, MetaData, Table, create_engine, inspect, null, select
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import NullPool

#: Seconds to wait for the source server to answer the connection.
CONNECT_TIMEOUT = 10

_USER_ID_COLUMNS = ("userId", "UserId", "user_id")
_ROLE_ID_COLUMNS = ("roleId", "RoleId", "role_id")


class SourceError(Exception):
    """The source can't be read: unreachable, refused, or not AuthService's shape."""


@dataclass(frozen=True)
class LegacyUser:
    """A source user row: `email` as the source holds it (not yet checked or normalised),
    `password_hash` as text (None when there is none), `created_at` in UTC."""

    source_id: Any
    email: Any
    password_hash: str | None
    created_at: datetime | None
    roles: tuple[str, ...]


def source_url(raw: str) -> URL:
    """The SQLAlchemy URL for the source: `mysql://` and `mariadb://` mean PyMySQL."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise SourceError("SOURCE_DATABASE_URL is not a database URL "
                          "(expected mysql+pymysql://user:password@host:3306/database)") from None
    if url.drivername in {"mysql", "mariadb"}:
        url = url.set(drivername=f"{url.drivername}+pymysql")
    return url


def read_users(url: URL) -> list[LegacyUser]:
    """Every user of the source, by `id`, with its role names. Raises SourceError when the
    source can't be read."""
    where = url.render_as_string(hide_password=True)
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if "pymysql" in url.drivername else {}
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        # An unknown scheme, or a driver that is not installed (only PyMySQL is).
        raise SourceError(f"can't use the source database {where}: {exc}") from None
    try:
        with engine.connect() as conn:
            users, user_roles = _read_tables(conn, where)
    except DBAPIError as exc:
        detail = str(exc.orig) if exc.orig is not None else type(exc).__name__
        raise SourceError(f"can't read the source database {where}: {detail}") from None
    finally:
        engine.dispose()
    return [LegacyUser(source_id, email, _text(password), _utc(created),
                       tuple(user_roles.get(source_id, ())))
            for source_id, email, password, created in users]


def _read_tables(conn: Connection, where: str) -> tuple[
        Sequence[tuple[Any, Any, Any, Any]], dict[Any, list[str]]]:
    """(id, email, password, createdAt) of every source user by `id`, and their role names."""
    names = inspect(conn).get_table_names()
    users_name = _find(names, "Users")
    if users_name is None:
        raise SourceError(f"the source database {where} has no Users table "
                          "(is it AuthService's database?)")
    metadata = MetaData()
    users = Table(users_name, metadata, autoload_with=conn)
    user_id = _column(users, ("id",), required=True)
    email = _column(users, ("email",), required=True)
    password = _column(users, ("password",), required=True)
    created = _column(users, ("createdAt", "created_at"), required=False)
    assert user_id is not None and email is not None and password is not None
    rows = conn.execute(
        select(user_id, email, password, created if created is not None else null())
        .order_by(user_id)).tuples().all()
    return rows, _read_roles(conn, names, metadata)


def _read_roles(conn: Connection, names: Iterable[str], metadata: MetaData
                ) -> dict[Any, list[str]]:
    """Source user id -> its role names (empty when the source has no roles tables)."""
    names = list(names)
    roles_name, junction_name = _find(names, "Roles"), _find(names, "User_Roles")
    if roles_name is None or junction_name is None:
        return {}
    roles = Table(roles_name, metadata, autoload_with=conn)
    junction = Table(junction_name, metadata, autoload_with=conn)
    role_id = _column(roles, ("id",), required=True)
    role_name = _column(roles, ("name",), required=True)
    link_user = _column(junction, _USER_ID_COLUMNS, required=True)
    link_role = _column(junction, _ROLE_ID_COLUMNS, required=True)
    assert role_id is not None and role_name is not None
    assert link_user is not None and link_role is not None
    found: dict[Any, list[str]] = {}
    query = (select(link_user, role_name).join(roles, link_role == role_id)
             .order_by(link_user, role_name))
    for user_id, name in conn.execute(query).tuples():
        if isinstance(name, str):
            found.setdefault(user_id, []).append(name)
    return found


def _find(names: Iterable[str], wanted: str) -> str | None:
    """The table called `wanted`, exactly, else case-insensitively (MySQL on Windows and
    macOS, or lower_case_table_names=1, keeps `users`)."""
    names = list(names)
    if wanted in names:
        return wanted
    return next((name for name in names if name.lower() == wanted.lower()), None)


def _column(table: Table, candidates: Sequence[str], *, required: bool
            ) -> Column[Any] | None:
    by_lower = {column.name.lower(): column for column in table.columns}
    for name in candidates:
        if name in table.columns:
            return table.columns[name]
    for name in candidates:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    if required:
        raise SourceError(f"the source table {table.name} has no {' or '.join(candidates)} "
                          "column")
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return ""
    return value.strip() if isinstance(value, str) else None


def _utc(value: object) -> datetime | None:
    """Sequelize writes DATETIMEs in UTC (its default timezone, '+00:00')."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
