"""Keys that sign access tokens. Private material is encrypted at rest (see keys.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from authserver import clock
from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime


class SigningKey(Model):
    __tablename__ = "signing_keys"
    __table_args__ = TABLE_OPTIONS

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[str | None] = mapped_column(Text)  # JSON; None for HS256 (no public half)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)  # active|retired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
