"""Access tokens: signing and checking the short-lived JWTs. The one place PyJWT reads or
writes an access token.

Checking is on the hot path of every service that uses us, so it costs one signature check
against a key the ring keeps in memory and no database query; whether the token's session
is still open is a separate question (`sessions.is_open`, put together in `auth.verify`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from authserver import clock
from authserver.config import settings
from authserver.errors import invalid_token
from authserver.keys import keyring

ALLOWED_ALGORITHMS = ("ES256", "EdDSA", "RS256", "HS256")
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "sid"]
LEEWAY = 5  # seconds of clock skew tolerated between us and the services verifying
#: amr values of a second factor (an authenticator app's code, a recovery code): a sign-in
#: with one of them is two factors, `aal2`; anything else is `aal1`.
SECOND_FACTORS = frozenset({"otp", "mfa"})
AAL_LEVELS = ("aal1", "aal2")


def aal_of(amr: list[str] | tuple[str, ...]) -> str:
    """The authenticator assurance level (NIST SP 800-63B) a sign-in's methods reach."""
    return "aal2" if SECOND_FACTORS.intersection(amr) else "aal1"


@dataclass(frozen=True)
class Claims:
    """A verified access token."""

    user_id: str
    session_id: str
    roles: list[str]
    amr: list[str]
    #: When the holder last proved who they are (the session's sign-in), epoch seconds.
    auth_time: int
    raw: dict[str, Any]
    #: "aal1" (one factor) or "aal2" (two), from `amr`.
    aal: str = "aal1"


def sign(user_id: str, session_id: str, amr: list[str], roles: list[str],
         auth_time: int) -> tuple[str, int]:
    """A new access token for a session, and its lifetime in seconds. `auth_time` (OIDC's
    claim) is when the session's sign-in happened: refreshing never makes it more recent."""
    config = settings()
    key = keyring().active()
    now = clock.timestamp()
    ttl = config.access_token_ttl
    claims = {
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "sub": user_id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
        "sid": session_id,
        "auth_time": auth_time,
        "amr": amr,
        "aal": aal_of(amr),
        "roles": roles,
    }
    token = jwt.encode(claims, key.signing_key, algorithm=key.algorithm,
                       headers={"kid": key.kid, "typ": "at+jwt"})
    return token, ttl


#: Parsed JOSE headers by their encoded segment. Every token a key signs carries the same
#: header, so this spares parsing the whole token twice (once for its `kid`, once to verify)
#: on the hot path; only headers of known keys are kept, a handful.
_HEADERS: dict[str, dict[str, Any]] = {}
_HEADERS_MAX = 64


def _header(token: str) -> dict[str, Any]:
    segment = token.partition(".")[0]
    header = _HEADERS.get(segment)
    if header is None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("The access token is malformed.") from None
        kid = header.get("kid")
        if isinstance(kid, str) and keyring().get(kid) is not None:
            if len(_HEADERS) >= _HEADERS_MAX:
                _HEADERS.clear()
            _HEADERS[segment] = header
    return header


def decode(token: str) -> dict[str, Any]:
    """Check signature, algorithm, iss, aud and exp. Raises Problem(401 invalid_token)."""
    header = _header(token)
    kid = header.get("kid")
    alg = header.get("alg")
    if not isinstance(kid, str) or alg not in ALLOWED_ALGORITHMS:
        raise invalid_token("The access token is malformed.")
    key = keyring().get(kid)
    # The algorithm is pinned to the key's own: an RS/ES public key can never be used as an
    # HMAC secret, and `alg: none` never reaches a key at all.
    if key is None or key.algorithm != alg:
        raise invalid_token("The access token was not signed by this server.")
    config = settings()
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.verifying_key,
            algorithms=[key.algorithm],
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            # exp/nbf/iat are checked below against clock.now(), the server's one clock.
            options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False},
        )
    except jwt.PyJWTError:
        raise invalid_token() from None
    now = clock.timestamp()
    try:
        expired = int(claims["exp"]) + LEEWAY < now
        early = int(claims.get("nbf", claims["iat"])) - LEEWAY > now
    except (TypeError, ValueError):
        raise invalid_token("The access token is malformed.") from None
    if expired:
        raise invalid_token("The access token has expired.")
    if early:
        raise invalid_token("The access token is not valid yet.")
    return claims


def verify(token: str) -> Claims:
    """A token signed by us, unexpired, for us (offline: its session is not looked at)."""
    claims = decode(token)
    if not isinstance(claims["sid"], str) or not isinstance(claims["sub"], str):
        raise invalid_token("The access token is malformed.")
    auth_time = claims.get("auth_time", claims["iat"])
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        raise invalid_token("The access token is malformed.")
    amr = claims.get("amr") or []
    if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
        raise invalid_token("The access token is malformed.")
    return Claims(
        user_id=claims["sub"],
        session_id=claims["sid"],
        roles=list(claims.get("roles") or []),
        amr=list(amr),
        auth_time=auth_time,
        raw=claims,
        # From the methods, not taken on trust from the `aal` member.
        aal=aal_of(amr),
    )
