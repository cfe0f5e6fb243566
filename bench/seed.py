"""The benchmark's data: a database of N users and 3 sessions each, and the credentials the
load generator sends (access tokens, SMS and e-mailed codes, refresh tokens).

Users and sessions are bulk-loaded (LOAD DATA LOCAL INFILE from generated TSV files), a
database already loaded at the right size is reused, and what earlier runs left (their
sessions, codes, events) is deleted first. Everything a request presents is made by the
project's own code, in-process against the same database: access and refresh tokens by
`tokens.issue`, codes by the one-time-credential engine (`codes.send`), password hashes by
`passwords.hash_password`; the signing key is the project's, made on first use and stored in
that database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project, when run from a checkout
CACHE = Path(__file__).resolve().parent / ".cache"
BIN = Path(sys.executable).parent

SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
#: Users 0 .. PASSWORD_USERS-1 have a real argon2id hash of password_of(i). Password sign-in
#: is limited per account (SIGNIN_LIMIT_PER_ACCOUNT, 10/minute): the load cycles through them.
PASSWORD_USERS = 500
SESSIONS_PER_USER = 3
#: Seeded sessions carry this user agent; everything else in `sessions` is from earlier runs.
SEED_AGENT = "bench-seed"
#: Access tokens the token-check endpoints cycle through (distinct sessions of distinct users).
ACCESS_TOKENS = 2000
#: Access tokens outlive the whole run (they are checked minutes after they were issued).
ACCESS_TOKEN_TTL = 3600
WORKERS = 4  # processes making tokens and codes (mostly waiting on commits)


@dataclass(frozen=True)
class Target:
    """One benchmark database and its size."""

    database: str
    users: int
    redis_db: int
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"

    @property
    def sessions(self) -> int:
        return self.users * SESSIONS_PER_USER

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self, database: str | None = None) -> Any:
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               database=database, autocommit=True, local_infile=True)


def email_of(index: int) -> str:
    return f"bench-{index:07d}@example.com"


def phone_of(index: int) -> str:
    return f"+1650{2000000 + index:07d}"  # valid US mobile numbers, one per user


def password_of(index: int) -> str:
    return f"bench passphrase {index:07d} quiet river"


def app_config(target: Target, public_base_url: str) -> dict[str, Any]:
    """What the in-process app and the served one share (same key, issuer, database)."""
    return {"DATABASE_URL": target.url, "SECRET_KEY": SECRET_KEY,
            "PUBLIC_BASE_URL": public_base_url}


# -- the database ----------------------------------------------------------------------------
def migrate(target: Target) -> None:
    with target.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{target.database}` "
                       "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    env = {**os.environ, "DATABASE_URL": target.url, "SECRET_KEY": SECRET_KEY,
           "LOG_LEVEL": "WARNING"}
    subprocess.run([str(BIN / "flask"), "--app", "authserver", "db", "upgrade"], cwd=ROOT,
                   env=env, check=True, capture_output=True)


def _count(cursor: Any, sql: str) -> int:
    cursor.execute(sql)
    return int(cursor.fetchone()[0])


def ensure_loaded(target: Target, log: Any = print) -> bool:
    """Users and sessions at the target's size; True when they had to be loaded."""
    migrate(target)
    with target.connect(target.database) as connection, connection.cursor() as cursor:
        users = _count(cursor, "SELECT COUNT(*) FROM users")
        seeded = _count(cursor, "SELECT COUNT(*) FROM sessions WHERE user_agent = "
                                f"'{SEED_AGENT}'") if users == target.users else 0
        hashed = _count(cursor, "SELECT COUNT(*) FROM users WHERE email IN ("
                                f"'{email_of(0)}', '{email_of(PASSWORD_USERS - 1)}') "
                                "AND password_hash LIKE '$argon2id$%'")
        if users == target.users and seeded == target.sessions and hashed == 2:
            cleanup(cursor, log)
            return False
    log(f"  loading {target.users:,} users and {target.sessions:,} sessions into "
        f"{target.database} ...")
    started = time.monotonic()
    # From an empty schema: dropping is much quicker than deleting a partial load.
    with target.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
    migrate(target)
    with target.connect(target.database) as connection, connection.cursor() as cursor:
        _load(cursor, target, log)
    log(f"  loaded in {time.monotonic() - started:.0f} s")
    return True


