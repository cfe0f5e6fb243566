"""What views use to know who is calling: `require_auth`, `require_role`, `current_user`.

Built on access_tokens (the signature and claims) and sessions (is the session still open).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from authserver import access_tokens, clock, session_checks
from authserver.access_tokens import Claims
from authserver.config import settings
from authserver.errors import ErrorCode, Problem, invalid_token
from authserver.extensions import db
from authserver.models import User

F = TypeVar("F", bound=Callable[..., Any])

SESSION_ENDED = "The session of this access token has ended."


def verify(token: str, *, check_revocation: bool = True) -> Claims:
    """A verified access token; with `check_revocation`, also that its session is still open
    and its user not disabled (one query)."""
    claims = access_tokens.verify(token)
    if check_revocation and not session_checks.is_open(claims.session_id, claims.user_id):
        raise invalid_token(SESSION_ENDED)
    return claims


def verify_with_user(token: str) -> tuple[Claims, session_checks.OpenUser]:
    """Like `verify`, and the token's user read in the same one query (what /me shows)."""
    claims = access_tokens.verify(token)
    user = session_checks.open_user(claims.session_id, claims.user_id)
    if user is None:
        raise invalid_token(SESSION_ENDED)
    return claims, user


def bearer_token(*, allow_legacy_header: bool = False) -> str:
    """The request's access token (`Authorization: Bearer …`), or 401 invalid_token."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_legacy_header and request.headers.get("x-access-token"):
        return request.headers["x-access-token"].strip()
    raise invalid_token("Send the access token as 'Authorization: Bearer <token>'.")


def require_auth(func: F | None = None, *, allow_legacy_header: bool = False,
                 load_user: bool = False) -> Any:
    """Decorator: the request must carry a valid, unrevoked access token (sets g.claims).
    With `load_user`, the same one lookup also reads the user (sets g.open_user)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token(allow_legacy_header=allow_legacy_header)
            if load_user:
                g.claims, g.open_user = verify_with_user(token)
            else:
                g.claims = verify(token)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def require_role(role: str) -> Callable[[F], F]:
    """Decorator: like require_auth, and the token's user must hold `role`.

    The user's roles and disabled flag are read from the database on every request, never
    taken from the token: a role taken away or an account disabled stops working at once.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            claims = verify(bearer_token())
            g.claims = claims
            # Roles are re-read from the database: a role just taken away stops working now.
            user = db.session.get(User, claims.user_id)
            if user is None or user.disabled:
                raise invalid_token("The user of this access token is disabled.")
            if role not in user.role_names:
                raise Problem(403, "forbidden", f"This needs the '{role}' role.")
            if role in settings().mfa_required_roles and claims.aal != "aal2":
                raise Problem(403, ErrorCode.MFA_REQUIRED_FOR_ROLE,
                              f"The '{role}' role needs a sign-in with a second factor. Set "
                              "up an authenticator app, then sign in with it.")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def require_recent_auth(view: F) -> F:
    """Decorator: like require_auth, and the sign-in behind the token happened within
    REAUTH_MAX_AGE (its `auth_time`); else 401 reauthentication_required. For changes a
    stolen, still-valid token must not be able to make (e-mail, phone, password, deletion)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        claims = verify(bearer_token())
        g.claims = claims
        if not is_recent(claims.auth_time):
            raise Problem(401, ErrorCode.REAUTHENTICATION_REQUIRED,
                          "This change needs a recent sign-in. Sign in again, then retry.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_aal(level: str) -> Callable[[F], F]:
    """Decorator: like require_auth, and the token's sign-in reached assurance `level`
    ("aal2": a second factor); else 401 insufficient_user_authentication (RFC 9470)."""
    if level not in access_tokens.AAL_LEVELS:
        raise ValueError(f"unknown assurance level {level!r}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            claims = verify(bearer_token())
            g.claims = claims
            if access_tokens.AAL_LEVELS.index(claims.aal) < access_tokens.AAL_LEVELS.index(level):
                raise Problem(401, ErrorCode.INSUFFICIENT_USER_AUTHENTICATION,
                              "This needs a sign-in with a second factor.",
                              headers={"WWW-Authenticate": 'Bearer error='
                                       '"insufficient_user_authentication", error_description='
                                       '"A second factor is required"'})
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def is_recent(auth_time: int) -> bool:
    """Whether a sign-in at `auth_time` (epoch seconds) is recent enough for a sensitive
    change."""
    return clock.timestamp() - auth_time <= settings().reauth_max_age


def current_user() -> User:
    """The user of the verified token of this request."""
    user = db.session.get(User, g.claims.user_id)
    if user is None or user.disabled:
        raise invalid_token("The user of this access token no longer exists.")
    return user
