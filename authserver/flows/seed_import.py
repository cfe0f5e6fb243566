"""Bringing the users of the Node/Express "AuthService" over: `flask users import-seed`.

The source is that service's Sequelize schema on MySQL: `Users` (`id`, `email`, `password`
holding a bcrypt hash, `createdAt`, `updatedAt`), `Roles` (`id`, `name`) and the junction
`User_Roles` (`userId`/`roleId`, or `UserId`/`RoleId`). It is read with SQLAlchemy Core on an
engine of its own (the source's users are read into memory, a few hundred bytes each, so no
cursor stays open on the source while this database is written), and written here through
the models, `batch_size` users per transaction.

Rules, each one reported:
- an address is normalised and checked as sign-up does (`identifiers.normalize_email`); a row
  whose address is refused, or whose password is not a bcrypt hash, is skipped;
- two rows with one address once normalised: the first (lowest `id`) is kept, the rest skipped;
- an address that already has an account here is left as it is ("already present"): its
  password, roles and everything else stay. So a re-run imports nothing twice;
- `createdAt` becomes `created_at`; the bcrypt hash is stored as it is and replaced by argon2id
  at the user's first successful password sign-in (passwords.upgraded_hash);
- roles are found or created by name and attached to the users imported in this run.

Imported addresses are unverified unless `mark_verified` (docs/security.md, "Accounts
imported from AuthService"): AuthService never proved that anyone owned the address they
signed up with, so the first proof of it here removes the imported password, as for any
password set before its address was proven.

Nothing here logs or returns a password hash (reports carry source row ids and reasons).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, MetaData, Table, create_engine, inspect, null, select
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from authserver import clock, passwords
from authserver.accounts import ROLE_NAME
from authserver.errors import Problem
from authserver.extensions import db
from authserver.identifiers import normalize_email
from authserver.models import Role, User

log = logging.getLogger("authserver.flows.seed_import")

BATCH_SIZE = 500
#: Seconds to wait for the source server to answer the connection.
CONNECT_TIMEOUT = 10

_USER_ID_COLUMNS = ("userId", "UserId", "user_id")
_ROLE_ID_COLUMNS = ("roleId", "RoleId", "role_id")


class SourceError(Exception):
    """The source can't be read: unreachable, refused, or not AuthService's shape."""


@dataclass(frozen=True)
class Skipped:
    """A source row left out, by its `id` (never its hash)."""

    source_id: str
    reason: str


@dataclass
class Report:
    imported: int = 0
    already_present: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    #: User-role links made for the users imported in this run.
    roles_attached: int = 0
    #: Source roles left out (a name this server refuses), with the reason.
    roles_skipped: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class _Row:
    source_id: Any
    email: str
    password_hash: str
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


def import_users(source: str, *, batch_size: int = BATCH_SIZE, dry_run: bool = False,
                 mark_verified: bool = False) -> Report:
    """Copy AuthService's users and roles from `source` into this database.

    Commits after every batch (so an interrupted run keeps what it did, and the next run
    finds those users "already present"); with `dry_run` every check and count is the same
    but nothing is written (only read). Raises SourceError when the source can't be read.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    report = Report(dry_run=dry_run)
    rows = _read_source(source_url(source), report)
    roles = _Roles(report, create=not dry_run)
    for start in range(0, len(rows), batch_size):
        _import_batch(rows[start:start + batch_size], report, roles, mark_verified, dry_run)
        if not dry_run:
            db.session.commit()
    log.info("seed import%s: imported=%d already_present=%d skipped=%d roles_created=%d "
             "roles_attached=%d", " (dry run)" if dry_run else "", report.imported,
             report.already_present, len(report.skipped), len(report.roles_created),
             report.roles_attached)
    return report


# --- reading the source ------------------------------------------------------------------


