"""The SMS code flow itself (request_code, verify_code), on SQLite and MySQL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from authserver import accounts, codes, create_app, tokens
from authserver.config import ConfigError
from authserver.errors import Problem
from authserver.extensions import db
from authserver.flows import sms_otp
from authserver.models import OneTimeCode, User
from authserver.senders.base import RecipientRejected, SenderUnavailable
from authserver.services import configure, replace, services
from tests.conftest import base_config
from tests.flows.sms_helpers import code_in, last_code, sms_messages, wrong_code
from tests.race import pool_per_racer, race

PHONE = "+16502530000"
OTHER_PHONE = "+14155550123"

pytestmark = pytest.mark.usefixtures("request_ctx")


@pytest.fixture
def config_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # A connection per racer for the concurrency tests, kept warm in the pool.
    pool_per_racer(monkeypatch, 20)
    # Every app in this module has a test number configured, so the other tests also show
    # that real numbers are untouched by it.
    return {"SMS_TEST_NUMBERS": {"+15550001111": "123456"}}


def _outbox(app: Any) -> str:
    return app.config["OUTBOX_DIR"]


def _send(app: Any, phone: str = PHONE) -> str:
    """Request a code for `phone` and return it as the phone received it."""
    sent = sms_otp.request_code(phone)
    assert sent["sent"] is True
    return last_code(_outbox(app), sent["phone"])


def _problem(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        func(*args, **kwargs)
    return caught.value


def _challenges(phone: str = PHONE) -> list[OneTimeCode]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(OneTimeCode).where(OneTimeCode.purpose == "sign_in_sms",
                                  OneTimeCode.subject == phone)
        .order_by(OneTimeCode.created_at)))


def _usable(phone: str = PHONE) -> list[OneTimeCode]:
    return [c for c in _challenges(phone)
            if c.consumed_at is None and c.invalidated_at is None]


# -- requesting ------------------------------------------------------------------------------
def test_request_texts_a_code_and_stores_only_its_hmac(app: Any) -> None:
    sent = sms_otp.request_code("(650) 253-0000")
    assert sent == {"sent": True, "expires_in": 300, "resend_after": 30, "phone": PHONE}

    [message] = sms_messages(_outbox(app))
    assert message["to"] == PHONE
    code = code_in(message["text"])
    [row] = _challenges()
    assert row.code_hash == codes.code_hash(sms_otp.PURPOSE, row.id, code)
    assert len(row.code_hash) == 64
    assert code not in row.code_hash
    assert row.attempts == 0 and row.ip == "203.0.113.7"
    assert (row.expires_at - row.created_at).total_seconds() == 300


def test_the_text_names_the_app_and_ends_with_the_webotp_line(app: Any) -> None:
    configure(app, APP_NAME="Acme")
    code = _send(app)
    text = sms_messages(_outbox(app))[-1]["text"]
    lines = text.splitlines()
    assert lines[0].startswith("Acme: ") and code in lines[0] and "5 minutes" in lines[0]
    # The host of PUBLIC_BASE_URL (https://auth.example.test), on its own last line.
    assert lines[-1] == f"@auth.example.test #{code}"
    assert len(text) <= 160


def test_codes_are_six_random_digits(app: Any) -> None:
    drawn = {codes.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in drawn)
    assert len(drawn) > 190


def test_hash_is_keyed_and_bound_to_its_row(app: Any) -> None:
    purpose = sms_otp.PURPOSE
    first = codes.code_hash(purpose, "row-1", "123456")
    assert first != codes.code_hash(purpose, "row-2", "123456")
    configure(app, SECRET_KEY="another-secret-key-that-is-long-enough-000")
    assert first != codes.code_hash(purpose, "row-1", "123456")


# -- verifying -------------------------------------------------------------------------------
def test_right_code_signs_up_a_new_user_with_amr_sms(app: Any) -> None:
    code = _send(app)
    response = sms_otp.verify_code("+1 650 253 0000", code)

    user = response.response()["user"]
    assert user["phone"] == PHONE and user["phone_verified"] is True and user["email"] is None
    claims = jwt.decode(response.access_token, options={"verify_signature": False})
    assert claims["amr"] == ["sms"] and claims["sub"] == user["id"]
    [row] = _challenges()
    assert row.consumed_at is not None


def test_existing_user_is_signed_in_and_phone_marked_verified(app: Any) -> None:
    existing = accounts.create(email="ada@example.com", phone=PHONE)
    assert existing.phone_verified_at is None
    response = sms_otp.verify_code(PHONE, _send(app))
    assert response.user.id == existing.id
    assert response.user.email == "ada@example.com"
    assert db.session.get(User, existing.id).phone_verified_at is not None
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_code_is_single_use(app: Any) -> None:
    code = _send(app)
    sms_otp.verify_code(PHONE, code)
    assert _problem(sms_otp.verify_code, PHONE, code).code == "invalid_otp"


def test_code_expires(app: Any, clock: Any) -> None:
    code = _send(app)
    clock.travel(299)
    other = _send(app, OTHER_PHONE)
    clock.travel(2)
    problem = _problem(sms_otp.verify_code, PHONE, code)
    assert (problem.status, problem.code) == (401, "invalid_otp")
    # Still inside its own 5 minutes.
    assert sms_otp.verify_code(OTHER_PHONE, other).user.phone == OTHER_PHONE


def test_ttl_is_configurable(app: Any, clock: Any) -> None:
    configure(app, OTP_TTL=60)
    code = _send(app)
    assert "1 minute." in sms_messages(_outbox(app))[-1]["text"]
    clock.travel(61)
    assert _problem(sms_otp.verify_code, PHONE, code).code == "invalid_otp"


def test_a_new_request_replaces_the_previous_code(
    app: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = iter(["111111", "222222"])
    monkeypatch.setattr(codes, "new_code", lambda: next(drawn))
    assert _send(app) == "111111"
    clock.travel(31)
    assert _send(app) == "222222"
    first, second = _challenges()
    assert first.invalidated_at is not None and second.invalidated_at is None
    assert _problem(sms_otp.verify_code, PHONE, "111111").code == "invalid_otp"
    # Only the newest code is compared, so the old one is just a wrong try of it.
    assert _challenges()[1].attempts == 1
    assert sms_otp.verify_code(PHONE, "222222").user.phone == PHONE


def test_five_wrong_tries_kill_the_code(app: Any) -> None:
    code = _send(app)
    bad = wrong_code(code)
    for attempt in range(1, 6):
        problem = _problem(sms_otp.verify_code, PHONE, bad)
        assert (problem.status, problem.code) == (401, "invalid_otp"), attempt
    sixth = _problem(sms_otp.verify_code, PHONE, bad)
    assert (sixth.status, sixth.code) == (429, "otp_attempts_exceeded")
    assert int(sixth.headers["Retry-After"]) >= 1
    # Dead: even the right code no longer works, and more guesses are not counted.
    assert _problem(sms_otp.verify_code, PHONE, code).code == "otp_attempts_exceeded"
    [row] = _challenges()
    assert row.attempts == 5 and row.invalidated_at is not None and row.consumed_at is None


def test_right_code_after_four_wrong_tries_still_works(app: Any) -> None:
    code = _send(app)
    for _ in range(4):
        _problem(sms_otp.verify_code, PHONE, wrong_code(code))
    assert sms_otp.verify_code(PHONE, code).user.phone == PHONE


def test_a_new_code_after_the_lock_works(app: Any, clock: Any) -> None:
    code = _send(app)
    for _ in range(5):
        _problem(sms_otp.verify_code, PHONE, wrong_code(code))
    clock.travel(31)
    assert sms_otp.verify_code(PHONE, _send(app)).user.phone == PHONE


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "١٢٣٤٥٦", "12345a", "", None])
def test_malformed_codes_are_invalid_otp_and_not_counted(app: Any, code: Any) -> None:
    _send(app)
    problem = _problem(sms_otp.verify_code, PHONE, code)
    assert (problem.status, problem.code) == (401, "invalid_otp")
    assert _challenges()[0].attempts == 0


def test_spaces_in_a_pasted_code_are_ignored(app: Any) -> None:
    code = _send(app)
    assert sms_otp.verify_code(PHONE, f" {code[:3]} {code[3:]}\n").user.phone == PHONE


def test_unknown_phone_and_wrong_code_are_the_same_answer(app: Any) -> None:
    code = _send(app)
    wrong = _problem(sms_otp.verify_code, PHONE, wrong_code(code))
    unknown = _problem(sms_otp.verify_code, OTHER_PHONE, code)
    assert wrong.body() == unknown.body() and wrong.headers == unknown.headers


def test_unreadable_phone_on_verify_is_invalid_phone(app: Any) -> None:
    assert _problem(sms_otp.verify_code, "not a phone", "123456").code == "invalid_phone"


def test_sign_up_disabled_answers_like_a_wrong_code(app: Any) -> None:
    configure(app, PHONE_SIGNUP_ENABLED=False)
    code = _send(app)
    wrong = _problem(sms_otp.verify_code, PHONE, wrong_code(code))
    refused = _problem(sms_otp.verify_code, PHONE, code)
    assert refused.body() == wrong.body()
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 0
    # A number that has an account still signs in.
    accounts.create(phone=OTHER_PHONE)
    assert sms_otp.verify_code(OTHER_PHONE, _send(app, OTHER_PHONE)).user.phone \
        == OTHER_PHONE


def test_disabled_user_gets_403(app: Any) -> None:
    accounts.disable(accounts.create(phone=PHONE))
    problem = _problem(sms_otp.verify_code, PHONE, _send(app))
    assert (problem.status, problem.code) == (403, "account_disabled")


# -- limits ----------------------------------------------------------------------------------
def test_resend_cooldown(app: Any, clock: Any) -> None:
    _send(app)
    clock.travel(10)
    problem = _problem(sms_otp.request_code, PHONE)
    assert (problem.status, problem.code) == (429, "rate_limited")
    assert problem.headers["Retry-After"] == "20"
    assert len(sms_messages(_outbox(app))) == 1
    # Another phone is not held up.
    _send(app, OTHER_PHONE)
    clock.travel(20)
    _send(app)


def test_limits_off_turns_the_cooldown_off(app: Any) -> None:
    configure(app, RATELIMIT_ENABLED=False)
    _send(app)
    _send(app)
    assert len(sms_messages(_outbox(app), PHONE)) == 2


# -- provider failures -----------------------------------------------------------------------
class _FailingSender:
    owns_codes = False

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.texts: list[str] = []

    def send(self, to: str, text: str) -> None:
        self.texts.append(text)
        raise self.error

    def start_verification(self, to: str) -> None:
        raise AssertionError("not used")

    def check_verification(self, to: str, code: str) -> bool:
        raise AssertionError("not used")


@pytest.mark.parametrize("error, status, code", [
    (SenderUnavailable("down"), 503, "service_unavailable"),
    (RecipientRejected("no"), 422, "invalid_phone"),
])
def test_failed_send_leaves_no_usable_code_and_no_cooldown(
    app: Any, error: Exception, status: int, code: str
) -> None:
    configure(app, OTP_LIMIT_PER_PHONE_HOUR="1/hour")
    real = services(app).sms
    failing = _FailingSender(error)
    replace(app, sms=failing)
    problem = _problem(sms_otp.request_code, PHONE)
    assert (problem.status, problem.code) == (status, code)
    if status == 503:
        assert problem.headers["Retry-After"] == "30"
    assert _challenges() == []
    # The code that went out in the failed attempt is worth nothing.
    assert _problem(sms_otp.verify_code, PHONE, code_in(failing.texts[0])).code \
        == "invalid_otp"
    # Neither the cooldown nor the hourly limit counted it.
    replace(app, sms=real)
    assert sms_otp.verify_code(PHONE, _send(app)).user.phone == PHONE


def test_failed_send_also_retires_the_previous_code(app: Any, clock: Any) -> None:
    first = _send(app)
    clock.travel(31)
    replace(app, sms=_FailingSender(SenderUnavailable("down")))
    assert _problem(sms_otp.request_code, PHONE).status == 503
    assert _usable() == []
    assert _problem(sms_otp.verify_code, PHONE, first).code == "invalid_otp"


# -- test numbers ----------------------------------------------------------------------------
def test_test_numbers_get_a_fixed_code_and_nothing_is_sent(app: Any) -> None:
    for _ in range(3):  # no cooldown
        assert sms_otp.request_code("(555) 000-1111") == {
            "sent": True, "expires_in": 300, "resend_after": 0, "phone": "+15550001111"}
    assert sms_messages(_outbox(app)) == [] and _challenges("+15550001111") == []
    first = sms_otp.verify_code("+15550001111", "123456")
    again = sms_otp.verify_code("555-000-1111", "123456")
    assert first.user.id == again.user.id
    assert _problem(sms_otp.verify_code, "+15550001111", "654321").code == "invalid_otp"


def test_warning_at_start_when_test_numbers_are_set(
    tmp_path: Any, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="authserver.flows.sms_otp"):
        create_app({**base_config(tmp_path, sqlite_url),
                    "SMS_TEST_NUMBERS": {"+15550001111": "123456"}})
    [record] = [r for r in caplog.records if "SMS_TEST_NUMBERS" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "123456" not in record.getMessage() and "5550001111" not in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="authserver.flows.sms_otp"):
        create_app(base_config(tmp_path, sqlite_url))
    assert not [r for r in caplog.records if "SMS_TEST_NUMBERS" in r.getMessage()]


@pytest.mark.parametrize("overrides, message", [
    ({"OTP_LIMIT_GLOBAL_HOUR": "lots"}, "OTP_LIMIT_GLOBAL_HOUR"),
    ({"SMS_TEST_NUMBERS": {"abc": "123456"}}, "SMS_TEST_NUMBERS"),
    ({"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ""}, "TWILIO_ACCOUNT_SID"),
])
def test_bad_sms_settings_stop_the_app_at_start(
    tmp_path: Any, sqlite_url: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app({**base_config(tmp_path, sqlite_url), **overrides})


# -- logging ---------------------------------------------------------------------------------
def test_outcomes_are_logged_without_the_code(
    app: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="authserver"):
        code = _send(app)
        for _ in range(5):
            _problem(sms_otp.verify_code, PHONE, wrong_code(code))
        clock.travel(31)
        code = _send(app)
        sms_otp.verify_code(PHONE, code)
    lines = [r.getMessage() for r in caplog.records
             if r.name in {"authserver.flows.sms_otp", "authserver.codes"}]
    text = "\n".join(lines)
    for outcome in ("sign_in_sms sent", "wrong code, 1/5", "locked after 5 wrong tries",
                    "sign_in_sms verified", "otp sign-in"):
        assert outcome in text
    assert code not in text and wrong_code(code) not in text
    assert PHONE not in text


# -- concurrency (MySQL: real row locks and parallel connections) ----------------------------
def _all_read_before_any_writes(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Hold every verify between reading the code's row and acting on it until all have read.

    That is the worst interleaving: every thread passes the Python-side checks on the same
    stale row, so only the database's conditional UPDATEs stand between them and a double
    sign-in or a sixth counted guess.
    """
    barrier = threading.Barrier(count, timeout=30)
    original = codes._newest
    waited = threading.local()

    def newest_then_wait(*args: Any, **kwargs: Any) -> Any:
        rows = original(*args, **kwargs)
        if not getattr(waited, "done", False):  # the first read of each verify
            waited.done = True
            db.session.commit()  # hand the connection back to the pool before waiting
            barrier.wait()
        return rows

    monkeypatch.setattr(codes, "_newest", newest_then_wait)


