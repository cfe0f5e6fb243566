"""Sign in with a link, or the 6-digit code printed next to it, sent by e-mail.

One mail is one `MagicLink` row and one credential. The link's token is an itsdangerous
signature (SECRET_KEY, a salt of its own) over nothing but the row id, so the signature says
"we made this, less than MAGIC_LINK_TTL ago" and the row says "still unused, not revoked".
The code is stored as an HMAC keyed from SECRET_KEY. Whichever is used first consumes the
row, which kills the other; a successful e-mail sign-in also invalidates every other
outstanding mail for that address.

Consuming is one conditional UPDATE whose row count decides, so of concurrent uses of one
mail exactly one wins, on MySQL as on SQLite. Wrong codes reserve an attempt with the same
kind of UPDATE *before* the guess is compared, so even parallel guessing gets at most
MAGIC_LINK_MAX_ATTEMPTS answers per mail.

Mails are abused too (mail bombing), so each address has a resend cooldown: a send slot
reserved atomically in the database (cooldowns.py) before anything is sent, so of concurrent
requests for one address exactly one is mailed, across worker processes and even on
RATELIMIT_STORAGE_URI=memory://. A failed send gives the slot back.

Tokens, codes and links are never logged: a log line names the row id and a masked address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import current_app, render_template
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete, select, update

from authserver import accounts, clock, cooldowns, ratelimits, tokens
from authserver.errors import Problem, rate_limited, unavailable
from authserver.extensions import client_ip, db
from authserver.flows import handoff
from authserver.identifiers import normalize_email
from authserver.models import MagicLink, User
from authserver.models.base import new_id
from authserver.redirects import check_redirect
from authserver.senders.base import RecipientRejected, SenderUnavailable
from authserver.senders.email import EmailSender
from authserver.services import services, settings

log = logging.getLogger("authserver.flows.magic_link")

AMR = ["email"]
TOKEN_SALT = "authserver.magic-link"
CODE_KEY_LABEL = b"authserver.magic-link.code"
CODE_LENGTH = 6
LINK_PATH = "/auth/magic"
MAX_TOKEN_LENGTH = 512
# A person rarely has more than a couple of mails outstanding (MAGIC_LINK_LIMIT_PER_EMAIL_HOUR
# caps it); a code is compared against at most this many of the newest.
MAX_CODE_CANDIDATES = 10
_TIMING_KEY = "authserver.magic_link_send_seconds"


@dataclass(frozen=True)
class LinkPreview:
    """What the confirmation page may show about a live link, without consuming it."""

    email: str
    expires_at: datetime


@dataclass(frozen=True)
class EmailSignIn:
    """A consumed mail: who proved they own the address, and where the sign-in should go."""

    user: User
    amr: list[str]
    redirect_to: str | None
    code_challenge: str | None


def _invalid_link(detail: str = "This sign-in link or code is invalid, expired or already "
                                "used. Ask for a new one.") -> Problem:
    return Problem(401, "invalid_link", detail)


def _mask(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


# -- the link's token and the code's hash ---------------------------------------------------
class _ClockSigner(TimestampSigner):
    """Timestamps from the server's one clock, so tests that travel in time age links too."""

    def get_timestamp(self) -> int:
        return clock.timestamp()


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings().secret_key, salt=TOKEN_SALT,
                                  signer=_ClockSigner)


def make_token(link_id: str) -> str:
    return _serializer().dumps(link_id)


def _token_link_id(token: Any) -> str | None:
    """The row id a token was signed for, or None when forged, tampered, expired or foreign."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        link_id = _serializer().loads(token, max_age=settings().magic_link_ttl)
    except BadData:
        return None
    if not isinstance(link_id, str) or not 0 < len(link_id) <= 36:
        return None
    return link_id


def _code_hash(link_id: str, code: str) -> str:
    # The row id is mixed in so equal codes in two mails never have equal hashes.
    key = hmac.new(settings().secret_key.encode(), CODE_KEY_LABEL,
                   hashlib.sha256).digest()
    return hmac.new(key, f"{link_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_LENGTH):0{CODE_LENGTH}d}"


def link_url(token: str) -> str:
    """The mailed link. Built from PUBLIC_BASE_URL only: a forged Host header can't move it."""
    return f"{settings().public_base_url}{LINK_PATH}?{urlencode({'token': token})}"


# -- sending ---------------------------------------------------------------------------------
def email_sender() -> EmailSender:
    """The app's e-mail sender, built once from its configuration."""
    return services().email


