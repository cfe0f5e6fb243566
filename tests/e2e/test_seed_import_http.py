"""Issue 11 §4 over real processes: `flask users import-seed` run as a command against a
gunicorn server's MySQL database, then the imported people sign in over HTTP with the
passwords they had in the Node AuthService."""

from __future__ import annotations

import subprocess

import pymysql
import requests
from sqlalchemy.engine import make_url

from tests.e2e.conftest import BIN, ROOT
from tests.seed_source import SeedSource, bcrypt_hash

OLD = "my old node password"


def _stored_hash(database_url: str, email: str) -> str:
    url = make_url(database_url)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                           password=url.password or "", database=url.database)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE email = %s", (email,))
        row = cur.fetchone()
    assert row is not None
    return str(row[0])


def test_imported_users_sign_in_over_http_with_their_old_passwords(live_server):
    server = live_server()
    seed = SeedSource.create()
    try:
        seed.add_user("Ada@Example.com", bcrypt_hash(OLD), roles=["admin"])
        seed.add_user("bob@example.com", bcrypt_hash("bob's old one", "$2a$"))
        seed.add_user("broken@example.com", "md5:0123456789abcdef")
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "authserver", "users", "import-seed", seed.url],
            cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120)
    finally:
        seed.drop()
    assert result.returncode == 0, result.stderr
    assert "imported: 2" in result.stdout and "skipped (invalid): 1" in result.stdout
    assert "md5:" not in result.stdout and "$2b$04$" not in result.stdout

    base = server.url + "/api/v1"
    database = server.env["DATABASE_URL"]
    assert _stored_hash(database, "ada@example.com").startswith("$2b$")
    signed_in = requests.post(base + "/signin", json={"email": "ada@example.com",
                                                      "password": OLD}, timeout=10)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["roles"] == ["admin"]
    assert _stored_hash(database, "ada@example.com").startswith("$argon2id$")
    again = requests.post(base + "/signin", json={"email": "ada@example.com",
                                                  "password": OLD}, timeout=10)
    assert again.status_code == 200

    wrong = requests.post(base + "/signin", json={"email": "bob@example.com",
                                                  "password": OLD}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    bob = requests.post(base + "/signin", json={"email": "bob@example.com",
                                                "password": "bob's old one"}, timeout=10)
    assert bob.status_code == 200, bob.text
    broken = requests.post(base + "/signin", json={"email": "broken@example.com",
                                                   "password": OLD}, timeout=10)
    assert broken.status_code == 401
