"""Issue 11's "Done when", told as one person's story over real HTTP: gunicorn on MySQL, every
mail through the SMTP backend to a local catcher, texts to the file outbox.

A password sign-up verifies its address from the mail; a forgotten password is reset from
the mail and every old refresh token dies; the e-mail account adds a phone and then signs in
by SMS into the same account; the address is changed, confirmed at the new one, and the old
one is told; a session is ended from the list; deleting the account removes its data.
(Importing the seed service's users is tests/e2e/test_seed_import_http.py.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pymysql
import pytest
import requests
from sqlalchemy.engine import make_url

from tests.fakes.smtp_server import FakeSmtp
from tests.flows.magic_helpers import code_in, parts_of
from tests.flows.sms_helpers import last_code

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "seven purple lanterns over the bay"
EMAIL = "noor@example.com"
NEW_EMAIL = "noor.h@example.org"
PHONE = "+14155550123"


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def _auth(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": "Bearer " + tokens["access_token"]}


def _mail_to(smtp: FakeSmtp, address: str, count: int) -> EmailMessage:
    """The newest mail to `address`, once `count` mails in all have arrived."""
    mails = [m for m in smtp.wait_for(count) if m["To"] == address]
    assert mails, f"no mail to {address}"
    return mails[-1]


def _token_of(text: str, path: str) -> str:
    """The token of the mail's link to `path`."""
    match = re.search(re.escape(path) + r"\?token=([\w.-]+)", text)
    assert match, f"no {path} link in {text!r}"
    return match.group(1)


def _rows(database_url: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    url = make_url(database_url)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                           password=url.password or "", database=url.database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_an_account_lives_its_life_over_http_on_mysql(live_server, smtp):
    server = live_server(EMAIL_BACKEND="smtp", SMTP_HOST=smtp.host, SMTP_PORT=smtp.port,
                         SMTP_TIMEOUT=5, MAGIC_LINK_RESEND_COOLDOWN=0, OTP_RESEND_COOLDOWN=0)
    api = server.url + "/api/v1"
    post = requests.post

    # 1. A password sign-up verifies its address with the mail's code.
    signed_up = post(api + "/signup", json={"email": EMAIL, "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    user_id = signed_up.json()["user"]["id"]
    assert signed_up.json()["user"]["email_verified"] is False
    text, _ = parts_of(_mail_to(smtp, EMAIL, 1))
    assert _token_of(text, "/auth/verify-email")
    verified = post(api + "/email/verify", json={"email": EMAIL, "code": code_in(text)},
                    timeout=10)
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True

    # 2. Forgotten: reset from the mail; every refresh token from before is refused.
    old = [post(api + "/signin", json={"email": EMAIL, "password": PASSWORD},
                timeout=10).json() for _ in range(2)]
    assert post(api + "/password/forgot", json={"email": EMAIL},
                timeout=10).json() == {"sent": True}
    text, _ = parts_of(_mail_to(smtp, EMAIL, 2))
    reset = post(api + "/password/reset", timeout=10,
                 json={"token": _token_of(text, "/auth/reset"), "password": NEW_PASSWORD})
    assert reset.status_code == 200, reset.text
    assert reset.json()["user"]["id"] == user_id
    for tokens in [*old, signed_up.json()]:
        refused = post(api + "/token/refresh", json={"refresh_token": tokens["refresh_token"]},
                       timeout=10)
        assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
    assert "password was changed" in _mail_to(smtp, EMAIL, 3)["Subject"]
    assert post(api + "/signin", json={"email": EMAIL, "password": PASSWORD},
                timeout=10).status_code == 401
    me = reset.json()

    # 3. The e-mail account adds a phone, then signs in by SMS into the same account.
    assert post(api + "/me/phone", json={"phone": PHONE}, headers=_auth(me),
                timeout=10).status_code == 202
    outbox = server.env["OUTBOX_DIR"]
    added = post(api + "/me/phone/verify", headers=_auth(me), timeout=10,
                 json={"phone": PHONE, "code": last_code(outbox, PHONE)})
    assert added.status_code == 200, added.text
    assert added.json()["phone"] == PHONE and added.json()["phone_verified"] is True
    assert post(api + "/otp/request", json={"phone": PHONE}, timeout=10).status_code == 202
    by_sms = post(api + "/otp/verify", json={"phone": PHONE, "code": last_code(outbox, PHONE)},
                  timeout=10)
    assert by_sms.status_code == 200, by_sms.text
    assert by_sms.json()["user"]["id"] == user_id

    # 4. A new address: confirmed there, and the old one is told.
    assert post(api + "/me/email", json={"email": NEW_EMAIL}, headers=_auth(me),
                timeout=10).status_code == 202
    text, _ = parts_of(_mail_to(smtp, NEW_EMAIL, 4))
    switched = post(api + "/email/verify", timeout=10,
                    json={"email": NEW_EMAIL, "code": code_in(text)})
    assert switched.status_code == 200, switched.text
    assert switched.json()["email"] == NEW_EMAIL and switched.json()["email_verified"] is True
    notice = _mail_to(smtp, EMAIL, 5)
    assert notice["Subject"].endswith("e-mail address was changed")
    assert "If it wasn't you" in parts_of(notice)[0]
    assert post(api + "/signin", json={"email": NEW_EMAIL, "password": NEW_PASSWORD},
                timeout=10).status_code == 200

    # 5. A session ended from the list: its tokens stop at once, the others go on.
    listed = requests.get(api + "/me/sessions", headers=_auth(me), timeout=10).json()
    sms_session = next(row for row in listed["sessions"] if row["amr"] == ["sms"])
    ended = requests.delete(api + f"/me/sessions/{sms_session['id']}", headers=_auth(me),
                            timeout=10)
    assert ended.status_code == 204
    assert requests.get(api + "/me", headers=_auth(by_sms.json()),
                        timeout=10).status_code == 401
    assert post(api + "/token/refresh", json={"refresh_token": by_sms.json()["refresh_token"]},
                timeout=10).status_code == 401
    assert requests.get(api + "/me", headers=_auth(me), timeout=10).status_code == 200

    # 6. Deleting the account removes its data; the address can sign up again.
    assert requests.delete(api + "/me", headers=_auth(me), timeout=10).status_code == 204
    database = server.env["DATABASE_URL"]
    assert _rows(database, "SELECT id FROM users WHERE id = %s", user_id) == []
    assert _rows(database, "SELECT COUNT(*) FROM sessions WHERE user_id = %s", user_id) == [(0,)]
    assert _rows(database, "SELECT COUNT(*) FROM one_time_codes WHERE subject IN (%s, %s, %s)",
                 EMAIL, NEW_EMAIL, PHONE) == [(0,)]
    assert post(api + "/signin", json={"email": NEW_EMAIL, "password": NEW_PASSWORD},
                timeout=10).status_code == 401
    again = post(api + "/signup", json={"email": NEW_EMAIL, "password": PASSWORD}, timeout=10)
    assert again.status_code == 201 and again.json()["user"]["id"] != user_id