class _SendTiming:
    """A running average of how long a send takes, to pad the answers that send nothing."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.lock = threading.Lock()

    def record(self, seconds: float) -> None:
        with self.lock:
            self.seconds = seconds if self.seconds == 0 else 0.8 * self.seconds + 0.2 * seconds

    def pad(self) -> None:
        # Bounded, so a slow mail server can't make unknown-address requests hang.
        target = min(self.seconds, 2.0)
        if target > 0:
            time.sleep(target * (0.9 + 0.2 * secrets.randbelow(1000) / 1000))


def _timing() -> _SendTiming:
    extensions = current_app.extensions
    timing = extensions.get(_TIMING_KEY)
    if timing is None:
        timing = extensions.setdefault(_TIMING_KEY, _SendTiming())
    return timing  # type: ignore[no-any-return]


def _limits(email: str) -> list[tuple[ratelimits.Limit, str]]:
    """Checked before sending and counted after; not atomic, but every send must also win the
    address's slot (_reserve_slot), so the per-address count can't be raced and the per-IP
    one may overshoot only by the few requests in flight at once.
    """
    return [(ratelimits.MAIL_IP, client_ip()), (ratelimits.MAIL_ADDRESS, email)]


def _slot(email: str) -> str:
    return "email:" + email


def _reserve_slot(email: str) -> bool:
    """Take the address's resend slot (429 when another mail holds it); True if one was taken."""
    config = settings()
    if not config.ratelimit_enabled:
        return False
    wait = cooldowns.reserve(_slot(email), config.magic_link_resend_cooldown)
    if wait:
        log.info("magic link refused (cooldown) to=%s", _mask(email))
        raise rate_limited(wait, f"A sign-in mail was just sent. Check your inbox, or wait up "
                                 f"to {wait} seconds before asking for another.")
    return True


def request_link(email: str, redirect_to: str | None = None,
                 code_challenge: str | None = None,
                 code_challenge_method: str | None = None) -> dict[str, Any]:
    """Mail a sign-in link and code to `email`; the same answer whether or not it has an account.

    Raises 422 (invalid_email, invalid_redirect, invalid_request for a bad PKCE challenge),
    429 rate_limited, 503 service_unavailable when the mail could not be handed over.
    """
    config = settings()
    email = normalize_email(email)
    redirect_to = check_redirect(redirect_to)
    code_challenge = handoff.check_challenge(code_challenge, code_challenge_method)
    limits = _limits(email)
    for limit, key in limits:
        ratelimits.check(limit, key)
    # Last before sending (and before looking the address up), so a request refused above
    # never holds the slot, and known and unknown addresses take it alike.
    reserved = _reserve_slot(email)

    answer = {"sent": True, "expires_in": config.magic_link_ttl}
    if not config.email_signup_enabled and accounts.by_email(email) is None:
        # Nobody to sign in and nobody to create: send nothing, but look, count and hold the
        # cooldown exactly like a send so neither the answer, its timing nor the limits tell
        # this case apart.
        _timing().pad()
        for limit, key in limits:
            ratelimits.count(limit, key)
        log.info("magic link not sent (no account, sign-up off) to=%s", _mask(email))
        return answer

    now = clock.now()
    code = _new_code()
    link_id = new_id()
    # Committed before sending, so the link works the moment the mail lands.
    db.session.add(MagicLink(
        id=link_id, email=email, code_hash=_code_hash(link_id, code), attempts=0,
        redirect_to=redirect_to, code_challenge=code_challenge, ip=client_ip(),
        created_at=now, expires_at=now + timedelta(seconds=config.magic_link_ttl),
    ))
    db.session.commit()

    started = time.monotonic()
    try:
        _send(email, make_token(link_id), code)
    except (SenderUnavailable, RecipientRejected) as exc:
        # Nobody received this token or code, but drop the row anyway: nothing usable stays.
        db.session.rollback()
        db.session.execute(delete(MagicLink).where(MagicLink.id == link_id))
        db.session.commit()
        if reserved:
            # Nothing was mailed: the cooldown doesn't start.
            cooldowns.release(_slot(email), None)
        log.warning("magic link not sent link=%s to=%s: %s", link_id, _mask(email),
                    type(exc).__name__)
        if isinstance(exc, RecipientRejected):
            raise Problem(422, "invalid_email", "The mail server refused this address.",
                          field="email") from None
        raise unavailable("The mail server is not answering. Try again shortly.") from None
    _timing().record(time.monotonic() - started)
    for limit, key in limits:
        ratelimits.count(limit, key)
    log.info("magic link sent link=%s to=%s", link_id, _mask(email))
    return answer


