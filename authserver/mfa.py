"""A second factor: an authenticator app (TOTP, RFC 6238) and single-use recovery codes; and
the step-up every first factor of an enrolled user goes through (the mfa_token).

- The app's secret (160 random bits, base32) is stored Fernet-encrypted with a key derived
  from SECRET_KEY (keys.fernet, its own HKDF label), never shown again after enrolment.
- A code is accepted for the current 30-second step of the server's clock and one step
  either side; one conditional UPDATE of `last_used_step` decides it, so no step is ever
  accepted twice for one user (replay), even by concurrent requests.
- Recovery codes are 10 random base32 characters (50 bits), stored as an HMAC keyed from
  SECRET_KEY; each is used once by a conditional UPDATE.
- `require_second_factor` is what `tokens.issue` calls for an enrolled user whose sign-in
  has one factor: it stores an mfa_token (a `one_time_codes` row of purpose `mfa`: only its
  hash, bound to the user and the first factor's amr, MFA_TOKEN_TTL, MFA_MAX_ATTEMPTS wrong
  tries) and raises `401 mfa_required` with the token and the methods.

Nothing here logs a secret, a code or a token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, cast

import pyotp
import segno
from cryptography.fernet import InvalidToken, MultiFernet
from flask import g, has_request_context
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from authserver import clock, codes, keys
from authserver.access_tokens import SECOND_FACTORS
from authserver.config import settings
from authserver.errors import ErrorCode, Problem
from authserver.extensions import client_ip, db
from authserver.models import OneTimeCode, RecoveryCode, TotpFactor, User
from authserver.models.base import time_ordered_id

log = logging.getLogger("authserver.mfa")

STEP = 30  # seconds per TOTP step (what every authenticator app uses)
DRIFT = 1  # steps accepted either side of the current one
DIGITS = 6
RECOVERY_CODES = 10
RECOVERY_LENGTH = 10
_RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: read off paper
METHODS = ["totp", "recovery_code"]
#: The amr a second factor adds: "otp" for the app's code, "mfa" for a recovery code.
TOTP_AMR = "otp"
RECOVERY_AMR = "mfa"
assert {TOTP_AMR, RECOVERY_AMR} <= SECOND_FACTORS

#: The mfa_token's row in one_time_codes: subject and user_id are the user, `state` the
#: first factor's amr; only the purpose's policy (lifetime, tries) is used from the engine.
APP = codes.Channel("app", "code", "invalid_otp", "", "")
PURPOSE = codes.Purpose(
    "mfa", channel=APP, ttl="mfa_token_ttl", max_attempts="mfa_max_attempts",
    cooldown="mfa_token_ttl", cooldown_detail="", lock_kills=True,
    key_label="authserver.mfa-token")


@dataclass(frozen=True)
class Enrolment:
    """A new, pending factor: what the person copies into their app (shown this once)."""

    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True)
class StepUp:
    """A sign-in waiting for its second factor (kept in `g` for the web pages)."""

    mfa_token: str
    client: str


# -- the secret ------------------------------------------------------------------------------
_AT_REST = b"authserver second-factor secrets at rest"


def _fernet() -> MultiFernet:
    """Encrypts under SECRET_KEY, decrypts under it or any of SECRET_KEY_FALLBACKS."""
    return MultiFernet([keys.fernet(secret, _AT_REST) for secret in settings().secret_keys()])


def _encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def _decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def current_step() -> int:
    return clock.timestamp() // STEP


def _label(user: User) -> str:
    return user.email or user.phone or user.id


def otpauth_uri(secret: str, user: User) -> str:
    app = settings().app_name
    return pyotp.TOTP(secret).provisioning_uri(name=_label(user), issuer_name=app)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as an inline SVG document (made here, nothing fetched)."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=4, border=2, title="QR code")
    return svg


# -- reading ---------------------------------------------------------------------------------
def factor(user_id: str) -> TotpFactor | None:
    return db.session.get(TotpFactor, user_id)


def enrolled(user_id: str) -> bool:
    """Whether the user has a confirmed authenticator app."""
    return db.session.scalar(select(TotpFactor.user_id).where(
        TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None))) is not None


def recovery_codes_left(user_id: str) -> int:
    return int(db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0)


def status(user_id: str) -> dict[str, Any]:
    """`/me`'s `mfa` member: never the secret."""
    return {"totp": enrolled(user_id), "recovery_codes_left": recovery_codes_left(user_id)}


