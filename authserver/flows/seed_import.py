"""Bringing the users of the Node/Express "AuthService" over: `flask users import-seed`.

The source is read by legacy_users.py (AuthService's Sequelize schema on MySQL, into memory)
and written here through the models, `batch_size` users per transaction.

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
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver import clock, legacy_users
from authserver.extensions import db
from authserver.flows.seed_import_roles import ImportRoles
from authserver.flows.seed_import_rows import Skipped, importable
from authserver.legacy_users import LegacyUser
from authserver.models import User

log = logging.getLogger("authserver.flows.seed_import")

BATCH_SIZE = 500


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


def import_users(source: str, *, batch_size: int = BATCH_SIZE, dry_run: bool = False,
                 mark_verified: bool = False) -> Report:
    """Copy AuthService's users and roles from `source` into this database.

    Commits after every batch (so an interrupted run keeps what it did, and the next run
    finds those users "already present"); with `dry_run` every check and count is the same
    but nothing is written (only read). Raises legacy_users.SourceError when the source
    can't be read.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    report = Report(dry_run=dry_run)
    rows = importable(legacy_users.read_users(legacy_users.source_url(source)), report.skipped)
    roles = ImportRoles(created=report.roles_created, skipped=report.roles_skipped,
                        create=not dry_run)
    for start in range(0, len(rows), batch_size):
        _import_batch(rows[start:start + batch_size], report, roles, mark_verified, dry_run)
        if not dry_run:
            db.session.commit()
    log.info("seed import%s: imported=%d already_present=%d skipped=%d roles_created=%d "
             "roles_attached=%d", " (dry run)" if dry_run else "", report.imported,
             report.already_present, len(report.skipped), len(report.roles_created),
             report.roles_attached)
    return report


def _import_batch(rows: Sequence[LegacyUser], report: Report, roles: ImportRoles,
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


def _import_one_by_one(rows: Sequence[LegacyUser], report: Report, roles: ImportRoles,
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


def _user(row: LegacyUser, roles: ImportRoles, mark_verified: bool) -> User:
    now = clock.now()
    user = User(email=row.email, password_hash=row.password_hash,
                created_at=row.created_at or now, updated_at=now,
                email_verified_at=now if mark_verified else None)
    user.roles.extend(roles.must(name) for name in roles.attachable(row.roles))
    return user
