"""Rotating SECRET_KEY without an outage (SQLite and MySQL).

Everything made under key A (a mailed link, an SMS code, a password-reset code, a web
session cookie, a device token, an authenticator secret, the JWT signing key, a refresh token
inside its grace window) keeps working after a restart with SECRET_KEY=B and
SECRET_KEY_FALLBACKS=A. `flask keys reencrypt` moves what is encrypted at rest to B; after a
restart with B alone, what A signed is refused and what was re-encrypted still opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import func, select

from authserver import accounts, create_app, devices, mfa, passwords
from authserver.extensions import db
from authserver.models import SigningKey, TotpFactor
from tests.conftest import PASSWORD, base_config
from tests.flows.magic_helpers import email_messages, last_mail
from tests.flows.sms_helpers import last_code
from tests.helpers import bearer, enrol_totp, problem, totp_code

KEY_A = "the first secret key: at least 32 characters long"
KEY_B = "the second secret key: also at least 32 characters"
ADA = "ada@example.com"
BOB = "bob@example.com"
CY = "cy@example.com"
EVE = "eve@example.com"
PHONE = "+16502530000"
PHONE_2 = "+16502530001"
SETTINGS = {"MAGIC_LINK_RESEND_COOLDOWN": 0, "OTP_RESEND_COOLDOWN": 0,
            "SESSION_COOKIE_SECURE": False}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {**SETTINGS, "SECRET_KEY": KEY_A}


@contextmanager
def restarted(tmp_path: Any, database_url: str, **settings: Any) -> Iterator[Flask]:
    """The same install (database, instance folder, outbox) started again with `settings`."""
    app = create_app({**base_config(tmp_path, database_url), **SETTINGS, **settings})
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def sign_in(client: Any, email: str) -> Any:
    return client.post("/api/v1/signin", json={"email": email, "password": PASSWORD})


def second_factor(client: Any, email: str, secret: str) -> Any:
    response = sign_in(client, email)
    assert response.status_code == 401, response.get_json()
    return client.post("/api/v1/mfa/verify", json={
        "mfa_token": response.get_json()["mfa_token"], "code": totp_code(secret)})


def web_cookie(client: Any, access_token: str) -> str:
    """A browser's signed session cookie for the session of `access_token`."""
    sid = jwt.decode(access_token, options={"verify_signature": False})["sid"]
    with client.session_transaction() as session:
        session["sid"] = sid
    cookie = client.get_cookie("authserver_session")
    assert cookie is not None
    return str(cookie.value)


def signed_in_page(app: Flask, cookie: str) -> Any:
    client = app.test_client()
    client.set_cookie("authserver_session", cookie)
    return client.get("/account")


def reset_code(app: Flask, email: str) -> str:
    text = email_messages(app.config["OUTBOX_DIR"], email)[-1]["text"]
    return text.split("enter this code: ")[1][:6]


