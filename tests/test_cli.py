"""flask users … and flask keys …"""

from __future__ import annotations

from authserver import accounts, passwords


def test_create_admin_with_password_from_stdin(app, runner, client):
    result = runner.invoke(args=["users", "create", "Boss@Example.com", "--role", "admin",
                                 "--role", "ops", "--password-stdin"],
                           input="a long enough passphrase\n")
    assert result.exit_code == 0, result.output
    assert "a long enough passphrase" not in result.output
    user = accounts.by_email("boss@example.com")
    assert sorted(user.role_names) == ["admin", "ops"]
    assert passwords.verify_password(user.password_hash, "a long enough passphrase")
    signin = client.post("/api/v1/signin", json={"email": "boss@example.com",
                                                 "password": "a long enough passphrase"})
    assert signin.status_code == 200 and signin.get_json()["user"]["roles"] == ["admin", "ops"]


def test_create_refuses_weak_password_and_duplicates(app, runner):
    weak = runner.invoke(args=["users", "create", "a@example.com", "--password-stdin"],
                         input="password\n")
    assert weak.exit_code != 0 and "weak password" in weak.output
    assert runner.invoke(args=["users", "create", "a@example.com"]).exit_code == 0
    again = runner.invoke(args=["users", "create", "a@example.com"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_keys_rotate_and_list(app, runner):
    first = runner.invoke(args=["keys", "list"])
    assert first.exit_code == 0 and "active" in first.output
    rotated = runner.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0 and "new active key" in rotated.output
    listing = runner.invoke(args=["keys", "list"]).output
    assert listing.count("active") == 1 and listing.count("retired") == 1
    assert "PRIVATE" not in listing


def test_disable_and_enable(app, runner, client):
    runner.invoke(args=["users", "create", "x@example.com", "--password-stdin"],
                  input="a long enough passphrase\n")
    assert runner.invoke(args=["users", "disable", "x@example.com"]).exit_code == 0
    body = {"email": "x@example.com", "password": "a long enough passphrase"}
    assert client.post("/api/v1/signin", json=body).status_code == 403
    assert runner.invoke(args=["users", "enable", "x@example.com"]).exit_code == 0
    assert client.post("/api/v1/signin", json=body).status_code == 200
    assert runner.invoke(args=["users", "enable", "nobody@example.com"]).exit_code != 0


def test_prune_deletes_only_long_expired_rows(app, runner, client, clock):
    from authserver.extensions import db
    from authserver.models import RefreshToken, Session

    old = client.post("/api/v1/signup", json={"email": "old@example.com",
                                              "password": "a long enough passphrase"}).get_json()
    client.post("/api/v1/logout", headers={"Authorization": "Bearer " + old["access_token"]})
    clock.travel(8 * 24 * 3600)
    fresh = client.post("/api/v1/signin", json={"email": "old@example.com",
                                                "password": "a long enough passphrase"})
    result = runner.invoke(args=["prune"])
    assert result.exit_code == 0 and "sessions: 1" in result.output
    assert db.session.query(Session).count() == 1  # the fresh one stays
    assert db.session.query(RefreshToken).count() == 1
    me = client.get("/api/v1/me",
                    headers={"Authorization": "Bearer " + fresh.get_json()["access_token"]})
    assert me.status_code == 200


def test_reset_mfa_removes_the_second_factor(app, runner, client):
    from tests.conftest import PASSWORD
    from tests.helpers import enrol_totp

    user = accounts.create(email="boss@example.com",
                           password_hash=passwords.hash_password(PASSWORD), roles=["admin"])
    enrol_totp(user.id)
    signin = {"email": "boss@example.com", "password": PASSWORD}
    assert client.post("/api/v1/signin", json=signin).get_json()["code"] == "mfa_required"
    result = runner.invoke(args=["users", "reset-mfa", "Boss@Example.com"])
    assert result.exit_code == 0 and "second factor removed" in result.output
    assert client.post("/api/v1/signin", json=signin).status_code == 200
    again = runner.invoke(args=["users", "reset-mfa", "boss@example.com"])
    assert again.exit_code == 0 and "had no second factor" in again.output
    assert runner.invoke(args=["users", "reset-mfa", "nobody@example.com"]).exit_code != 0
