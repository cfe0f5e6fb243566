"""POST /api/v1/magic-link/request and /verify, with the file outbox and with real SMTP."""

from __future__ import annotations

import statistics
import time

import jwt
import pytest
from sqlalchemy import func, select

from authserver import accounts
from authserver.extensions import db
from authserver.models import OneTimeCode
from authserver.services import configure, services
from tests.flows.magic_helpers import (
    code_in,
    email_messages,
    last_mail,
    link_in,
    parts_of,
    token_of,
    wrong_code,
)
from tests.helpers import bearer, problem

REQUEST = "/api/v1/magic-link/request"
VERIFY = "/api/v1/magic-link/verify"
EMAIL = "ada@example.com"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _links() -> int:
    return db.session.scalar(select(func.count()).select_from(OneTimeCode)) or 0


@pytest.fixture
def ask(client):
    def _ask(email: str = EMAIL, **fields):
        return client.post(REQUEST, json={"email": email, **fields})

    return _ask


@pytest.fixture
def mail(app, ask):
    """Request a mail through the API; (token, code) from the outbox."""

    def _mail(email: str = EMAIL, **fields) -> tuple[str, str]:
        response = ask(email, **fields)
        assert response.status_code == 202, response.get_json()
        return last_mail(app.config["OUTBOX_DIR"], email)

    return _mail


# -- request ------------------------------------------------------------------------------------
def test_request_answers_202_sent_and_the_lifetime(ask):
    response = ask()
    assert response.status_code == 202
    assert response.get_json() == {"sent": True, "expires_in": 900}
    assert response.headers["Cache-Control"] == "no-store"


