"""Device tokens: "this browser or app signed in to this account with its password before".

OWASP's device cookies, against targeted lock-out. Password sign-ins are limited per account
(SIGNIN_LIMIT_PER_ACCOUNT) so nobody can guess fast; without more, a stranger's wrong
passwords would use up that budget and lock the owner out too. So after a successful password
sign-in the client gets a device token bound to the account; a sign-in that brings a valid
token for the account it names is counted against that device's own budget
(SIGNIN_LIMIT_PER_DEVICE, keyed by the token's nonce) instead of the account's "untrusted"
one, so strangers' failures don't block it.

The token is `<nonce>.<issued>.<mac>`: a 128-bit random nonce, the Unix time it was made, and
HMAC-SHA256 (key derived from SECRET_KEY; SECRET_KEY_FALLBACKS still verify) over the user
id, nonce and time. Nothing is stored;
it is valid for SIGNIN_DEVICE_TTL seconds and only for the account it was made for (a token
of another account counts as none). Browsers get it as an HttpOnly, SameSite=Lax cookie
(`authserver_device`, Secure when SESSION_COOKIE_SECURE); API clients read the
`X-Device-Token` response header of a successful sign-in and send it back in the
`X-Device-Token` request header (the header wins over the cookie).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import after_this_request, request
from werkzeug.wrappers import Response

from authserver import clock
from authserver.config import settings

COOKIE = "authserver_device"
HEADER = "X-Device-Token"
#: A token is ~90 characters; longer input is not one and is not worth hashing.
MAX_TOKEN_LENGTH = 200
_LABEL = b"authserver.device-token"


def _mac(user_id: str, nonce: str, issued: int, secret_key: str = "") -> str:
    secret = secret_key or settings().secret_key
    key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
    message = f"{user_id}\n{nonce}\n{issued}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def issue(user_id: str) -> str:
    """A new device token for `user_id`."""
    nonce = secrets.token_urlsafe(16)
    issued = clock.timestamp()
    return f"{nonce}.{issued}.{_mac(user_id, nonce, issued)}"


def device_of(token: str | None, user_id: str | None) -> str | None:
    """The device (the token's nonce) if `token` is a live token of `user_id`, else None."""
    if not token or user_id is None or len(token) > MAX_TOKEN_LENGTH:
        return None
    nonce, _, rest = token.partition(".")
    issued_text, _, mac = rest.partition(".")
    if not nonce or not issued_text.isdigit() or not mac:
        return None
    issued = int(issued_text)
    genuine = False  # under SECRET_KEY or any of SECRET_KEY_FALLBACKS, each compared
    for secret in settings().secret_keys():
        genuine |= hmac.compare_digest(mac, _mac(user_id, nonce, issued, secret))
    if not genuine:
        return None
    age = clock.timestamp() - issued
    if not 0 <= age < settings().signin_device_ttl:
        return None
    return nonce


def presented() -> str | None:
    """The device token this request brought: the X-Device-Token header, else the cookie."""
    return request.headers.get(HEADER) or request.cookies.get(COOKIE) or None


def remember(user_id: str) -> None:
    """After a successful password sign-in: hand this client a device token for `user_id`.

    A client that brought a live token of this account keeps it (and its device budget).
    """
    if device_of(presented(), user_id) is not None:
        return
    token = issue(user_id)
    config = settings()

    @after_this_request
    def _hand_out(response: Response) -> Response:
        response.set_cookie(COOKIE, token, max_age=config.signin_device_ttl, path="/",
                            secure=bool(config.session_cookie_secure), httponly=True,
                            samesite="Lax")
        response.headers[HEADER] = token
        return response
