"""The e-mail sign-in flow itself: token, code, single use, expiry, revocation, concurrency."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from authserver import accounts, codes, tokens
from authserver import clock as server_clock
from authserver.errors import Problem
from authserver.extensions import db
from authserver.flows import magic_link
from authserver.models import OneTimeCode, User
from authserver.services import configure, services
from tests.conftest import SECRET
from tests.flows.magic_helpers import email_messages, last_mail, wrong_code
from tests.race import pool_per_racer, race

EMAIL = "ada@example.com"


@pytest.fixture
def config_overrides():
    # Several mails to one address in a row; the cooldown has its own API tests. Links are
    # used here without a browser, as with MAGIC_LINK_BINDING off (tests/web/
    # test_link_binding.py shows where a link may sign in when it is on).
    return {"MAGIC_LINK_RESEND_COOLDOWN": 0, "MAGIC_LINK_BINDING": False}


@pytest.fixture
def ctx(app):
    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.10"}):
        yield


@pytest.fixture
def mail(app, ctx):
    """Request a mail for an address; returns (token, code) as read from the outbox."""

    def _mail(email: str = EMAIL, **kwargs) -> tuple[str, str]:
        assert magic_link.request_link(email, **kwargs) == {"sent": True, "expires_in": 900}
        return last_mail(app.config["OUTBOX_DIR"], email.strip().lower())

    return _mail


def _refused(call, *args, code: str = "invalid_link", status: int = 401) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args)
    assert (caught.value.status, caught.value.code) == (status, code)
    return caught.value


def _link_row(token: str) -> OneTimeCode:
    link_id = URLSafeTimedSerializer(SECRET, salt=magic_link.PURPOSE.link_salt).loads(token)
    db.session.expire_all()
    row = db.session.get(OneTimeCode, link_id)
    assert row is not None
    return row


# -- what is stored and what travels ----------------------------------------------------------
def test_the_token_carries_only_the_row_id_and_the_code_is_stored_hashed(app, mail):
    token, code = mail()
    payload = URLSafeTimedSerializer(SECRET, salt=magic_link.PURPOSE.link_salt).loads(token)
    row = db.session.get(OneTimeCode, payload)
    assert row is not None and row.subject == EMAIL
    assert EMAIL not in token and code not in row.code_hash
    assert len(row.code_hash) == 64 and row.attempts == 0
    assert row.expires_at - row.created_at == timedelta(seconds=900)
    assert row.consumed_at is None and row.invalidated_at is None


def test_address_is_normalised_before_anything_is_stored(app, mail):
    mail("  Ada@EXAMPLE.com ")
    assert db.session.scalar(select(OneTimeCode.subject)) == EMAIL


def test_the_email_sender_is_built_once_per_app(app):
    assert services(app).email is services(app).email


# -- happy paths --------------------------------------------------------------------------------
def test_link_signs_in_a_new_address_and_creates_the_account(app, mail):
    token, _ = mail()
    response = magic_link.verify_link(token)
    user = response.response()["user"]
    assert user["email"] == EMAIL and user["email_verified"] is True
    claims = tokens.verify(response.access_token)
    assert claims.amr == ["email"] and claims.user_id == user["id"]
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_link_signs_in_an_existing_account_and_marks_the_address_verified(app, mail):
    existing = accounts.create(email=EMAIL, name="Ada")
    assert existing.email_verified_at is None
    token, _ = mail()
    response = magic_link.verify_link(token)
    assert response.user.id == existing.id
    assert response.response()["user"]["email_verified"] is True
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_code_signs_in(app, mail):
    _, code = mail()
    response = magic_link.verify_code(" ADA@example.com", code)
    assert response.user.email == EMAIL
    assert tokens.verify(response.access_token).amr == ["email"]


def test_code_may_be_typed_with_spaces(app, mail):
    _, code = mail()
    assert magic_link.verify_code(EMAIL, f"{code[:3]} {code[3:]}").user.email == EMAIL


def test_consume_link_hands_the_web_layer_what_it_needs(app, mail):
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    token, _ = mail(redirect_to="myapp://auth/done", code_challenge=challenge,
                    code_challenge_method="S256")
    proof = magic_link.consume_link(token)
    assert proof.owner.user.email == EMAIL and not proof.owner.evicted
    assert proof.challenge.redirect_to == "myapp://auth/done"
    assert proof.challenge.code_challenge == challenge


def test_disabled_account_is_refused(app, mail):
    accounts.disable(accounts.create(email=EMAIL))
    token, code = mail()
    _refused(magic_link.verify_link, token, status=403, code="account_disabled")
    token, code = mail()
    _refused(magic_link.verify_code, EMAIL, code, status=403, code="account_disabled")


# -- single use, one credential, revocation -----------------------------------------------------
def test_link_works_once(app, mail):
    token, _ = mail()
    magic_link.verify_link(token)
    _refused(magic_link.verify_link, token)


def test_code_works_once(app, mail):
    _, code = mail()
    magic_link.verify_code(EMAIL, code)
    _refused(magic_link.verify_code, EMAIL, code)


def test_using_the_link_kills_the_code(app, mail):
    token, code = mail()
    magic_link.verify_link(token)
    _refused(magic_link.verify_code, EMAIL, code)


def test_using_the_code_kills_the_link(app, mail):
    token, code = mail()
    magic_link.verify_code(EMAIL, code)
    _refused(magic_link.verify_link, token)
    assert magic_link.peek_link(token) is None


@pytest.mark.parametrize("use", ["older", "newer"])
def test_a_sign_in_kills_every_other_outstanding_mail(app, mail, use):
    first_token, first_code = mail()
    second_token, second_code = mail()
    other_token, _ = mail("grace@example.com")
    if use == "older":
        magic_link.verify_link(first_token)
        dead_token, dead_code = second_token, second_code
    else:
        magic_link.verify_code(EMAIL, second_code)
        dead_token, dead_code = first_token, first_code
    _refused(magic_link.verify_link, dead_token)
    _refused(magic_link.verify_code, EMAIL, dead_code)
    assert _link_row(dead_token).invalidated_at is not None
    # Another address's mail is untouched.
    assert magic_link.verify_link(other_token).user.email == "grace@example.com"


def test_a_code_of_any_outstanding_mail_works(app, mail):
    _, first_code = mail()
    mail()
    assert magic_link.verify_code(EMAIL, first_code).user.email == EMAIL


def test_a_code_for_another_address_is_refused(app, mail):
    _, code = mail()
    _refused(magic_link.verify_code, "grace@example.com", code)
    assert magic_link.verify_code(EMAIL, code).user.email == EMAIL


# -- wrong codes ----------------------------------------------------------------------------------
def test_five_wrong_codes_kill_the_code_but_not_the_link(app, mail):
    token, code = mail()
    bad = wrong_code(code)
    for _ in range(5):
        _refused(magic_link.verify_code, EMAIL, bad)
    problem = _refused(magic_link.verify_code, EMAIL, bad, status=429,
                       code="otp_attempts_exceeded")
    assert int(problem.headers["Retry-After"]) >= 1
    # The right code is dead now...
    _refused(magic_link.verify_code, EMAIL, code, status=429, code="otp_attempts_exceeded")
    assert _link_row(token).attempts == 5
    # ...but a stranger guessing codes can't burn the link in the person's inbox.
    assert magic_link.verify_link(token).user.email == EMAIL


def test_the_right_code_on_the_fifth_try_still_works(app, mail):
    _, code = mail()
    for _ in range(4):
        _refused(magic_link.verify_code, EMAIL, wrong_code(code))
    assert magic_link.verify_code(EMAIL, code).user.email == EMAIL


def test_wrong_tries_count_against_every_outstanding_mail(app, mail):
    """Two mails don't double the guesses: each wrong try uses an attempt on both."""
    first_token, first_code = mail()
    second_token, second_code = mail()
    bad = next(c for c in (f"{n:06d}" for n in range(10)) if c not in {first_code, second_code})
    for _ in range(5):
        _refused(magic_link.verify_code, EMAIL, bad)
    _refused(magic_link.verify_code, EMAIL, bad, status=429, code="otp_attempts_exceeded")
    assert _link_row(first_token).attempts == _link_row(second_token).attempts == 5
    _refused(magic_link.verify_code, EMAIL, first_code, status=429,
             code="otp_attempts_exceeded")