# -- enrolment -------------------------------------------------------------------------------
def begin(user: User) -> Enrolment:
    """A new pending factor for `user` (replacing a pending one); 409 when one is confirmed."""
    if enrolled(user.id):
        raise Problem(409, ErrorCode.MFA_ALREADY_ENROLLED, "An authenticator app is already set "
                      "up. Turn it off first to set up another one.")
    secret = pyotp.random_base32(length=32)  # 32 base32 characters: 160 bits
    now = clock.now()
    if factor(user.id) is None:
        db.session.add(TotpFactor(user_id=user.id, secret_encrypted=_encrypt(secret),
                                  confirmed_at=None, last_used_step=None, created_at=now))
        try:
            db.session.flush()
            log.info("totp enrolment started user=%s", user.id)
            uri = otpauth_uri(secret, user)
            return Enrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))
        except IntegrityError:
            # A concurrent enroll inserted first (this request had written nothing else):
            # replace its secret below.
            db.session.rollback()
    # Only a pending factor is replaced; a confirm racing this one finds the secret changed
    # (its UPDATE names the secret it checked) and its code wrong.
    replaced = _rowcount(db.session.execute(update(TotpFactor).where(
        TotpFactor.user_id == user.id, TotpFactor.confirmed_at.is_(None)).values(
        secret_encrypted=_encrypt(secret), last_used_step=None, created_at=now)
        .execution_options(synchronize_session=False)))
    db.session.expire_all()
    if replaced != 1:
        raise Problem(409, ErrorCode.MFA_ALREADY_ENROLLED, "An authenticator app is already set "
                      "up. Turn it off first to set up another one.")
    log.info("totp enrolment started user=%s", user.id)
    uri = otpauth_uri(secret, user)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))


def pending(user: User) -> Enrolment | None:
    """The unconfirmed enrolment, to show again until its first code confirms it (a
    confirmed secret is never shown again)."""
    row = factor(user.id)
    if row is None or row.confirmed_at is not None:
        return None
    secret = _decrypt(row.secret_encrypted)
    uri = otpauth_uri(secret, user)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as a `data:image/svg+xml` URI, for an <img> on the pages."""
    data: str = segno.make(uri, error="m").svg_data_uri(scale=4, border=2)
    return data


def _normalize(code: Any) -> str | None:
    code = "".join(code.split()) if isinstance(code, str) else ""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    return code


def _matching_step(secret: str, code: str) -> int | None:
    """The step within ±DRIFT of now whose code is `code` (the newest if several), or None.
    Every candidate is computed and compared in constant time, whichever matches."""
    totp = pyotp.TOTP(secret)
    now = current_step()
    found = None
    for step in range(now - DRIFT, now + DRIFT + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            found = step
    return found


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _accept_step(user_id: str, step: int, secret_encrypted: str, *, confirm: bool) -> bool:
    """The replay guard: one conditional UPDATE, so of concurrent uses of a step exactly one
    wins and no step at or before the last accepted one is ever accepted again. It names the
    secret the code was checked against: a secret replaced meanwhile accepts nothing."""
    conditions = [TotpFactor.user_id == user_id,
                  TotpFactor.secret_encrypted == secret_encrypted,
                  (TotpFactor.last_used_step.is_(None)) | (TotpFactor.last_used_step < step)]
    values: dict[str, Any] = {"last_used_step": step}
    if confirm:
        conditions.append(TotpFactor.confirmed_at.is_(None))
        values["confirmed_at"] = clock.now()
    else:
        conditions.append(TotpFactor.confirmed_at.is_not(None))
    return _rowcount(db.session.execute(
        update(TotpFactor).where(*conditions).values(**values)
        .execution_options(synchronize_session=False))) == 1


def check_code(user_id: str, code: Any, *, pending: bool = False) -> bool:
    """Whether `code` is the app's code for now (±1 step) and this call used its step.

    `pending`: check the unconfirmed factor, and confirm it when right. Not committed: the
    request commits it with what the code was for.
    """
    row = factor(user_id)
    normalized = _normalize(code)
    if row is None or normalized is None or (row.confirmed_at is None) != pending:
        return False
    step = _matching_step(_decrypt(row.secret_encrypted), normalized)
    if step is None:
        return False
    return _accept_step(user_id, step, row.secret_encrypted, confirm=pending)


def remove(user_id: str) -> bool:
    """Remove the user's factor and recovery codes; whether there was a factor."""
    removed = _rowcount(db.session.execute(
        delete(TotpFactor).where(TotpFactor.user_id == user_id))) == 1
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    db.session.expire_all()
    if removed:
        log.info("totp factor removed user=%s", user_id)
    return removed


# -- recovery codes --------------------------------------------------------------------------
def _recovery_hash(user_id: str, code: str, secret_key: str = "") -> str:
    secret = secret_key or settings().secret_key
    key = hmac.new(secret.encode(), b"authserver.recovery-code", hashlib.sha256).digest()
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _recovery_hashes(user_id: str, code: str) -> list[str]:
    """The code's stored form under SECRET_KEY and each of SECRET_KEY_FALLBACKS."""
    return [_recovery_hash(user_id, code, secret) for secret in settings().secret_keys()]


