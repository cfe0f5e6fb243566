"""One engine for one-time credentials: a 6-digit code (and, by e-mail, a link) that proves
control of a phone or an address, whatever it is for.

A flow names its `Purpose` (what the code proves, by which channel, its lifetime, tries,
resend cooldown and wording) and calls:

    send(purpose, subject, deliver, limits=...)   store, send, compensate on failure
    verify(purpose, subject, code)                count the try, then consume once
    consume(purpose, challenge_id)                a mailed link's single use
    peek / supersede / link_token / link_challenge_id

What every purpose gets from here, the same way:
- the code is `secrets`-random; only an HMAC keyed from SECRET_KEY (per purpose) over the
  row id and the code is stored, so equal codes in two messages never have equal hashes
  (a guess is compared under SECRET_KEY and each of SECRET_KEY_FALLBACKS, every time);
- a send first checks the purpose's limits, then reserves the subject's send slot in the
  database (cooldowns.py: of concurrent requests exactly one sends), stores the row and
  commits it *before* sending (the code must work the moment it lands), and on a failed
  send deletes the row and gives the slot back, so a failure costs the person nothing;
- a try reserves an attempt with `attempts = attempts + 1 WHERE attempts < max` before the
  guess is compared, so even parallel guessing gets at most `max` answers per code;
- using a code or link is one conditional UPDATE whose row count decides, so of concurrent
  uses exactly one wins, on MySQL as on SQLite;
- a guess at a subject without a live code does the work of a wrong guess (an HMAC
  comparison and a committed one-row write), so the answer's timing doesn't tell whether
  the subject was just sent a code.

Commits here are deliberate (see transactions.py): each step must be visible to other
connections before the next one (sending, comparing) happens. Nothing here logs a code, a
link or a token.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlencode

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete, select, update

from authserver import accounts, clock, cooldowns, counters, ratelimits
from authserver.config import settings
from authserver.errors import Problem, rate_limited, unavailable
from authserver.events import Event, EventType, emit
from authserver.events import Outcome as EventOutcome
from authserver.extensions import client_ip, db
from authserver.identifiers import normalize_email
from authserver.models import Counter, OneTimeCode
from authserver.models.base import time_ordered_id
from authserver.senders.base import RecipientRejected, SenderUnavailable, SendOutcomeUnknown
from authserver.transactions import irreversible, unit

log = logging.getLogger("authserver.codes")

CODE_LENGTH = 6
#: A code is compared against at most this many of the subject's newest live codes (a person
#: rarely has more than a couple of mails outstanding; the per-subject limits cap it).
MAX_CANDIDATES = 10
MAX_TOKEN_LENGTH = 512
#: A guess at a subject without a live code writes one of these `counters` rows (see
#: _decoy_attempt) as a wrong guess writes its code's attempt.
DECOY_KEY = "codes:decoy"
DECOY_ROWS = 16


@dataclass(frozen=True)
class Channel:
    """How codes travel, and what a person is told when the provider fails."""

    name: str  # "sms" or "email"
    field: str  # the form field of the subject
    rejected_code: str  # 422 when the provider refuses the recipient for good
    rejected: str
    unavailable: str  # 503 when the provider is down or slow


SMS = Channel("sms", "phone", "invalid_phone", "Text messages can't be delivered to this "
              "number. Check it, or use another one.",
              "The text message service is not answering. Try again shortly.")
EMAIL = Channel("email", "email", "invalid_email", "The mail server refused this address.",
                "The mail server is not answering. Try again shortly.")
#: Seconds a client should wait after a provider failed before trying again.
PROVIDER_RETRY_AFTER = 30


@dataclass(frozen=True)
class Purpose:
    """What a code proves and the policy it is sent and checked under."""

    name: str  # stored in the row: sign_in_sms, sign_in_email, password_reset, …
    channel: Channel
    ttl: str  # the settings that give the lifetime, tries and resend cooldown (seconds)
    max_attempts: str
    cooldown: str
    cooldown_detail: str  # the 429 text while the slot is taken; {wait} is filled in
    #: A new code kills the subject's older ones (SMS: only the newest text counts).
    supersede_on_send: bool = False
    #: The wrong try that uses the last attempt kills the whole credential. Off for mails:
    #: a stranger guessing codes must not burn the link in the person's inbox.
    lock_kills: bool = False
    #: Key label of the stored HMAC; salt of a mailed link's signature and the page it opens.
    key_label: str = ""
    link_salt: str = ""
    link_path: str = ""
    #: The setting that lets a proof of an unknown subject create an account (sign-ins).
    signup_setting: str = ""
    #: A resend slot of its own, apart from the channel's: a sign-up's verification mail
    #: must not make the person wait before asking for a sign-in link, and a change asked
    #: for by one account must not hold up the mails of the address's owner.
    own_slot: bool = False

    def __post_init__(self) -> None:
        PURPOSES[self.name] = self

    def setting(self, name: str) -> int:
        return int(getattr(settings(), getattr(self, name)))

    def slot(self, subject: str) -> str:
        return f"{self.name if self.own_slot else self.channel.name}:{subject}"


#: Every purpose by name, as stored in the rows (filled in as flows define theirs).
PURPOSES: dict[str, Purpose] = {}


class Challenge(NamedTuple):
    """A one-time code's row as read (no ORM identity to go stale between commits)."""

    id: str
    purpose: str
    subject: str
    code_hash: str
    attempts: int
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None
    invalidated_at: datetime | None
    redirect_to: str | None
    code_challenge: str | None
    user_id: str | None
    state: str | None
    binding_hash: str | None