def test_known_and_unknown_addresses_get_the_same_answer(app, ask):
    accounts.create(email="known@example.com")
    known = ask("known@example.com")
    unknown = ask("unknown@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data()
    assert known.headers["Content-Type"] == unknown.headers["Content-Type"]


@pytest.mark.parametrize("signup_enabled", [True, False])
def test_known_and_unknown_addresses_hit_the_same_limits(app, ask, signup_enabled):
    """The cooldown must not tell an account apart from a stranger, mailed or not."""
    configure(app, EMAIL_SIGNUP_ENABLED=signup_enabled)
    accounts.create(email="known@example.com")
    for address in ("known@example.com", "unknown@example.com"):
        assert ask(address).status_code == 202
        again = ask(address)
        assert again.status_code == 429, address
        assert problem(again)["code"] == "rate_limited"


def test_unknown_address_without_signup_takes_about_as_long_as_a_send(app, ask):
    configure(app, EMAIL_SIGNUP_ENABLED=False)
    configure(app, MAGIC_LINK_RESEND_COOLDOWN=0)
    configure(app, MAGIC_LINK_LIMIT_PER_EMAIL_HOUR="100/hour")
    configure(app, MAGIC_LINK_LIMIT_PER_IP_HOUR="100/hour")
    accounts.create(email="known@example.com")

    # A mail server that takes 50 ms to accept a message, as a real one might.
    sender = services(app).email
    real_send = sender.send

    def slow_send(*args):
        time.sleep(0.05)
        real_send(*args)

    sender.send = slow_send  # type: ignore[method-assign]

    def timed(address: str) -> float:
        started = time.perf_counter()
        assert ask(address).status_code == 202
        return time.perf_counter() - started

    known = [timed("known@example.com") for _ in range(5)]
    unknown = [timed(f"nobody{i}@example.com") for i in range(5)]
    assert statistics.median(unknown) >= 0.6 * statistics.median(known), (known, unknown)
    # Unknown addresses are mailed too (a mail saying there is no account), and stored alike.
    assert _links() == 10


def test_request_with_an_allow_listed_redirect_and_pkce_is_stored(ask):
    response = ask(redirect_to="https://app.example.test/callback?app=1",
                   code_challenge=CHALLENGE, code_challenge_method="S256")
    assert response.status_code == 202
    row = db.session.scalar(select(OneTimeCode))
    assert row.redirect_to == "https://app.example.test/callback?app=1"
    assert row.code_challenge == CHALLENGE


@pytest.mark.parametrize("redirect_to", [
    "https://app.example.test.evil.test/callback",
    "https://app.example.test@evil.test/callback",
    "//evil.test/callback",
    "javascript:alert(document.cookie)",
    "https://app.example.test/callback/../admin",
    "https://app.example.test/callbackx",
    "https:\\\\evil.test",
    "myapp://evil",
])
def test_request_refuses_a_redirect_not_on_the_allow_list(ask, redirect_to):
    response = ask(redirect_to=redirect_to)
    assert response.status_code == 422
    assert problem(response)["code"] == "invalid_redirect"
    assert _links() == 0


def test_request_accepts_a_custom_app_scheme_on_the_list(ask):
    assert ask(redirect_to="myapp://auth").status_code == 202


@pytest.mark.parametrize("fields", [
    {"code_challenge": "too-short"},
    {"code_challenge": CHALLENGE + "!"},
    {"code_challenge": CHALLENGE, "code_challenge_method": "plain"},
])
def test_request_refuses_a_malformed_pkce_challenge(ask, fields):
    response = ask(**fields)
    assert response.status_code == 422
    assert problem(response)["code"] == "invalid_request"


@pytest.mark.parametrize("email", ["not-an-address", "a@", "@example.com", "a b@example.com"])
def test_request_refuses_an_invalid_address(ask, email):
    response = ask(email)
    assert response.status_code == 422
    assert problem(response)["code"] == "invalid_email"


@pytest.mark.parametrize("body", [{}, {"email": ""}, {"email": 42}, ["ada@example.com"]])
def test_request_needs_a_json_object_with_an_email(client, body):
    response = client.post(REQUEST, json=body)
    assert response.status_code == 400
    assert problem(response)["code"] == "invalid_request"


def test_request_needs_json(client):
    response = client.post(REQUEST, data="email=ada@example.com",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_the_link_ignores_a_forged_host_header(app, client):
    """Host header injection: the mailed link is built from PUBLIC_BASE_URL only."""
    response = client.post(REQUEST, json={"email": EMAIL},
                           headers={"Host": "evil.test", "X-Forwarded-Host": "evil.test",
                                    "X-Forwarded-Proto": "http", "Forwarded": "host=evil.test"})
    assert response.status_code == 202
    [message] = email_messages(app.config["OUTBOX_DIR"], EMAIL)
    assert link_in(message["text"]).startswith("https://auth.example.test/auth/magic?token=")
    assert "evil.test" not in message["text"] and "evil.test" not in message["html"]
    assert 'href="https://auth.example.test/auth/magic?token=' in message["html"]


# -- limits ---------------------------------------------------------------------------------------
def test_resend_cooldown(ask, clock):
    assert ask().status_code == 202
    refused = ask()
    assert refused.status_code == 429
    assert problem(refused)["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert ask("grace@example.com").status_code == 202  # the cooldown is per address


def test_limit_per_address_per_hour(app, ask):
    configure(app, MAGIC_LINK_RESEND_COOLDOWN=0)
    configure(app, MAGIC_LINK_LIMIT_PER_EMAIL_HOUR="2/hour")
    assert ask().status_code == 202
    assert ask().status_code == 202
    refused = ask()
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 30
    assert ask("grace@example.com").status_code == 202


def test_limit_per_ip_per_hour(app, ask, client):
    configure(app, MAGIC_LINK_LIMIT_PER_IP_HOUR="2/hour")
    assert ask("a@example.com").status_code == 202
    assert ask("b@example.com").status_code == 202
    refused = ask("c@example.com")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    other_ip = client.post(REQUEST, json={"email": "c@example.com"},
                           environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other_ip.status_code == 202


def test_refused_requests_do_not_use_up_the_limits(app, ask):
    configure(app, MAGIC_LINK_LIMIT_PER_IP_HOUR="1/hour")
    for _ in range(3):
        assert ask("not an address").status_code == 422
        assert ask(redirect_to="https://evil.test/").status_code == 422
    assert ask().status_code == 202


# -- verify ---------------------------------------------------------------------------------------
def test_verify_with_the_link_token(app, client, mail):
    token, _ = mail()
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "user"}
    assert body["user"]["email"] == EMAIL and body["user"]["email_verified"] is True
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["email"] and claims["sub"] == body["user"]["id"]
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.get_json()["email_verified"] is True


def test_verify_with_email_and_code(client, mail):
    _, code = mail()
    response = client.post(VERIFY, json={"email": "ADA@example.com", "code": code})
    assert response.status_code == 200
    claims = jwt.decode(response.get_json()["access_token"],
                        options={"verify_signature": False})
    assert claims["amr"] == ["email"]


def test_verify_twice_is_refused(client, mail):
    token, code = mail()
    assert client.post(VERIFY, json={"token": token}).status_code == 200
    for body in ({"token": token}, {"email": EMAIL, "code": code}):
        again = client.post(VERIFY, json=body)
        assert again.status_code == 401
        assert problem(again)["code"] == "invalid_link"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 600])
def test_verify_refuses_a_bad_token(client, token):
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 401
    body = problem(response)
    assert body["code"] == "invalid_link" and token not in body["detail"]


def test_verify_refuses_an_expired_link(client, mail, clock):
    token, code = mail()
    clock.travel(901)
    assert problem(client.post(VERIFY, json={"token": token}))["code"] == "invalid_link"
    assert problem(client.post(VERIFY, json={"email": EMAIL,
                                             "code": code}))["code"] == "invalid_link"


def test_wrong_codes_then_the_code_dies(client, mail):
    token, code = mail()
    for _ in range(5):
        wrong = client.post(VERIFY, json={"email": EMAIL, "code": wrong_code(code)})
        assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_link"
    locked = client.post(VERIFY, json={"email": EMAIL, "code": wrong_code(code)})
    assert locked.status_code == 429
    assert problem(locked)["code"] == "otp_attempts_exceeded"
    assert "Retry-After" in locked.headers
    assert client.post(VERIFY, json={"email": EMAIL, "code": code}).status_code == 429
    assert client.post(VERIFY, json={"token": token}).status_code == 200


@pytest.mark.parametrize("body", [{}, {"email": EMAIL}, {"code": "123456"}, {"token": ""}])
def test_verify_needs_a_token_or_an_email_and_a_code(client, body):
    response = client.post(VERIFY, json=body)
    assert response.status_code == 400
    assert problem(response)["code"] == "invalid_request"


def test_verify_of_a_disabled_account_is_403(client, mail):
    accounts.disable(accounts.create(email=EMAIL))
    token, _ = mail()
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 403
    assert problem(response)["code"] == "account_disabled"


def test_verify_is_rate_limited_per_ip(app, client):
    configure(app, MAGIC_LINK_VERIFY_LIMIT_PER_IP="3/minute")
    for _ in range(3):
        assert client.post(VERIFY, json={"email": EMAIL, "code": "123456"}).status_code == 401
    limited = client.post(VERIFY, json={"email": EMAIL, "code": "123456"})
    assert limited.status_code == 429
    assert problem(limited)["code"] == "rate_limited" and "Retry-After" in limited.headers


def test_the_api_never_marks_a_web_session(client, mail):
    token, _ = mail()
    response = client.post(VERIFY, json={"token": token})
    assert "Set-Cookie" not in response.headers


# -- real SMTP ------------------------------------------------------------------------------------

class TestOverSmtp:
    @pytest.fixture
    def config_overrides(self, fake_smtp):
        return fake_smtp.app_settings()

    def test_the_delivered_mail_has_both_parts_the_link_and_the_code(self, client, fake_smtp):
        response = client.post(REQUEST, json={"email": "Ada@Example.com"},
                               headers={"Host": "evil.test"})
        assert response.status_code == 202
        [message] = fake_smtp.wait_for(1)
        assert fake_smtp.envelopes[0].rcpt_tos == [EMAIL]
        assert message["To"] == EMAIL
        assert message["From"] == "Example Auth <no-reply@auth.example.test>"
        assert message["Subject"] == "Sign in to Example Auth"
        assert message.get_content_type() == "multipart/alternative"
        text, html = parts_of(message)
        link = link_in(text)
        code = code_in(text)
        assert link.startswith("https://auth.example.test/auth/magic?token=")
        assert f'href="{link}"' in html and code in html
        assert "15 minutes" in text and "15 minutes" in html
        assert "did not ask" in text and "did not ask" in html
        assert "evil.test" not in text + html

        signed_in = client.post(VERIFY, json={"token": token_of(link)})
        assert signed_in.status_code == 200
        assert signed_in.get_json()["user"]["email"] == EMAIL

    def test_the_code_from_a_second_mail_signs_in(self, app, client, fake_smtp):
        configure(app, MAGIC_LINK_RESEND_COOLDOWN=0)
        assert client.post(REQUEST, json={"email": EMAIL}).status_code == 202
        assert client.post(REQUEST, json={"email": EMAIL}).status_code == 202
        first, second = fake_smtp.wait_for(2)
        first_code = code_in(parts_of(first)[0])
        second_code = code_in(parts_of(second)[0])
        response = client.post(VERIFY, json={"email": EMAIL, "code": second_code})
        assert response.status_code == 200
        # That sign-in killed the first mail's link and code.
        assert client.post(VERIFY, json={"email": EMAIL, "code": first_code}).status_code == 401
        first_token = token_of(link_in(parts_of(first)[0]))
        assert client.post(VERIFY, json={"token": first_token}).status_code == 401

    def test_smtp_down_is_503_and_leaves_no_usable_link(self, client, fake_smtp):
        fake_smtp.stop()
        for _ in range(2):  # a failed send does not start the resend cooldown
            response = client.post(REQUEST, json={"email": EMAIL})
            assert response.status_code == 503
            assert problem(response)["code"] == "service_unavailable"
            assert int(response.headers["Retry-After"]) > 0
        assert _links() == 0

    def test_smtp_deferring_the_address_is_503(self, client, fake_smtp):
        fake_smtp.defer.add(EMAIL)
        response = client.post(REQUEST, json={"email": EMAIL})
        assert response.status_code == 503
        assert _links() == 0

    def test_smtp_refusing_the_address_is_422(self, client, fake_smtp):
        fake_smtp.refuse.add(EMAIL)
        response = client.post(REQUEST, json={"email": EMAIL})
        assert response.status_code == 422
        assert problem(response)["code"] == "invalid_email"
        assert _links() == 0
