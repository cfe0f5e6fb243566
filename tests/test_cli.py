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


def test_password_stdin_at_a_terminal_prompts_twice_without_echo(app, runner, monkeypatch):
    """The prompt path through the runner: a mismatch asks again, the password never shows."""
    from authserver import cli

    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(args=["users", "create", "tty@example.com", "--password-stdin"],
                           input="a long enough passphrase\nnot the same one at all\n"
                                 "a long enough passphrase\na long enough passphrase\n")
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output and "Repeat for confirmation:" in result.output
    assert "do not match" in result.output
    assert "a long enough passphrase" not in result.output
    user = accounts.by_email("tty@example.com")
    assert passwords.verify_password(user.password_hash, "a long enough passphrase")


def test_password_stdin_on_a_real_terminal(app, database_url, tmp_path):
    """A real pseudo-terminal: `flask users create --password-stdin` turns echo off."""
    import os
    import pty
    import select
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if not database_url.startswith("sqlite"):
        pytest.skip("one real terminal run is enough; the database plays no part")
    from authserver.extensions import db

    db.session.commit()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": app.config["SECRET_KEY"],
           "EMAIL_BACKEND": "file", "SMS_BACKEND": "file",
           "OUTBOX_DIR": str(tmp_path / "outbox"), "PWNED_PASSWORDS_URL": ""}
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "authserver", "users", "create",
         "pty@example.com", "--password-stdin"],
        stdin=slave, stdout=slave, stderr=slave, cwd=root, env=env, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, f"no {marker!r} in {seen!r}"
            try:
                chunk = os.read(master, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk

    try:
        read_until(b"Password:")
        os.write(master, b"a long enough passphrase\n")
        read_until(b"Repeat for confirmation:")
        os.write(master, b"a long enough passphrase\n")
        read_until(b"created user")
        assert process.wait(timeout=30) == 0, seen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert b"passphrase" not in seen, seen  # echo was off
    db.session.expire_all()
    user = accounts.by_email("pty@example.com")
    assert user is not None
    assert passwords.verify_password(user.password_hash, "a long enough passphrase")


def test_keys_reencrypt_reports_what_it_cannot_decrypt(app, runner, tmp_path, database_url):
    """A key made under a SECRET_KEY that is neither current nor a fallback stays as it was,
    the command exits 1; the readable ones are moved to the current key all the same."""
    from sqlalchemy import select

    from authserver import create_app
    from authserver.extensions import db
    from authserver.keys import keyring
    from authserver.models import SigningKey
    from tests.conftest import base_config

    keyring().create()  # under the fixture's SECRET_KEY
    db.session.commit()
    other = "an unrelated secret key of enough length"
    later = create_app({**base_config(tmp_path, database_url), "SECRET_KEY": other})
    with later.app_context():
        keyring().create()  # under another key, active now
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    before = dict(db.session.execute(select(SigningKey.kid, SigningKey.private_key_encrypted))
                  .tuples().all())
    result = runner.invoke(args=["keys", "reencrypt"])
    assert result.exit_code == 1
    assert "re-encrypted 1 signing key(s), 0 authenticator secret(s)" in result.output
    assert "cannot decrypt 1 signing key(s)" in result.output
    db.session.expire_all()
    after = dict(db.session.execute(select(SigningKey.kid, SigningKey.private_key_encrypted))
                 .tuples().all())
    assert len([kid for kid in before if before[kid] != after[kid]]) == 1