def _read_source(url: URL, report: Report) -> list[_Row]:
    """Every valid, first-of-its-address user row of the source, by `id`; the others are
    added to `report.skipped`."""
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

    kept: list[_Row] = []
    first_of: dict[str, str] = {}
    for source_id, raw_email, raw_hash, created in users:
        row_id = str(source_id)
        try:
            email = normalize_email(raw_email)
        except Problem as exc:
            report.skipped.append(Skipped(row_id, f"invalid e-mail address: {exc.detail}"))
            continue
        password_hash = _text(raw_hash)
        if password_hash is None:
            report.skipped.append(Skipped(row_id, "no password hash"))
            continue
        if not passwords.is_bcrypt(password_hash):
            cost = passwords.bcrypt_cost(password_hash)
            report.skipped.append(Skipped(row_id, (
                f"the bcrypt cost {cost} is above {passwords.BCRYPT_MAX_COST} (each sign-in "
                "would take too long)") if cost is not None else
                "the password is not a bcrypt hash ($2a$, $2b$ or $2y$)"))
            continue
        if email in first_of:
            report.skipped.append(Skipped(
                row_id, f"duplicate address: the same as row {first_of[email]} once "
                        "normalised (that one is kept)"))
            continue
        first_of[email] = row_id
        kept.append(_Row(source_id, email, password_hash, _utc(created),
                         tuple(user_roles.get(source_id, ()))))
    return kept


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


# --- writing here ------------------------------------------------------------------------


def _import_batch(rows: Sequence[_Row], report: Report, roles: _Roles,
                  mark_verified: bool, dry_run: bool) -> None:
    present = set(db.session.scalars(select(User.email).where(
        User.email.in_([row.email for row in rows]))))
    new = [row for row in rows if row.email not in present]
    report.already_present += len(rows) - len(new)
    if dry_run:
        report.imported += len(new)
        for row in new:
            names = roles.attachable(row.roles)
            for name in names:
                roles.get(name)  # counts the roles it would create
            report.roles_attached += len(names)
        return
    users = [_user(row, roles, mark_verified) for row in new]
    try:
        # A savepoint: an address registered here since the look-up above undoes only this
        # batch's INSERTs, which are then made one by one.
        with db.session.begin_nested():
            db.session.add_all(users)
    except IntegrityError:
        _import_one_by_one(new, report, roles, mark_verified)
        return
    report.imported += len(users)
    report.roles_attached += sum(len(user.roles) for user in users)


def _import_one_by_one(rows: Sequence[_Row], report: Report, roles: _Roles,
                       mark_verified: bool) -> None:
    for row in rows:
        user = _user(row, roles, mark_verified)
        try:
            with db.session.begin_nested():
                db.session.add(user)
        except IntegrityError:
            report.already_present += 1
            continue
        report.imported += 1
        report.roles_attached += len(user.roles)


def _user(row: _Row, roles: _Roles, mark_verified: bool) -> User:
    now = clock.now()
    user = User(email=row.email, password_hash=row.password_hash,
                created_at=row.created_at or now, updated_at=now,
                email_verified_at=now if mark_verified else None)
    user.roles.extend(roles.must(name) for name in roles.attachable(row.roles))
    return user


class _Roles:
    """This server's roles by name, each looked up once a run, and created at first use when
    `create` (else only counted as to be created, for a dry run)."""

    def __init__(self, report: Report, *, create: bool) -> None:
        self.report = report
        self.create = create
        self.found: dict[str, Role | None] = {}
        self.refused: set[str] = set()

    def attachable(self, names: Iterable[str]) -> list[str]:
        """`names` without repeats and without the names refused here (reported once)."""
        usable = []
        for name in dict.fromkeys(names):
            if name in self.refused:
                continue
            if not ROLE_NAME.fullmatch(name):
                self.refused.add(name)
                self.report.roles_skipped.append(
                    f"{name!r}: not a valid role name here (letters, digits and ._:- only, "
                    "at most 64)")
                continue
            usable.append(name)
        return usable

    def get(self, name: str) -> Role | None:
        """The role (None in a dry run when it is yet to be created)."""
        if name not in self.found:
            self.found[name] = self._look_up(name)
        return self.found[name]

    def must(self, name: str) -> Role:
        role = self.get(name)
        assert role is not None, "a run that writes creates every role it attaches"
        return role

    def _look_up(self, name: str) -> Role | None:
        role = db.session.scalar(select(Role).where(Role.name == name))
        if role is not None:
            return role
        self.report.roles_created.append(name)
        if not self.create:
            return None
        role = Role(name=name)
        try:
            with db.session.begin_nested():
                db.session.add(role)
        except IntegrityError:
            # Created by someone else meanwhile: theirs (a locking read sees it past this
            # transaction's snapshot).
            self.report.roles_created.remove(name)
            role = db.session.scalar(
                select(Role).where(Role.name == name).with_for_update(read=True))
            assert role is not None
        return role
