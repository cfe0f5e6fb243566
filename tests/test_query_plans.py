"""Every query on the hot paths uses an index (issue 14): EXPLAIN each statement on MySQL.

Each test drives one hot path through the real app (password sign-in, SMS code, e-mailed link
and code, refresh, isAuthenticated, me, logout, the PKCE hand-off), records every statement the
app sends with its parameters (SQLAlchemy's `before_cursor_execute`), then has MariaDB/MySQL
EXPLAIN each one with those parameters and fails, naming the statement, when a table is read
by a full scan (`type` ALL) or a full index scan (`type` index).

A plan is only worth reading when the optimizer has a choice to make: on a table of three rows
a full scan *is* the cheapest plan. So every table the paths touch is first filled with a few
hundred rows (users, sessions, refresh tokens, codes, hand-off codes, counters, cooldowns,
roles, second factors, audit and webhook rows) and ANALYZEd.

The plans are read right after each path ran, on the data it left: the statistics and the
indexes are what decide between an index and a scan, and those don't change in between.

MySQL only: production runs on MySQL, and its optimizer's plans are the ones that matter
(SQLite's planner is another one). Without a MySQL server this module skips, as the MySQL
half of every other test does.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pymysql
import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import make_url

from authserver import accounts, passwords, session_checks
from authserver.extensions import db
from authserver.models import (
    AuditEvent,
    Counter,
    HandoffCode,
    OneTimeCode,
    RecoveryCode,
    RefreshToken,
    Role,
    SendCooldown,
    Session,
    TotpFactor,
    User,
    WebhookOutbox,
    user_roles,
)
from tests.conftest import PASSWORD, IsolatedClient
from tests.flows import magic_helpers, sms_helpers
from tests.helpers import bearer
from tests.web.conftest import action_of, csrf_from

SEED_USERS = 400
SESSIONS_PER_USER = 3
CALLBACK = "https://app.example.test/callback"
EMAIL = "ada@example.com"
PHONE = "+16502530000"

#: Access types that read a whole table (ALL) or a whole index (index): what this test forbids.
FULL_SCANS = {"ALL", "index"}

#: Statements that read a whole table on purpose, each with why that is the right plan.
#: Matched on the exact statement shape (the table and no WHERE clause), so any filtered read
#: of the same table is still held to an index.
WHOLE_TABLE_READS = {
    # The key ring: a process loads every signing key (active and retired, a handful: retired
    # ones are pruned) into memory, at its first signature and then at most once a minute
    # (keys.REFRESH_INTERVAL); reading every row is what it asks for, and no index can make
    # reading every row cheaper. Verifying a token reads no key unless its `kid` is new to the
    # process (then this same statement, at most once a second).
    "signing_keys": re.compile(
        r"^SELECT [\w., ]+ FROM signing_keys ORDER BY signing_keys\.created_at, "
        r"signing_keys\.kid$"),
}

#: Statements that do not read a table, so there is no plan to check:
#: - SET / SHOW / SAVEPOINT / RELEASE / ROLLBACK / COMMIT: session and transaction control.
#: - INSERT … VALUES (with or without ON DUPLICATE KEY UPDATE): a write of the given rows;
#:   its key checks go through the primary key and unique indexes by construction. (MariaDB's
#:   EXPLAIN shows the target table of such an INSERT as type ALL, which is not a read.)
#: An INSERT … SELECT does read: its SELECT part is explained like any SELECT.
#: A SELECT without a table (SELECT 1, GET_LOCK) is explained too; it shows no table.
NOT_TABLE_READS = re.compile(r"^(SET|SHOW|SAVEPOINT|RELEASE|ROLLBACK|COMMIT|BEGIN|XA)\b", re.I)
INSERT_SELECT = re.compile(r"^INSERT\s+INTO\s+\S+\s*\([^()]*\)\s*(SELECT\b.*)\Z", re.I | re.S)
INSERT_VALUES = re.compile(r"^INSERT\b", re.I)
EXPLAINED = re.compile(r"^(SELECT|UPDATE|DELETE|WITH)\b", re.I)


@pytest.fixture
def database_url(mysql_url: str) -> str:
    """MySQL only (see the module's docstring)."""
    return mysql_url


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        # The test client speaks plain http; Secure cookies would not come back.
        "SESSION_COOKIE_SECURE": False,
        # Webhooks on, as in production: the outbox rows are written in the sign-ins' own
        # transactions, with whatever reads that takes.
        "WEBHOOK_URL": "https://hooks.example.test/authserver",
        "WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"q" * 32).decode(),
    }