def _send(email: str, token: str, code: str) -> None:
    config = settings()
    context = {
        "app_name": config.app_name,
        "link": link_url(token),
        "code": code,
        "email": email,
        "expires_minutes": max(1, config.magic_link_ttl // 60),
    }
    subject = f"Sign in to {config.app_name}"
    text = render_template("mail/magic_link.txt", **context)
    html = render_template("mail/magic_link.html", **context)
    email_sender().send(email, subject, text, html)


# -- consuming -------------------------------------------------------------------------------
def _live(now: datetime) -> list[Any]:
    return [MagicLink.consumed_at.is_(None), MagicLink.invalidated_at.is_(None),
            MagicLink.expires_at > now]


def _consume(link_id: str) -> bool:
    """The one conditional UPDATE that decides who uses a mail; True for the winner."""
    now = clock.now()
    result = db.session.execute(
        update(MagicLink)
        .where(MagicLink.id == link_id, *_live(now))
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def _user_for(email: str) -> User:
    """The account that owns `email`, created on its first e-mail sign-in when allowed."""
    if settings().email_signup_enabled:
        user = accounts.find_or_create(email=email)
    else:
        user = accounts.by_email(email)
        if user is None:
            raise _invalid_link()
    if user.disabled:
        raise Problem(403, "account_disabled", "This account has been disabled.")
    return user


def _finish(link_id: str) -> EmailSignIn:
    """After winning the consume: the user, their verified address, the other mails killed."""
    link = db.session.get(MagicLink, link_id)
    assert link is not None
    user = _user_for(link.email)
    now = clock.now()
    if user.email_verified_at is None:
        user.email_verified_at = now
    # Every other outstanding mail to this address dies with this sign-in.
    db.session.execute(
        update(MagicLink)
        .where(MagicLink.email == link.email, MagicLink.id != link_id,
               MagicLink.consumed_at.is_(None), MagicLink.invalidated_at.is_(None))
        .values(invalidated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info("e-mail sign-in link=%s user=%s", link_id, user.id)
    return EmailSignIn(user=user, amr=list(AMR), redirect_to=link.redirect_to,
                       code_challenge=link.code_challenge)


def peek_link(token: str) -> LinkPreview | None:
    """The live link a token names, or None; consumes and changes nothing (GET-safe)."""
    link_id = _token_link_id(token)
    if link_id is None:
        return None
    link = db.session.scalar(select(MagicLink).where(MagicLink.id == link_id,
                                                     *_live(clock.now())))
    if link is None:
        return None
    return LinkPreview(email=link.email, expires_at=link.expires_at)


def consume_link(token: str) -> EmailSignIn:
    """Use a link's token once (401 invalid_link otherwise); the web POST calls this."""
    link_id = _token_link_id(token)
    if link_id is None or not _consume(link_id):
        log.info("magic link refused")
        raise _invalid_link()
    return _finish(link_id)


def _attempts_exceeded() -> Problem:
    retry = max(1, settings().magic_link_resend_cooldown)
    return Problem(429, "otp_attempts_exceeded",
                   "Too many wrong codes: this code no longer works. Use the link in the "
                   "e-mail or ask for a new one.", headers={"Retry-After": str(retry)})


def consume_code(email: str, code: str) -> EmailSignIn:
    """Use the 6-digit code of a mail to `email` once.

    401 invalid_link for a wrong, expired or used code (each of the 5 counted wrong tries);
    429 otp_attempts_exceeded for any try after the wrong tries have used up the code (its
    link keeps working: guessing codes must not let a stranger burn the link in someone's
    inbox).
    """
    try:
        email = normalize_email(email)
    except Problem:
        raise _invalid_link() from None
    code = "".join(code.split()) if isinstance(code, str) else ""
    if len(code) != CODE_LENGTH or not code.isascii() or not code.isdigit():
        raise _invalid_link()

    max_attempts = settings().magic_link_max_attempts
    now = clock.now()
    candidates = db.session.execute(
        select(MagicLink.id, MagicLink.code_hash)
        .where(MagicLink.email == email, *_live(now))
        .order_by(MagicLink.created_at.desc())
        .limit(MAX_CODE_CANDIDATES)
    ).all()
    db.session.commit()
    matched: str | None = None
    counted = False  # whether this try used up an attempt of some outstanding code
    for link_id, code_hash in candidates:
        reserved = db.session.execute(
            update(MagicLink)
            .where(MagicLink.id == link_id, MagicLink.attempts < max_attempts, *_live(now))
            .values(attempts=MagicLink.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        db.session.commit()
        counted = counted or reserved
        if reserved and hmac.compare_digest(_code_hash(link_id, code), code_hash):
            matched = link_id
            break

    if matched is not None and _consume(matched):
        return _finish(matched)
    if matched is None and candidates and not counted:
        # Each counted wrong try answers 401; 429 only for a try that found every outstanding
        # code used up by earlier wrong tries (a mail used meanwhile is plain 401).
        attempts = db.session.scalars(
            select(MagicLink.attempts).where(MagicLink.email == email, *_live(clock.now()))
        ).all()
        db.session.commit()
        if attempts and min(attempts) >= max_attempts:
            log.info("magic code attempts exhausted to=%s", _mask(email))
            raise _attempts_exceeded()
    log.info("magic code refused to=%s", _mask(email))
    raise _invalid_link()


def verify_link(token: str, client: str = "api") -> dict[str, Any]:
    """Sign in with a link's token: the token response (amr: email)."""
    signed_in = consume_link(token)
    return tokens.issue(signed_in.user, signed_in.amr, client=client)


def verify_code(email: str, code: str, client: str = "api") -> dict[str, Any]:
    """Sign in with the e-mailed 6-digit code: the token response (amr: email)."""
    signed_in = consume_code(email, code)
    return tokens.issue(signed_in.user, signed_in.amr, client=client)
