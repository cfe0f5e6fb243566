"""POST /api/v1/signup and /api/v1/signin."""

from __future__ import annotations

import statistics
import time

import pytest

from authserver import accounts
from authserver.services import configure
from tests.conftest import PASSWORD
from tests.helpers import problem


def test_signup_returns_token_response(client):
    response = client.post("/api/v1/signup", json={"email": " Ada@Example.COM ",
                                                   "password": PASSWORD, "name": "Ada"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "user"}
    user = body["user"]
    assert user["email"] == "ada@example.com" and user["name"] == "Ada"
    assert user["email_verified"] is False and user["phone"] is None
    assert "password" not in str(user).lower()


def test_signup_twice_is_409(client, signup):
    signup()
    response = client.post("/api/v1/signup", json={"email": "ADA@example.com",
                                                   "password": PASSWORD})
    assert response.status_code == 409 and problem(response)["code"] == "email_taken"


@pytest.mark.parametrize("password", ["short", "password123", "aaaaaaaaaaaa",
                                      "ada@example.com", "x" * 300])
def test_weak_passwords_are_422(client, password):
    response = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                   "password": password})
    assert response.status_code == 422
    assert problem(response)["code"] == "weak_password"


TOO_SHORT_15 = "Use at least 15 characters \N{EM DASH} a few words work well."


def test_a_14_character_password_is_422_with_advice(client):
    response = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                   "password": "fourteen chars"})
    assert response.status_code == 422
    body = problem(response)
    assert body["code"] == "weak_password" and body["detail"] == TOO_SHORT_15
    assert accounts.by_email("ada@example.com") is None
    fifteen = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                  "password": "fifteen chars!!"})
    assert fifteen.status_code == 201, fifteen.get_json()


@pytest.mark.parametrize("password", ["P@ssw0rd!", "Summer2024!", "Password123!",
                                      "qwertyuiop123", "monkey2023", "Ada.1815!"])
def test_variants_are_422_with_the_minimum_at_8(app, client, password):
    configure(app, PASSWORD_MIN_LENGTH=8)
    response = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                   "password": password})
    assert response.status_code == 422
    body = problem(response)
    assert body["code"] == "weak_password" and "few unrelated words" in body["detail"]
    assert accounts.by_email("ada@example.com") is None


def test_the_minimum_at_8_takes_an_8_character_password(app, client):
    configure(app, PASSWORD_MIN_LENGTH=8)
    assert client.post("/api/v1/signup", json={"email": "ada@example.com",
                                               "password": "x7#Kq!2m"}).status_code == 201
    short = client.post("/api/v1/signup", json={"email": "bob@example.com",
                                                "password": "x7#Kq!2"})
    assert problem(short)["detail"] == ("Use at least 8 characters \N{EM DASH} a few words "
                                        "work well.")


