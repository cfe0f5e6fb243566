"""flask users import-seed SOURCE_DATABASE_URL [--dry-run] [--mark-verified]"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from authserver import accounts
from tests.seed_source import SeedSource, bcrypt_hash

OLD = "my old node password"


@pytest.fixture
def seed() -> Iterator[SeedSource]:
    source = SeedSource.create()
    try:
        yield source
    finally:
        source.drop()


def _fill(seed: SeedSource) -> list[str]:
    hashes = [bcrypt_hash(OLD), bcrypt_hash("another old one", "$2a$")]
    seed.add_user("ada@example.com", hashes[0], roles=["admin"])
    seed.add_user("bob@example.com", hashes[1], roles=["user", "admin"])
    seed.add_user("bob@@example.com", bcrypt_hash(OLD))
    seed.add_user("cy@example.com", "plain text password")
    return hashes


def test_import_prints_counts_and_reasons_never_hashes(app: Any, runner: Any, client: Any,
                                                       seed: SeedSource) -> None:
    hashes = _fill(seed)
    result = runner.invoke(args=["users", "import-seed", seed.url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "imported: 2" in lines and "already present: 0" in lines
    assert "skipped (invalid): 2" in lines
    assert any(line.startswith("  row 3: invalid e-mail address") for line in lines)
    assert "  row 4: the password is not a bcrypt hash ($2a$, $2b$ or $2y$)" in lines
    assert "roles created: 2 (admin, user)" in lines and "roles attached: 3" in lines
    for secret in [*hashes, "plain text password", OLD]:
        assert secret not in result.output
    assert "$2" not in result.output.replace("($2a$, $2b$ or $2y$)", "")

    again = runner.invoke(args=["users", "import-seed", seed.url])
    assert again.exit_code == 0, again.output
    assert "imported: 0" in again.output and "already present: 2" in again.output
    assert "roles created: 0" in again.output.splitlines()

    signin = client.post("/api/v1/signin", json={"email": "ada@example.com", "password": OLD})
    assert signin.status_code == 200 and signin.get_json()["user"]["roles"] == ["admin"]


def test_dry_run_writes_nothing_and_says_so(app: Any, runner: Any, seed: SeedSource) -> None:
    _fill(seed)
    result = runner.invoke(args=["users", "import-seed", "--dry-run", seed.url])
    assert result.exit_code == 0, result.output
    assert "imported: 2" in result.output and "dry run: nothing was written" in result.output
    assert accounts.by_email("ada@example.com") is None


def test_mysql_scheme_and_mark_verified(app: Any, runner: Any, seed: SeedSource) -> None:
    _fill(seed)
    url = seed.url.replace("mysql+pymysql://", "mysql://")
    result = runner.invoke(args=["users", "import-seed", "--mark-verified", url])
    assert result.exit_code == 0, result.output
    ada = accounts.by_email("ada@example.com")
    assert ada is not None and ada.email_verified_at is not None


def test_unreachable_source_is_a_clear_failure(app: Any, runner: Any) -> None:
    result = runner.invoke(args=["users", "import-seed",
                                 "mysql+pymysql://root:hunter2@127.0.0.1:1/authservice"])
    assert result.exit_code != 0
    assert "Error: can't read the source database" in result.output
    assert "127.0.0.1:1/authservice" in result.output and "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_a_source_without_users_table_is_a_clear_failure(app: Any, runner: Any) -> None:
    source = SeedSource.create(roles_tables=False)
    try:
        source.execute(["DROP TABLE `Users`"])
        result = runner.invoke(args=["users", "import-seed", source.url])
    finally:
        source.drop()
    assert result.exit_code != 0
    assert "has no Users table" in result.output


def test_not_a_url_is_a_clear_failure(app: Any, runner: Any) -> None:
    result = runner.invoke(args=["users", "import-seed", "authservice-db"])
    assert result.exit_code != 0 and "not a database URL" in result.output


@pytest.mark.parametrize("url", ["postgresql://u:secret@127.0.0.1/db", "nosuch://u@h/db"])
def test_a_database_without_a_driver_here_is_a_clear_failure(app: Any, runner: Any,
                                                             url: str) -> None:
    result = runner.invoke(args=["users", "import-seed", url])
    assert result.exit_code != 0 and "Error: can't use the source database" in result.output
    assert "secret" not in result.output and "Traceback" not in result.output
