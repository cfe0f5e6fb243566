"""Password hashing (argon2id) and the password policy (after NIST SP 800-63B).

Every password is NFKC-normalised before it is checked, hashed or verified, so a user who
types the same text on a different keyboard or OS (ligatures, full-width forms, composed vs.
decomposed accents) still signs in.

bcrypt hashes (`$2a$`, `$2b$`, `$2y$`) brought over from the Node AuthService
(`flask users import-seed`) are verified too, never made: see `verify_password` and
`upgraded_hash`, which replaces one with argon2id at the user's next successful sign-in.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
import time
import unicodedata
from importlib import resources
from typing import TypeGuard

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import Argon2Error, VerifyMismatchError

from authserver import pwned

__all__ = [
    "BCRYPT_MAX_BYTES",
    "BCRYPT_MAX_COST",
    "HASH_LENGTH",
    "MAX_LENGTH",
    "MEMORY_COST_KIB",
    "MIN_LENGTH",
    "PARALLELISM",
    "SALT_LENGTH",
    "TIME_COST",
    "bcrypt_cost",
    "check_policy",
    "hash_password",
    "is_bcrypt",
    "needs_rehash",
    "normalize",
    "upgraded_hash",
    "verify_password",
]

log = logging.getLogger(__name__)

# OWASP Password Storage Cheat Sheet, first argon2id option (m=19 MiB, t=2, p=1): about 30 ms
# per hash on one core, which keeps sign-in latency low while making offline guessing costly.
# Raising any of these makes needs_rehash() true for older hashes, which are then upgraded at
# the user's next successful sign-in.
MEMORY_COST_KIB = 19_456
TIME_COST = 2
PARALLELISM = 1
HASH_LENGTH = 32
SALT_LENGTH = 16

MIN_LENGTH = 8
# Comfortably above NIST's "at least 64"; the cap bounds the work an attacker can make us do.
MAX_LENGTH = 256

# One precomposed code point decomposes into at most 4 (checked over all of Unicode), so NFKC
# can shrink a string at most 4-fold; anything longer than this can never normalise to
# MAX_LENGTH or fewer, and is refused without spending time normalising it.
_MAX_RAW_LENGTH = 4 * MAX_LENGTH

# bcrypt reads at most 72 bytes of a password; Node's bcrypt cut longer ones there silently.
BCRYPT_MAX_BYTES = 72
# The most work a stored bcrypt hash may ask for: each step doubles it (cost 10 takes about
# 60 ms here, 14 about a second). A higher one (never a real choice) would let one sign-in
# attempt tie up a worker for minutes, so it is refused, and import-seed skips it.
BCRYPT_MAX_COST = 14
# A well-formed bcrypt hash: variant, two-digit cost (4..31), 22 characters of salt and 31 of
# hash in bcrypt's base64 alphabet. `$2x$` (crypt_blowfish's buggy-mode marker) is not one.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")

_COMMON_PASSWORDS_RESOURCE = "data/common-passwords.txt"

_hasher = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_LENGTH,
    salt_len=SALT_LENGTH,
    type=Type.ID,
)

_lock = threading.Lock()
_common_passwords: frozenset[str] | None = None
_dummy_hash: str | None = None
# Seconds one argon2 verification took lately (a moving average over this process's
# verifications): a wrong password against a bcrypt hash is padded to it (see _verify_bcrypt).
_argon2_seconds = 0.0


def normalize(password: str) -> str:
    """NFKC-normalise a password, as NIST SP 800-63B section 5.1.1.2 recommends."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """Return an encoded argon2id hash of the normalised password.

    Raises ValueError for a password that check_policy() would refuse as too long or not
    encodable; callers are expected to have run check_policy() first.
    """
    prepared = _prepare(password)
    if prepared is None:
        raise ValueError("password is too long or contains invalid Unicode")
    return _hasher.hash(prepared)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check a password against a stored hash, in time independent of whether the user exists.

    A missing hash (unknown user, or a user without a password) is verified against a dummy
    hash with the same parameters so that the answer takes as long as a real mismatch. A
    malformed or foreign hash is logged and counts as a mismatch; this never raises. An
    imported bcrypt hash is checked as the Node service checked it (_verify_bcrypt).
    """
    if is_bcrypt(stored_hash):
        return _verify_bcrypt(stored_hash, password)
    prepared = _prepare(password)
    if stored_hash is None or prepared is None:
        _burn_verify_time(prepared)
        return False
    try:
        return _timed_verify(stored_hash, prepared)
    except VerifyMismatchError:
        return False
    except (Argon2Error, ValueError) as exc:
        # Only the scheme prefix is logged: enough to spot a bcrypt import or a truncated
        # column, without writing a crackable hash into the logs.
        log.warning(
            "Stored password hash could not be verified (%s, scheme %r); treating it as a "
            "mismatch.",
            type(exc).__name__,
            _scheme_of(stored_hash),
        )
        _burn_verify_time(prepared)
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was not made with the current parameters (or is not argon2 at all,
    as an imported bcrypt hash)."""
    if is_bcrypt(stored_hash):
        return True
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (Argon2Error, ValueError):
        return True


def is_bcrypt(stored_hash: object) -> TypeGuard[str]:
    """True for a well-formed `$2a$`, `$2b$` or `$2y$` bcrypt hash of a cost at most
    BCRYPT_MAX_COST: one this server verifies."""
    cost = bcrypt_cost(stored_hash)
    return cost is not None and cost <= BCRYPT_MAX_COST


def bcrypt_cost(stored_hash: object) -> int | None:
    """The cost of a well-formed bcrypt hash (whatever it is), else None."""
    match = _BCRYPT_HASH.fullmatch(stored_hash) if isinstance(stored_hash, str) else None
    return int(match.group(1)) if match else None


def upgraded_hash(stored_hash: str, password: str) -> str | None:
    """The argon2id hash to store in place of `stored_hash`, which `password` was just
    verified against; None when the stored one stays.

    It stays when it already has the current parameters, and for a bcrypt hash when the
    password is 72 bytes or longer: bcrypt compared only its first 72 bytes, so the text
    typed past them was never checked and may not be what the person set (a typo there, or
    someone who knows only the first 72 bytes). Storing argon2id of it would pin that text
    as the password and lock out the one the person set. Such an account keeps its bcrypt
    hash (and Node's 72-byte behaviour) until the password is reset.
    """
    if not needs_rehash(stored_hash):
        return None
    if is_bcrypt(stored_hash) and not _bcrypt_checks_in_full(password):
        return None
    prepared = _prepare(password)
    if prepared is None:
        return None
    return _hasher.hash(prepared)


def check_policy(password: str, email: str | None = None) -> str | None:
    """Return None when the password is acceptable, else a short reason to show the user.

    NIST SP 800-63B rules: length in code points after NFKC, no composition rules, any
    Unicode (spaces and emoji included), and a refusal of known-common or context-specific
    choices. This is the one policy function (sign-up, CLI, and any later reset or change):
    a password passing the local rules is then checked against known breaches (pwned.py),
    which raises Problem 422 breached_password, or 503 service_unavailable when the range
    API can't be asked and PWNED_PASSWORDS_FAIL=closed. The local rules run first, so a
    weak password never costs a network round trip.
    """
    if len(password) > _MAX_RAW_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    normalized = normalize(password)
    if not _is_encodable(normalized):
        return "Use only valid Unicode characters."
    if len(normalized) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(normalized) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."

    folded = normalized.casefold()
    if len(set(folded)) == 1:
        return "Don't use a single character repeated."
    if folded in _load_common_passwords():
        return "This password is too common. Choose something less predictable."
    if email and folded in _email_forms(email):
        return "Don't use your e-mail address as your password."
    # The normalised form is what is hashed, so it is what an attacker has to guess.
    pwned.enforce(normalized)
    return None


def _verify_bcrypt(stored_hash: str, password: str) -> bool:
    """Check a password against an imported bcrypt hash, as the Node service did.

    Node hashed the password as typed (no normalisation) and cut it at 72 bytes, so this
    checks the UTF-8 bytes as typed, cut at 72: every password that signed in there signs
    in here, and no other. A password with a NUL byte or unencodable text never matches.
    A mismatch is padded to the time an argon2 verification takes lately, so that a wrong
    password for an account still on bcrypt (made at a lower cost) answers no faster than
    for any other account or an unknown address; a bcrypt cost slower than argon2 is not
    padded down (docs/security.md, "Imported bcrypt hashes").
    """
    started = time.perf_counter()
    secret = _utf8(password) if len(password) <= _MAX_RAW_LENGTH else None
    matched = False
    if secret is not None and b"\0" not in secret:
        try:
            matched = bcrypt.checkpw(secret[:BCRYPT_MAX_BYTES], stored_hash.encode("ascii"))
        except ValueError as exc:  # a hash the library refuses (never logged in full)
            log.warning("Stored bcrypt hash could not be verified (%s, scheme %r); treating "
                        "it as a mismatch.", type(exc).__name__, _scheme_of(stored_hash))
    if not matched:
        _pad_to_argon2(started)
    return matched


def _bcrypt_checks_in_full(password: str) -> bool:
    """True when bcrypt reads every byte of `password` (fewer than 72, so its terminating
    NUL is hashed too and no longer text can share the hash)."""
    secret = _utf8(password)
    return secret is not None and len(secret) < BCRYPT_MAX_BYTES


def _utf8(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _timed_verify(stored_hash: str, prepared: str) -> bool:
    """argon2 verification, its duration kept for _pad_to_argon2."""
    global _argon2_seconds
    started = time.perf_counter()
    try:
        return _hasher.verify(stored_hash, prepared)
    finally:
        took = time.perf_counter() - started
        _argon2_seconds = took if not _argon2_seconds else 0.8 * _argon2_seconds + 0.2 * took


def _pad_to_argon2(started: float) -> None:
    """Wait until an argon2 verification's time has passed since `started`."""
    if not _argon2_seconds:  # nothing measured yet in this process: spend a real one
        _burn_verify_time(None)
        return
    remaining = _argon2_seconds - (time.perf_counter() - started)
    if remaining > 0:
        time.sleep(remaining)


def _prepare(password: str) -> str | None:
    """Normalised password ready for argon2, or None when no stored hash could ever match it."""
    if len(password) > _MAX_RAW_LENGTH:
        return None
    normalized = normalize(password)
    if len(normalized) > MAX_LENGTH or not _is_encodable(normalized):
        return None
    return normalized


def _is_encodable(text: str) -> bool:
    # JSON lets a client send lone surrogates ("\ud800"), which Python accepts in a str but
    # which cannot be encoded to UTF-8 for hashing.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _email_forms(email: str) -> set[str]:
    folded = normalize(email.strip()).casefold()
    local, _, _domain = folded.rpartition("@")
    return {form for form in (folded, local) if form}


def _scheme_of(stored_hash: object) -> str:
    if not isinstance(stored_hash, str):
        return type(stored_hash).__name__
    parts = stored_hash.split("$")
    return f"${parts[1]}" if len(parts) > 2 else "<none>"


def _burn_verify_time(password: str | None) -> None:
    with contextlib.suppress(VerifyMismatchError):
        _timed_verify(_get_dummy_hash(), password or "")


def _get_dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        with _lock:
            if _dummy_hash is None:
                # A random secret nobody knows, so even a lucky guess cannot match it.
                _dummy_hash = _hasher.hash(secrets.token_urlsafe(32))
    return _dummy_hash


def _load_common_passwords() -> frozenset[str]:
    global _common_passwords
    if _common_passwords is None:
        with _lock:
            if _common_passwords is None:
                # A missing list is a packaging bug; failing loudly beats silently accepting
                # "password1".
                text = (
                    resources.files(__package__ or "authserver")
                    .joinpath(_COMMON_PASSWORDS_RESOURCE)
                    .read_text(encoding="utf-8")
                )
                _common_passwords = frozenset(
                    normalize(line.strip()).casefold() for line in text.splitlines() if line.strip()
                )
    return _common_passwords