_COLUMNS = (OneTimeCode.id, OneTimeCode.purpose, OneTimeCode.subject, OneTimeCode.code_hash,
            OneTimeCode.attempts, OneTimeCode.created_at, OneTimeCode.expires_at,
            OneTimeCode.consumed_at, OneTimeCode.invalidated_at, OneTimeCode.redirect_to,
            OneTimeCode.code_challenge,
            OneTimeCode.user_id, OneTimeCode.state, OneTimeCode.binding_hash)


class Outcome(enum.Enum):
    MATCHED = "matched"  # the right code, and this request used it
    WRONG = "wrong"  # a counted wrong try (or one that lost the race to use the code)
    EXHAUSTED = "exhausted"  # wrong tries used the code up earlier: ask for a new one
    NONE = "none"  # no live code, a malformed code: nothing was counted


class LinkUse(enum.Enum):
    """What opening a mailed link may do, decided by where it is opened (MAGIC_LINK_BINDING).

    A mail scanner opens links in a browser of its own and presses the buttons it finds, so
    a link signs in only in the browser that asked for it; an app's link only hands over to
    the app (which must prove itself with its PKCE verifier); anywhere else the person types
    the code from the same mail.
    """

    HERE = "here"  # the button uses the link and signs this browser in
    HANDOFF = "handoff"  # the button sends the browser to the app, using nothing
    NEEDS_CODE = "needs_code"  # no button: the mail's code proves it here


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    #: The code used (MATCHED), or the subject's newest one (to word the other answers).
    challenge: Challenge | None = None


# -- secrets ---------------------------------------------------------------------------------
def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_LENGTH):0{CODE_LENGTH}d}"


def normalize_code(raw: Any) -> str | None:
    """Six ASCII digits, ignoring the spaces people paste; None for anything else."""
    code = "".join(raw.split()) if isinstance(raw, str) else ""
    if len(code) != CODE_LENGTH or not code.isascii() or not code.isdigit():
        return None
    return code


def binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


def new_binding() -> str:
    """A random value for a browser's binding cookie (only its hash is stored)."""
    return secrets.token_urlsafe(32)


