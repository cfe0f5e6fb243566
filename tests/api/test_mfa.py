"""The second factor through the API: enrolment, the step-up of every sign-in, /mfa/verify,
recovery codes, assurance levels in tokens, MFA_REQUIRED_ROLES, the admin reset.

Runs on SQLite and MySQL. Codes come from pyotp's own TOTP at the server's clock (the
`clock` fixture moves it), the way an authenticator app would compute them.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import jwt
import pyotp
import pytest
from sqlalchemy import func, select

from authserver import accounts, mfa, passwords
from authserver.errors import Problem
from authserver.extensions import db
from authserver.flows import mfa as mfa_flow
from authserver.flows import mfa_settings
from authserver.models import OneTimeCode, RecoveryCode, Session, TotpFactor
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import code_in, email_messages, last_mail
from tests.helpers import bearer, enrol_totp, problem, totp_code
from tests.race import race

EMAIL = "ada@example.com"
TEST_PHONE = "+16502530000"
TEST_PHONE_CODE = "424242"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SMS_TEST_NUMBERS": {TEST_PHONE: TEST_PHONE_CODE}}


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def sign_in(client: Any, email: str = EMAIL) -> Any:
    return client.post("/api/v1/signin", json={"email": email, "password": PASSWORD})


def mfa_token(client: Any, email: str = EMAIL) -> str:
    response = sign_in(client, email)
    body = problem(response)
    assert response.status_code == 401 and body["code"] == "mfa_required", body
    return str(body["mfa_token"])


def verify(client: Any, token: str, **proof: str) -> Any:
    return client.post("/api/v1/mfa/verify", json={"mfa_token": token, **proof})


@pytest.fixture
def enrolled(client: Any, signup: Any, clock: Any) -> dict[str, Any]:
    """Ada signed up and set up her app through the API: her secret, codes and token."""
    access = signup(EMAIL)["access_token"]
    enrolment = client.post("/api/v1/mfa/totp/enroll", headers=bearer(access))
    assert enrolment.status_code == 200, enrolment.get_json()
    secret = enrolment.get_json()["secret"]
    confirmed = client.post("/api/v1/mfa/totp/confirm", headers=bearer(access),
                            json={"code": pyotp.TOTP(secret).at(clock.timestamp())})
    assert confirmed.status_code == 200, confirmed.get_json()
    clock.travel(60)  # past the confirming code's step and the one after (drift tests)
    return {"secret": secret, "recovery_codes": confirmed.get_json()["recovery_codes"],
            "access_token": access}


# -- enrolment --------------------------------------------------------------------------------
def test_enrol_answers_a_secret_its_uri_and_an_svg_qr_code(client, signup):
    access = signup(EMAIL)["access_token"]
    response = client.post("/api/v1/mfa/totp/enroll", headers=bearer(access))
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["secret", "otpauth_uri", "qr_svg"]
    assert len(body["secret"]) == 32 and pyotp.utils.strings_equal(
        body["secret"], body["secret"].upper())  # base32, 160 bits
    assert body["otpauth_uri"] == pyotp.TOTP(body["secret"]).provisioning_uri(
        name=EMAIL, issuer_name="authserver")
    assert body["otpauth_uri"].startswith("otpauth://totp/authserver:ada%40example.com?secret=")
    assert body["qr_svg"].startswith("<svg") and "http" not in body["qr_svg"].replace(
        "http://www.w3.org/2000/svg", "")
    # Pending until confirmed: no step-up yet, and /me says so.
    assert sign_in(client).status_code == 200
    me = client.get("/api/v1/me", headers=bearer(access)).get_json()
    assert me["mfa"] == {"totp": False, "recovery_codes_left": 0}


def test_the_secret_is_stored_encrypted_and_never_shown_again(client, enrolled, app):
    secret = enrolled["secret"]
    row = db.session.get(TotpFactor, accounts.by_email(EMAIL).id)
    assert secret not in row.secret_encrypted and row.confirmed_at is not None
    access = verify(client, mfa_token(client), code=totp_code(secret)).get_json()["access_token"]
    responses = [
        client.get("/api/v1/me", headers=bearer(access)),
        sign_in(client),
        client.post("/api/v1/mfa/totp/enroll", headers=bearer(access)),
    ]
    for response in responses:
        assert secret not in response.get_data(as_text=True)
    assert responses[2].status_code == 409
    assert problem(responses[2])["code"] == "mfa_already_enrolled"
    # Recovery codes are kept only as hashes.
    hashes = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(hashes) == 10
    assert not {code.replace("-", "") for code in enrolled["recovery_codes"]} & set(hashes)


def test_a_new_enroll_replaces_a_pending_one(client, signup, clock):
    access = signup(EMAIL)["access_token"]
    first = client.post("/api/v1/mfa/totp/enroll", headers=bearer(access)).get_json()["secret"]
    second = client.post("/api/v1/mfa/totp/enroll", headers=bearer(access)).get_json()["secret"]
    assert first != second
    wrong = client.post("/api/v1/mfa/totp/confirm", headers=bearer(access),
                        json={"code": pyotp.TOTP(first).at(clock.timestamp())})
    assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_otp"
    right = client.post("/api/v1/mfa/totp/confirm", headers=bearer(access),
                        json={"code": pyotp.TOTP(second).at(clock.timestamp())})
    assert right.status_code == 200 and len(right.get_json()["recovery_codes"]) == 10
    assert db.session.scalar(select(func.count()).select_from(TotpFactor)) == 1


def test_confirm_without_an_enrolment_is_409(client, signup):
    access = signup(EMAIL)["access_token"]
    response = client.post("/api/v1/mfa/totp/confirm", headers=bearer(access),
                           json={"code": "123456"})
    assert response.status_code == 409 and problem(response)["code"] == "mfa_not_enrolled"


def test_enrolment_needs_a_recent_sign_in(client, signup, clock):
    access = signup(EMAIL)["access_token"]
    clock.travel(601)
    response = client.post("/api/v1/mfa/totp/enroll", headers=bearer(access))
    assert response.status_code == 401
    assert problem(response)["code"] == "reauthentication_required"


# -- the step-up ------------------------------------------------------------------------------
def test_password_sign_in_stops_at_the_second_step_then_verify_gives_aal2(client, enrolled):
    sessions_before = db.session.scalar(select(func.count()).select_from(Session))
    response = sign_in(client)
    body = problem(response)
    assert response.status_code == 401 and body["code"] == "mfa_required"
    assert body["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in body and "refresh_token" not in body
    # No session was opened by the first factor alone; the token is stored only hashed.
    assert db.session.scalar(select(func.count()).select_from(Session)) == sessions_before
    challenge_id, _, secret_part = body["mfa_token"].partition(".")
    row = db.session.get(OneTimeCode, challenge_id)
    assert row.purpose == "mfa" and secret_part not in row.code_hash and row.state == "pwd"

    response = verify(client, body["mfa_token"], code=totp_code(enrolled["secret"]))
    assert response.status_code == 200, response.get_json()
    tokens = response.get_json()
    claims = claims_of(tokens["access_token"])
    assert claims["amr"] == ["pwd", "otp"] and claims["aal"] == "aal2"
    assert isinstance(claims["auth_time"], int)
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"])).get_json()
    assert me["mfa"] == {"totp": True, "recovery_codes_left": 10}
    # The token is single use.
    again = verify(client, body["mfa_token"], code=totp_code(enrolled["secret"], 1))
    assert again.status_code == 401 and problem(again)["code"] == "invalid_grant"


def test_a_user_without_a_factor_gets_aal1(client, signup):
    claims = claims_of(signup(EMAIL)["access_token"])
    assert claims["amr"] == ["pwd"] and claims["aal"] == "aal1"


def test_refresh_keeps_aal2(client, enrolled, clock):
    tokens = verify(client, mfa_token(client), code=totp_code(enrolled["secret"])).get_json()
    clock.travel(60)
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    claims = claims_of(refreshed.get_json()["access_token"])
    assert claims["aal"] == "aal2" and claims["amr"] == ["pwd", "otp"]


def test_the_same_step_is_never_accepted_twice(client, enrolled, clock):
    code = totp_code(enrolled["secret"])
    assert verify(client, mfa_token(client), code=code).status_code == 200
    replay = verify(client, mfa_token(client), code=code)
    assert replay.status_code == 401 and problem(replay)["code"] == "invalid_otp"
    clock.travel(30)
    assert verify(client, mfa_token(client),
                  code=totp_code(enrolled["secret"])).status_code == 200


def test_one_step_of_drift_is_accepted_two_are_not(client, enrolled):
    secret = enrolled["secret"]
    token = mfa_token(client)
    too_old = verify(client, token, code=totp_code(secret, -2))
    assert too_old.status_code == 401 and problem(too_old)["code"] == "invalid_otp"
    assert verify(client, token, code=totp_code(secret, -1)).status_code == 200
    token = mfa_token(client)
    too_new = verify(client, token, code=totp_code(secret, 2))
    assert too_new.status_code == 401 and problem(too_new)["code"] == "invalid_otp"
    assert verify(client, token, code=totp_code(secret, 1)).status_code == 200
    # An older step after a newer one was used is a replay too.
    assert verify(client, mfa_token(client), code=totp_code(secret)).status_code == 401


def test_five_wrong_codes_kill_the_mfa_token(client, enrolled):
    secret = enrolled["secret"]
    right = totp_code(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    token = mfa_token(client)
    for _ in range(4):
        response = verify(client, token, code=wrong)
        assert response.status_code == 401 and problem(response)["code"] == "invalid_otp"
    fifth = verify(client, token, code=wrong)
    assert fifth.status_code == 429 and problem(fifth)["code"] == "otp_attempts_exceeded"
    dead = verify(client, token, code=right)
    assert dead.status_code == 429 and problem(dead)["code"] == "otp_attempts_exceeded"
    # A new sign-in's token works with the same (unused) code.
    assert verify(client, mfa_token(client), code=right).status_code == 200


def test_wrong_codes_are_limited_per_account_across_tokens(client, enrolled):
    right = totp_code(enrolled["secret"])
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(2):
        token = mfa_token(client)
        for _ in range(5):
            assert verify(client, token, code=wrong).status_code in (401, 429)
    response = verify(client, mfa_token(client), code=right)
    assert response.status_code == 429 and problem(response)["code"] == "rate_limited"


def test_a_forged_or_missing_proof_is_refused(client, enrolled):
    token = mfa_token(client)
    challenge_id = token.partition(".")[0]
    forged = verify(client, f"{challenge_id}.not-the-secret", code=totp_code(enrolled["secret"]))
    assert forged.status_code == 401 and problem(forged)["code"] == "invalid_grant"
    assert verify(client, "garbage", code="123456").status_code == 401
    missing = verify(client, token)
    assert missing.status_code == 400 and problem(missing)["code"] == "invalid_request"
    # None of it cost the token a try.
    assert verify(client, token, code=totp_code(enrolled["secret"])).status_code == 200


def test_a_recovery_code_works_once(client, enrolled):
    code = enrolled["recovery_codes"][0]
    response = verify(client, mfa_token(client), recovery_code=code.upper().replace("-", " "))
    assert response.status_code == 200, response.get_json()
    tokens = response.get_json()
    claims = claims_of(tokens["access_token"])
    assert claims["amr"] == ["pwd", "mfa"] and claims["aal"] == "aal2"
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"])).get_json()
    assert me["mfa"]["recovery_codes_left"] == 9
    again = verify(client, mfa_token(client), recovery_code=code)
    assert again.status_code == 401 and problem(again)["code"] == "invalid_otp"


def test_new_recovery_codes_kill_the_old_ones(client, enrolled):
    access = enrolled["access_token"]
    refused = client.post("/api/v1/mfa/recovery-codes", headers=bearer(access), json={})
    assert refused.status_code == 400
    response = client.post("/api/v1/mfa/recovery-codes", headers=bearer(access),
                           json={"code": totp_code(enrolled["secret"])})
    assert response.status_code == 200
    fresh = response.get_json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(enrolled["recovery_codes"])
    old = verify(client, mfa_token(client), recovery_code=enrolled["recovery_codes"][1])
    assert old.status_code == 401
    assert verify(client, mfa_token(client), recovery_code=fresh[0]).status_code == 200


def test_turning_the_factor_off_needs_a_code(client, enrolled, clock):
    access = enrolled["access_token"]
    missing = client.delete("/api/v1/mfa/totp", headers=bearer(access), json={})
    assert missing.status_code == 400
    wrong = client.delete("/api/v1/mfa/totp", headers=bearer(access), json={"code": "000000"}
                          if totp_code(enrolled["secret"]) != "000000" else {"code": "111111"})
    assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_otp"
    assert sign_in(client).status_code == 401  # still on
    off = client.delete("/api/v1/mfa/totp", headers=bearer(access),
                        json={"code": totp_code(enrolled["secret"])})
    assert off.status_code == 204
    signed_in = sign_in(client)
    assert signed_in.status_code == 200
    assert claims_of(signed_in.get_json()["access_token"])["aal"] == "aal1"
    assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 0
    again = client.delete("/api/v1/mfa/totp", headers=bearer(access), json={"code": "123456"})
    assert again.status_code == 409 and problem(again)["code"] == "mfa_not_enrolled"


def test_a_recovery_code_turns_the_factor_off(client, enrolled):
    off = client.delete("/api/v1/mfa/totp", headers=bearer(enrolled["access_token"]),
                        json={"recovery_code": enrolled["recovery_codes"][3]})
    assert off.status_code == 204
    assert sign_in(client).status_code == 200


def test_sms_sign_in_stops_at_the_second_step(client, clock):
    first = client.post("/api/v1/otp/verify", json={"phone": TEST_PHONE,
                                                    "code": TEST_PHONE_CODE})
    assert first.status_code == 200
    secret = enrol_totp(first.get_json()["user"]["id"])
    response = client.post("/api/v1/otp/verify", json={"phone": TEST_PHONE,
                                                       "code": TEST_PHONE_CODE})
    body = problem(response)
    assert response.status_code == 401 and body["code"] == "mfa_required"
    tokens = verify(client, body["mfa_token"], code=totp_code(secret)).get_json()
    claims = claims_of(tokens["access_token"])
    assert claims["amr"] == ["sms", "otp"] and claims["aal"] == "aal2"


def test_e_mailed_link_and_code_sign_ins_stop_at_the_second_step(client, app, clock):
    user = accounts.create(email=EMAIL, password_hash=passwords.hash_password(PASSWORD))
    secret = enrol_totp(user.id)
    outbox = app.config["OUTBOX_DIR"]
    assert client.post("/api/v1/magic-link/request", json={"email": EMAIL}).status_code == 202
    token, _code = last_mail(outbox, EMAIL)
    by_link = client.post("/api/v1/magic-link/verify", json={"token": token})
    assert by_link.status_code == 401 and problem(by_link)["code"] == "mfa_required"
    # The link was used by the first step: it does not sign in again.
    assert client.post("/api/v1/magic-link/verify", json={"token": token}).status_code == 401
    tokens = verify(client, problem(by_link)["mfa_token"], code=totp_code(secret)).get_json()
    assert claims_of(tokens["access_token"])["amr"] == ["email", "otp"]

    clock.travel(31)  # past the mail cooldown, and a fresh step
    assert client.post("/api/v1/magic-link/request", json={"email": EMAIL}).status_code == 202
    _token, code = last_mail(outbox, EMAIL)
    by_code = client.post("/api/v1/magic-link/verify", json={"email": EMAIL, "code": code})
    assert by_code.status_code == 401 and problem(by_code)["code"] == "mfa_required"
    response = verify(client, problem(by_code)["mfa_token"], code=totp_code(secret))
    assert claims_of(response.get_json()["access_token"])["aal"] == "aal2"


# -- roles, require_aal, the admin reset ------------------------------------------------------
def _admin(client: Any, email: str = "root@example.com") -> str:
    accounts.create(email=email, password_hash=passwords.hash_password(PASSWORD),
                    roles=["admin"])
    response = sign_in(client, email)
    assert response.status_code == 200
    return str(response.get_json()["access_token"])


def test_an_admin_without_a_second_factor_is_refused_at_the_admin_api(client, clock):
    access = _admin(client)
    assert claims_of(access)["aal"] == "aal1"
    response = client.get("/api/v1/admin/users", headers=bearer(access))
    assert response.status_code == 403
    assert problem(response)["code"] == "mfa_required_for_role"
    # Enrolled and signed in with it: allowed.
    enrolment = client.post("/api/v1/mfa/totp/enroll", headers=bearer(access)).get_json()
    secret = enrolment["secret"]
    assert client.post("/api/v1/mfa/totp/confirm", headers=bearer(access),
                       json={"code": pyotp.TOTP(secret).at(clock.timestamp())}
                       ).status_code == 200
    # The old one-factor token stays aal1.
    assert client.get("/api/v1/admin/users", headers=bearer(access)).status_code == 403
    clock.travel(30)
    stepped = verify(client, mfa_token(client, "root@example.com"), code=totp_code(secret))
    aal2 = stepped.get_json()["access_token"]
    assert client.get("/api/v1/admin/users", headers=bearer(aal2)).status_code == 200


@pytest.mark.parametrize("config_overrides", [{"MFA_REQUIRED_ROLES": ""}])
def test_mfa_required_roles_empty_lets_one_factor_admins_in(client):
    access = _admin(client)
    assert client.get("/api/v1/admin/users", headers=bearer(access)).status_code == 200


def test_an_admin_resets_a_users_second_factor(client, enrolled, admin_token):
    user_id = accounts.by_email(EMAIL).id
    response = client.post(f"/api/v1/admin/users/{user_id}/mfa/reset",
                           headers=bearer(admin_token))
    assert response.status_code == 200 and response.get_json()["id"] == user_id
    assert sign_in(client).status_code == 200
    assert client.post("/api/v1/admin/users/nobody/mfa/reset",
                       headers=bearer(admin_token)).status_code == 404
    # A non-admin can't.
    member = sign_in(client).get_json()["access_token"]
    assert client.post(f"/api/v1/admin/users/{user_id}/mfa/reset",
                       headers=bearer(member)).status_code == 403


def test_require_aal_refuses_a_one_factor_token(app, client, enrolled):
    from authserver import tokens

    @tokens.require_aal("aal2")
    def view() -> str:
        return "ok"

    one_factor = enrolled["access_token"]  # the sign-up's, before the app was set up
    with app.test_request_context("/", headers=bearer(one_factor)), \
            pytest.raises(Problem) as refused:
        view()
    assert refused.value.status == 401
    assert refused.value.code == "insufficient_user_authentication"
    two = verify(client, mfa_token(client), code=totp_code(enrolled["secret"]))
    with app.test_request_context("/", headers=bearer(two.get_json()["access_token"])):
        assert view() == "ok"
    with pytest.raises(ValueError):
        tokens.require_aal("aal3")


# -- races (MySQL) ----------------------------------------------------------------------------
def test_twenty_concurrent_verifies_of_one_right_code_give_one_token_response(app, database_url,
                                                                               clock):
    if not database_url.startswith("mysql"):
        pytest.skip("row-level concurrency is checked on MySQL")
    user = accounts.create(email=EMAIL, password_hash=passwords.hash_password(PASSWORD))
    secret = enrol_totp(user.id)
    mfa_tokens = []
    for _ in range(20):
        with app.test_request_context("/"), pytest.raises(Problem) as raised:
            mfa.require_second_factor(user, ["pwd"], "api")
        mfa_tokens.append(raised.value.extra["mfa_token"])
    code = totp_code(secret)
    next_token = itertools.count()
    lock = threading.Lock()

    def work() -> Any:
        with lock:
            token = mfa_tokens[next(next_token)]
        return mfa_flow.verify(token, code)

    outcomes = race(app, work)
    won = [outcome for outcome in outcomes if not isinstance(outcome, Problem | str)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, Problem)]
    assert len(won) == 1, outcomes
    # A replay is a wrong code; past the per-account limit of wrong codes, 429.
    assert len(refused) == 19, outcomes
    assert {p.code for p in refused} <= {"invalid_otp", "rate_limited"}, outcomes
    db.session.rollback()  # a fresh snapshot: what the racers committed
    assert db.session.scalar(select(func.count()).select_from(Session)) == 1


def test_a_password_reset_sets_the_password_then_stops_at_the_second_step(client, app, clock):
    user = accounts.create(email=EMAIL, password_hash=passwords.hash_password(PASSWORD))
    secret = enrol_totp(user.id)
    assert client.post("/api/v1/password/forgot", json={"email": EMAIL}).status_code == 202
    code = code_in(email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1]["text"])
    new_password = "a brand new passphrase 42"
    reset = client.post("/api/v1/password/reset", json={"email": EMAIL, "code": code,
                                                         "password": new_password})
    body = problem(reset)
    assert reset.status_code == 401 and body["code"] == "mfa_required"
    # The reset stands, and the "password changed" notice went out.
    assert "password was changed" in email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1][
        "subject"]
    db.session.expire_all()
    assert passwords.verify_password(accounts.by_email(EMAIL).password_hash, new_password)
    tokens = verify(client, body["mfa_token"], code=totp_code(secret)).get_json()
    assert claims_of(tokens["access_token"])["amr"] == ["email", "otp"]


def test_twenty_concurrent_enrolls_leave_one_pending_factor(app, database_url):
    if not database_url.startswith("mysql"):
        pytest.skip("row-level concurrency is checked on MySQL")
    user_id = accounts.create(email=EMAIL).id
    db.session.commit()

    def work() -> Any:
        return mfa_settings.enroll(accounts.get(user_id)).secret

    outcomes = race(app, work)
    assert all(isinstance(outcome, str) and len(outcome) == 32 for outcome in outcomes), outcomes
    db.session.rollback()
    rows = db.session.scalars(select(TotpFactor)).all()
    assert len(rows) == 1 and rows[0].confirmed_at is None
    # The one stored is one racer's secret (the last to replace the pending one).
    assert mfa._decrypt(rows[0].secret_encrypted) in outcomes


@pytest.mark.parametrize("config_overrides", [{"CODE_GUESS_LIMIT": ""}])
def test_twenty_concurrent_wrong_codes_get_five_tries_then_the_token_is_dead(app, database_url,
                                                                            clock):
    if not database_url.startswith("mysql"):
        pytest.skip("row-level concurrency is checked on MySQL")
    user = accounts.create(email=EMAIL, password_hash=passwords.hash_password(PASSWORD))
    secret = enrol_totp(user.id)
    with app.test_request_context("/"), pytest.raises(Problem) as raised:
        mfa.require_second_factor(user, ["pwd"], "api")
    token = raised.value.extra["mfa_token"]
    right = totp_code(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    outcomes = race(app, lambda: mfa_flow.verify(token, wrong))
    codes = sorted(str(outcome.code) for outcome in outcomes if isinstance(outcome, Problem))
    assert len(codes) == 20, outcomes
    assert codes.count("invalid_otp") <= 4 and set(codes) <= {"invalid_otp",
                                                              "otp_attempts_exceeded"}
    db.session.rollback()
    row = db.session.get(OneTimeCode, token.partition(".")[0])
    assert row.attempts == 5 and row.invalidated_at is not None
    with app.test_request_context("/"), pytest.raises(Problem) as dead:
        mfa_flow.verify(token, right)
    assert dead.value.code == "otp_attempts_exceeded"
