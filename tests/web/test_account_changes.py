"""/account and its change pages: phone, password, deletion, per-session sign-out
(SQLite and MySQL; SMS and mail through the file backends' outbox)."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from typing import Any

from authserver import accounts
from authserver.extensions import db
from authserver.models import User
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import email_messages
from tests.flows.sms_helpers import last_code, wrong_code
from tests.helpers import bearer
from tests.web.conftest import csrf_from

EMAIL = "ada@example.com"
PHONE = "+16502530000"
NEW_PASSWORD = "a brand new passphrase for ada"
CHROME_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/126.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


class _Page(HTMLParser):
    """Every element id, and each form's action with its buttons' text."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.forms: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "form":
            self.forms.append(str(found.get("action")))


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def signed_in_page(client: Any, web_login: Any, *, password: str = PASSWORD) -> str:
    response = web_login(EMAIL, password)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    return client.get("/account").get_data(as_text=True)


def post_form(client: Any, path: str, **data: str) -> Any:
    html = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(html), **data})


def test_account_page_reads_well_and_has_unique_ids(app, client, signup, web_login):
    signup()
    client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD},
                headers={"User-Agent": SAFARI_IPHONE})
    user = accounts.by_email(EMAIL)
    assert user is not None
    user.phone = PHONE
    db.session.commit()
    response = web_login(EMAIL, PASSWORD)
    html = client.get("/account", headers={"User-Agent": CHROME_LINUX}).get_data(as_text=True)
    assert response.status_code == 303
    page = parse(html)
    duplicates = [name for name, count in Counter(page.ids).items() if count > 1]
    assert not duplicates, duplicates
    assert "+1 650-253-0000" in html  # INTERNATIONAL format, not the stored E.164
    assert "Safari on iPhone" in html
    for link in ("/account/phone", "/account/password", "/account/delete"):
        assert f'href="{link}"' in html
    # One "Sign out" form per other session (the sign-up's and the iPhone's), not this one.
    assert sum("/sign-out" in action and "/account/sessions/" in action
               for action in page.forms) == 2


def test_buttons_use_the_pages_font(client):
    css = client.get("/static/style.css").get_data(as_text=True)
    assert "button, input, select, textarea { font-family: inherit; }" in css


def test_add_phone_through_the_pages(app, client, signup, web_login, clock):
    signup()
    signed_in_page(client, web_login)
    sent = post_form(client, "/account/phone", phone="(650) 253-0000")
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/account/phone/code")
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    wrong = post_form(client, "/account/phone/code", code=wrong_code(code))
    assert wrong.status_code == 401 and "wrong, expired" in wrong.get_data(as_text=True)
    done = post_form(client, "/account/phone/code", code=code)
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    html = client.get("/account").get_data(as_text=True)
    assert "Your phone number is now +1 650-253-0000." in html
    db.session.expire_all()
    assert accounts.by_email(EMAIL).phone == PHONE  # type: ignore[union-attr]


def test_change_password_through_the_page(app, client, signup, web_login):
    api = signup()
    signed_in_page(client, web_login)
    wrong = post_form(client, "/account/password", current_password="not the password",
                      password=NEW_PASSWORD)
    assert wrong.status_code == 401
    assert "The current password is incorrect." in wrong.get_data(as_text=True)
    done = post_form(client, "/account/password", current_password=PASSWORD,
                     password=NEW_PASSWORD)
    assert done.status_code == 303
    assert "other sessions were signed out" in client.get("/account").get_data(as_text=True)
    assert client.get("/api/v1/me", headers=bearer(api["access_token"])).status_code == 401
    assert "password was changed" in email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1][
        "subject"]


def test_forms_without_csrf_are_refused(client, signup, web_login):
    signup()
    signed_in_page(client, web_login)
    for path, data in (("/account/password", {"current_password": PASSWORD,
                                              "password": NEW_PASSWORD}),
                       ("/account/phone", {"phone": PHONE}),
                       ("/account/delete", {})):
        assert client.post(path, data=data).status_code == 400, path
    assert client.get("/account").status_code == 200


def test_stale_sign_in_is_asked_to_sign_in_again(app, client, signup, web_login, clock):
    signup()
    signed_in_page(client, web_login)
    clock.travel(601)
    for path in ("/account/phone", "/account/password", "/account/delete"):
        page = client.get(path)
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "Sign in again" in html, path
        assert 'href="/login"' in html and 'action="/logout"' in html
        refused = client.post(path, data={"csrf_token": csrf_from(html), "phone": PHONE,
                                          "current_password": PASSWORD,
                                          "password": NEW_PASSWORD})
        assert "Sign in again" in refused.get_data(as_text=True)
    assert db.session.scalar(db.select(User).where(User.email == EMAIL)) is not None
    # Signing out and in again opens the pages.
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/account/delete")
                                                           .get_data(as_text=True))})
    signed_in_page(client, web_login)
    assert "Delete your account" in client.get("/account/delete").get_data(as_text=True)


def test_not_signed_in_goes_to_login(client):
    for path in ("/account/phone", "/account/password", "/account/delete"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_delete_account_through_the_page(app, client, signup, web_login):
    api = signup()
    signed_in_page(client, web_login)
    done = post_form(client, "/account/delete")
    assert done.status_code == 200
    assert "Your account was deleted" in done.get_data(as_text=True)
    assert client.get("/account").status_code == 302
    assert client.get("/api/v1/me", headers=bearer(api["access_token"])).status_code == 401
    db.session.expire_all()
    assert accounts.by_email(EMAIL) is None
    again = client.post("/api/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    assert again.status_code == 201


def test_sign_out_one_session_from_the_page(app, client, signup, web_login):
    api = signup()
    bob = signup("bob@example.com")
    html = signed_in_page(client, web_login)
    sessions = client.get("/api/v1/me/sessions", headers=bearer(api["access_token"])
                          ).get_json()["sessions"]
    api_sid = next(row["id"] for row in sessions if row["current"])
    bob_sid = client.get("/api/v1/me/sessions", headers=bearer(bob["access_token"])
                         ).get_json()["sessions"][0]["id"]
    csrf = csrf_from(html)
    foreign = client.post(f"/account/sessions/{bob_sid}/sign-out", data={"csrf_token": csrf})
    assert foreign.status_code == 404
    assert client.post(f"/account/sessions/{api_sid}/sign-out").status_code == 400  # no CSRF
    done = client.post(f"/account/sessions/{api_sid}/sign-out", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    assert "That session was signed out." in client.get("/account").get_data(as_text=True)
    refreshed = client.post("/api/v1/token/refresh", json={"refresh_token": api["refresh_token"]})
    assert refreshed.status_code == 401
    assert client.post("/api/v1/token/refresh",
                       json={"refresh_token": bob["refresh_token"]}).status_code == 200
