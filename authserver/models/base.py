"""What the models share: their base class, UTC timestamps, table options and random ids."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

from authserver.extensions import Base, db

if TYPE_CHECKING:
    from flask_sqlalchemy.model import Model as _FlaskModel

    class Model(_FlaskModel, Base):
        """`db.Model` as type checkers see it.

        Flask-SQLAlchemy builds `db.Model` at run time from `Base`'s body and its own `Model`
        mixins, so it is an attribute a checker cannot subclass; this class has the same parts.
        """

else:
    Model = db.Model


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as a naive UTC DATETIME (microseconds on MySQL), returned timezone-aware.

    MySQL's DATETIME has no zone and SQLite has no date type at all, so the one rule is:
    everything in the database is UTC, everything in Python is aware.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


#: Every table on MySQL: InnoDB (transactions, row locks, foreign keys) and full UTF-8 with
#: a binary collation. A linguistic one (utf8mb4_unicode_ci) makes "é" equal "e" in unique
#: indexes and WHERE clauses, so a mail to victim@exámple.com would find victim@example.com.
#: Identifiers are normalised in Python (lower-cased e-mail, E.164 phone) and compared exactly.
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def new_id() -> str:
    """A random id (UUIDv4): users, whose ids should say nothing about when they signed up."""
    return str(uuid.uuid4())


def time_ordered_id() -> str:
    """A UUIDv7 (RFC 9562, section 5.7): 48 bits of Unix milliseconds, the version, 74 random
    bits. For rows written on every sign-in (sessions, codes): new keys land at one end of
    the primary key's B-tree instead of on a random page, so inserts stay in memory as the
    table grows past the buffer pool (random ids made code sign-ins ~20 % slower at
    3,000,000 sessions in `make bench-scale`)."""
    millis = time.time_ns() // 1_000_000
    value = ((millis & (1 << 48) - 1) << 80 | 0x7 << 76 | secrets.randbits(12) << 64
             | 0b10 << 62 | secrets.randbits(62))
    return str(uuid.UUID(int=value))
