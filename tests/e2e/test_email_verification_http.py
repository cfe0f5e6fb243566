"""E-mail verification over real HTTP: gunicorn + MySQL, mails read from the file outbox."""

from __future__ import annotations

import re

import requests

from tests.flows.magic_helpers import code_in, email_messages, token_of

PASSWORD = "correct horse battery staple"
LINK_RE = re.compile(r"(https?://\S+/auth/verify-email\?token=[A-Za-z0-9_.\-%]+)")


def _newest(tmp_path, to: str) -> tuple[str, str]:
    text = email_messages(tmp_path / "outbox", to)[-1]["text"]
    match = LINK_RE.search(text)
    assert match, text
    return token_of(match.group(1)), code_in(text)


def test_sign_up_then_the_mailed_code_verifies(live_server, tmp_path):
    server = live_server(MAGIC_LINK_RESEND_COOLDOWN="0")
    base = server.url + "/api/v1"
    signed_up = requests.post(base + "/signup", json={"email": "lin@example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    auth = {"Authorization": "Bearer " + signed_up.json()["access_token"]}
    assert requests.get(base + "/me", headers=auth, timeout=10).json()["email_verified"] is False
    _, code = _newest(tmp_path, "lin@example.com")
    verified = requests.post(base + "/email/verify",
                             json={"email": "lin@example.com", "code": code}, timeout=10)
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    assert requests.get(base + "/me", headers=auth, timeout=10).json()["email_verified"] is True


def test_required_mode_sign_up_is_202_and_the_link_signs_in(live_server, tmp_path):
    server = live_server(EMAIL_VERIFICATION_REQUIRED="true", MAGIC_LINK_RESEND_COOLDOWN="0")
    base = server.url + "/api/v1"
    signed_up = requests.post(base + "/signup", json={"email": "lin@example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert (signed_up.status_code, signed_up.json()) == (202, {"sent": True})
    again = requests.post(base + "/signup", json={"email": "lin@example.com",
                                                  "password": "another fine passphrase"},
                          timeout=10)
    assert (again.status_code, again.content) == (202, signed_up.content)
    refused = requests.post(base + "/signin", json={"email": "lin@example.com",
                                                    "password": PASSWORD}, timeout=10)
    assert refused.status_code == 403 and refused.json()["code"] == "email_not_verified"
    messages = email_messages(tmp_path / "outbox", "lin@example.com")
    assert [m["subject"].split()[0] for m in messages] == ["Confirm", "Someone"]
    text = messages[0]["text"]
    match = LINK_RE.search(text)
    assert match is not None and match.group(1).startswith(server.url + "/auth/verify-email")
    verified = requests.post(base + "/email/verify", json={"token": token_of(match.group(1))},
                             timeout=10)
    assert verified.status_code == 200, verified.text
    tokens = verified.json()
    assert tokens["token_type"] == "Bearer" and tokens["user"]["email_verified"] is True
    auth = {"Authorization": "Bearer " + tokens["access_token"]}
    assert requests.get(base + "/me", headers=auth, timeout=10).status_code == 200
    assert requests.post(base + "/signin", json={"email": "lin@example.com",
                                                 "password": PASSWORD}, timeout=10
                         ).status_code == 200