def cleanup(cursor: Any, log: Any = print) -> None:
    """Delete what earlier runs left: their sessions (with their refresh tokens), codes,
    events and counters, so every run starts from the seeded state."""
    started = time.monotonic()
    cursor.execute("DELETE FROM sessions WHERE user_agent IS NULL OR user_agent <> %s",
                   (SEED_AGENT,))
    for table in ("one_time_codes", "audit_events", "webhook_outbox", "send_cooldowns",
                  "counters", "handoff_codes"):
        cursor.execute(f"DELETE FROM {table}")
    log(f"  cleaned up after earlier runs in {time.monotonic() - started:.1f} s")


def _tsv(path: Path, rows: Iterator[tuple[Any, ...]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write("\t".join(r"\N" if value is None else str(value) for value in row))
            out.write("\n")


def _load(cursor: Any, target: Target, log: Any) -> None:
    hashes = password_hashes()
    shared = hashes[email_of(0)]  # everybody else: one precomputed hash (never tried)
    now = datetime.now(UTC).replace(tzinfo=None)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    expires = (now + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S.%f")
    rng = random.Random(14)
    started = time.monotonic()
    user_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(target.users)]
    # Session-level only: the data is generated consistent, and checking each row's unique
    # and foreign keys against tables larger than the buffer pool is most of a load's time.
    cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
    with tempfile.TemporaryDirectory(prefix="authserver-bench-load-") as folder:
        users_file = Path(folder) / "users.tsv"
        # Sorted by primary key: InnoDB appends to the clustered index instead of splitting
        # pages at random.
        order = sorted(range(target.users), key=user_ids.__getitem__)
        _tsv(users_file, ((user_ids[i], email_of(i), phone_of(i), None,
                           hashes.get(email_of(i), shared), stamp, stamp, 0, None, stamp, stamp)
                          for i in order))
        cursor.execute(
            f"LOAD DATA LOCAL INFILE '{users_file}' INTO TABLE users "
            "(id, email, phone, name, password_hash, email_verified_at, phone_verified_at, "
            "disabled, disabled_at, created_at, updated_at)")
        users_file.unlink()
        log(f"    users in {time.monotonic() - started:.0f} s")
        sessions = sorted((str(uuid.UUID(int=rng.getrandbits(128), version=4)), user_id)
                          for user_id in user_ids for _ in range(SESSIONS_PER_USER))
        sessions_file = Path(folder) / "sessions.tsv"
        _tsv(sessions_file, ((session_id, user_id, "pwd", "api", SEED_AGENT, "10.0.0.1", stamp,
                              stamp, stamp, expires, None, None)
                             for session_id, user_id in sessions))
        del sessions
        cursor.execute(
            f"LOAD DATA LOCAL INFILE '{sessions_file}' INTO TABLE sessions "
            "(id, user_id, amr, client, user_agent, ip, created_at, last_used_at, auth_time, "
            "expires_at, revoked_at, revoked_reason)")
        log(f"    sessions in {time.monotonic() - started:.0f} s")
    cursor.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
    cursor.execute("ANALYZE TABLE users, sessions")


def _hash(index: int) -> tuple[str, str]:
    from authserver import passwords

    return email_of(index), passwords.hash_password(password_of(index))


def password_hashes() -> dict[str, str]:
    """The password users' argon2id hashes (made once, then kept in bench/.cache)."""
    from authserver import passwords

    path = CACHE / "password-hashes.json"
    if path.exists():
        cached: dict[str, str] = json.loads(path.read_text())
        sample = cached.get(email_of(0), "")
        if len(cached) == PASSWORD_USERS and not passwords.needs_rehash(sample):
            return cached
    with ProcessPoolExecutor(os.cpu_count() or 2,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        made = dict(pool.map(_hash, range(PASSWORD_USERS), chunksize=25))
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(made))
    return made


# -- credentials, made by the project's own code ---------------------------------------------
_app: Any = None


def _init_worker(config: dict[str, Any]) -> None:
    global _app
    from authserver import create_app

    _app = create_app({**config, "RATELIMIT_ENABLED": False, "LOG_LEVEL": "WARNING",
                       "ACCESS_TOKEN_TTL": ACCESS_TOKEN_TTL})


def _issue(indexes: list[int]) -> list[tuple[str, str]]:
    """(access token, refresh token) of a new session for each user: `tokens.issue`."""
    from authserver import accounts, tokens
    from authserver.extensions import db

    out = []
    with _app.app_context():
        for index in indexes:
            user = accounts.by_email(email_of(index))
            if user is None:
                raise LookupError(f"{email_of(index)} was not loaded")
            issued = tokens.issue(user, ["pwd"])
            out.append((issued.access_token, issued.refresh_token))
        db.session.commit()
    return out


def _codes(kind: str, indexes: list[int]) -> list[str]:
    """A fresh code for each user, sent through the engine (`codes.send`) to a sender that
    keeps it: the JSON body that signs in with it."""
    from authserver import codes
    from authserver.flows import magic_link, sms_otp

    purpose = sms_otp.PURPOSE if kind == "sms" else magic_link.PURPOSE
    bodies = []
    with _app.test_request_context():
        for index in indexes:
            subject = phone_of(index) if kind == "sms" else email_of(index)
            kept: list[str | None] = []

            def keep(_challenge_id: str, code: str | None, kept: list[str | None] = kept) -> None:
                kept.append(code)

            codes.send(purpose, subject, keep)
            field = "phone" if kind == "sms" else "email"
            bodies.append(json.dumps({field: subject, "code": kept[0]}))
    return bodies


def public_key(config: dict[str, Any]) -> dict[str, str]:
    """The project's active signing key's public half, and the issuer and audience."""
    from cryptography.hazmat.primitives import serialization

    from authserver.config import settings
    from authserver.keys import keyring

    _init_worker(config)
    with _app.app_context():
        key = keyring().active()
        pem = key.verifying_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"public_key_pem": pem.decode(), "issuer": settings().jwt_issuer,
                "audience": settings().jwt_audience, "algorithm": key.algorithm, "kid": key.kid}


class Maker:
    """Processes that make credentials in parallel, each with its own app."""

    def __init__(self, target: Target, config: dict[str, Any]) -> None:
        self.target = target
        self.pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(config,))
        # Users that already got a code this run, per kind: an SMS code replaces the phone's
        # earlier one, so each code goes to a user of its own.
        self.next_user = {"sms": PASSWORD_USERS, "email": PASSWORD_USERS,
                          "tokens": PASSWORD_USERS}

    def close(self) -> None:
        self.pool.shutdown()

    def _users(self, kind: str, count: int) -> list[int]:
        """The next `count` users for `kind`. Tokens may come round to a user again (a user
        has many sessions); codes may not: a used code kills its subject's other codes, so
        there are at most as many as users (the run reports it if the load wants more)."""
        start = self.next_user[kind]
        others = self.target.users - PASSWORD_USERS
        if kind != "tokens":
            count = min(count, self.target.users - start)
        self.next_user[kind] = start + count
        return [PASSWORD_USERS + (start - PASSWORD_USERS + i) % others for i in range(count)]

    def _split(self, indexes: list[int]) -> list[list[int]]:
        size = max(1, -(-len(indexes) // (WORKERS * 4)))
        return [indexes[i:i + size] for i in range(0, len(indexes), size)]

    def tokens(self, count: int) -> list[tuple[str, str]]:
        chunks = self._split(self._users("tokens", count))
        return [pair for part in self.pool.map(_issue, chunks) for pair in part]

    def codes(self, kind: str, count: int) -> list[str]:
        chunks = self._split(self._users(kind, count))
        return [body for part in self.pool.map(_codes, [kind] * len(chunks), chunks)
                for body in part]


def _timed(call: Any, seconds: float) -> float:
    """Calls per second of `call`, one thread, for about `seconds`."""
    call()  # warm
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - started)


def _in_process(token: str, email: str, password: str) -> dict[str, float]:
    from authserver import access_tokens, accounts, auth, passwords
    from authserver.extensions import db

    with _app.app_context():
        user = accounts.by_email(email)
        stored = user.password_hash if user is not None else None
        figures = {
            "offline_verify_per_s": _timed(lambda: access_tokens.verify(token), 1.0),
            "verify_with_lookup_per_s": _timed(lambda: auth.verify(token), 1.0),
            "argon2id_verify_ms": 1e3 / _timed(
                lambda: passwords.verify_password(stored, password), 1.0),
        }
        db.session.remove()
    return figures


def in_process(maker: Maker, token: str) -> dict[str, float]:
    """What the old bench/verify_tokens.py printed: the project's own calls, one thread, no
    HTTP: signature and claims alone, with the session lookup, and one argon2id check."""
    future = maker.pool.submit(_in_process, token, email_of(0), password_of(0))
    return dict(future.result())
