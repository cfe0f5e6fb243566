"""The browser's sign-in: a session row from tokens.issue, remembered in a signed cookie.

The cookie (Flask's signed session, HttpOnly, SameSite=Lax, Secure on https) holds only the
session id. Every page load re-reads that row, so signing out anywhere, revocation or a
disabled account ends the browser's sign-in at once.
"""

from __future__ import annotations

from flask import redirect, session, url_for
from werkzeug.wrappers import Response

from authserver import sessions
from authserver.flows import handoff
from authserver.models import Session, User
from authserver.tokens import IssuedTokens

SESSION_KEY = "sid"
HANDOFF_KEY = "handoff"  # {"redirect_to": ..., "code_challenge": ...} of a pending app sign-in


def login(issued: IssuedTokens) -> None:
    """Remember the session tokens.issue opened; start a fresh cookie (no fixation)."""
    pending = session.get(HANDOFF_KEY)
    session.clear()
    session[SESSION_KEY] = issued.session_id
    session.permanent = True
    if pending:
        session[HANDOFF_KEY] = pending


def current() -> tuple[Session, User] | None:
    """The open session and its user, or None (and the cookie is forgotten)."""
    sid = session.get(SESSION_KEY)
    found = sessions.signed_in(sid) if isinstance(sid, str) else None
    if found is None and sid is not None:
        session.pop(SESSION_KEY, None)
    return found


def logout() -> None:
    found = current()
    if found:
        sessions.revoke(found[0].id, reason="logout")
    session.clear()


def after_sign_in(issued: IssuedTokens, *, redirect_to: str | None = None,
                  code_challenge: str | None = None, state: str | None = None) -> Response:
    """Open the web session, then 303 to the app that asked (with a one-time code) or /account."""
    login(issued)
    pending = session.pop(HANDOFF_KEY, None) or {}
    target = redirect_to or pending.get("redirect_to")
    challenge = code_challenge if redirect_to else pending.get("code_challenge")
    app_state = state if redirect_to else pending.get("state")
    if target:
        code = handoff.create_code(issued.user, list(issued.amr), target, challenge)
        return redirect(handoff.redirect_url(target, code, app_state), code=303)
    return redirect(url_for("web.account"), code=303)
