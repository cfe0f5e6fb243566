"""Which of AuthService's users an import takes (flows/seed_import.py): the checks on each
source row, made before anything is written, so a dry run reports exactly what a run would.

A row is skipped, with the reason, when its address is refused by sign-up's checks, when its
password is not a bcrypt hash this server accepts, or when an earlier row (lower `id`) has
the same address once normalised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from authserver import passwords
from authserver.errors import Problem
from authserver.identifiers import normalize_email
from authserver.legacy_users import LegacyUser


@dataclass(frozen=True)
class Skipped:
    """A source row left out, by its `id` (never its hash)."""

    source_id: str
    reason: str


def importable(users: Iterable[LegacyUser], skipped: list[Skipped]) -> list[LegacyUser]:
    """Every valid, first-of-its-address user (its address normalised); the others are
    added to `skipped`."""
    kept: list[LegacyUser] = []
    first_of: dict[str, str] = {}
    for user in users:
        row_id = str(user.source_id)
        try:
            email = normalize_email(user.email)
        except Problem as exc:
            skipped.append(Skipped(row_id, f"invalid e-mail address: {exc.detail}"))
            continue
        password_hash = user.password_hash
        if password_hash is None:
            skipped.append(Skipped(row_id, "no password hash"))
            continue
        if not passwords.is_bcrypt(password_hash):
            cost = passwords.bcrypt_cost(password_hash)
            skipped.append(Skipped(row_id, (
                f"the bcrypt cost {cost} is above {passwords.BCRYPT_MAX_COST} (each sign-in "
                "would take too long)") if cost is not None else
                "the password is not a bcrypt hash ($2a$, $2b$ or $2y$)"))
            continue
        if email in first_of:
            skipped.append(Skipped(
                row_id, f"duplicate address: the same as row {first_of[email]} once "
                        "normalised (that one is kept)"))
            continue
        first_of[email] = row_id
        kept.append(replace(user, email=email))
    return kept
