"""One-time credentials: one row per code or link sent, whatever it proves (see codes.py).

`purpose` says what the credential proves (sign_in_sms, sign_in_email, and later
password_reset, verify_email, change_email, add_phone, mfa), `subject` whom it was sent to
(an E.164 phone or a normalised address). The secret itself is never stored: `code_hash` is
an HMAC keyed from SECRET_KEY (empty when the SMS provider generates and checks the code).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver import clock
from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime, time_ordered_id


class OneTimeCode(Model):
    __tablename__ = "one_time_codes"
    __table_args__ = (
        # Every look-up is "the newest live codes of this subject for this purpose".
        Index("ix_one_time_codes_purpose_subject_created_at", "purpose", "subject", "created_at"),
        TABLE_OPTIONS,
    )

    # Random, so a mailed link can name its row (the link's signature covers the id).
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=time_ordered_id)
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # "sms" or "email"
    subject: Mapped[str] = mapped_column(String(254))
    # Who asked, when the subject is not yet theirs (a new address or phone being added).
    user_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    redirect_to: Mapped[str | None] = mapped_column(String(2048))
    code_challenge: Mapped[str | None] = mapped_column(String(128))  # PKCE S256 of an app
    state: Mapped[str | None] = mapped_column(String(512))  # the app's, back on redirect_to
    # SHA-256 of the binding cookie of the browser that asked: a mailed link signs in only
    # there (elsewhere it asks for the mail's code).
    binding_hash: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a newer code replaces this one, another one is used, or wrong tries kill it.
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