def code_hash(purpose: Purpose, challenge_id: str, code: str, secret_key: str = "") -> str:
    """The stored form of a code: HMAC-SHA256 keyed from SECRET_KEY, bound to its row."""
    label = (purpose.key_label or f"authserver.code.{purpose.name}").encode()
    secret = secret_key or settings().secret_key
    key = hmac.new(secret.encode(), label, hashlib.sha256).digest()
    return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(purpose: Purpose, challenge_id: str, code: str, stored: str) -> bool:
    """Whether `code` is the one `stored` was made from, under SECRET_KEY or any of
    SECRET_KEY_FALLBACKS (a code mailed before a rotation still works). Every key is
    compared, in constant time, whatever the result: a match costs what a miss costs."""
    right = False
    for secret in settings().secret_keys():
        right |= hmac.compare_digest(code_hash(purpose, challenge_id, code, secret), stored)
    return right


class _ClockSigner(TimestampSigner):
    """Timestamps from the server's one clock, so tests that travel in time age links too."""

    def get_timestamp(self) -> int:
        return clock.timestamp()


def _serializer(purpose: Purpose) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts a signature by any of them.
    return URLSafeTimedSerializer(list(reversed(settings().secret_keys())),
                                  salt=purpose.link_salt or purpose.name, signer=_ClockSigner)


def link_token(purpose: Purpose, challenge_id: str) -> str:
    """A mailed link's token: a signature over nothing but the row id."""
    return _serializer(purpose).dumps(challenge_id)


def link_url(purpose: Purpose, challenge_id: str) -> str:
    """A mailed link. Built from PUBLIC_BASE_URL only: a forged Host header can't move it."""
    token = urlencode({"token": link_token(purpose, challenge_id)})
    return f"{settings().public_base_url}{purpose.link_path}?{token}"


