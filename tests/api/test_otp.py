"""POST /api/v1/otp/request and /api/v1/otp/verify through the Flask test client.

Runs on SQLite and MySQL. The Twilio backends run the real `twilio` SDK against the fake
Twilio server (tests/fakes/twilio_server.py) on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from authserver import accounts, codes
from authserver.extensions import db
from authserver.models import OneTimeCode
from tests.fakes.twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    VERIFY_SERVICE_SID,
    FakeTwilio,
)
from tests.flows.sms_helpers import code_in, last_code, sms_messages, wrong_code
from tests.helpers import bearer, problem

PHONE = "+16502530000"
REQUEST = "/api/v1/otp/request"
VERIFY = "/api/v1/otp/verify"


# -- configuration: `sms_settings` is overridden per test with @pytest.mark.parametrize -------
@pytest.fixture
def sms_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(credentials=(ACCOUNT_SID, AUTH_TOKEN)) as fake:
        yield fake


@pytest.fixture
def config_overrides(request: pytest.FixtureRequest, sms_settings: dict[str, Any]
                     ) -> dict[str, Any]:
    overrides = dict(sms_settings)
    if str(overrides.get("SMS_BACKEND", "")).startswith("twilio"):
        fake: FakeTwilio = request.getfixturevalue("fake_twilio")
        overrides = {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "TWILIO_VERIFY_SERVICE_SID": VERIFY_SERVICE_SID,
            "TWILIO_API_BASE_URL": fake.url,
            "TWILIO_VERIFY_BASE_URL": fake.url,
            "SMS_PROVIDER_TIMEOUT": 2.0,
            **overrides,
        }
    return overrides


def settings(**values: Any) -> Any:
    return pytest.mark.parametrize("sms_settings", [values], ids=["-".join(values)])


TWILIO = settings(SMS_BACKEND="twilio")
TWILIO_VERIFY = settings(SMS_BACKEND="twilio_verify")


# -- helpers ---------------------------------------------------------------------------------
def ask(client: Any, phone: str = PHONE, ip: str = "127.0.0.1") -> Any:
    return client.post(REQUEST, json={"phone": phone}, environ_base={"REMOTE_ADDR": ip})


def verify(client: Any, code: str, phone: str = PHONE) -> Any:
    return client.post(VERIFY, json={"phone": phone, "code": code})


def received(app: Any, phone: str = PHONE) -> str:
    return last_code(app.config["OUTBOX_DIR"], phone)


def usable_challenges(phone: str = PHONE) -> int:
    db.session.expire_all()
    rows = db.session.scalars(select(OneTimeCode).where(OneTimeCode.subject == phone))
    return sum(1 for r in rows if r.consumed_at is None and r.invalidated_at is None)


def assert_rate_limited(response: Any) -> int:
    assert response.status_code == 429, response.get_json()
    assert problem(response)["code"] == "rate_limited"
    retry = int(response.headers["Retry-After"])
    assert retry >= 1
    return retry


# -- the happy path --------------------------------------------------------------------------
def test_request_then_verify_signs_in(app: Any, client: Any) -> None:
    response = ask(client, "(650) 253-0000")
    assert response.status_code == 202
    assert response.get_json() == {"sent": True, "expires_in": 300, "resend_after": 30}

    signed_in = verify(client, received(app), "650.253.0000")
    assert signed_in.status_code == 200
    body = signed_in.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "user"}
    assert body["token_type"] == "Bearer"
    assert body["user"]["phone"] == PHONE and body["user"]["phone_verified"] is True
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["sms"]

    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.get_json()["phone"] == PHONE
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200


def test_second_sign_in_finds_the_same_user(app: Any, client: Any, clock: Any) -> None:
    ask(client)
    first = verify(client, received(app)).get_json()["user"]
    clock.travel(31)
    ask(client)
    second = verify(client, received(app)).get_json()["user"]
    assert first["id"] == second["id"]


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body", [
    (REQUEST, {}), (REQUEST, {"phone": ""}), (REQUEST, {"phone": 6502530000}),
    (VERIFY, {"phone": PHONE}), (VERIFY, {"code": "123456"}),
    (VERIFY, {"phone": PHONE, "code": 123456}), (VERIFY, {"phone": [PHONE], "code": "1"}),
])
def test_malformed_bodies_are_400(client: Any, path: str, body: dict[str, Any]) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400 and problem(response)["code"] == "invalid_request"


def test_non_json_is_400(client: Any) -> None:
    response = client.post(REQUEST, data="phone=6502530000",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and problem(response)["code"] == "invalid_request"


@pytest.mark.parametrize("phone", ["12", "not a number", "+1 555 000 1111",
                                   "+44 20 7946 0000", "+1 900 555 0123", "+1 650 253 0000 x9"])
def test_unusable_numbers_are_422_invalid_phone(app: Any, client: Any, phone: str) -> None:
    response = ask(client, phone)
    assert response.status_code == 422
    assert problem(response)["code"] == "invalid_phone"
    assert sms_messages(app.config["OUTBOX_DIR"]) == []


@settings(SMS_ALLOWED_COUNTRIES=["US", "CA"])
def test_numbers_outside_allowed_countries_are_refused(app: Any, client: Any) -> None:
    response = ask(client, "+33 6 12 34 56 78")
    assert response.status_code == 422
    assert problem(response)["code"] == "phone_country_not_allowed"
    assert ask(client, "+1 416 555 0123").status_code == 202
    assert [m["to"] for m in sms_messages(app.config["OUTBOX_DIR"])] == ["+14165550123"]


# -- wrong, expired, used, replaced ----------------------------------------------------------
def test_wrong_code_unknown_phone_and_malformed_code_answer_alike(
    app: Any, client: Any
) -> None:
    ask(client)
    code = received(app)
    answers = [verify(client, wrong_code(code)), verify(client, code, "+14155550123"),
               verify(client, "12345"), verify(client, "abcdef")]
    for response in answers:
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"
    bodies = [problem(r) for r in answers]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["code"] == "invalid_otp"
    assert verify(client, code).status_code == 200


def test_expired_code_is_401(app: Any, client: Any, clock: Any) -> None:
    ask(client)
    clock.travel(301)
    response = verify(client, received(app))
    assert response.status_code == 401 and problem(response)["code"] == "invalid_otp"


def test_used_code_is_401(app: Any, client: Any) -> None:
    ask(client)
    code = received(app)
    assert verify(client, code).status_code == 200
    response = verify(client, code)
    assert response.status_code == 401 and problem(response)["code"] == "invalid_otp"


def test_five_wrong_codes_lock_the_code(app: Any, client: Any, clock: Any) -> None:
    ask(client)
    code = received(app)
    for _ in range(5):
        assert verify(client, wrong_code(code)).status_code == 401
    sixth = verify(client, wrong_code(code))
    assert sixth.status_code == 429
    assert problem(sixth)["code"] == "otp_attempts_exceeded"
    assert "Retry-After" in sixth.headers
    locked = verify(client, code)
    assert locked.status_code == 429 and problem(locked)["code"] == "otp_attempts_exceeded"
    # A new code is the way out.
    clock.travel(31)
    assert ask(client).status_code == 202
    assert verify(client, received(app)).status_code == 200


def test_new_request_replaces_the_previous_code(
    app: Any, client: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = iter(["111111", "222222"])
    monkeypatch.setattr(codes, "new_code", lambda: next(drawn))
    ask(client)
    clock.travel(31)
    ask(client)
    assert received(app) == "222222" and usable_challenges() == 1
    assert verify(client, "111111").status_code == 401
    assert verify(client, "222222").status_code == 200


# -- users -----------------------------------------------------------------------------------
def test_disabled_user_is_403(app: Any, client: Any) -> None:
    accounts.disable(accounts.create(phone=PHONE))
    ask(client)
    response = verify(client, received(app))
    assert response.status_code == 403 and problem(response)["code"] == "account_disabled"


def test_user_with_email_signs_in_by_phone(app: Any, client: Any) -> None:
    user = accounts.create(email="ada@example.com", phone=PHONE)
    ask(client)
    body = verify(client, received(app)).get_json()
    assert body["user"]["id"] == user.id and body["user"]["phone_verified"] is True


@settings(PHONE_SIGNUP_ENABLED=False)
def test_sign_up_disabled_looks_like_a_wrong_code(app: Any, client: Any) -> None:
    ask(client)
    code = received(app)
    refused = verify(client, code)
    wrong = verify(client, wrong_code(code))
    assert refused.status_code == wrong.status_code == 401
    assert problem(refused) == problem(wrong)
    assert accounts.by_phone(PHONE) is None


# -- limits ----------------------------------------------------------------------------------
def test_resend_cooldown_is_429_with_retry_after(app: Any, client: Any, clock: Any) -> None:
    assert ask(client).status_code == 202
    clock.travel(5)
    retry = assert_rate_limited(ask(client, "650-253-0000"))
    assert 24 <= retry <= 25
    clock.travel(25)
    assert ask(client).status_code == 202
    assert len(sms_messages(app.config["OUTBOX_DIR"], PHONE)) == 2


@settings(OTP_LIMIT_PER_PHONE_HOUR="2/hour")
def test_per_phone_hourly_limit(app: Any, client: Any, clock: Any) -> None:
    for _ in range(2):
        assert ask(client).status_code == 202
        clock.travel(31)
    assert assert_rate_limited(ask(client)) > 30
    assert ask(client, "+14155550123").status_code == 202


@settings(OTP_LIMIT_PER_PHONE_DAY="1/day")
def test_per_phone_daily_limit(app: Any, client: Any, clock: Any) -> None:
    assert ask(client).status_code == 202
    clock.travel(31)
    assert assert_rate_limited(ask(client)) > 3600


@settings(OTP_LIMIT_PER_IP_HOUR="2/hour")
def test_per_ip_limit(app: Any, client: Any) -> None:
    assert ask(client, "+14155550101", ip="198.51.100.1").status_code == 202
    assert ask(client, "+14155550102", ip="198.51.100.1").status_code == 202
    assert_rate_limited(ask(client, "+14155550103", ip="198.51.100.1"))
    assert ask(client, "+14155550103", ip="198.51.100.2").status_code == 202


@settings(OTP_LIMIT_PER_COUNTRY_HOUR="2/hour")
def test_per_country_prefix_limit(app: Any, client: Any) -> None:
    assert ask(client, "+14155550101", ip="198.51.100.1").status_code == 202
    assert ask(client, "+14155550102", ip="198.51.100.2").status_code == 202
    assert_rate_limited(ask(client, "+14155550103", ip="198.51.100.3"))
    # Counted by ISO country: Canada and Jamaica dial +1 too, but have budgets of their own.
    assert ask(client, "+14165550123", ip="198.51.100.4").status_code == 202
    assert ask(client, "+18762101234", ip="198.51.100.5").status_code == 202
    assert ask(client, "+33612345678", ip="198.51.100.6").status_code == 202


@settings(OTP_LIMIT_GLOBAL_HOUR="2/hour")
def test_global_limit(app: Any, client: Any) -> None:
    assert ask(client, "+14155550101", ip="198.51.100.1").status_code == 202
    assert ask(client, "+33612345678", ip="198.51.100.2").status_code == 202
    assert_rate_limited(ask(client, "+491701234567", ip="198.51.100.3"))
    assert len(sms_messages(app.config["OUTBOX_DIR"])) == 2


@settings(TOKEN_LIMIT_PER_IP="3/minute")
def test_verify_is_rate_limited_per_ip(app: Any, client: Any) -> None:
    ask(client)
    code = received(app)
    for _ in range(3):
        assert verify(client, wrong_code(code), "+14155550123").status_code == 401
    assert_rate_limited(verify(client, code))


# -- test numbers ----------------------------------------------------------------------------
@settings(SMS_TEST_NUMBERS={"+15550001111": "123456"})
def test_test_numbers(app: Any, client: Any) -> None:
    for _ in range(3):
        response = ask(client, "(555) 000-1111")
        assert response.status_code == 202
        assert response.get_json() == {"sent": True, "expires_in": 300, "resend_after": 0}
    assert sms_messages(app.config["OUTBOX_DIR"]) == []
    assert verify(client, "654321", "+15550001111").status_code == 401
    for _ in range(2):
        signed_in = verify(client, "123456", "+15550001111")
        assert signed_in.status_code == 200
        assert signed_in.get_json()["user"]["phone"] == "+15550001111"


# -- Twilio Programmable Messaging (real SDK, fake server) -----------------------------------
@TWILIO
def test_twilio_sends_the_code(app: Any, client: Any, fake_twilio: FakeTwilio) -> None:
    assert ask(client, "(650) 253-0000").status_code == 202
    [sent] = fake_twilio.messages
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert (sent.username, sent.password) == (ACCOUNT_SID, AUTH_TOKEN)
    assert sent.form["To"] == PHONE and sent.form["From"] == FROM_NUMBER
    assert sent.form["Body"].splitlines()[-1].startswith("@auth.example.test #")
    assert verify(client, code_in(sent.form["Body"])).status_code == 200


@settings(SMS_BACKEND="twilio", TWILIO_FROM_NUMBER="",
          TWILIO_MESSAGING_SERVICE_SID=MESSAGING_SERVICE_SID)
def test_twilio_messaging_service(app: Any, client: Any, fake_twilio: FakeTwilio) -> None:
    assert ask(client).status_code == 202
    [sent] = fake_twilio.messages
    assert sent.form["MessagingServiceSid"] == MESSAGING_SERVICE_SID and "From" not in sent.form
    assert verify(client, code_in(sent.form["Body"])).status_code == 200


def _assert_failed_send_left_nothing(app: Any, client: Any, fake_twilio: FakeTwilio) -> None:
    """The text that failed carried a code: it must not work, and the phone is not held up."""
    failed_code = code_in(fake_twilio.messages[-1].form["Body"])
    assert usable_challenges() == 0
    assert verify(client, failed_code).status_code == 401
    # No cooldown and no hourly count (OTP_LIMIT_PER_PHONE_HOUR=1/hour in these tests).
    retry = ask(client)
    assert retry.status_code == 202, retry.get_json()
    assert verify(client, code_in(fake_twilio.messages[-1].form["Body"])).status_code == 200


@settings(SMS_BACKEND="twilio", OTP_LIMIT_PER_PHONE_HOUR="1/hour")
def test_twilio_400_is_422_in_our_words(app: Any, client: Any, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(400, 21211, f"The 'To' number {PHONE} is not valid. {ACCOUNT_SID}")
    response = ask(client)
    assert response.status_code == 422
    body = problem(response)
    assert body["code"] == "invalid_phone"
    assert "21211" not in response.text and ACCOUNT_SID not in response.text
    assert "not valid" not in body["detail"]
    _assert_failed_send_left_nothing(app, client, fake_twilio)


@settings(SMS_BACKEND="twilio", OTP_LIMIT_PER_PHONE_HOUR="1/hour")
def test_twilio_500_is_503(app: Any, client: Any, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(500, 20500, "Internal Server Error")
    response = ask(client)
    assert response.status_code == 503
    assert problem(response)["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    _assert_failed_send_left_nothing(app, client, fake_twilio)


@settings(SMS_BACKEND="twilio", OTP_LIMIT_PER_PHONE_HOUR="1/hour", SMS_PROVIDER_TIMEOUT=1.0)
def test_twilio_that_took_the_text_then_hung_is_202_and_the_code_works(
    app: Any, client: Any, fake_twilio: FakeTwilio
) -> None:
    # Issue 10: Twilio has the whole request, then its answer never comes. The text is most
    # likely on its way: the code must work and the cooldown (a second paid text) must hold.
    fake_twilio.hang_next(30)
    started = time.monotonic()
    response = ask(client)
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.get_json()
    assert elapsed < 5, elapsed
    assert usable_challenges() == 1
    assert_rate_limited(ask(client))  # the resend cooldown holds: no second text
    assert len(fake_twilio.messages) == 1
    assert verify(client, code_in(fake_twilio.messages[-1].form["Body"])).status_code == 200


@TWILIO_VERIFY
def test_twilio_verify_that_took_the_start_then_hung_is_202_and_the_code_works(
    app: Any, client: Any, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.hang_next(30)
    response = ask(client)
    assert response.status_code == 202, response.get_json()
    assert_rate_limited(ask(client))
    assert verify(client, fake_twilio.codes[PHONE]).status_code == 200


@settings(SMS_BACKEND="twilio", OTP_LIMIT_PER_PHONE_HOUR="1/hour",
          TWILIO_AUTH_TOKEN="wrong-token")
def test_twilio_refusing_our_credentials_is_503_not_invalid_phone(
    app: Any, client: Any, fake_twilio: FakeTwilio
) -> None:
    response = ask(client)
    assert response.status_code == 503 and problem(response)["code"] == "service_unavailable"
    assert usable_challenges() == 0


# -- Twilio Verify: Twilio makes and checks the code; our limits and attempts still apply ----
@TWILIO_VERIFY
def test_twilio_verify_round_trip(app: Any, client: Any, fake_twilio: FakeTwilio) -> None:
    response = ask(client, "(650) 253-0000")
    assert response.status_code == 202
    assert response.get_json() == {"sent": True, "expires_in": 300, "resend_after": 30}
    [start] = fake_twilio.requests
    assert start.path == f"/v2/Services/{VERIFY_SERVICE_SID}/Verifications"
    assert start.form == {"To": PHONE, "Channel": "sms"}
    assert (start.username, start.password) == (ACCOUNT_SID, AUTH_TOKEN)
    [row] = db.session.scalars(select(OneTimeCode)).all()
    assert row.code_hash == ""

    code = fake_twilio.codes[PHONE]
    assert verify(client, wrong_code(code)).status_code == 401
    signed_in = verify(client, code)
    assert signed_in.status_code == 200
    assert signed_in.get_json()["user"]["phone_verified"] is True
    check = fake_twilio.requests[-1]
    assert check.path == f"/v2/Services/{VERIFY_SERVICE_SID}/VerificationCheck"
    assert check.form == {"To": PHONE, "Code": code}
    assert verify(client, code).status_code == 401


@TWILIO_VERIFY
def test_twilio_verify_counts_our_attempts(
    app: Any, client: Any, fake_twilio: FakeTwilio
) -> None:
    ask(client)
    code = fake_twilio.codes[PHONE]
    for _ in range(5):
        assert verify(client, wrong_code(code)).status_code == 401
    checks = len(fake_twilio.requests)
    sixth = verify(client, wrong_code(code))
    assert sixth.status_code == 429 and problem(sixth)["code"] == "otp_attempts_exceeded"
    # Locked on our side: Twilio is not even asked any more.
    assert verify(client, code).status_code == 429
    assert len(fake_twilio.requests) == checks


@TWILIO_VERIFY
def test_twilio_verify_expiry_is_ours(
    app: Any, client: Any, fake_twilio: FakeTwilio, clock: Any
) -> None:
    ask(client)
    clock.travel(301)
    assert verify(client, fake_twilio.codes[PHONE]).status_code == 401


@TWILIO_VERIFY
def test_twilio_verify_check_outage_is_503_and_costs_no_attempt(
    app: Any, client: Any, fake_twilio: FakeTwilio
) -> None:
    ask(client)
    fake_twilio.fail_next(503, 20503, "Service Unavailable")
    response = verify(client, fake_twilio.codes[PHONE])
    assert response.status_code == 503 and problem(response)["code"] == "service_unavailable"
    assert db.session.scalars(select(OneTimeCode.attempts)).one() == 0
    assert verify(client, fake_twilio.codes[PHONE]).status_code == 200


@settings(SMS_BACKEND="twilio_verify", OTP_LIMIT_PER_PHONE_HOUR="1/hour")
@pytest.mark.parametrize("status, twilio_code, expected", [
    (400, 60200, 422), (500, 20500, 503),
])
def test_twilio_verify_start_failures(
    app: Any, client: Any, fake_twilio: FakeTwilio, status: int, twilio_code: int,
    expected: int
) -> None:
    fake_twilio.fail_next(status, twilio_code, "Invalid parameter `To`: +16502530000")
    response = ask(client)
    assert response.status_code == expected
    assert "+16502530000" not in response.text and "60200" not in response.text
    assert usable_challenges() == 0
    assert verify(client, "123456").status_code == 401
    assert ask(client).status_code == 202  # no cooldown, not counted
    assert verify(client, fake_twilio.codes[PHONE]).status_code == 200
