"""Counters kept in the database, so every worker process and host shares them.

One row per key. authserver.counters uses them two ways: a rate window's count (the key
names the limit and the window; `started_at` is the window's start), and a run of events
(consecutive failed password sign-ins; `started_at` is the run's first event). Counts only
change through conditional UPDATEs (`count = count + 1 WHERE count < :cap`), so concurrent
requests can't lose or overshoot a count.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime


class Counter(Model):
    __tablename__ = "counters"
    __table_args__ = TABLE_OPTIONS

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