def link_challenge_id(purpose: Purpose, token: Any) -> str | None:
    """The row id a token was signed for, or None when forged, tampered, expired or foreign."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        challenge_id = _serializer(purpose).loads(token, max_age=purpose.setting("ttl"))
    except BadData:
        return None
    if not isinstance(challenge_id, str) or not 0 < len(challenge_id) <= 36:
        return None
    return challenge_id


# -- sending ---------------------------------------------------------------------------------
def send(purpose: Purpose, subject: str, deliver: Callable[[str, str | None], None], *,
         limits: Sequence[tuple[ratelimits.Limit, str]] = (), provider_code: bool = False,
         redirect_to: str | None = None, code_challenge: str | None = None,
         state: str | None = None, binding: str | None = None,
         user_id: str | None = None) -> str:
    """Send `subject` a new code through `deliver(challenge_id, code)`; returns the row id.

    `provider_code`: the provider makes and checks the code (`deliver` gets None).
    `binding`: the asking browser's cookie value; its link then signs in only there.
    Raises 429 rate_limited,
    422 when the provider refuses the recipient, 503 when it fails (nothing stays usable).
    """
    # Checked now and counted only after a message really went out. Not atomic, but every
    # send must also win the subject's slot below, so the per-subject counts can't be raced;
    # per-IP and wider ones may overshoot by the few requests in flight at once.
    for limit, key in limits:
        ratelimits.check(limit, key)
    reserved = _reserve_slot(purpose, subject)
    now = clock.now()
    code = None if provider_code else new_code()
    challenge_id = time_ordered_id()
    row = OneTimeCode(
        id=challenge_id, purpose=purpose.name, channel=purpose.channel.name, subject=subject,
        user_id=user_id, code_hash=code_hash(purpose, challenge_id, code) if code else "",
        attempts=0, redirect_to=redirect_to, code_challenge=code_challenge, state=state,
        binding_hash=binding_hash(binding) if binding else None, ip=client_ip(),
        created_at=now, expires_at=now + timedelta(seconds=purpose.setting("ttl")))
    try:
        _store(purpose, row)
    except BaseException:
        if reserved:
            cooldowns.release(purpose.slot(subject), None)  # nothing was sent
        raise

    irreversible()  # whatever happens from here, this request is not run again
    try:
        deliver(challenge_id, code)
    except SendOutcomeUnknown:
        # Handed over whole, answer lost: the message most likely arrived, so it counts as
        # sent (row, cooldown and limits kept); a delete would make it answer 401 and a
        # second send would be a second paid message.
        log.warning("%s sent, provider's answer lost id=%s", purpose.name, challenge_id)
    except BaseException as exc:
        # Nobody can know this code, but drop the row anyway so nothing usable stays.
        db.session.rollback()
        _drop(challenge_id)
        if reserved and isinstance(exc, RecipientRejected | SenderUnavailable):
            # The provider took nothing: the cooldown doesn't start. After any other error
            # a message may have gone out, so the slot stays taken.
            cooldowns.release(purpose.slot(subject), None)
        log.warning("%s not sent id=%s: %s", purpose.name, challenge_id, type(exc).__name__)
        if isinstance(exc, RecipientRejected | SenderUnavailable):
            # Kept by the Problem's commit at the edge (transactions.py).
            _sent(purpose, user_id, EventOutcome.FAILED)
        if isinstance(exc, RecipientRejected):
            channel = purpose.channel
            raise Problem(422, channel.rejected_code, channel.rejected,
                          field=channel.field) from None
        if isinstance(exc, SenderUnavailable):
            raise provider_unavailable(purpose) from None
        raise
    _count(limits)
    _sent(purpose, user_id, EventOutcome.SENT)
    log.info("%s sent id=%s ip=%s", purpose.name, challenge_id, client_ip())
    return challenge_id


def _drop(challenge_id: str) -> None:
    def work() -> None:
        db.session.execute(delete(OneTimeCode).where(OneTimeCode.id == challenge_id))
        db.session.commit()

    unit(work, "codes.drop")


def _sent(purpose: Purpose, user_id: str | None, outcome: EventOutcome) -> None:
    """CODE_SENT (events.py): the purpose and channel, never the subject or the code."""
    emit(Event(EventType.CODE_SENT, user_id=user_id, outcome=outcome,
               detail={"purpose": purpose.name, "channel": purpose.channel.name}))


def _locked(purpose: Purpose, challenge: Challenge) -> None:
    """CODE_LOCKED: the wrong try that used a code's last attempt (committed with it)."""
    emit(Event(EventType.CODE_LOCKED, user_id=challenge.user_id, outcome=EventOutcome.LOCKED,
               detail={"purpose": purpose.name, "channel": purpose.channel.name}))


def _store(purpose: Purpose, row: OneTimeCode) -> None:
    """Store a new code (killing the subject's older ones when the purpose says so), committed
    before it is sent: the code must work the moment it lands.

    Deadlock-free by construction: the older codes are found with a plain (non-locking) read
    and killed by primary key after the INSERT. An UPDATE by (purpose, subject) would take
    next-key locks on that index; two requests for subjects in the same empty gap would each
    hold the gap and wait to INSERT into it, a deadlock MySQL breaks by failing one (1213).
    Gap locks are not replicated between cluster nodes anyway: only writes by primary key
    certify the same on every node. Record locks on distinct rows can't form such a cycle; a
    conflict from elsewhere (another node) runs the unit again, with a fresh copy of the row.
    """
    values = {column.key: getattr(row, column.key) for column in OneTimeCode.__table__.columns}

    def work() -> None:
        fresh = OneTimeCode(**values)
        older = db.session.scalars(select(OneTimeCode.id).where(
            *_of(purpose, fresh.subject), OneTimeCode.consumed_at.is_(None),
            OneTimeCode.invalidated_at.is_(None))).all() if purpose.supersede_on_send else []
        db.session.add(fresh)  # a rollback expunges it again: a retry adds a new copy
        if older:
            db.session.flush()
            db.session.execute(update(OneTimeCode).where(
                OneTimeCode.id.in_(older), OneTimeCode.consumed_at.is_(None),
                OneTimeCode.invalidated_at.is_(None)).values(invalidated_at=fresh.created_at)
                .execution_options(synchronize_session=False))
        db.session.commit()

    unit(work, f"codes.store {purpose.name}")


