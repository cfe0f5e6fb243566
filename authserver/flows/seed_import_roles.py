"""The roles an import of AuthService's users attaches (flows/seed_import.py): this server's
roles by name, each looked up once a run, and created at first use (a dry run only counts
the ones it would create). A source role name this server refuses is reported, not created.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.accounts import ROLE_NAME
from authserver.extensions import db
from authserver.models import Role


class ImportRoles:
    """This server's roles by name, each looked up once a run, and created at first use when
    `create` (else only counted as to be created, for a dry run). The names it creates (or
    would) are added to `created`, the refused ones (with the reason) to `skipped`."""

    def __init__(self, *, created: list[str], skipped: list[str], create: bool) -> None:
        self.created = created
        self.skipped = skipped
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
                self.skipped.append(
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
        self.created.append(name)
        if not self.create:
            return None
        role = Role(name=name)
        try:
            with db.session.begin_nested():
                db.session.add(role)
        except IntegrityError:
            # Created by someone else meanwhile: theirs (a locking read sees it past this
            # transaction's snapshot).
            self.created.remove(name)
            role = db.session.scalar(
                select(Role).where(Role.name == name).with_for_update(read=True))
            assert role is not None
        return role
