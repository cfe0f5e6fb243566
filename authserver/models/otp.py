"""SMS one-time codes: one row per code sent, stored as a keyed hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver import clock
from authserver.extensions import db
from authserver.models.base import TABLE_OPTIONS, UTCDateTime
from authserver.models.session import BigId


class OtpChallenge(db.Model):
    __tablename__ = "otp_challenges"
    __table_args__ = (
        Index("ix_otp_challenges_phone_created_at", "phone", "created_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(20))
    # HMAC of (phone, code); empty when the provider (Twilio Verify) holds the code.
    code_hash: Mapped[str] = mapped_column(String(64), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a newer code replaces this one or it dies of too many wrong tries.
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