def provider_unavailable(purpose: Purpose) -> Problem:
    return unavailable(purpose.channel.unavailable, PROVIDER_RETRY_AFTER)


def _reserve_slot(purpose: Purpose, subject: str) -> bool:
    """Take the subject's resend slot (429 while another send holds it); True if taken."""
    if not settings().ratelimit_enabled:
        return False
    wait = cooldowns.reserve(purpose.slot(subject), purpose.setting("cooldown"))
    if wait:
        log.info("%s refused (cooldown)", purpose.name)
        raise rate_limited(wait, purpose.cooldown_detail.format(wait=wait))
    return True


def _count(limits: Sequence[tuple[ratelimits.Limit, str]]) -> None:
    for limit, key in limits:
        ratelimits.count(limit, key)


# -- reading ---------------------------------------------------------------------------------
def _live(now: datetime) -> list[Any]:
    return [OneTimeCode.consumed_at.is_(None), OneTimeCode.invalidated_at.is_(None),
            OneTimeCode.expires_at > now]


def _of(purpose: Purpose, subject: str) -> list[Any]:
    return [OneTimeCode.purpose == purpose.name, OneTimeCode.subject == subject]


def _newest(purpose: Purpose, subject: str, *conditions: Any, limit: int = 1) -> list[Challenge]:
    rows = db.session.execute(
        select(*_COLUMNS).where(*_of(purpose, subject), *conditions)
        .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id.desc()).limit(limit)).all()
    return [Challenge._make(row) for row in rows]


def link_use(challenge: Challenge, binding: str | None) -> LinkUse:
    """What the browser holding `binding` (its cookie, or None) may do with this link."""
    if not settings().magic_link_binding:
        return LinkUse.HERE  # the weaker behaviour, for deployments that ask for it
    if challenge.code_challenge:
        return LinkUse.HANDOFF
    if challenge.binding_hash and binding and hmac.compare_digest(
            binding_hash(binding), challenge.binding_hash):
        return LinkUse.HERE
    return LinkUse.NEEDS_CODE


def open_link(purpose: Purpose, token: Any) -> Challenge | None:
    """The live row a mailed link's token names, or None; changes nothing (GET-safe)."""
    challenge_id = link_challenge_id(purpose, token)
    return peek(purpose, challenge_id) if challenge_id else None


def open_link_of(purposes: Sequence[Purpose], token: Any
                 ) -> tuple[Purpose, Challenge] | None:
    """open_link() for a page shared by purposes: the one whose salt signed `token`."""
    for purpose in purposes:
        challenge = open_link(purpose, token)
        if challenge is not None:
            return purpose, challenge
    return None


def look_at_link(purpose: Purpose, token: Any, binding: str | None
                 ) -> tuple[Challenge, LinkUse] | None:
    """The live link a token names and what the browser holding `binding` may do with it,
    or None; changes nothing (a link page's GET)."""
    challenge = open_link(purpose, token)
    return (challenge, link_use(challenge, binding)) if challenge else None


def mailed_code_target(purpose: Purpose, email: str, token: str | None
                       ) -> tuple[str, str | None] | None:
    """What a mailed code is checked against: the address, and the one row it must be when
    it is typed under the mail's link (`token`); None when neither names a live one."""
    if token is not None:
        challenge = open_link(purpose, token)
        return (challenge.subject, challenge.id) if challenge else None
    try:
        return normalize_email(email), None
    except Problem:
        return None


