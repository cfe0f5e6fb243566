"""Issue 12's "done when", over real HTTP: gunicorn on MySQL, pyotp standing in for the phone.

A user enrols an authenticator app, signs in with a password and then the app's code, gets an
access token whose `amr` and `aal` say so (checked with only the JWKS), cannot replay that
code, gets in with a recovery code once; an admin without a second factor is refused at the
admin API until they enrol and sign in with it; /openapi.json describes it all.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import jwt
import pyotp
import requests

from tests.e2e.conftest import BIN, ROOT

PASSWORD = "correct horse battery staple"


def code_after(secret: str, used: str | None = None) -> str:
    """The app's code for a step after the ones already used: the next step's code (one step
    of drift is accepted), so a test never waits for the clock."""
    code = pyotp.TOTP(secret).at(time.time() + 30)
    return code if code != used else pyotp.TOTP(secret).at(time.time() + 60)


def enrol(base: str, access: str) -> tuple[str, list[str]]:
    auth = {"Authorization": "Bearer " + access}
    enrolment = requests.post(base + "/mfa/totp/enroll", headers=auth, timeout=10)
    assert enrolment.status_code == 200, enrolment.text
    body = enrolment.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/") and body["qr_svg"].startswith("<svg")
    secret = body["secret"]
    confirmed = requests.post(base + "/mfa/totp/confirm", headers=auth,
                              json={"code": pyotp.TOTP(secret).now()}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


def sign_in(base: str, email: str) -> requests.Response:
    return requests.post(base + "/signin", json={"email": email, "password": PASSWORD},
                         timeout=10)


def step_up(base: str, email: str, **proof: str) -> requests.Response:
    first = sign_in(base, email)
    assert first.status_code == 401, first.text
    body = first.json()
    assert first.headers["Content-Type"] == "application/problem+json"
    assert body["code"] == "mfa_required" and body["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in body
    return requests.post(base + "/mfa/verify", json={"mfa_token": body["mfa_token"], **proof},
                         timeout=10)


def verified_claims(server: Any, token: str) -> dict[str, Any]:
    key = jwt.PyJWKClient(server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["ES256"], audience="authserver",
                                        issuer=server.url)
    return claims


def test_second_factor_over_http_on_mysql(live_server):
    server = live_server()
    base = server.url + "/api/v1"
    signed_up = requests.post(base + "/signup", json={"email": "lin@example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    secret, recovery_codes = enrol(base, signed_up.json()["access_token"])
    assert len(recovery_codes) == 10

    # Password, then the app's code: tokens whose amr and aal say so.
    code = code_after(secret)
    verified = step_up(base, "lin@example.com", code=code)
    assert verified.status_code == 200, verified.text
    tokens = verified.json()
    claims = verified_claims(server, tokens["access_token"])
    assert claims["amr"] == ["pwd", "otp"] and claims["aal"] == "aal2"
    assert isinstance(claims["auth_time"], int)
    me = requests.get(base + "/me", headers={"Authorization": "Bearer " + tokens["access_token"]},
                      timeout=10)
    assert me.json()["mfa"] == {"totp": True, "recovery_codes_left": 10}
    assert secret not in me.text

    # The same code again: refused.
    replay = step_up(base, "lin@example.com", code=code)
    assert replay.status_code == 401 and replay.json()["code"] == "invalid_otp"

    # A recovery code: once.
    recovered = step_up(base, "lin@example.com", recovery_code=recovery_codes[0])
    assert recovered.status_code == 200, recovered.text
    assert verified_claims(server, recovered.json()["access_token"])["aal"] == "aal2"
    again = step_up(base, "lin@example.com", recovery_code=recovery_codes[0])
    assert again.status_code == 401 and again.json()["code"] == "invalid_otp"

    # The refresh of the session keeps aal2.
    refreshed = requests.post(base + "/token/refresh",
                              json={"refresh_token": tokens["refresh_token"]}, timeout=10)
    assert verified_claims(server, refreshed.json()["access_token"])["aal"] == "aal2"

    # An admin without a second factor is refused at the admin API; with one, let in.
    created = subprocess.run(
        [str(BIN / "flask"), "--app", "authserver", "users", "create", "root@example.com",
         "--role", "admin", "--password-stdin"], input=PASSWORD + "\n", text=True,
        cwd=ROOT, env=server.env, capture_output=True, timeout=60)
    assert created.returncode == 0, created.stdout + created.stderr
    one_factor = sign_in(base, "root@example.com")
    assert one_factor.status_code == 200
    admin_access = one_factor.json()["access_token"]
    assert verified_claims(server, admin_access)["aal"] == "aal1"
    refused = requests.get(base + "/admin/users",
                           headers={"Authorization": "Bearer " + admin_access}, timeout=10)
    assert refused.status_code == 403 and refused.json()["code"] == "mfa_required_for_role"
    admin_secret, _codes = enrol(base, admin_access)
    admin = step_up(base, "root@example.com", code=code_after(admin_secret))
    assert admin.status_code == 200, admin.text
    let_in = requests.get(base + "/admin/users", params={"email": "lin@example.com"},
                          headers={"Authorization": "Bearer " + admin.json()["access_token"]},
                          timeout=10)
    assert let_in.status_code == 200 and let_in.json()["users"][0]["email"] == "lin@example.com"

    # The contract describes it.
    document = requests.get(server.url + "/openapi.json", timeout=10).json()
    for path in ("/api/v1/mfa/totp/enroll", "/api/v1/mfa/totp/confirm", "/api/v1/mfa/totp",
                 "/api/v1/mfa/recovery-codes", "/api/v1/mfa/verify",
                 "/api/v1/admin/users/{user_id}/mfa/reset"):
        assert path in document["paths"], path
    problem = document["components"]["schemas"]["Problem"]
    assert {"mfa_token", "methods"} <= set(problem["properties"])
    codes = document["components"]["schemas"]["ErrorCode"]["enum"]
    assert {"mfa_required", "mfa_required_for_role"} <= set(codes)
    assert problem["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}