def _normalize_recovery(code: Any) -> str | None:
    if not isinstance(code, str) or len(code) > 64:
        return None
    cleaned = "".join(ch for ch in code.lower() if ch not in " -\t")
    if len(cleaned) != RECOVERY_LENGTH or any(ch not in _RECOVERY_ALPHABET for ch in cleaned):
        return None
    return cleaned


def new_recovery_codes(user_id: str) -> list[str]:
    """A fresh set (the old ones die): returned this once, stored hashed. Shown as
    `xxxxx-xxxxx`; the dash and spaces are ignored when one is typed back."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    now = clock.now()
    fresh = ["".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
             for _ in range(RECOVERY_CODES)]
    db.session.add_all(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(user_id, code),
                                    created_at=now, used_at=None) for code in fresh)
    db.session.flush()
    return [f"{code[:5]}-{code[5:]}" for code in fresh]


def use_recovery_code(user_id: str, code: Any) -> bool:
    """Use one recovery code once (a conditional UPDATE decides); not committed here."""
    cleaned = _normalize_recovery(code)
    if cleaned is None:
        _recovery_hashes(user_id, "-")  # the same work
        return False
    used = _rowcount(db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user_id,
               RecoveryCode.code_hash.in_(_recovery_hashes(user_id, cleaned)),
               RecoveryCode.used_at.is_(None))
        .values(used_at=clock.now()).execution_options(synchronize_session=False))) == 1
    if used:
        log.info("recovery code used user=%s", user_id)
    return used


# -- the step-up at sign-in ------------------------------------------------------------------
def needs_second_factor(user: User, amr: list[str]) -> bool:
    return not SECOND_FACTORS.intersection(amr) and enrolled(user.id)


def require_second_factor(user: User, amr: list[str], client: str) -> NoReturn:
    """Store an mfa_token for this first factor and raise `401 mfa_required` with it.

    Committed here, with the first factor's use (a code consumed, a lockout cleared): the
    token must work on any connection the moment the client has it, whatever the request
    does afterwards (the web pages answer with a redirect instead of the problem).
    """
    challenge_id = time_ordered_id()
    secret = secrets.token_urlsafe(32)
    now = clock.now()
    db.session.add(OneTimeCode(
        id=challenge_id, purpose=PURPOSE.name, channel=APP.name, subject=user.id,
        user_id=user.id, code_hash=codes.code_hash(PURPOSE, challenge_id, secret), attempts=0,
        state=" ".join(amr), ip=client_ip(), created_at=now,
        expires_at=now + timedelta(seconds=PURPOSE.setting("ttl"))))
    db.session.commit()
    token = f"{challenge_id}.{secret}"
    if has_request_context():
        g.mfa_step_up = StepUp(token, client)
    log.info("second factor required user=%s amr=%s id=%s", user.id, " ".join(amr),
             challenge_id)
    raise Problem(401, ErrorCode.MFA_REQUIRED, "Enter the code from your authenticator app "
                  "(or a recovery code) to finish signing in.",
                  extra={"mfa_token": token, "methods": list(METHODS)})


def open_token(mfa_token: Any) -> codes.Challenge | None:
    """The row an mfa_token names (live or not) when the token is genuine, else None."""
    if not isinstance(mfa_token, str) or len(mfa_token) > codes.MAX_TOKEN_LENGTH:
        return None
    challenge_id, _, secret = mfa_token.partition(".")
    if not 0 < len(challenge_id) <= 36 or not secret:
        return None
    row = codes.find(PURPOSE, challenge_id)
    expected = row.code_hash if row is not None else "0" * 64
    genuine = codes.code_matches(PURPOSE, challenge_id, secret, expected)
    return row if row is not None and genuine else None


def is_live(challenge: codes.Challenge) -> bool:
    return (challenge.consumed_at is None and challenge.invalidated_at is None
            and challenge.expires_at > clock.now())


# -- SECRET_KEY rotation ---------------------------------------------------------------------
def reencrypt_secrets() -> tuple[int, int]:
    """Re-encrypt every stored authenticator secret under the current SECRET_KEY (`flask keys
    reencrypt`, after a rotation); not committed here. Returns (re-encrypted, unreadable):
    an unreadable one was made under a key that is no longer among SECRET_KEY_FALLBACKS."""
    fernet = _fernet()
    done = unreadable = 0
    for row in db.session.scalars(select(TotpFactor)):
        try:
            row.secret_encrypted = fernet.rotate(row.secret_encrypted.encode()).decode()
        except InvalidToken:
            unreadable += 1
            log.error("totp secret of user=%s cannot be decrypted with SECRET_KEY or "
                      "SECRET_KEY_FALLBACKS", row.user_id)
            continue
        done += 1
    db.session.flush()
    return done, unreadable