@pytest.fixture
def client(app: Any) -> Any:
    """One app context per request, as in production (the pages keep CSRF state in `g`)."""
    app.test_client_class = IsolatedClient
    return app.test_client()


# -- seeding ---------------------------------------------------------------------------------
def _hex() -> str:
    return secrets.token_hex(32)


def _seed() -> None:
    """A few hundred rows in every table the hot paths read, then ANALYZE TABLE on each."""
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    users = [{"id": str(uuid.uuid4()), "email": f"seed{i}@seed.example",
              "phone": f"+1650555{i:04d}", "name": None, "password_hash": "$argon2id$seed",
              "email_verified_at": now, "phone_verified_at": now if i % 2 else None,
              "disabled": i % 50 == 0, "disabled_at": None, "created_at": now - i * hour,
              "updated_at": now} for i in range(SEED_USERS)]
    db.session.execute(insert(User), users)
    roles = [{"id": i + 1, "name": f"role-{i:03d}"} for i in range(200)]
    db.session.execute(insert(Role), roles)
    db.session.execute(insert(user_roles), [
        {"user_id": user["id"], "role_id": (i + k) % len(roles) + 1}
        for i, user in enumerate(users) for k in range(2)])
    sessions = [{"id": str(uuid.uuid4()), "user_id": user["id"], "amr": "pwd",
                 "client": "api", "user_agent": "seed", "ip": "192.0.2.1",
                 "created_at": now - (i + k) * hour, "last_used_at": now,
                 "auth_time": now - (i + k) * hour, "expires_at": now + 30 * 24 * hour,
                 "revoked_at": now if k == 0 else None,
                 "revoked_reason": "logout" if k == 0 else None}
                for i, user in enumerate(users) for k in range(SESSIONS_PER_USER)]
    db.session.execute(insert(Session), sessions)
    db.session.execute(insert(RefreshToken), [
        {"session_id": session["id"], "token_hash": _hex(), "parent_id": None,
         "created_at": now, "expires_at": session["expires_at"],
         "rotated_at": now if k == 0 else None}
        for session in sessions for k in range(2)])
    codes = []
    for i, user in enumerate(users):
        for purpose, channel, subject in (("sign_in_sms", "sms", user["phone"]),
                                          ("sign_in_email", "email", user["email"])):
            codes.append({"id": str(uuid.uuid4()), "purpose": purpose,
                          "channel": channel, "subject": subject, "user_id": None,
                          "code_hash": _hex(), "attempts": i % 3, "redirect_to": None,
                          "code_challenge": None, "state": None, "binding_hash": None,
                          "ip": "192.0.2.1", "created_at": now - i * hour,
                          "expires_at": now - i * hour + timedelta(minutes=10),
                          "consumed_at": now if i % 2 else None, "invalidated_at": None})
    db.session.execute(insert(OneTimeCode), codes)
    db.session.execute(insert(HandoffCode), [
        {"code_hash": _hex(), "user_id": user["id"], "challenge_id": None, "amr": "pwd",
         "redirect_to": CALLBACK, "code_challenge": None, "auth_time": None,
         "created_at": now - hour, "expires_at": now - hour + timedelta(seconds=60),
         "used_at": now - hour} for user in users])
    db.session.execute(insert(Counter), [
        {"key": f"seed:{i}", "count": i % 5, "started_at": now - i * timedelta(minutes=1)}
        for i in range(SEED_USERS)])
    db.session.execute(insert(SendCooldown), [
        {"key": f"{channel}:{user[column]}", "next_allowed_at": now - hour}
        for user in users for channel, column in (("sms", "phone"), ("email", "email"))])
    factors = users[: SEED_USERS // 4]
    db.session.execute(insert(TotpFactor), [
        {"user_id": user["id"], "secret_encrypted": "seed", "confirmed_at": now,
         "last_used_step": None, "created_at": now} for user in factors])
    db.session.execute(insert(RecoveryCode), [
        {"user_id": user["id"], "code_hash": _hex(), "created_at": now, "used_at": None}
        for user in factors for _ in range(10)])
    db.session.execute(insert(AuditEvent), [
        {"created_at": now - i * timedelta(minutes=1), "type": "signin.succeeded",
         "user_id": users[i % SEED_USERS]["id"], "actor_id": None, "ip": "192.0.2.1",
         "user_agent": "seed", "method": "password", "outcome": "success", "detail": {}}
        for i in range(SEED_USERS * 2)])
    db.session.execute(insert(WebhookOutbox), [
        {"event_id": f"msg_seed{i}", "type": "user.signed_in", "payload": "{}",
         "created_at": now - i * timedelta(minutes=1), "attempts": 1,
         "next_attempt_at": None, "claimed_by": None, "delivered_at": now,
         "failed_at": None, "last_error": None} for i in range(SEED_USERS)])
    db.session.commit()
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            conn.execute(text(f"ANALYZE TABLE `{table.name}`")).all()


# -- recording and explaining ----------------------------------------------------------------
@dataclass
class Statement:
    path: str
    sql: str
    parameters: Any


@dataclass
class Recorder:
    """The statements the app sent while `recording` was on, by hot path."""

    statements: list[Statement] = field(default_factory=list)

    @contextmanager
    def recording(self, path: str) -> Iterator[None]:
        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:
            # One statement per parameter set of an executemany: each is a statement run.
            for one in (parameters if executemany else [parameters]):
                self.statements.append(Statement(path, statement, one))

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            yield
        finally:
            event.remove(db.engine, "before_cursor_execute", record)

    def add_token_checks(self, path: str, access_token: str) -> None:
        """The token check's statements (session_checks.py runs them on a pooled DBAPI
        connection, which SQLAlchemy's events don't see), with the token's session id."""
        session_id = jwt.decode(access_token, options={"verify_signature": False})["sid"]
        dialect = (session_checks.engine() or db.engine).dialect
        for statement in session_checks.STATEMENTS:
            self.statements.append(
                Statement(path, statement.compiled(dialect)[0], {"session_id": session_id}))


def _explainable(statement: Statement) -> str | None:
    """The SQL to EXPLAIN for `statement` (see NOT_TABLE_READS), or None if it reads no table."""
    sql = statement.sql.strip()
    if NOT_TABLE_READS.match(sql):
        return None
    if INSERT_VALUES.match(sql):
        select_part = INSERT_SELECT.match(sql)
        return select_part.group(1) if select_part else None
    assert EXPLAINED.match(sql), f"a statement this test does not know how to judge: {sql}"
    return sql


def _connect(database_url: str) -> Any:
    url = make_url(database_url)
    return pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306,
                           user=url.username or "root", password=url.password or "",
                           database=url.database, cursorclass=pymysql.cursors.DictCursor)


