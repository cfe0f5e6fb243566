"""The JSON API (/api/v1): parse the request, call a flow, shape the response."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# The route modules register themselves on `bp` when imported.
from authserver.api import (  # noqa: E402, F401
    admin,
    email,
    magic_link,
    me,
    mfa,
    otp,
    password,
    password_reset,
    session,
)
