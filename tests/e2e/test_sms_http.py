"""Issue 3's "done when", over real HTTP: gunicorn (2 workers) + MySQL, file SMS backend."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import requests

from tests.flows.sms_helpers import last_code, sms_messages, wrong_code


def _post(url: str, body: dict) -> requests.Response:
    return requests.post(url, json=body, timeout=10)


def test_sms_sign_in_over_http(live_server):
    server = live_server()
    base = server.url + "/api/v1"
    outbox = server.env["OUTBOX_DIR"]

    sent = _post(base + "/otp/request", {"phone": "(650) 253-0000"})
    assert sent.status_code == 202, sent.text
    assert sent.json() == {"sent": True, "expires_in": 300, "resend_after": 30}
    [message] = sms_messages(outbox)
    assert message["to"] == "+16502530000"
    assert message["text"].splitlines()[-1].startswith("@127.0.0.1 #")
    code = last_code(outbox, "+16502530000")

    wrong = _post(base + "/otp/verify", {"phone": "+16502530000", "code": wrong_code(code)})
    assert wrong.status_code == 401
    assert wrong.headers["Content-Type"] == "application/problem+json"
    assert wrong.json()["code"] == "invalid_otp"

    signed_in = _post(base + "/otp/verify", {"phone": "+1 650 253 0000", "code": code})
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    jwks = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], key, algorithms=["ES256"],
                        audience="authserver", issuer=server.url)
    assert claims["amr"] == ["sms"]

    me = requests.get(base + "/me", timeout=10,
                      headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert me.status_code == 200
    assert me.json()["phone"] == "+16502530000" and me.json()["phone_verified"] is True

    again = _post(base + "/otp/verify", {"phone": "+16502530000", "code": code})
    assert again.status_code == 401

    # The cooldown holds whichever of the two workers answers.
    for _ in range(4):
        cooldown = _post(base + "/otp/request", {"phone": "650-253-0000"})
        assert cooldown.status_code == 429 and cooldown.json()["code"] == "rate_limited"
        assert 1 <= int(cooldown.headers["Retry-After"]) <= 30


def test_five_wrong_codes_lock_over_http(live_server):
    server = live_server()
    base = server.url + "/api/v1"
    phone = "+14155550123"
    assert _post(base + "/otp/request", {"phone": phone}).status_code == 202
    code = last_code(server.env["OUTBOX_DIR"], phone)
    answers = [_post(base + "/otp/verify", {"phone": phone, "code": wrong_code(code)})
               for _ in range(6)]
    assert [a.status_code for a in answers] == [401, 401, 401, 401, 401, 429]
    assert answers[-1].json()["code"] == "otp_attempts_exceeded"
    dead = _post(base + "/otp/verify", {"phone": phone, "code": code})
    assert dead.status_code == 429 and dead.json()["code"] == "otp_attempts_exceeded"


def test_concurrent_verifies_over_http(live_server):
    server = live_server()
    base = server.url + "/api/v1"
    outbox = server.env["OUTBOX_DIR"]
    right, guessed = "+14155550101", "+14155550102"
    for phone in (right, guessed):
        assert _post(base + "/otp/request", {"phone": phone}).status_code == 202

    with ThreadPoolExecutor(max_workers=20) as pool:
        code = last_code(outbox, right)
        wins = list(pool.map(lambda _: _post(base + "/otp/verify",
                                             {"phone": right, "code": code}), range(20)))
        bad = wrong_code(last_code(outbox, guessed))
        guesses = list(pool.map(lambda _: _post(base + "/otp/verify",
                                                {"phone": guessed, "code": bad}), range(20)))

    assert sorted(r.status_code for r in wins) == [200] + [401] * 19
    statuses = [r.status_code for r in guesses]
    assert set(statuses) <= {401, 429} and statuses.count(401) <= 5, statuses
    assert statuses.count(429) >= 15


def test_expired_code_over_http(live_server):
    server = live_server(OTP_TTL=2)
    base = server.url + "/api/v1"
    assert _post(base + "/otp/request", {"phone": "+14155550123"}).status_code == 202
    code = last_code(server.env["OUTBOX_DIR"], "+14155550123")
    time.sleep(2.5)
    expired = _post(base + "/otp/verify", {"phone": "+14155550123", "code": code})
    assert expired.status_code == 401 and expired.json()["code"] == "invalid_otp"
