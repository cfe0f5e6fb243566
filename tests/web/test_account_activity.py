"""/account lists the account's recent activity (audit.py): readable labels, newest first,
the last 10, nobody else's."""

from __future__ import annotations

from authserver.extensions import db
from authserver.models import AuditEvent
from tests.conftest import PASSWORD


def test_account_page_shows_recent_activity(client, signup, web_login):
    signup()
    signup("bob@example.com")
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "nope nope 1"})
    web_login("ada@example.com", PASSWORD)
    html = client.get("/account").get_data(as_text=True)
    assert "<h2>Recent activity</h2>" in html
    section = html.split('id="account-activity"', 1)[1].split("</ul>", 1)[0]
    labels = ["Signed in (password)", "Sign-in refused (password)</strong> · wrong secret",
              "Code or link sent", "Signed in (password)", "Account created (password)"]
    start = 0
    for label in labels:  # newest first
        start = section.index(label, start) + 1
    assert section.count("<li>") == 5  # Bob's events are not Ada's


def test_account_page_lists_the_last_ten(app, client, signup, web_login):
    from authserver import clock

    user_id = signup()["user"]["id"]
    db.session.add_all([AuditEvent(created_at=clock.now(), type="token.refreshed",
                                   user_id=user_id, method="refresh", detail={})
                        for _ in range(15)])
    db.session.commit()
    web_login("ada@example.com", PASSWORD)
    html = client.get("/account").get_data(as_text=True)
    section = html.split('id="account-activity"', 1)[1].split("</ul>", 1)[0]
    assert section.count("<li>") == 10
    assert "Signed in (password)" in section  # the web sign-in, newest