def test_long_unicode_passphrase_accepted(client):
    passphrase = "сорок два — ответ на всё 🐳 " * 3
    response = client.post("/api/v1/signup", json={"email": "u@example.com",
                                                   "password": passphrase})
    assert response.status_code == 201
    signin = client.post("/api/v1/signin", json={"email": "u@example.com",
                                                 "password": passphrase})
    assert signin.status_code == 200


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@b.c", "a b@c.d", "x" * 300 + "@a.io"])
def test_invalid_email_is_422(client, email):
    response = client.post("/api/v1/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 422 and problem(response)["code"] == "invalid_email"


@pytest.mark.parametrize("kwargs", [
    {"data": "not json", "content_type": "application/json"},
    {"data": "[1, 2]", "content_type": "application/json"},
    {"data": "email=a@b.c", "content_type": "application/x-www-form-urlencoded"},
    {"json": {"email": "a@example.com"}},
    {"json": {"email": 5, "password": PASSWORD}},
    {"json": {"email": ["a@example.com"], "password": PASSWORD}},
    {"json": {"email": "a@example.com", "password": "pa\x00ssword-long"}},
    {"data": b"\xff\xfe{", "content_type": "application/json"},
])
def test_malformed_bodies_are_400(client, kwargs):
    response = client.post("/api/v1/signup", **kwargs)
    assert response.status_code == 400
    assert problem(response)["code"] == "invalid_request"


@pytest.mark.parametrize("path", ["/api/v1/signin", "/api/v1/otp/verify",
                                  "/api/v1/magic-link/verify", "/api/v1/token/exchange"])
def test_deeply_nested_json_is_400(client, path):
    response = client.post(path, data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert response.status_code == 400 and problem(response)["code"] == "invalid_request"


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/signup",
     '{"email": "a@example.com", "password": "long enough passphrase 1", "name": "x\\ud800"}'),
    ("/api/v1/token/refresh", '{"refresh_token": "' + "\\ud800" * 25 + '"}'),
    ("/api/v1/token/exchange", '{"code": "abc\\ud800"}'),
    ("/api/v1/magic-link/verify", '{"token": "\\ud800"}'),
])
def test_lone_surrogates_are_400(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400 and problem(response)["code"] == "invalid_request"


def test_method_not_allowed_names_the_allowed_ones(client):
    response = client.get("/api/v1/signin")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


def test_huge_body_is_413(client):
    response = client.post("/api/v1/signin", data="x" * 200_000,
                           content_type="application/json")
    assert response.status_code == 413 and problem(response)["code"] == "invalid_request"


def test_signin_success_and_wrong_password(client, signup):
    signup()
    ok = client.post("/api/v1/signin", json={"email": "ada@example.com", "password": PASSWORD})
    assert ok.status_code == 200 and ok.get_json()["user"]["email"] == "ada@example.com"
    wrong = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": PASSWORD + "!"})
    assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_credentials"


def test_unknown_email_and_wrong_password_look_the_same(client, signup):
    signup()

    def attempt(email: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        response = client.post("/api/v1/signin", json={"email": email, "password": "nope-nope"})
        return time.perf_counter() - started, response.status_code, response.data

    attempt("warm@example.com")  # the dummy hash is made once per process
    unknown = [attempt("nobody@example.com") for _ in range(4)]
    known = [attempt("ada@example.com") for _ in range(4)]
    assert {u[1:] for u in unknown} == {k[1:] for k in known}  # identical status and body
    ratio = statistics.median(u[0] for u in unknown) / statistics.median(k[0] for k in known)
    # Both pay one argon2id verification; without the dummy hash this ratio is ~0.1.
    assert 0.5 < ratio < 2.0


def test_passwordless_user_cannot_sign_in_with_any_password(app, client):
    from authserver import accounts

    accounts.create(email="nopw@example.com")
    response = client.post("/api/v1/signin", json={"email": "nopw@example.com",
                                                   "password": PASSWORD})
    assert response.status_code == 401 and problem(response)["code"] == "invalid_credentials"


def test_disabled_account_is_403_only_with_the_right_password(app, client, signup):
    from authserver import accounts

    signup()
    accounts.disable(accounts.by_email("ada@example.com"))
    wrong = client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "x" * 9})
    assert wrong.status_code == 401
    right = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": PASSWORD})
    assert right.status_code == 403 and problem(right)["code"] == "account_disabled"


def test_weaker_hash_is_upgraded_on_signin(app, client):
    from argon2 import PasswordHasher

    from authserver import accounts, passwords

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user = accounts.create(email="old@example.com", password_hash=weak)
    response = client.post("/api/v1/signin", json={"email": "old@example.com",
                                                   "password": PASSWORD})
    assert response.status_code == 200
    assert user.password_hash != weak and not passwords.needs_rehash(user.password_hash)


