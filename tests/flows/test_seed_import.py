"""Bringing AuthService's users over (`flask users import-seed`, flows/seed_import.py).

The source is always a real MySQL/MariaDB database shaped as Sequelize made it, filled with
hashes from the `bcrypt` package; the target is the app's database, SQLite and MySQL.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, insert, select

from authserver import accounts, legacy_users, passwords
from authserver.extensions import db
from authserver.flows import seed_import
from authserver.models import Role, User
from tests.flows.magic_helpers import last_mail
from tests.helpers import problem
from tests.seed_source import SeedSource, bcrypt_hash

OLD = "my old node password"
BOB_OLD = "bob's password from 2019"
HERE = "a password set on this server"


@pytest.fixture(params=[("userId", "roleId"), ("UserId", "RoleId")],
                ids=["userId", "UserId"])
def seed(request: pytest.FixtureRequest) -> Iterator[SeedSource]:
    """An AuthService database: 2 good users, one duplicate, 4 invalid rows and one whose
    address is also registered here (by the test)."""
    user_column, role_column = request.param
    source = SeedSource.create(user_column=user_column, role_column=role_column)
    try:
        source.add_user("ada@example.com", bcrypt_hash(OLD), roles=["admin", "user"],
                        created=datetime(2020, 1, 2, 3, 4, 5))
        source.add_user(" Bob@Example.COM", bcrypt_hash(BOB_OLD, "$2a$"), roles=["user"])
        source.add_user("bob@example.com", bcrypt_hash("the second bob"), roles=["admin"])
        source.add_user("not-an-address", bcrypt_hash(OLD))
        source.add_user("dave@example.com", "sha256$0123456789abcdef0123456789abcdef")
        source.add_user("erin@example.com", None)
        source.add_user("taken@example.com", bcrypt_hash(OLD), roles=["admin"])
        source.add_user("gil@example.com", "$2b$31$" + "." * 53)  # days per sign-in
        yield source
    finally:
        source.drop()


def _run(seed: SeedSource, **kwargs: Any) -> seed_import.Report:
    return seed_import.import_users(seed.url, **kwargs)


def _signin(client: Any, email: str, password: str) -> Any:
    return client.post("/api/v1/signin", json={"email": email, "password": password})


def test_import_counts_roles_and_timestamps(app: Any, seed: SeedSource) -> None:
    report = _run(seed)
    assert (report.imported, report.already_present) == (3, 0)
    assert sorted(report.roles_created) == ["admin", "user"]
    assert report.roles_attached == 4  # ada: admin + user, bob: user, taken: admin
    reasons = {skipped.source_id: skipped.reason for skipped in report.skipped}
    assert set(reasons) == {"3", "4", "5", "6", "8"}
    assert reasons["3"].startswith("duplicate address: the same as row 2")
    assert reasons["4"].startswith("invalid e-mail address")
    assert "not a bcrypt hash" in reasons["5"] and "sha256$" not in reasons["5"]
    assert reasons["6"] == "no password hash"
    assert reasons["8"].startswith("the bcrypt cost 31 is above 14")

    db.session.expire_all()
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.role_names == ["admin", "user"]
    assert ada.created_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ada.password_hash is not None and ada.password_hash.startswith("$2b$04$")
    assert ada.email_verified_at is None  # see docs/security.md: AuthService never proved it
    bob = accounts.by_email("bob@example.com")  # normalised; the first row kept
    assert bob is not None and bob.role_names == ["user"]
    assert bob.password_hash is not None and bob.password_hash.startswith("$2a$")
    assert accounts.by_email("dave@example.com") is None
    assert accounts.by_email("erin@example.com") is None


def test_a_rerun_imports_nothing_twice(app: Any, seed: SeedSource) -> None:
    _run(seed, batch_size=2)
    again = _run(seed, batch_size=2)
    assert (again.imported, again.already_present) == (0, 3)
    assert again.roles_created == [] and again.roles_attached == 0
    assert len(again.skipped) == 5
    assert db.session.scalar(select(func.count()).select_from(User)) == 3
    assert db.session.scalar(select(func.count()).select_from(Role)) == 2
    # A user added to the source since is all the next run brings.
    seed.add_user("new@example.com", bcrypt_hash(OLD), roles=["user"])
    third = _run(seed)
    assert (third.imported, third.already_present, third.roles_attached) == (1, 3, 1)


def test_an_address_registered_here_is_left_alone(app: Any, client: Any,
                                                  seed: SeedSource) -> None:
    mine = accounts.create(email="taken@example.com",
                           password_hash=passwords.hash_password(HERE))
    db.session.commit()
    before = mine.password_hash
    report = _run(seed)
    assert (report.imported, report.already_present) == (2, 1)
    db.session.expire_all()
    mine = accounts.by_email("taken@example.com")
    assert mine is not None and mine.password_hash == before and mine.role_names == []
    assert _signin(client, "taken@example.com", HERE).status_code == 200
    assert _signin(client, "taken@example.com", OLD).status_code == 401


def test_dry_run_writes_nothing(app: Any, seed: SeedSource) -> None:
    report = _run(seed, dry_run=True, batch_size=1)
    assert (report.imported, report.already_present, report.roles_attached) == (3, 0, 4)
    assert sorted(report.roles_created) == ["admin", "user"]
    assert db.session.scalar(select(func.count()).select_from(User)) == 0
    assert db.session.scalar(select(func.count()).select_from(Role)) == 0
    assert _run(seed).imported == 3


def test_imported_user_signs_in_with_the_old_password_and_is_upgraded(
        app: Any, client: Any, seed: SeedSource) -> None:
    _run(seed)
    response = _signin(client, "ada@example.com", OLD)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["roles"] == ["admin", "user"]
    db.session.expire_all()
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.password_hash is not None
    assert ada.password_hash.startswith("$argon2id$")
    assert not passwords.needs_rehash(ada.password_hash)
    assert _signin(client, "ada@example.com", OLD).status_code == 200
    # $2a$, and the address as it was typed there.
    assert _signin(client, "BOB@example.com", BOB_OLD).status_code == 200


def test_a_wrong_password_for_an_imported_user_is_like_any_other(
        app: Any, client: Any, seed: SeedSource) -> None:
    _run(seed)
    wrong = _signin(client, "ada@example.com", OLD + "!")
    unknown = _signin(client, "nobody@example.com", OLD + "!")
    assert wrong.status_code == unknown.status_code == 401
    assert problem(wrong)["code"] == "invalid_credentials"
    assert wrong.data == unknown.data
    db.session.expire_all()
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.password_hash is not None
    assert ada.password_hash.startswith("$2b$")  # no upgrade without the right password
    # The duplicate row's password was never imported.
    assert _signin(client, "bob@example.com", "the second bob").status_code == 401


def test_wrong_password_for_a_bcrypt_account_takes_as_long_as_an_unknown_address(
        app: Any, client: Any, seed: SeedSource) -> None:
    _run(seed)

    def attempt(email: str) -> float:
        started = time.perf_counter()
        assert _signin(client, email, "nope-nope-nope").status_code == 401
        return time.perf_counter() - started

    attempt("warm@example.com")  # the dummy hash is made once per process
    unknown = statistics.median(attempt("nobody@example.com") for _ in range(3))
    imported = statistics.median(attempt("ada@example.com") for _ in range(3))
    # Cost-4 bcrypt takes about 1 ms against argon2's ~30: unpadded, this ratio is ~0.1.
    assert 0.5 < imported / unknown < 2.0


def test_mark_verified(app: Any, seed: SeedSource) -> None:
    _run(seed, mark_verified=True)
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.email_verified_at is not None


def test_a_source_without_roles_tables(app: Any) -> None:
    source = SeedSource.create(roles_tables=False)
    try:
        source.add_user("ada@example.com", bcrypt_hash(OLD, "$2y$"))
        report = _run(source)
    finally:
        source.drop()
    assert (report.imported, report.roles_attached, report.roles_created) == (1, 0, [])
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.role_names == []


def test_a_role_name_refused_here_is_reported_not_attached(app: Any, seed: SeedSource) -> None:
    seed.add_user("fay@example.com", bcrypt_hash(OLD), roles=["super user", "user"])
    report = _run(seed)
    assert report.imported == 4
    assert len(report.roles_skipped) == 1 and "'super user'" in report.roles_skipped[0]
    fay = accounts.by_email("fay@example.com")
    assert fay is not None and fay.role_names == ["user"]


def test_a_source_without_users_table_or_unreachable_is_an_error(app: Any) -> None:
    empty = SeedSource.create(roles_tables=False)
    try:
        empty.execute(["DROP TABLE `Users`"])
        with pytest.raises(legacy_users.SourceError, match="has no Users table"):
            _run(empty)
    finally:
        empty.drop()
    with pytest.raises(legacy_users.SourceError, match="can't read the source database"):
        seed_import.import_users("mysql://root:hunter2@127.0.0.1:1/nothing")
    with pytest.raises(legacy_users.SourceError, match="not a database URL"):
        seed_import.import_users("not a url")


@pytest.mark.parametrize("mark_verified", [False, True], ids=["default", "mark_verified"])
def test_the_first_magic_link_sign_in_evicts_the_imported_password_unless_marked_verified(
        app: Any, client: Any, seed: SeedSource, mark_verified: bool) -> None:
    # AuthService never proved anyone owned their address: by default an imported password
    # is one set before its address was proven, and the first proof removes it (LC-1).
    _run(seed, mark_verified=mark_verified)
    assert client.post("/api/v1/magic-link/request",
                       json={"email": "ada@example.com"}).status_code == 202
    token, _code = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")
    linked = client.post("/api/v1/magic-link/verify", json={"token": token})
    assert linked.status_code == 200, linked.get_json()
    assert linked.get_json()["user"]["roles"] == ["admin", "user"]  # the imported account
    expected = 200 if mark_verified else 401
    assert _signin(client, "ada@example.com", OLD).status_code == expected


def test_an_address_registered_during_the_import_counts_as_already_present(
        app: Any, client: Any, seed: SeedSource) -> None:
    # Someone signs up as ada@ between the import's look-up of the batch's addresses and its
    # INSERTs (committed on a connection of its own, as another request's would be).
    other = create_engine(db.engine.url)
    raced: list[bool] = []

    def sign_up_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if raced or not statement.lstrip().startswith("SELECT users.email"):
            return
        raced.append(True)
        with other.begin() as racer:
            racer.execute(insert(User.__table__).values(
                id="racer", email="ada@example.com", disabled=False,
                password_hash=passwords.hash_password(HERE),
                created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))

    event.listen(db.engine, "after_cursor_execute", sign_up_meanwhile)
    try:
        report = _run(seed)
    finally:
        event.remove(db.engine, "after_cursor_execute", sign_up_meanwhile)
        other.dispose()
    assert raced
    assert (report.imported, report.already_present) == (2, 1)
    assert report.roles_attached == 2  # bob: user, taken: admin; none for the racer's ada
    db.session.expire_all()
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.id == "racer" and ada.role_names == []
    assert _signin(client, "ada@example.com", HERE).status_code == 200
    assert _signin(client, "bob@example.com", BOB_OLD).status_code == 200