def test_rotation_keeps_everything_working_then_the_old_key_opens_nothing(
        app: Flask, client: Any, tmp_path: Any, database_url: str, clock: Any) -> None:
    # -- under key A ---------------------------------------------------------------------
    ada = accounts.create(email=ADA, password_hash=passwords.hash_password(PASSWORD))
    ada.email_verified_at = clock.now()  # her link then signs in without evicting anything
    bob = accounts.create(email=BOB, password_hash=passwords.hash_password(PASSWORD))
    bob_secret = enrol_totp(bob.id)
    bob_recovery = mfa.new_recovery_codes(bob.id)
    accounts.create(email=CY, password_hash=passwords.hash_password(PASSWORD))
    db.session.commit()

    signed_in = sign_in(client, ADA)
    assert signed_in.status_code == 200, signed_in.get_json()
    access = signed_in.get_json()["access_token"]
    refresh = signed_in.get_json()["refresh_token"]
    device = signed_in.headers[devices.HEADER]
    cookie = web_cookie(client, access)
    rotated = client.post("/api/v1/token/refresh", json={"refresh_token": refresh})
    assert rotated.status_code == 200
    successor = rotated.get_json()["refresh_token"]

    assert client.post("/api/v1/magic-link/request", json={"email": ADA}).status_code == 202
    link_token, _ = last_mail(app.config["OUTBOX_DIR"], ADA)
    assert client.post("/api/v1/password/forgot", json={"email": CY}).status_code == 202
    cy_reset_code = reset_code(app, CY)
    assert client.post("/api/v1/otp/request", json={"phone": PHONE}).status_code == 202
    sms_code = last_code(app.config["OUTBOX_DIR"], PHONE)
    # Made under A too, and kept for after A is gone.
    assert client.post("/api/v1/magic-link/request", json={"email": EVE}).status_code == 202
    eve_token, eve_code = last_mail(app.config["OUTBOX_DIR"], EVE)
    assert client.post("/api/v1/otp/request", json={"phone": PHONE_2}).status_code == 202
    late_sms_code = last_code(app.config["OUTBOX_DIR"], PHONE_2)
    old_signed_in_page = signed_in_page(app, cookie)
    assert old_signed_in_page.status_code == 200 and ADA in old_signed_in_page.get_data(
        as_text=True)
    keys_made = db.session.scalar(select(func.count()).select_from(SigningKey))
    assert keys_made == 1

    # -- restarted with B, A as a fallback: nothing breaks -----------------------------------
    with restarted(tmp_path, database_url, SECRET_KEY=KEY_B,
                   SECRET_KEY_FALLBACKS=KEY_A) as app_b:
        assert app_b.config["SECRET_KEY_FALLBACKS"] == [KEY_A]
        b = app_b.test_client()
        # The access token signed before: its key decrypts under the fallback.
        assert b.get("/api/v1/me", headers=bearer(access)).status_code == 200
        # A replay inside the grace window gets the successor stored under A.
        replay = b.post("/api/v1/token/refresh", json={"refresh_token": refresh})
        assert replay.status_code == 200, replay.get_json()
        assert replay.get_json()["refresh_token"] == successor
        onward = b.post("/api/v1/token/refresh", json={"refresh_token": successor})
        assert onward.status_code == 200, onward.get_json()
        refresh = onward.get_json()["refresh_token"]

        page = signed_in_page(app_b, cookie)
        assert page.status_code == 200 and ADA in page.get_data(as_text=True)
        assert devices.device_of(device, ada.id) is not None

        used = b.post("/api/v1/magic-link/verify", json={"token": link_token})
        assert used.status_code == 200, used.get_json()
        reset = b.post("/api/v1/password/reset", json={
            "email": CY, "code": cy_reset_code, "password": PASSWORD + " again"})
        assert reset.status_code == 200, reset.get_json()
        sms = b.post("/api/v1/otp/verify", json={"phone": PHONE, "code": sms_code})
        assert sms.status_code == 200, sms.get_json()

        verified = second_factor(b, BOB, bob_secret)
        assert verified.status_code == 200, verified.get_json()
        first_factor = sign_in(b, BOB)
        recovered = b.post("/api/v1/mfa/verify", json={
            "mfa_token": first_factor.get_json()["mfa_token"], "recovery_code": bob_recovery[0]})
        assert recovered.status_code == 200, recovered.get_json()
        # New tokens are still signed with the key made under A: no new key was needed.
        assert db.session.scalar(select(func.count()).select_from(SigningKey)) == 1

        stored_before = db.session.scalar(select(SigningKey.private_key_encrypted))
        totp_before = db.session.scalar(select(TotpFactor.secret_encrypted))

        result = app_b.test_cli_runner().invoke(args=["keys", "reencrypt"])
        assert result.exit_code == 0, result.output
        assert "re-encrypted 1 signing key(s), 1 authenticator secret(s)" in result.output
        db.session.expire_all()
        assert db.session.scalar(select(SigningKey.private_key_encrypted)) != stored_before
        assert db.session.scalar(select(TotpFactor.secret_encrypted)) != totp_before

    # -- restarted with B alone: what A signed is refused, what was re-encrypted opens -----
    clock.travel(30)  # the authenticator's next step (the last one was used)
    with restarted(tmp_path, database_url, SECRET_KEY=KEY_B) as app_c:
        c = app_c.test_client()
        assert c.get("/api/v1/me", headers=bearer(access)).status_code == 200
        assert second_factor(c, BOB, bob_secret).status_code == 200
        # Recovery codes are only an HMAC under the old key: they go with it (README).
        first_factor = sign_in(c, BOB)
        stale = c.post("/api/v1/mfa/verify", json={
            "mfa_token": first_factor.get_json()["mfa_token"], "recovery_code": bob_recovery[1]})
        assert (stale.status_code, problem(stale)["code"]) == (401, "invalid_otp")
        assert c.post("/api/v1/token/refresh", json={"refresh_token": refresh}).status_code \
            == 200
        assert db.session.scalar(select(func.count()).select_from(SigningKey)) == 1

        page = signed_in_page(app_c, cookie)
        assert page.status_code == 302 and "/login" in page.headers["Location"]
        assert devices.device_of(device, ada.id) is None

        refused = c.post("/api/v1/magic-link/verify", json={"token": eve_token})
        assert (refused.status_code, problem(refused)["code"]) == (401, "invalid_link")
        refused = c.post("/api/v1/magic-link/verify", json={"email": EVE, "code": eve_code})
        assert refused.status_code == 401, refused.get_json()
        refused = c.post("/api/v1/otp/verify", json={"phone": PHONE_2, "code": late_sms_code})
        assert (refused.status_code, problem(refused)["code"]) == (401, "invalid_otp")


def test_fallbacks_must_be_long_enough(tmp_path: Any, database_url: str) -> None:
    from authserver.config import ConfigError

    with pytest.raises(ConfigError, match="SECRET_KEY_FALLBACKS"):
        create_app({**base_config(tmp_path, database_url), "SECRET_KEY_FALLBACKS": "short"})


def test_a_form_rendered_before_the_rotation_still_posts(
        app: Flask, client: Any, tmp_path: Any, database_url: str) -> None:
    """The CSRF token on a page shown under A is accepted under B with A as a fallback."""
    from tests.web.conftest import action_of, csrf_from

    accounts.create(email=ADA, password_hash=passwords.hash_password(PASSWORD))
    db.session.commit()
    html = client.get("/login").get_data(as_text=True)
    form = {"email": ADA, "password": PASSWORD, "csrf_token": csrf_from(html)}
    cookie = client.get_cookie("authserver_session")
    assert cookie is not None
    for fallbacks, signed_in in ((KEY_A, True), ("", False)):
        with restarted(tmp_path, database_url, SECRET_KEY=KEY_B,
                       SECRET_KEY_FALLBACKS=fallbacks) as later:
            browser = later.test_client()
            browser.set_cookie("authserver_session", cookie.value)
            response = browser.post(action_of(html), data=form)
            if signed_in:
                assert response.status_code in (302, 303), response.get_data(as_text=True)
                assert browser.get("/account").status_code == 200
            else:
                assert response.status_code == 400