@pytest.fixture
def mysql_only(app: Any) -> None:
    if db.engine.dialect.name != "mysql":
        pytest.skip("concurrency needs MySQL's parallel connections; SQLite serialises writers")


@pytest.mark.usefixtures("mysql_only")
def test_twenty_concurrent_right_codes_sign_in_exactly_once(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _send(app)
    db.session.commit()
    _all_read_before_any_writes(monkeypatch, 20)
    results = race(app, lambda: sms_otp.verify_code(PHONE, code))

    winners = [r for r in results if isinstance(r, tokens.IssuedTokens)]
    losers = [r for r in results if isinstance(r, Problem)]
    assert len(winners) == 1, results
    assert len(losers) == 19 and {p.code for p in losers} == {"invalid_otp"}
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


@pytest.mark.usefixtures("mysql_only")
def test_twenty_concurrent_wrong_codes_count_at_most_five(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _send(app)
    db.session.commit()
    _all_read_before_any_writes(monkeypatch, 20)
    results = race(app, lambda: sms_otp.verify_code(PHONE, wrong_code(code)))

    assert all(isinstance(r, Problem) for r in results), results
    by_code = [r.code for r in results]
    assert by_code.count("invalid_otp") <= 5  # only counted guesses get an answer
    assert by_code.count("invalid_otp") + by_code.count("otp_attempts_exceeded") == 20
    [row] = _challenges()
    assert row.attempts == 5 and row.invalidated_at is not None
    monkeypatch.undo()
    assert _problem(sms_otp.verify_code, PHONE, code).code == "otp_attempts_exceeded"


@pytest.mark.usefixtures("mysql_only")
def test_concurrent_first_sign_ins_of_one_number_create_one_user(app: Any) -> None:
    # Racing requests can leave two live codes for a new number; both used at once must
    # still end in one account. The step after the code check is raced directly.
    def sign_in() -> Any:
        owner = accounts.verified_owner(phone=PHONE, create=True)
        return tokens.issue(owner.user, sms_otp.AMR).response()

    results = race(app, sign_in, 10)

    assert all(isinstance(r, dict) for r in results), results
    assert len({r["user"]["id"] for r in results}) == 1
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


@pytest.mark.usefixtures("mysql_only")
def test_twenty_concurrent_requests_for_one_phone_send_exactly_one_code(
    app: Any, clock: Any
) -> None:
    # Hourly limits with room for all: the resend cooldown alone must hold the race.
    configure(app, OTP_LIMIT_PER_PHONE_HOUR="100/hour")
    configure(app, OTP_LIMIT_PER_PHONE_DAY="100/day")
    for sent_before in (0, 1):  # the phone's first code (INSERT), then a later one (UPDATE)
        results = race(app, lambda: sms_otp.request_code(PHONE))

        sent = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, Problem)]
        assert len(sent) == 1, results
        assert len(refused) == 19, results
        assert {(p.status, p.code) for p in refused} == {(429, "rate_limited")}
        assert all(1 <= int(p.headers["Retry-After"]) <= 30 for p in refused)
        assert all("A code was just sent" in p.detail for p in refused)
        assert len(sms_messages(_outbox(app), PHONE)) == sent_before + 1
        db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
        assert len(_challenges()) == sent_before + 1
        clock.travel(31)


# -- guessing across codes -------------------------------------------------------------------
def test_wrong_guesses_are_capped_per_phone_across_codes(app: Any, clock: Any) -> None:
    """Each new code brings 5 fresh tries; CODE_GUESS_LIMIT (10/hour) caps them all."""
    answers = []
    for _ in range(3):
        code = _send(app)
        for _ in range(5):
            answers.append(_problem(sms_otp.verify_code, PHONE, wrong_code(code)).code)
        clock.travel(31)
    assert answers[:10].count("invalid_otp") == 10
    assert set(answers[10:]) == {"rate_limited"}
    # Even the right code waits now: the phone must wait or sign in another way.
    code = _send(app)
    limited = _problem(sms_otp.verify_code, PHONE, code)
    assert (limited.status, limited.code) == (429, "rate_limited")
    assert "Retry-After" in limited.headers


def test_test_numbers_are_capped_too(app: Any) -> None:
    answers = [_problem(sms_otp.verify_code, "+15550001111", "654321").code for _ in range(11)]
    assert answers[:10] == ["invalid_otp"] * 10 and answers[10] == "rate_limited"
    assert _problem(sms_otp.verify_code, "+15550001111", "123456").code == "rate_limited"
