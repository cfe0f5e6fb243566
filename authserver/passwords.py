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
from typing import NamedTuple, TypeGuard

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import Argon2Error, VerifyMismatchError
from flask import has_app_context

from authserver import pwned
from authserver.config import PASSWORD_MAX_LENGTH, Settings, settings
from authserver.errors import ErrorCode, Problem

__all__ = [
    "BCRYPT_MAX_BYTES",
    "BCRYPT_MAX_COST",
    "HASH_LENGTH",
    "MAX_INPUT_LENGTH",
    "MAX_LENGTH",
    "MEMORY_COST_KIB",
    "MIN_LENGTH",
    "PARALLELISM",
    "SALT_LENGTH",
    "TIME_COST",
    "Rule",
    "bcrypt_cost",
    "check_policy",
    "hash_password",
    "is_bcrypt",
    "min_length",
    "needs_rehash",
    "normalize",
    "rule",
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

#: The default minimum (PASSWORD_MIN_LENGTH; outside an app this one applies): NIST SP
#: 800-63B rev. 4 asks for 15 when the password is the only factor.
MIN_LENGTH: int = Settings.model_fields["password_min_length"].default
# Comfortably above NIST's "at least 64"; the cap bounds the work an attacker can make us do:
# 256 code points are at most 1024 UTF-8 bytes of argon2 input.
MAX_LENGTH = PASSWORD_MAX_LENGTH

# One precomposed code point decomposes into at most 4 (checked over all of Unicode), so NFKC
# can shrink a string at most 4-fold; anything longer than this can never normalise to
# MAX_LENGTH or fewer, and is refused without spending time normalising it. The web forms
# take this much too, so an over-long password gets the policy's answer, not a form error.
MAX_INPUT_LENGTH = 4 * MAX_LENGTH

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
_collapsed_passwords: frozenset[str] | None = None
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


def min_length() -> int:
    """The shortest password accepted: PASSWORD_MIN_LENGTH, or the default outside an app."""
    return settings().password_min_length if has_app_context() else MIN_LENGTH


class Rule(NamedTuple):
    """The length rule as a page shows it before anyone types."""

    min_length: int
    max_length: int
    text: str


def rule() -> Rule:
    """The current length rule: "At least 15 characters — a few words work well." and the
    bounds for the field's minlength/maxlength."""
    minimum = min_length()
    return Rule(minimum, MAX_LENGTH,
                f"At least {minimum} characters \N{EM DASH} a few words work well.")


# The reasons check_policy() gives: the API's 422 weak_password detail and the pages' error
# text. Each says what to do instead.
_ADVICE = "A few unrelated words work well."
TOO_COMMON = f"This password is too common. Choose something less predictable. {_ADVICE}"
COMMON_VARIANT = ("This is a common password with small changes (letters swapped for digits "
                  "or symbols, digits, a year or a season added), which attackers try first. "
                  f"Choose something less predictable. {_ADVICE}")
KEYBOARD_PATTERN = ("Don't use a keyboard pattern or a sequence (like qwerty or 12345). "
                    f"{_ADVICE}")
REPEATED_PATTERN = f"Don't repeat one word or a short pattern. {_ADVICE}"
REPEATED_CHARACTER = f"Don't use a single character repeated. {_ADVICE}"
EMAIL_ADDRESS = f"Don't use your e-mail address or a part of it as your password. {_ADVICE}"
SERVICE_NAME = f"Don't use the name of this service as your password. {_ADVICE}"


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

    NIST SP 800-63B rev. 4 rules: length in code points after NFKC (PASSWORD_MIN_LENGTH,
    default 15, up to MAX_LENGTH), no composition rules, any Unicode (spaces and emoji
    included), and a refusal of known-common or context-specific choices: the common-password
    list, its simple variants (P@ssw0rd!, Summer2024!), keyboard walks, one word repeated,
    and the service's name, the e-mail address or its local part with only digits or symbols
    around them. Every rule looks at the password as a whole: a passphrase that merely
    contains a common word passes.

    This is the one policy function (sign-up, CLI, reset, and any later change): a password
    passing the local rules is then checked against known breaches (pwned.py), which raises
    Problem 422 breached_password, or 503 service_unavailable when the range API can't be
    asked and PWNED_PASSWORDS_FAIL=closed. The local rules run first, so a weak password
    never costs a network round trip.
    """
    if len(password) > MAX_INPUT_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    normalized = normalize(password)
    if not _is_encodable(normalized):
        return "Use only valid Unicode characters."
    minimum = min_length()
    if len(normalized) < minimum:
        # The page's rule (rule().text) as an instruction.
        return f"Use at least {minimum} characters \N{EM DASH} a few words work well."
    if len(normalized) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."

    folded = normalized.casefold()
    if len(set(folded)) == 1:
        return REPEATED_CHARACTER
    if folded in _load_common_passwords():
        return TOO_COMMON
    reason = _context_reason(folded, email) or _variant_reason(folded)
    if reason:
        return reason
    # The normalised form is what is hashed, so it is what an attacker has to guess.
    pwned.enforce(normalized)
    return None


def require_policy(password: str, email: str | None = None) -> None:
    """check_policy() for a flow: a refused password raises 422 weak_password (its reason
    as the detail, next to the password field); 422 breached_password and 503 as above."""
    reason = check_policy(password, email)
    if reason is not None:
        raise Problem(422, ErrorCode.WEAK_PASSWORD, reason, field="password")


# --- variants of common passwords, walks, repeats and context words -------------------------
#
# A candidate is reduced to the "core" a guesser would start from: case folded, digits and
# symbols around it stripped (which takes a year or "123!" with them), leetspeak undone, a
# season or month at either end removed, runs of one letter collapsed. The password is
# refused when a core is on the list or is the context word. Cores are of the whole password,
# never of a part of it, so "correct horse battery staple" keeps all its words.

# Letters and symbols typed for letters. 1, ! and | stand for i or l: both are tried.
_LEET = {"@": "a", "4": "a", "8": "b", "(": "c", "3": "e", "6": "g", "9": "g", "0": "o",
         "5": "s", "$": "s", "7": "t", "+": "t"}
_LEET_I = str.maketrans({**_LEET, "1": "i", "!": "i", "|": "i"})
_LEET_L = str.maketrans({**_LEET, "1": "l", "!": "l", "|": "l"})
_AFFIXES = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_SUFFIX = re.compile(r"[\W\d_]+$")
_SYMBOLS = re.compile(r"^[\W_]+|[\W_]+$")
_NOT_ALNUM = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\W\d_]+")
_RUNS = re.compile(r"(.)\1+")
_CALENDAR_WORDS = (
    "spring", "summer", "autumn", "fall", "winter",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)
_CALENDAR = frozenset(_CALENDAR_WORDS)
_CALENDAR_AT_START = re.compile(rf"^(?:{'|'.join(_CALENDAR_WORDS)})")
_CALENDAR_AT_END = re.compile(rf"(?:{'|'.join(_CALENDAR_WORDS)})$")
# A core shorter than this is too little of the password to call the password a variant.
_MIN_CORE = 4

# Keyboard rows (QWERTY, QWERTZ, AZERTY), columns, the digit row with and without shift,
# the alphabet. A walk is a password made wholly of runs of 3 or more neighbours on one of
# these, either way: qwerty, asdfasdf, 1qaz2wsx, qwertyuiop123, abcdef, 987654321.
_WALK_LINES = (
    "1234567890", "!@#$%^&*()", "qwertyuiop", "asdfghjkl", "zxcvbnm",
    "qwertzuiop", "yxcvbnm", "azertyuiop", "qsdfghjklm", "wxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/", "zaq1xsw2cde3vfr4bgt5nhy6mju7,ki8.lo9/;p0",
    "qazwsxedcrfvtgbyhnujmikolp", "1q2w3e4r5t6y7u8i9o0p", "q1w2e3r4t5y6u7i8o9p0",
    "abcdefghijklmnopqrstuvwxyz",
)
_MIN_RUN = 3
_WALK_RUNS = frozenset(
    line[start:end]
    for base in _WALK_LINES
    for line in (base, base[::-1])
    for start in range(len(line))
    for end in range(start + _MIN_RUN, len(line) + 1)
)
_LONGEST_RUN = max(len(line) for line in _WALK_LINES)


def _strip(text: str) -> str:
    return _AFFIXES.sub("", text)


def _cores(folded: str) -> set[str]:
    """The forms of the whole password a guesser's rules would produce it from."""
    bases = {folded, _SPACES.sub("", folded), _SUFFIX.sub("", folded)}
    forms = {_strip(base) for base in bases}
    forms |= {_strip(base.translate(table)) for base in bases for table in (_LEET_I, _LEET_L)}
    forms |= {_strip(pattern.sub("", form)) for form in list(forms)
              for pattern in (_CALENDAR_AT_START, _CALENDAR_AT_END)}
    forms.discard("")
    return forms


def _collapse(text: str) -> str:
    return _RUNS.sub(r"\1", text)


def _is_walk(text: str) -> bool:
    """True when `text` is wholly made of keyboard or alphabet runs (3 or more each)."""
    if not text:
        return False
    reached = [True] + [False] * len(text)
    for start in range(len(text)):
        if not reached[start]:
            continue
        for end in range(start + _MIN_RUN, min(len(text), start + _LONGEST_RUN) + 1):
            if text[start:end] in _WALK_RUNS:
                reached[end] = True
    return reached[-1]


def _repeated_unit(text: str) -> str | None:
    """The word or pattern `text` repeats (with or without separators), or None."""
    words = [word for word in _SEPARATORS.split(text) if word]
    if len(words) >= 2 and len(set(words)) == 1:
        return words[0]
    period = (text + text).find(text, 1)
    return text[:period] if period < len(text) else None


def _is_listed(form: str) -> bool:
    return len(form) >= _MIN_CORE and (form in _load_common_passwords()
                                       or _collapse(form) in _load_collapsed_passwords())


def _walk_forms(text: str) -> tuple[str, ...]:
    compact = _SPACES.sub("", text)
    return (compact, _strip(compact), _SYMBOLS.sub("", compact), _NOT_ALNUM.sub("", compact))


def _is_weak_unit(unit: str) -> bool:
    """A repeated word or pattern that makes the repetition weak."""
    return (len(unit) <= 3 or unit in _CALENDAR or any(map(_is_walk, _walk_forms(unit)))
            or any(core in _CALENDAR or _is_listed(core) for core in _cores(unit)))


def _variant_reason(folded: str) -> str | None:
    if any(map(_is_walk, _walk_forms(folded))):
        return KEYBOARD_PATTERN
    cores = _cores(folded)
    for text in {folded, _SPACES.sub("", folded), *cores}:
        unit = _repeated_unit(text)
        if unit is not None and _is_weak_unit(unit):
            return REPEATED_PATTERN
    if any(core in _CALENDAR or _is_listed(core) for core in cores):
        return COMMON_VARIANT
    return None


def _context_reason(folded: str, email: str | None) -> str | None:
    cores = _cores(folded) | {folded}
    if email:
        address = normalize(email.strip()).casefold()
        local = address.rpartition("@")[0]
        untagged = local.partition("+")[0]  # ada+work@ is ada's address too
        words = {address, local, untagged, _SEPARATORS.sub("", local),
                 _SEPARATORS.sub("", untagged)}
        words |= {part for part in re.split(r"[._+-]+", local) if len(part) >= 3}
        words.discard("")
        if cores & words:
            return EMAIL_ADDRESS
    if has_app_context():
        name = normalize(settings().app_name.strip()).casefold()
        if name and cores & {name, _SPACES.sub("", name), _SEPARATORS.sub("", name)}:
            return SERVICE_NAME
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
    secret = _utf8(password) if len(password) <= MAX_INPUT_LENGTH else None
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
    if len(password) > MAX_INPUT_LENGTH:
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


def _load_collapsed_passwords() -> frozenset[str]:
    """The list with runs of one character collapsed ("password" as "pasword")."""
    global _collapsed_passwords
    if _collapsed_passwords is None:
        common = _load_common_passwords()
        with _lock:
            if _collapsed_passwords is None:
                _collapsed_passwords = frozenset(_collapse(entry) for entry in common)
    return _collapsed_passwords
