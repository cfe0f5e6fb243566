"""The browser's sign-in: a session row from tokens.issue, remembered in a signed cookie.

The cookie (Flask's signed session, HttpOnly, SameSite=Lax, Secure on https) holds only the
session id. Every page load re-reads that row, so signing out anywhere, revocation or a
disabled account ends the browser's sign-in at once.

It also holds the pending hand-off of an app's sign-in (`/login?redirect_to=…`), and that one
belongs to one sign-in attempt only: it gets a random attempt id that the pages of that
attempt carry in their links and form actions (`?handoff=…`, added by url_for); a sign-in
page reached any other way (a plain `/login`, a bookmark, a later visit) drops it, it expires
after PENDING_HANDOFF_TTL, and the first sign-in consumes it. So an app sign-in that was
abandoned, or pushed into the browser by someone else, never sends a later sign-in to the app.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, TypedDict

from flask import g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from authserver import clock, sessions
from authserver.flows import handoff
from authserver.models import Session, User
from authserver.tokens import IssuedTokens

SESSION_KEY = "sid"
HANDOFF_KEY = "handoff"  # the pending app sign-in, a PendingHandoff
#: The query parameter that names the attempt a sign-in page belongs to.
HANDOFF_PARAM = "handoff"
#: Seconds an app's sign-in may take, from its /login?redirect_to=… to the signed-in POST.
PENDING_HANDOFF_TTL = 600
#: The pages one sign-in attempt moves through; they carry (and check) the attempt id.
SIGN_IN_ENDPOINTS = frozenset({
    "web.login", "web.signup", "web.sms_request", "web.sms_code", "web.email_request",
    "web.email_code", "web.email_code_page",
})


class PendingHandoff(TypedDict):
    attempt: str
    redirect_to: str
    code_challenge: str | None
    state: str | None
    expires: int


def start_handoff(redirect_to: str, code_challenge: str | None, state: str | None) -> None:
    """Begin an app's sign-in attempt: replaces any earlier one; this page's links carry it."""
    attempt = secrets.token_urlsafe(16)
    session[HANDOFF_KEY] = PendingHandoff(
        attempt=attempt, redirect_to=redirect_to, code_challenge=code_challenge, state=state,
        expires=clock.timestamp() + PENDING_HANDOFF_TTL)
    g.handoff_attempt = attempt


def drop_handoff() -> None:
    session.pop(HANDOFF_KEY, None)
    g.pop("handoff_attempt", None)


def pending_handoff() -> PendingHandoff | None:
    """The pending hand-off when this request belongs to its attempt and it is still fresh.

    Anything else drops it: it was made for another (abandoned or foreign) attempt.
    """
    pending: Any = session.get(HANDOFF_KEY)
    if pending is None:
        return None
    attempt = g.get("handoff_attempt") or request.args.get(HANDOFF_PARAM, "")
    if (not isinstance(pending, dict) or not isinstance(pending.get("attempt"), str)
            or not isinstance(pending.get("expires"), int)
            or pending["expires"] <= clock.timestamp()
            or not hmac.compare_digest(pending["attempt"].encode(), attempt.encode())):
        drop_handoff()
        return None
    g.handoff_attempt = pending["attempt"]
    found: PendingHandoff = pending  # type: ignore[assignment]
    return found


def bind_sign_in_page() -> None:
    """before_request: a sign-in page keeps the pending hand-off only for its own attempt."""
    if request.endpoint in SIGN_IN_ENDPOINTS:
        pending_handoff()


def carry_attempt(endpoint: str, values: dict[str, Any]) -> None:
    """url_defaults: links and forms of an attempt's pages lead to the same attempt."""
    attempt = g.get("handoff_attempt")
    if attempt and endpoint in SIGN_IN_ENDPOINTS:
        values.setdefault(HANDOFF_PARAM, attempt)


def login(issued: IssuedTokens) -> None:
    """Remember the session tokens.issue opened; start a fresh cookie (no fixation)."""
    session.clear()
    session[SESSION_KEY] = issued.session_id
    session.permanent = True


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
    """Open the web session, then 303 to the app that asked (with a one-time code) or /account.

    `redirect_to` (with its `code_challenge` and `state`) comes from a sign-in that carries its
    own destination (a mailed link). Otherwise the pending hand-off of this very attempt, if
    any, is used. Either way the pending hand-off is consumed here.
    """
    pending = pending_handoff()
    drop_handoff()
    login(issued)
    if redirect_to is None and pending is not None:
        redirect_to = pending["redirect_to"]
        code_challenge = pending["code_challenge"]
        state = pending["state"]
    if redirect_to:
        code = handoff.create_code(issued.user, list(issued.amr), redirect_to, code_challenge)
        return redirect(handoff.redirect_url(redirect_to, code, state), code=303)
    return redirect(url_for("web.account"), code=303)


def hand_off_signed_in(found: tuple[Session, User]) -> Response | None:
    """Someone already signed in opened an app's sign-in (`/login?redirect_to=…`, checked and
    started by the page): 303 to the app with a fresh hand-off code for this browser's user
    and the methods of its sign-in, consuming the pending hand-off. None when there is none.
    """
    pending = pending_handoff()
    drop_handoff()
    if pending is None:
        return None
    browser_session, user = found
    code = handoff.create_code(user, browser_session.amr_list, pending["redirect_to"],
                               pending["code_challenge"],
                               auth_time=browser_session.authenticated_at)
    return redirect(handoff.redirect_url(pending["redirect_to"], code, pending["state"]),
                    code=303)
