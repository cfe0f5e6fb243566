"""A second factor: an authenticator app's TOTP secret, and the recovery codes that stand in
for it (see authserver/mfa.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver import clock
from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime

# SQLite only auto-increments INTEGER PRIMARY KEY; MySQL gets a BIGINT.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class TotpFactor(Model):
    """One authenticator app per user: pending until its first code confirms it."""

    __tablename__ = "totp_factors"
    __table_args__ = TABLE_OPTIONS

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # The base32 secret, Fernet-encrypted with a key derived from SECRET_KEY.
    secret_encrypted: Mapped[str] = mapped_column(String(255))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The newest 30-second step whose code was accepted: no step is accepted twice (replay).
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class RecoveryCode(Model):
    """A single-use code that stands in for the app; only its hash is stored."""

    __tablename__ = "recovery_codes"
    __table_args__ = (
        Index("ix_recovery_codes_user_id_code_hash", "user_id", "code_hash"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
