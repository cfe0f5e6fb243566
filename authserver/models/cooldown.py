"""Send cooldowns: when a phone or an address may next be sent a code or a mail.

One row per key ("sms:+16502530000", "email:a@example.com"); authserver.cooldowns reserves a
send with one conditional UPDATE (or the INSERT of the key's first row), so of concurrent
requests for one key exactly one may send within the cooldown, across worker processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime


class SendCooldown(Model):
    __tablename__ = "send_cooldowns"
    __table_args__ = TABLE_OPTIONS

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    # No send to this key before this time (a past time: the key is free).
    next_allowed_at: Mapped[datetime] = mapped_column(UTCDateTime())
