"""The HTML pages: CSRF-protected forms in front of the very same flows the API calls."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__)

# The page modules register their routes on `bp` when imported.
from authserver.web import account, email, login, magic, sms  # noqa: E402, F401