#: The tables a statement names (to check a path reached the rows it is about).
NAMED_TABLES = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+`?(\w+)", re.I)


@dataclass
class Verdict:
    #: Every table some explained statement names.
    tables: set[str]
    #: One line per full scan: the path, the statement and the plan's row.
    scans: list[str]
    explained: int


def _judge(statements: list[Statement], database_url: str) -> Verdict:
    tables: set[str] = set()
    scans: list[str] = []
    explained = 0
    conn = _connect(database_url)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                sql = _explainable(statement)
                if sql is None:
                    continue
                # With the parameters the app sent: a plan can depend on the values (a
                # constant that matches no row, a range that covers the table).
                cursor.execute("EXPLAIN " + sql, statement.parameters or None)
                explained += 1
                tables.update(NAMED_TABLES.findall(sql))
                for row in cursor.fetchall():
                    table = row["table"]
                    # No table (SELECT 1, "Impossible WHERE noticed after reading const
                    # tables"), or a temporary result of this statement (<derived2>,
                    # <subquery3>, <union1,2>) whose own reads have rows of their own.
                    if table is None or table.startswith("<"):
                        continue
                    if row["type"] not in FULL_SCANS:
                        continue
                    allowed = WHOLE_TABLE_READS.get(table)
                    if allowed is not None and allowed.match(" ".join(sql.split())):
                        continue
                    scans.append(
                        f"[{statement.path}] {table}: type={row['type']} key={row['key']} "
                        f"rows={row['rows']} extra={row['Extra']}\n    {' '.join(sql.split())}"
                        f"\n    parameters: {statement.parameters!r}")
    finally:
        conn.close()
    return Verdict(tables, scans, explained)


# -- the hot paths ---------------------------------------------------------------------------
def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _password_user(email: str = EMAIL) -> User:
    user = accounts.create(email=email, password_hash=passwords.hash_password(PASSWORD))
    db.session.commit()
    return user


def _signed_in(client: Any, email: str = EMAIL) -> dict[str, Any]:
    """A token response for a password user (made here), outside any recording."""
    _password_user(email)
    response = client.post("/api/v1/signin", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response


def password_signin(app: Any, client: Any, recorder: Recorder) -> None:
    _password_user()
    with recorder.recording("password sign-in"):
        _ok(client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD}))
        # A wrong password and an unknown address: a login burst is mostly these too.
        _ok(client.post("/api/v1/signin", json={"email": EMAIL, "password": "wrong " * 3}),
            401)
        _ok(client.post("/api/v1/signin",
                        json={"email": "nobody@example.com", "password": PASSWORD}), 401)


def sms_code(app: Any, client: Any, recorder: Recorder) -> None:
    outbox = app.config["OUTBOX_DIR"]
    with recorder.recording("SMS code"):
        _ok(client.post("/api/v1/otp/request", json={"phone": PHONE}), 202)
        code = sms_helpers.last_code(outbox, PHONE)
        _ok(client.post("/api/v1/otp/verify",
                        json={"phone": PHONE, "code": sms_helpers.wrong_code(code)}), 401)
        _ok(client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code}))
        # A guess at a phone with no live code (the decoy write keeps its timing).
        _ok(client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code}), 401)


def magic_link(app: Any, client: Any, recorder: Recorder) -> None:
    outbox = app.config["OUTBOX_DIR"]
    by_code = "bob@example.com"
    with recorder.recording("e-mailed link and code"):
        _ok(client.post("/api/v1/magic-link/request", json={"email": EMAIL}), 202)
        token, _ = magic_helpers.last_mail(outbox, EMAIL)
        _ok(client.post("/api/v1/magic-link/verify", json={"token": token}))
        _ok(client.post("/api/v1/magic-link/request", json={"email": by_code}), 202)
        _, code = magic_helpers.last_mail(outbox, by_code)
        _ok(client.post("/api/v1/magic-link/verify", json={
            "email": by_code, "code": magic_helpers.wrong_code(code)}), 401)
        _ok(client.post("/api/v1/magic-link/verify", json={"email": by_code, "code": code}))


def refresh(app: Any, client: Any, recorder: Recorder) -> None:
    first = _signed_in(client)["refresh_token"]
    with recorder.recording("refresh"):
        second = _ok(client.post("/api/v1/token/refresh",
                                 json={"refresh_token": first})).get_json()["refresh_token"]
        # A concurrent client's replay inside the grace window gets the same successor.
        replay = _ok(client.post("/api/v1/token/refresh", json={"refresh_token": first}))
        assert replay.get_json()["refresh_token"] == second
        _ok(client.post("/api/v1/token/refresh", json={"refresh_token": second}))
        _ok(client.post("/api/v1/token/refresh", json={"refresh_token": "x" * 43}), 401)


def is_authenticated(app: Any, client: Any, recorder: Recorder) -> None:
    access = _signed_in(client)["access_token"]
    with recorder.recording("isAuthenticated"):
        _ok(client.get("/api/v1/isAuthenticated", headers=bearer(access)))
    recorder.add_token_checks("isAuthenticated", access)


def me(app: Any, client: Any, recorder: Recorder) -> None:
    access = _signed_in(client)["access_token"]
    with recorder.recording("me"):
        _ok(client.get("/api/v1/me", headers=bearer(access)))
    recorder.add_token_checks("me", access)


def logout(app: Any, client: Any, recorder: Recorder) -> None:
    tokens = [_signed_in(client)] + [_ok(client.post("/api/v1/signin", json={
        "email": EMAIL, "password": PASSWORD})).get_json() for _ in range(2)]
    with recorder.recording("logout"):
        _ok(client.post("/api/v1/logout", headers=bearer(tokens[0]["access_token"])), 204)
        _ok(client.post("/api/v1/logout", headers=bearer(tokens[1]["access_token"]),
                        json={"scope": "others"}), 204)
        _ok(client.post("/api/v1/logout", headers=bearer(tokens[1]["access_token"]),
                        json={"scope": "global"}), 204)
        # The token of a session that just ended: refused at once.
        _ok(client.get("/api/v1/isAuthenticated", headers=bearer(tokens[2]["access_token"])),
            401)


def token_exchange(app: Any, client: Any, recorder: Recorder) -> None:
    _password_user()
    outbox = app.config["OUTBOX_DIR"]
    with recorder.recording("token exchange (PKCE hand-off)"):
        # A password sign-in on the pages, begun by an app.
        verifier, challenge = _pkce()
        html = client.get("/login", query_string={
            "redirect_to": CALLBACK, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": "app-state"}).get_data(as_text=True)
        signed_in = _ok(client.post(action_of(html), data={
            "email": EMAIL, "password": PASSWORD, "csrf_token": csrf_from(html)}), 303)
        code = parse_qs(urlsplit(signed_in.headers["Location"]).query)["code"][0]
        _ok(client.post("/api/v1/token/exchange",
                        json={"code": code, "code_verifier": verifier}))
        _ok(client.post("/api/v1/token/exchange",
                        json={"code": code, "code_verifier": verifier}), 401)
        # An app's mailed link: the page hands over, the exchange uses the link.
        verifier, challenge = _pkce()
        _ok(client.post("/api/v1/magic-link/request", json={
            "email": "app-user@example.com", "redirect_to": CALLBACK,
            "code_challenge": challenge, "code_challenge_method": "S256"}), 202)
        token, _ = magic_helpers.last_mail(outbox, "app-user@example.com")
        page = _ok(client.get("/auth/magic", query_string={"token": token})).get_data(
            as_text=True)
        pressed = _ok(client.post("/auth/magic", data={
            "token": token, "csrf_token": csrf_from(page)}), 303)
        code = parse_qs(urlsplit(pressed.headers["Location"]).query)["code"][0]
        _ok(client.post("/api/v1/token/exchange",
                        json={"code": code, "code_verifier": verifier}))


#: Each path, and the tables it must be seen reading (so a path that recorded nothing, or
#: stopped reaching its rows, can't pass by having nothing to explain).
PATHS: dict[str, tuple[Callable[[Any, Any, Recorder], None], set[str]]] = {
    "password_signin": (password_signin, {"users", "sessions", "counters"}),
    "sms_code": (sms_code, {"one_time_codes", "send_cooldowns", "users"}),
    "magic_link": (magic_link, {"one_time_codes", "send_cooldowns", "users"}),
    "refresh": (refresh, {"refresh_tokens", "sessions", "users"}),
    "is_authenticated": (is_authenticated, {"sessions", "users"}),
    "me": (me, {"sessions", "users", "totp_factors", "recovery_codes"}),
    "logout": (logout, {"sessions"}),
    "token_exchange": (token_exchange, {"handoff_codes", "one_time_codes", "users"}),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_every_statement_of_the_path_uses_an_index(app: Any, client: Any,
                                                   database_url: str, name: str) -> None:
    drive, must_read = PATHS[name]
    _seed()
    recorder = Recorder()
    drive(app, client, recorder)
    verdict = _judge(recorder.statements, database_url)
    assert verdict.explained, f"{name}: no statement was recorded"
    assert must_read <= set(verdict.tables), (
        f"{name} read {sorted(verdict.tables)}, expected at least {sorted(must_read)}")
    if verdict.scans:
        pytest.fail(f"{len(verdict.scans)} full scan(s) on the {name} path:\n"
                    + "\n".join(verdict.scans), pytrace=False)


def test_the_judge_reports_full_table_and_full_index_scans(app: Any,
                                                          database_url: str) -> None:
    """The check itself, on the same seeded tables: a filter on an unindexed column and a read
    of a whole index are reported, a primary-key look-up is not."""
    _seed()
    user_id = db.session.scalar(text("SELECT id FROM users LIMIT 1"))
    scan = "SELECT users.id FROM users WHERE users.name = %(name_1)s"
    whole_index = "SELECT users.email FROM users"
    by_key = "SELECT users.email FROM users WHERE users.id = %(pk_1)s"
    verdict = _judge([Statement("judge", scan, {"name_1": "Ada"}),
                      Statement("judge", whole_index, {}),
                      Statement("judge", by_key, {"pk_1": user_id})], database_url)
    assert verdict.explained == 3
    reported = [line.split(" key=")[0] for line in verdict.scans]
    assert reported == ["[judge] users: type=ALL", "[judge] users: type=index"], verdict.scans
    assert scan in verdict.scans[0] and whole_index in verdict.scans[1]
