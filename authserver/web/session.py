"""The browser's sign-in: a session row from tokens.issue, remembered in a signed cookie.

The cookie (Flask's signed session, HttpOnly, SameSite=Lax, Secure on https) holds only the
session id. Every page load re-reads that row, so signing out anywhere, revocation or a
disabled account ends the browser's sign-in at once.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, session, url_for
from werkzeug.wrappers import Response

from authserver import tokens
from authserver.extensions import db
from authserver.flows import handoff
from authserver.models import Session, User

SESSION_KEY = "sid"
HANDOFF_KEY = "handoff"  # {"redirect_to": ..., "code_challenge": ...} of a pending app sign-in


def login(token_response: dict[str, Any]) -> None:
    """Remember the session tokens.issue opened; start a fresh cookie (no fixation)."""
    pending = session.get(HANDOFF_KEY)
    session.clear()
    # Just signed by us: only the session id is needed, not another revocation look-up.
    claims = tokens.verify(token_response["access_token"], check_revocation=False)
    session[SESSION_KEY] = claims.session_id
    session.permanent = True
    if pending:
        session[HANDOFF_KEY] = pending


def current() -> tuple[Session, User] | None:
    """The open session and its user, or None (and the cookie is forgotten)."""
    found = None
    sid = session.get(SESSION_KEY)
    if isinstance(sid, str):
        row = tokens.session_is_active(sid)
        if row is not None:
            user = db.session.get(User, row.user_id)
            if user is not None and not user.disabled:
                found = (row, user)
    if found is None and sid is not None:
        session.pop(SESSION_KEY, None)
    return found


def logout() -> None:
    found = current()
    if found:
        tokens.revoke_session(found[0].id, reason="logout")
    session.clear()


def after_sign_in(token_response: dict[str, Any], *, redirect_to: str | None = None,
                  code_challenge: str | None = None) -> Response:
    """Open the web session, then 303 to the app that asked (with a one-time code) or /account."""
    login(token_response)
    pending = session.pop(HANDOFF_KEY, None) or {}
    target = redirect_to or pending.get("redirect_to")
    challenge = code_challenge if redirect_to else pending.get("code_challenge")
    if target:
        found = current()
        assert found is not None
        row, user = found
        code = handoff.create_code(user, row.amr_list, target, challenge)
        return redirect(handoff.redirect_url(target, code), code=303)
    return redirect(url_for("web.account"), code=303)
