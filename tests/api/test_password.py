"""POST /api/v1/signup and /api/v1/signin."""

from __future__ import annotations

import statistics
import time

import pytest

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
     '{"email": "a@example.com", "password": "long enough 1", "name": "x\\ud800"}'),
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
