"""Flask extensions, created once here and bound to an app in create_app with init_app."""

from __future__ import annotations

import ipaddress

from flask import request
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so Alembic migrations are the same on MySQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def client_ip() -> str:
    """The caller's address; ProxyFix (PROXY_FIX_HOPS) makes this the real client behind proxies."""
    return request.remote_addr or "unknown"


def ip_key(address: str | None = None) -> str:
    """The budget a per-IP limit counts `address` (default: the caller's) against.

    IPv4 addresses count one by one. An IPv6 client is given a whole /64 (the smallest
    prefix a network hands a subscriber) and can pick any address in it, so its /64 is one
    budget; an IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    address = client_ip() if address is None else address
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("%eth0")
    except ValueError:
        return address  # "unknown", or a key that is already a network
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Base(DeclarativeBase):
    """The declarative base that Flask-SQLAlchemy builds `db.Model` from (see models/base.py)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
#: Moving windows: a limit of N per window holds over *any* window of that length, so a
#: client can't spend N at the end of one fixed window and N more at the start of the next.
#: Memory and Redis storages both support it; ratelimits.check/count use this same strategy.
limiter = Limiter(key_func=ip_key, strategy="moving-window")