def usable_by_request(challenge: Challenge, binding: str | None) -> bool:
    """Whether a link's token alone may use it in this request: on the web (`binding` given)
    only in the browser that asked for it; through the API (None) unless it was asked for in
    a browser while MAGIC_LINK_BINDING is on (that link needs the browser, or the code)."""
    if binding is not None:
        return link_use(challenge, binding) is LinkUse.HERE
    return not (settings().magic_link_binding and challenge.binding_hash)


def peek(purpose: Purpose, challenge_id: str) -> Challenge | None:
    """The live code or link with this id; consumes and changes nothing (GET-safe)."""
    row = db.session.execute(select(*_COLUMNS).where(
        OneTimeCode.id == challenge_id, OneTimeCode.purpose == purpose.name,
        *_live(clock.now()))).first()
    return Challenge._make(row) if row is not None else None


def find(purpose: Purpose, challenge_id: str) -> Challenge | None:
    """The row with this id whatever its state (used, killed, expired): for an answer that
    depends on why it no longer works."""
    row = db.session.execute(select(*_COLUMNS).where(
        OneTimeCode.id == challenge_id, OneTimeCode.purpose == purpose.name)).first()
    return Challenge._make(row) if row is not None else None


# -- using -----------------------------------------------------------------------------------
def verify(purpose: Purpose, subject: str, code: Any, *,
           provider_check: Callable[[Challenge, str], bool] | None = None,
           only: str | None = None) -> Verdict:
    """Try `code` against the subject's live codes; MATCHED means this request used it.

    A stored code is compared first and a wrong guess then takes an attempt (the take is the
    atomic part: parallel guesses past the limit find none left and are not answered as
    tries). A code the provider holds (no hash here) takes its attempt first, since asking
    is the try; `provider_check` answers it, and if it raises SenderUnavailable the attempt
    is given back (an outage must not cost the person tries) and 503 is raised.

    Each new code brings fresh tries, so wrong guesses are also capped per subject across
    all its codes (CODE_GUESS_LIMIT, 429 rate_limited once reached). `only`: try just the
    code of this row (a mailed link's page asking for that mail's code).
    """
    code = normalize_code(code)
    if code is None:
        return Verdict(Outcome.NONE)
    guesses = (ratelimits.CODE_GUESSES, f"{purpose.channel.name}:{subject}")
    ratelimits.check(*guesses)
    max_attempts = purpose.setting("max_attempts")
    now = clock.now()
    conditions = [*_live(now), *([OneTimeCode.id == only] if only else [])]
    candidates = _newest(purpose, subject, *conditions,
                         limit=1 if purpose.supersede_on_send else MAX_CANDIDATES)
    db.session.commit()  # ends the read: the UPDATEs below see what others committed
    if not candidates:
        # The same work as a wrong guess at a live code (a comparison, then a committed
        # one-row write like its attempt), so the answer's timing doesn't tell whether the
        # subject has a live code at all.
        code_matches(purpose, "-", code, "0" * 64)
        _decoy_attempt()
    counted = False
    for challenge in (c for c in candidates if c.attempts < max_attempts):
        reserved = False
        if challenge.code_hash:
            right = code_matches(purpose, challenge.id, code, challenge.code_hash)
        elif provider_check is not None:
            reserved = _take_attempt(challenge.id, max_attempts, now)
            if not reserved:
                continue
            counted = True
            try:
                right = provider_check(challenge, code)
            except SenderUnavailable:
                _give_back_attempt(challenge.id)
                log.warning("%s check: provider unavailable id=%s", purpose.name, challenge.id)
                raise provider_unavailable(purpose) from None
        else:
            right = False  # sent through a provider that is no longer configured
        if right:
            won = consume(purpose, challenge.id,
                          attempts_below=max_attempts + 1 if reserved else max_attempts)
            log.info("%s %s id=%s", purpose.name, "verified" if won else "used meanwhile",
                     challenge.id)
            return Verdict(Outcome.MATCHED if won else Outcome.WRONG, challenge)
        if not reserved and _take_attempt(challenge.id, max_attempts, now):
            counted = True
            if challenge.attempts + 1 >= max_attempts and not purpose.lock_kills:
                _locked(purpose, challenge)
        log.info("%s wrong code, %d/%d id=%s", purpose.name, challenge.attempts + 1,
                 max_attempts, challenge.id)
        if purpose.lock_kills:
            _kill_if_used_up(purpose, challenge, max_attempts)
    if counted:
        ratelimits.count(*guesses)
        return Verdict(Outcome.WRONG, candidates[0])
    if not candidates and only is None and not purpose.lock_kills:
        # No live code, so none used up (only lock_kills kills a used-up code; elsewhere it
        # stays live, a candidate): the read below could not answer EXHAUSTED, and skipping
        # it keeps this answer as quick as a wrong guess's.
        return Verdict(Outcome.NONE)
    newest = _newest(purpose, subject)
    db.session.commit()
    if newest and _used_up(purpose, newest[0], max_attempts, clock.now()):
        return Verdict(Outcome.EXHAUSTED, newest[0])
    return Verdict(Outcome.NONE, newest[0] if newest else None)


