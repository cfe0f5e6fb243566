"""Users and their roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authserver import clock
from authserver.extensions import db
from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime, new_id

user_roles = Table(
    "user_roles",
    db.metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "role_id", Integer, ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
    **TABLE_OPTIONS,
)


class Role(Model):
    __tablename__ = "roles"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class User(Model):
    __tablename__ = "users"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Both stored normalised (lower-cased e-mail, E.164 phone) so uniqueness means something.
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    phone_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=clock.now, onupdate=clock.now
    )

    # Loaded on first use, not with every user: a failed sign-in of a known user must cost
    # the same queries as one for an unknown address.
    roles: Mapped[list[Role]] = relationship(
        secondary=user_roles, lazy="select", order_by=Role.name
    )

    @property
    def role_names(self) -> list[str]:
        return [role.name for role in self.roles]

    def to_dict(self) -> dict[str, Any]:
        """The contract's user object: never a hash or any other secret."""
        return user_fields(self, self.role_names)


def user_fields(user: Any, roles: list[str]) -> dict[str, Any]:
    """The contract's user object from anything with a user row's attributes (a `User`, or
    the token check's `session_checks.OpenUser`) and its role names."""
    return {
        "id": user.id,
        "email": user.email,
        "phone": user.phone,
        "name": user.name,
        "email_verified": user.email_verified_at is not None,
        "phone_verified": user.phone_verified_at is not None,
        "disabled": user.disabled,
        "roles": roles,
        "created_at": user.created_at.isoformat().replace("+00:00", "Z"),
    }