def test_a_used_mail_answers_401_not_429(app, mail):
    token, code = mail()
    magic_link.verify_link(token)
    for _ in range(6):
        _refused(magic_link.verify_code, EMAIL, wrong_code(code))


@pytest.mark.parametrize("junk", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", None])
def test_malformed_codes_are_refused_without_using_an_attempt(app, mail, junk):
    token, code = mail()
    _refused(magic_link.verify_code, EMAIL, junk)
    assert _link_row(token).attempts == 0
    assert magic_link.verify_code(EMAIL, code).user.email == EMAIL


def test_malformed_address_on_verify_is_just_invalid_link(app, ctx):
    _refused(magic_link.verify_code, "not an address", "123456")


# -- expiry ---------------------------------------------------------------------------------------
def test_link_and_code_expire(app, mail, clock):
    token, code = mail()
    clock.travel(899)
    assert magic_link.peek_link(token) is not None
    clock.travel(2)
    assert magic_link.peek_link(token) is None
    _refused(magic_link.verify_link, token)
    _refused(magic_link.verify_code, EMAIL, code)


def test_the_row_expiry_alone_ends_a_link(app, mail):
    token, _ = mail()
    row = _link_row(token)
    row.expires_at = server_clock.now() - timedelta(seconds=1)
    db.session.commit()
    _refused(magic_link.verify_link, token)


def test_the_signature_age_alone_ends_a_link(app, mail, clock):
    token, _ = mail()
    row = _link_row(token)
    row.expires_at = server_clock.now() + timedelta(days=1)
    db.session.commit()
    clock.travel(901)
    _refused(magic_link.verify_link, token)


def test_an_invalidated_row_revokes_its_link(app, mail):
    token, code = mail()
    row = _link_row(token)
    row.invalidated_at = server_clock.now()
    db.session.commit()
    assert magic_link.peek_link(token) is None
    _refused(magic_link.verify_link, token)
    _refused(magic_link.verify_code, EMAIL, code)


# -- forged tokens --------------------------------------------------------------------------------
def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


def test_tampered_and_forged_tokens_are_refused(app, mail):
    token, _ = mail()
    link_id = _link_row(token).id
    payload, timestamp, _signature = token.split(".")
    forgeries = [
        _flip(token, len(token) - 3),                                    # signature bit
        _flip(token, 2),                                                 # payload bit
        f"{payload}.{timestamp}.",                                       # no signature
        payload,                                                         # no timestamp
        URLSafeTimedSerializer("another-secret-key-0123456789abcdef",
                               salt=magic_link.PURPOSE.link_salt).dumps(link_id),
        "not-a-token",
        "",
        "x" * 5000,
    ]
    for forged in forgeries:
        assert magic_link.peek_link(forged) is None, forged
        _refused(magic_link.verify_link, forged)
    assert magic_link.verify_link(token).user.email == EMAIL


def test_a_token_signed_for_another_purpose_is_refused(app, mail):
    """Same secret, another salt: e.g. Flask's session cookie or a password-reset token."""
    token, _ = mail()
    link_id = _link_row(token).id
    cookie_serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert cookie_serializer is not None
    foreign = [
        URLSafeTimedSerializer(SECRET, salt="authserver.password-reset").dumps(link_id),
        URLSafeTimedSerializer(SECRET).dumps(link_id),
        cookie_serializer.dumps(link_id),
    ]
    for token_for_something_else in foreign:
        _refused(magic_link.verify_link, token_for_something_else)
    assert magic_link.verify_link(token).user.email == EMAIL


def test_a_token_for_a_row_that_does_not_exist_is_refused(app, ctx):
    token = codes.link_token(magic_link.PURPOSE, "00000000-0000-0000-0000-000000000000")
    assert magic_link.peek_link(token) is None
    _refused(magic_link.verify_link, token)


# -- peeking --------------------------------------------------------------------------------------
def test_peek_shows_the_address_and_consumes_nothing(app, mail):
    token, _ = mail()
    for _ in range(3):  # a mail scanner, the person's preview pane, the person
        preview = magic_link.peek_link(token)
        assert preview is not None and preview[0].subject == EMAIL
    row = _link_row(token)
    assert row.consumed_at is None and row.attempts == 0
    assert preview[0].expires_at == row.expires_at
    magic_link.verify_link(token)


# -- sign-up switch -------------------------------------------------------------------------------
def test_with_email_signup_off_unknown_addresses_get_the_same_answer_and_a_no_account_mail(
        app, ctx):
    configure(app, EMAIL_SIGNUP_ENABLED=False)
    accounts.create(email="known@example.com")
    assert magic_link.request_link("stranger@example.com") == {"sent": True, "expires_in": 900}
    assert magic_link.request_link("known@example.com") == {"sent": True, "expires_in": 900}
    sent_to = sorted(db.session.scalars(select(OneTimeCode.subject)).all())
    assert sent_to == ["known@example.com", "stranger@example.com"]
    [stranger] = email_messages(app.config["OUTBOX_DIR"], "stranger@example.com")
    assert "no account" in stranger["text"] and "/auth/magic" not in stranger["text"]
    assert not any(ch.isdigit() for ch in stranger["text"].split("--")[0])  # no code in it
    token, _ = last_mail(app.config["OUTBOX_DIR"], "known@example.com")
    assert magic_link.verify_link(token).user.email == "known@example.com"


def test_with_email_signup_off_a_link_to_a_deleted_account_creates_nothing(app, mail):
    user = accounts.create(email=EMAIL)
    token, _ = mail()
    db.session.delete(user)
    db.session.commit()
    configure(app, EMAIL_SIGNUP_ENABLED=False)
    _refused(magic_link.verify_link, token)
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


# -- logging --------------------------------------------------------------------------------------
def test_neither_link_nor_code_is_ever_logged(app, mail, caplog):
    caplog.set_level(logging.DEBUG)
    token, code = mail()
    _refused(magic_link.verify_code, EMAIL, wrong_code(code))
    magic_link.verify_link(token)
    _refused(magic_link.verify_link, token)
    assert caplog.records, "the flow logs its outcomes"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged and code not in logged
    assert token.split(".")[-1] not in logged and "auth/magic" not in logged
    assert EMAIL not in logged  # addresses are masked


# -- concurrency ----------------------------------------------------------------------------------
RACERS = 20


def _race(app, work) -> list[str]:
    """`race` in RACERS threads, each outcome as "won" or the Problem's code."""
    def won() -> str:
        work()
        return "won"

    outcomes = race(app, won, RACERS, remote_addr="192.0.2.20")
    return [o.code if isinstance(o, Problem) else o for o in outcomes]


class TestConcurrencyOnMySQL:
    """Row-level concurrency, checked on MySQL, the production database."""

    @pytest.fixture(autouse=True)
    def _mysql_only(self, database_url):
        if not database_url.startswith("mysql"):
            pytest.skip("row-level concurrency is checked on MySQL")

    @pytest.fixture
    def config_overrides(self, monkeypatch):
        # A connection per racer, kept warm in the pool between the warm-up and the race.
        pool_per_racer(monkeypatch, RACERS)
        return {"MAGIC_LINK_RESEND_COOLDOWN": 0, "MAGIC_LINK_BINDING": False}

    def test_one_link_used_by_twenty_at_once_exactly_one_wins(self, app, mail):
        token, _ = mail()
        outcomes = _race(app, lambda: magic_link.consume_link(token))
        assert outcomes.count("won") == 1, outcomes
        assert outcomes.count("invalid_link") == RACERS - 1, outcomes

    def test_one_code_used_by_twenty_at_once_exactly_one_wins(self, app, mail):
        _, code = mail()
        outcomes = _race(app, lambda: magic_link.consume_code(EMAIL, code))
        assert outcomes.count("won") == 1, outcomes
        # The losers find the code used (401); a right answer is never told "too many wrong
        # codes", since only wrong guesses take tries.
        assert outcomes.count("invalid_link") == RACERS - 1, outcomes

    def test_link_and_code_used_at_once_exactly_one_wins(self, app, mail):
        token, code = mail()
        turn = iter(range(RACERS))
        lock = threading.Lock()

        def link_or_code() -> None:
            with lock:
                mine = next(turn)
            if mine % 2:
                magic_link.consume_link(token)
            else:
                magic_link.consume_code(EMAIL, code)

        outcomes = _race(app, link_or_code)
        assert outcomes.count("won") == 1, outcomes
        assert set(outcomes) - {"won"} <= {"invalid_link", "otp_attempts_exceeded"}, outcomes

    @pytest.mark.parametrize("signup_enabled", [True, False])
    def test_twenty_requests_for_one_address_at_once_send_exactly_one_mail(
        self, app, clock, signup_enabled
    ):
        # Unknown address: with sign-up on it is mailed a link; with sign-up off a mail saying
        # there is no account, and the answers are the same ones (one 202, the rest 429).
        configure(app, EMAIL_SIGNUP_ENABLED=signup_enabled)
        configure(app, MAGIC_LINK_RESEND_COOLDOWN=30)
        # Hourly limits with room for all: the resend cooldown alone must hold the race.
        configure(app, MAGIC_LINK_LIMIT_PER_EMAIL_HOUR="100/hour")
        configure(app, MAGIC_LINK_LIMIT_PER_IP_HOUR="100/hour")
        mailed = 1
        for round_ in (1, 2):  # the address's first mail (INSERT), then a later one (UPDATE)
            outcomes = _race(app, lambda: magic_link.request_link(EMAIL))
            assert outcomes.count("won") == 1, outcomes
            assert outcomes.count("rate_limited") == RACERS - 1, outcomes
            assert len(email_messages(app.config["OUTBOX_DIR"], EMAIL)) == mailed * round_
            db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
            assert db.session.scalar(select(func.count()).select_from(OneTimeCode)) \
                == mailed * round_
            clock.travel(31)

    def test_parallel_guessing_gets_at_most_five_answers(self, app, mail):
        token, code = mail()
        bad = wrong_code(code)
        outcomes = _race(app, lambda: magic_link.consume_code(EMAIL, bad))
        assert "won" not in outcomes
        assert set(outcomes) <= {"invalid_link", "otp_attempts_exceeded"}, outcomes
        assert _link_row(token).attempts == 5
        _refused(magic_link.consume_code, EMAIL, code, status=429, code="otp_attempts_exceeded")