def _used_up(purpose: Purpose, challenge: Challenge, max_attempts: int, now: datetime) -> bool:
    return (challenge.attempts >= max_attempts and challenge.consumed_at is None
            and challenge.expires_at > now
            and (challenge.invalidated_at is None or purpose.lock_kills))


def _take_attempt(challenge_id: str, max_attempts: int, now: datetime) -> bool:
    def work() -> bool:
        taken = db.session.execute(
            update(OneTimeCode)
            .where(OneTimeCode.id == challenge_id, OneTimeCode.attempts < max_attempts,
                   *_live(now))
            .values(attempts=OneTimeCode.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        db.session.commit()  # counted before the guess is compared (or a provider is asked)
        return taken

    return unit(work, "codes.take_attempt")


def _decoy_attempt() -> None:
    """A write that costs what `_take_attempt` costs: one row changed, then a commit (the
    commit's flush to disk is most of a wrong guess's time; a read or an UPDATE that changes
    nothing costs far less). The row is one of a few in `counters`, picked at random so
    concurrent misses seldom wait on each other's row lock; its count only cycles."""
    key = f"{DECOY_KEY}:{secrets.randbelow(DECOY_ROWS)}"

    def work() -> bool:
        written = db.session.execute(
            update(Counter).where(Counter.key == key)
            .values(count=(Counter.count + 1) % 1000)
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        db.session.commit()
        return written

    if not unit(work, "codes.decoy"):
        counters.extend_run(key)  # its first use, or the first after `flask prune`: make it


def decoy_write() -> None:
    """The cost of one committed one-row write (see _decoy_attempt), for a flow that must take
    as long when it has nothing to write (a sign-up of a registered address, which must not
    be told from a new one by its timing)."""
    _decoy_attempt()


def _give_back_attempt(challenge_id: str) -> None:
    def work() -> None:
        db.session.execute(
            update(OneTimeCode).where(OneTimeCode.id == challenge_id, OneTimeCode.attempts > 0)
            .values(attempts=OneTimeCode.attempts - 1)
            .execution_options(synchronize_session=False))
        db.session.commit()

    unit(work, "codes.give_back_attempt")


def _kill_if_used_up(purpose: Purpose, challenge: Challenge, max_attempts: int) -> None:
    challenge_id = challenge.id

    def work() -> bool:
        killed = db.session.execute(
            update(OneTimeCode)
            .where(OneTimeCode.id == challenge_id, OneTimeCode.attempts >= max_attempts,
                   OneTimeCode.consumed_at.is_(None), OneTimeCode.invalidated_at.is_(None))
            .values(invalidated_at=clock.now())
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        if killed:
            _locked(purpose, challenge)  # committed with the kill
        db.session.commit()
        return killed

    if unit(work, "codes.kill"):
        log.warning("code locked after %d wrong tries id=%s", max_attempts, challenge_id)


def count_wrong_try(purpose: Purpose, challenge_id: str) -> bool:
    """A wrong try at a credential whose secret is checked outside the engine (a second
    factor's code against an mfa_token): takes an attempt the way `verify` does (committed),
    and with `lock_kills` the try that used the last one kills the credential. False when
    no attempt was left to take."""
    max_attempts = purpose.setting("max_attempts")
    taken = _take_attempt(challenge_id, max_attempts, clock.now())
    if purpose.lock_kills:
        challenge = find(purpose, challenge_id)
        if challenge is not None:
            _kill_if_used_up(purpose, challenge, max_attempts)
    return taken


def consume(purpose: Purpose, challenge_id: str, *, attempts_below: int | None = None) -> bool:
    """The one conditional UPDATE that decides who uses a code or link; True for the winner.

    With `attempts_below`, a code whose wrong tries used it up meanwhile is not used. Not
    committed here: the sign-in it leads to commits with it at the request's edge, so either
    the code is used *and* the session opened, or neither (a crash or a database error in
    between leaves the code usable). Concurrent users of the code wait on the row lock and
    then find it used.
    """
    now = clock.now()
    conditions = [OneTimeCode.id == challenge_id, OneTimeCode.purpose == purpose.name,
                  *_live(now)]
    if attempts_below is not None:
        conditions.append(OneTimeCode.attempts < attempts_below)
    won = db.session.execute(
        update(OneTimeCode)
        .where(*conditions)
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1  # type: ignore[attr-defined]
    return won


class Proof(NamedTuple):
    """A used sign-in code or link: whose it was, and the row (redirect_to, state, …)."""

    owner: accounts.Owner
    challenge: Challenge


def sign_in_owner(challenge: Challenge) -> Proof | None:
    """After a sign-in code or link was used: its owner (found, or created when the purpose's
    sign-up setting allows; None otherwise), marked verified; the subject's other codes die."""
    purpose = PURPOSES[challenge.purpose]
    create = bool(getattr(settings(), purpose.signup_setting)) if purpose.signup_setting \
        else False
    owner = accounts.verified_owner(**{purpose.channel.field: challenge.subject},
                                    create=create)
    if owner is None:
        return None
    supersede(purpose, challenge.subject, keep=challenge.id)
    return Proof(owner, challenge)


def redeem(challenge_id: str) -> Challenge | None:
    """Use the live row `challenge_id` (any purpose) once: the row if this call used it."""
    row = db.session.execute(select(*_COLUMNS).where(OneTimeCode.id == challenge_id)).first()
    if row is None:
        return None
    challenge = Challenge._make(row)
    purpose = PURPOSES.get(challenge.purpose)
    return challenge if purpose is not None and consume(purpose, challenge.id) else None


def supersede(purpose: Purpose, subject: str, *, keep: str | None = None) -> None:
    """Kill every other outstanding code of this subject (after one of them was used), in the
    caller's transaction; found by a plain read and killed by primary key (see _store)."""
    others = [challenge_id for challenge_id in db.session.scalars(select(OneTimeCode.id).where(
        *_of(purpose, subject), OneTimeCode.consumed_at.is_(None),
        OneTimeCode.invalidated_at.is_(None))) if challenge_id != keep]
    if others:
        db.session.execute(update(OneTimeCode).where(
            OneTimeCode.id.in_(others), OneTimeCode.consumed_at.is_(None),
            OneTimeCode.invalidated_at.is_(None)).values(invalidated_at=clock.now())
            .execution_options(synchronize_session=False))


def seconds_until_resend(purpose: Purpose, challenge: Challenge | None) -> int:
    """Seconds until the subject of `challenge` may be sent another code (at least 1)."""
    if challenge is None:
        return max(1, purpose.setting("cooldown"))
    ready = challenge.created_at + timedelta(seconds=purpose.setting("cooldown"))
    return max(1, math.ceil((ready - clock.now()).total_seconds()))