def test_signin_is_rate_limited_per_account(client, signup):
    signup()
    codes = [client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                 "password": "wrong-password"}).status_code
             for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    limited = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                  "password": PASSWORD})
    assert limited.status_code == 429
    assert problem(limited)["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


# -- targeted lock-out: device tokens --------------------------------------------------------
SIGNIN = "/api/v1/signin"


def _sign_in(client, password=PASSWORD, email="ada@example.com", **kwargs):
    return client.post(SIGNIN, json={"email": email, "password": password}, **kwargs)


def _stranger_fails_until_limited(app, email="ada@example.com"):
    """A stranger (no device token, own IP) guesses until the untrusted limit answers 429."""
    stranger = app.test_client()
    answers = [_sign_in(stranger, "wrong-password", email,
                        environ_base={"REMOTE_ADDR": "203.0.113.66"}).status_code
               for _ in range(11)]
    # 10 untrusted attempts a minute (the owner's own untrusted sign-in may be one of them).
    assert answers[-1] == 429 and set(answers) == {401, 429}
    assert answers.count(401) >= 9


def test_strangers_failures_do_not_lock_out_the_owners_browser(app, signup):
    signup()
    owner = app.test_client()  # a browser: keeps cookies
    first = _sign_in(owner)
    assert first.status_code == 200
    cookie = owner.get_cookie("authserver_device")
    assert cookie is not None and cookie.http_only and cookie.secure
    assert cookie.same_site == "Lax" and cookie.max_age >= 364 * 24 * 3600
    assert cookie.value == first.headers["X-Device-Token"]

    _stranger_fails_until_limited(app)
    # The owner's browser brings its device cookie: its own budget, not the stranger's.
    assert _sign_in(owner).status_code == 200
    assert _sign_in(owner, "typo-password").status_code == 401
    # ... while a browser that never signed in is still held by the untrusted limit.
    assert _sign_in(app.test_client()).status_code == 429


def test_api_clients_send_the_device_token_in_a_header(app, signup):
    signup()
    owner = app.test_client(use_cookies=False)  # an app: no cookie jar
    token = _sign_in(owner).headers["X-Device-Token"]
    assert len(token) < 200 and token.count(".") == 2

    _stranger_fails_until_limited(app)
    again = _sign_in(owner, headers={"X-Device-Token": token})
    assert again.status_code == 200
    assert "X-Device-Token" not in again.headers  # a known device keeps its token
    assert _sign_in(owner).status_code == 429  # without it: untrusted


def test_forged_or_other_accounts_device_tokens_count_as_untrusted(app, signup):
    signup()
    signup("eve@example.com")
    eve = app.test_client(use_cookies=False)
    eves_token = _sign_in(eve, email="eve@example.com").headers["X-Device-Token"]
    nonce, issued, mac = eves_token.split(".")
    _stranger_fails_until_limited(app)
    for token in (eves_token, f"{nonce}.{issued}.{'0' * len(mac)}",
                  f"{nonce}.{int(issued) + 1}.{mac}", "x" * 4000, "..", "not-a-token"):
        answer = _sign_in(eve, headers={"X-Device-Token": token})
        assert answer.status_code == 429, token


def test_device_tokens_expire(app, signup, clock):
    signup()
    owner = app.test_client(use_cookies=False)
    token = _sign_in(owner).headers["X-Device-Token"]
    _stranger_fails_until_limited(app)
    clock.travel(365 * 24 * 3600 + 1)
    assert _sign_in(owner, headers={"X-Device-Token": token}).status_code == 429


def test_a_device_has_its_own_limit(app, signup):
    signup()
    owner = app.test_client()
    assert _sign_in(owner).status_code == 200
    answers = [_sign_in(owner, "wrong-password").status_code for _ in range(11)]
    assert answers == [401] * 10 + [429]  # SIGNIN_LIMIT_PER_DEVICE, 10/minute
    # The device's guesses did not use the account's untrusted budget.
    assert _sign_in(app.test_client()).status_code == 200


def test_web_login_sets_the_device_cookie(app, signup):
    import re

    signup()
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert csrf, page
    answer = browser.post("/login", data={"email": "ada@example.com", "password": PASSWORD,
                                          "csrf_token": csrf.group(1)})
    assert answer.status_code == 303
    assert browser.get_cookie("authserver_device") is not None


# -- consecutive failures: the NIST cap ------------------------------------------------------
NO_RATE_LIMITS = {"SIGNIN_LIMIT_PER_ACCOUNT": "", "SIGNIN_LIMIT_PER_IP": "",
                  "SIGNIN_LIMIT_PER_DEVICE": ""}


@pytest.mark.parametrize("config_overrides", [NO_RATE_LIMITS])
def test_100_consecutive_failures_lock_password_sign_in(app, client, signup):
    signup()
    device = _sign_in(app.test_client()).headers["X-Device-Token"]
    answers = [_sign_in(client, f"wrong-password-{n}").status_code for n in range(100)]
    assert answers == [401] * 100
    locked = _sign_in(client)  # the 101st attempt, with the right password
    assert locked.status_code == 403
    body = problem(locked)
    assert body["code"] == "password_signin_locked" and "e-mail" in body["detail"]
    # A device token doesn't get past it (it could be stolen), nor does waiting.
    assert problem(_sign_in(client, headers={"X-Device-Token": device}))["code"] == (
        "password_signin_locked")


@pytest.mark.parametrize("config_overrides", [{**NO_RATE_LIMITS,
                                               "SIGNIN_MAX_CONSECUTIVE_FAILURES": 5}])
def test_the_lock_looks_the_same_for_unknown_addresses(client, signup):
    signup()
    for email in ("ada@example.com", "nobody@example.com"):
        assert [_sign_in(client, "wrong-password", email).status_code
                for _ in range(5)] == [401] * 5
    known = _sign_in(client, PASSWORD, "ada@example.com")
    unknown = _sign_in(client, PASSWORD, "nobody@example.com")
    assert (known.status_code, known.data) == (unknown.status_code, unknown.data)
    assert problem(unknown)["code"] == "password_signin_locked"


@pytest.mark.parametrize("config_overrides", [{**NO_RATE_LIMITS,
                                               "SIGNIN_MAX_CONSECUTIVE_FAILURES": 5}])
def test_a_sign_in_by_email_unlocks_password_sign_in(app, client, signup):
    from tests.flows.magic_helpers import code_in, email_messages

    signup()
    # An address proven before: a mailed sign-in then keeps the password (a first proof
    # would remove it, see tests/web/test_link_binding.py).
    from authserver import clock
    from authserver.extensions import db
    from authserver.models import User

    db.session.execute(User.__table__.update().values(email_verified_at=clock.now()))
    db.session.commit()
    for _ in range(5):
        _sign_in(client, "wrong-password")
    assert problem(_sign_in(client))["code"] == "password_signin_locked"
    assert client.post("/api/v1/magic-link/request",
                       json={"email": "ada@example.com"}).status_code == 202
    # The newest mail: the sign-up's verification mail came before it.
    mail = email_messages(app.config["OUTBOX_DIR"], "ada@example.com")[-1]
    signed_in = client.post("/api/v1/magic-link/verify",
                            json={"email": "ada@example.com", "code": code_in(mail["text"])})
    assert signed_in.status_code == 200
    assert _sign_in(client).status_code == 200


@pytest.mark.parametrize("config_overrides", [{**NO_RATE_LIMITS,
                                               "SIGNIN_MAX_CONSECUTIVE_FAILURES": 5}])
def test_only_consecutive_failures_count(client, signup):
    signup()
    for _ in range(2):
        assert [_sign_in(client, "wrong-password").status_code for _ in range(4)] == [401] * 4
        assert _sign_in(client).status_code == 200  # a success ends the run
    assert [_sign_in(client, "wrong-password").status_code for _ in range(5)] == [401] * 5
    assert _sign_in(client).status_code == 403


@pytest.mark.parametrize("config_overrides", [{"SIGNIN_LIMIT_PER_IP": "3/minute",
                                               "SIGNIN_LIMIT_PER_ACCOUNT": ""}])
def test_ipv6_client_rotating_its_last_64_bits_shares_one_signin_budget(client, signup):
    import random

    def from_64(prefix: str) -> dict:
        last64 = ":".join(f"{random.getrandbits(16):x}" for _ in range(4))
        return {"REMOTE_ADDR": f"{prefix}:{last64}"}

    signup()
    answers = [_sign_in(client, "wrong-password", environ_base=from_64("2001:db8:abcd:12"))
               .status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]
    assert _sign_in(client, environ_base=from_64("2001:db8:abcd:13")).status_code == 200
