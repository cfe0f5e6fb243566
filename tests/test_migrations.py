"""The committed migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, inspect

from authserver import create_app
from authserver.extensions import db
from tests.conftest import base_config


def test_upgrade_builds_the_models_schema(tmp_path, mysql_url, sqlite_url):
    from sqlalchemy.engine import make_url

    for url in ("sqlite:///" + str(tmp_path / "migrated.db"), mysql_url):
        if url.startswith("mysql"):
            # A database of its own: the shared test database was built with create_all.
            target = make_url(url).set(database=make_url(url).database + "_mig")
            server = create_engine(make_url(url).set(database=None))
            with server.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{target.database}`")
                conn.exec_driver_sql(f"CREATE DATABASE `{target.database}` CHARACTER SET utf8mb4")
            url = target.render_as_string(hide_password=False)
        app = create_app(base_config(tmp_path, url))
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
                assert diff == [], f"migrations differ from models on {conn.dialect.name}: {diff}"
                tables = set(inspect(conn).get_table_names())
                assert {"users", "sessions", "refresh_tokens", "signing_keys"} <= tables
                if conn.dialect.name == "mysql":
                    engines = conn.exec_driver_sql(
                        "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME != 'alembic_version'"
                    ).all()
                    assert all(e == "InnoDB" and c == "utf8mb4_bin" for e, c in engines)
            db.engine.dispose()
        if url.startswith("mysql"):
            with server.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{target.database}`")
            server.dispose()


def _fresh_mysql_database(mysql_url: str, suffix: str) -> str:
    from sqlalchemy.engine import make_url

    target = make_url(mysql_url).set(database=make_url(mysql_url).database + suffix)
    server = create_engine(make_url(mysql_url).set(database=None))
    with server.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{target.database}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{target.database}` CHARACTER SET utf8mb4")
    server.dispose()
    return target.render_as_string(hide_password=False)


def test_one_time_codes_migration_keeps_mailed_links_working(tmp_path, mysql_url):
    """0002 moves otp_challenges and magic_links into one_time_codes, with their data."""
    import hashlib
    import hmac
    from datetime import UTC, datetime, timedelta

    from flask_migrate import downgrade
    from sqlalchemy import text

    from authserver import codes
    from authserver.flows import magic_link
    from tests.conftest import SECRET

    def old_hash(label: bytes, bound: str, code: str) -> str:
        key = hmac.new(SECRET.encode(), label, hashlib.sha256).digest()
        return hmac.new(key, f"{bound}:{code}".encode(), hashlib.sha256).hexdigest()

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    later = now + timedelta(minutes=5)
    for url in ("sqlite:///" + str(tmp_path / "data.db"),
                _fresh_mysql_database(mysql_url, "_data")):
        app = create_app(base_config(tmp_path, url))
        with app.app_context():
            upgrade(revision="0001")
            with db.engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO magic_links (id, email, code_hash, attempts, created_at, "
                    "expires_at) VALUES (:id, :email, :hash, 1, :now, :later)"),
                    {"id": "link-1", "email": "ada@example.com", "now": now, "later": later,
                     "hash": old_hash(b"authserver.magic-link.code", "link-1", "123456")})
                conn.execute(text(
                    "INSERT INTO otp_challenges (phone, code_hash, attempts, created_at, "
                    "expires_at) VALUES ('+16502530000', :hash, 2, :now, :later)"),
                    {"hash": old_hash(b"authserver.sms-otp.code", "+16502530000", "654321"),
                     "now": now, "later": later})
            upgrade()
            with db.engine.connect() as conn:
                rows = {row.purpose: row for row in conn.execute(text(
                    "SELECT purpose, channel, subject, attempts, invalidated_at "
                    "FROM one_time_codes")).all()}
            assert rows["sign_in_email"].subject == "ada@example.com"
            assert rows["sign_in_email"].attempts == 1
            assert rows["sign_in_email"].invalidated_at is None
            # A texted code's hash was bound to the phone: it can't be checked any more.
            assert rows["sign_in_sms"].channel == "sms"
            assert rows["sign_in_sms"].attempts == 2
            assert rows["sign_in_sms"].invalidated_at is not None
            # The link in the inbox and its code still work after the upgrade.
            with app.test_request_context():
                token = codes.link_token(magic_link.PURPOSE, "link-1")
                assert magic_link.peek_link(token) is not None
                assert magic_link.consume_code("ada@example.com", "123456").owner.user.email \
                    == "ada@example.com"
            db.session.remove()
            downgrade(revision="0001")
            with db.engine.connect() as conn:
                assert conn.execute(text("SELECT COUNT(*) FROM magic_links")).scalar() == 1
                assert conn.execute(text("SELECT COUNT(*) FROM otp_challenges")).scalar() == 1
            db.engine.dispose()
        if url.startswith("mysql"):
            server = create_engine(url.rsplit("/", 1)[0] + "/")
            with server.begin() as conn:
                conn.exec_driver_sql("DROP DATABASE IF EXISTS `" + url.rsplit("/", 1)[1] + "`")
            server.dispose()


def _drop_mysql_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    server = create_engine(url.rsplit("/", 1)[0] + "/")
    with server.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    server.dispose()


def _schema_matches_models(app) -> None:
    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"migrations differ from models on {conn.dialect.name}: {diff}"
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() \
            == "0008"


def test_downgrade_to_base_and_up_again(tmp_path, mysql_url):
    """upgrade → downgrade base → upgrade, with rows in the tables, on MySQL and SQLite.

    MySQL refuses to drop an index a foreign key needs: 0001's downgrade used to drop
    ix_refresh_tokens_session_id before its table and stopped there.
    """
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    later = now + timedelta(days=1)
    for url in ("sqlite:///" + str(tmp_path / "roundtrip.db"),
                _fresh_mysql_database(mysql_url, "_round")):
        try:
            _round_trip(tmp_path, url, now, later)
        finally:
            if url.startswith("mysql"):
                _drop_mysql_database(url)


def _round_trip(tmp_path, url: str, now, later) -> None:
    from flask_migrate import downgrade
    from sqlalchemy import text

    app = create_app(base_config(tmp_path, url))
    with app.app_context():
        upgrade()
        # A row in every table a downgrade moves, rewrites or drops around a foreign key.
        with db.engine.begin() as conn:
            stamp = {"now": now, "later": later}
            conn.execute(text(
                "INSERT INTO users (id, email, disabled, created_at, updated_at) "
                "VALUES ('u1', 'ada@example.com', 0, :now, :now)"), stamp)
            conn.execute(text("INSERT INTO roles (id, name) VALUES (1, 'admin')"))
            conn.execute(text("INSERT INTO user_roles (user_id, role_id) VALUES ('u1', 1)"))
            conn.execute(text(
                "INSERT INTO sessions (id, user_id, amr, client, created_at, last_used_at, "
                "expires_at) VALUES ('s1', 'u1', 'pwd', 'api', :now, :now, :later)"), stamp)
            conn.execute(text(
                "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, "
                "expires_at, rotated_at) VALUES (1, 's1', 'h1', :now, :later, :now)"), stamp)
            conn.execute(text(
                "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, "
                "created_at, expires_at) VALUES (2, 's1', 'h2', 1, :now, :later)"), stamp)
            conn.execute(text(
                "INSERT INTO one_time_codes (id, purpose, channel, subject, code_hash, "
                "attempts, created_at, expires_at) VALUES ('c1', 'sign_in_email', 'email', "
                "'ada@example.com', 'x', 0, :now, :later)"), stamp)
            conn.execute(text(
                "INSERT INTO handoff_codes (code_hash, user_id, challenge_id, amr, "
                "redirect_to, created_at, expires_at) VALUES ('hc1', NULL, 'c1', 'email', "
                "'myapp://auth', :now, :later)"), stamp)
            conn.execute(text(
                "INSERT INTO handoff_codes (code_hash, user_id, amr, redirect_to, "
                "created_at, expires_at) VALUES ('hc2', 'u1', 'pwd', 'myapp://auth', "
                ":now, :later)"), stamp)
            conn.execute(text(
                "INSERT INTO counters (`key`, count, started_at) VALUES ('k', 1, :now)"),
                stamp)
        downgrade(revision="base")
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade()
        downgrade(revision="0001")  # and once more through 0002's data move, empty
        upgrade()
        db.engine.dispose()
    _schema_matches_models(app)
    with app.app_context():
        db.engine.dispose()


def _concurrent_upgrades(tmp_path, url: str, processes: int) -> list[tuple[int, str]]:
    """`flask db upgrade` started `processes` times at once, as replicas do."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "x" * 48,
           "INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONPATH": str(root)}
    flask = [sys.executable, "-m", "flask", "--app", "authserver", "db", "upgrade"]
    started = [subprocess.Popen(flask, cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
               for _ in range(processes)]
    return [(proc.wait(timeout=120), proc.stdout.read() if proc.stdout else "")
            for proc in started]


def test_replicas_starting_together_all_migrate(tmp_path, mysql_url):
    """Four `flask db upgrade` at once on one fresh MariaDB database: all exit 0 and the
    schema is the models'. Without the GET_LOCK in migrations/env.py all but one died on
    "Table 'magic_links' already exists"."""
    url = _fresh_mysql_database(mysql_url, "_replicas")
    try:
        results = _concurrent_upgrades(tmp_path, url, 4)
        for code, output in results:
            assert code == 0, output
            assert "migration lock 'authserver-migrate:" in output
        app = create_app(base_config(tmp_path, url))
        _schema_matches_models(app)
        with app.app_context():
            db.engine.dispose()
    finally:
        _drop_mysql_database(url)


def test_replicas_starting_together_on_sqlite(tmp_path):
    """The same on SQLite: a file lock next to the database file serialises them."""
    url = "sqlite:///" + str(tmp_path / "replicas.db")
    for code, output in _concurrent_upgrades(tmp_path, url, 4):
        assert code == 0, output
    app = create_app(base_config(tmp_path, url))
    _schema_matches_models(app)
    with app.app_context():
        db.engine.dispose()


def test_a_stuck_migration_lock_times_out_with_a_clear_message(tmp_path, mysql_url):
    """While another connection holds the lock, `flask db upgrade` waits MIGRATE_LOCK_TIMEOUT
    seconds, then exits non-zero naming the lock, without touching the schema."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = _fresh_mysql_database(mysql_url, "_stuck")
    holder = create_engine(url)
    try:
        with holder.connect() as conn:
            name = f"authserver-migrate:{make_url(url).database}"[:64]
            assert conn.exec_driver_sql(f"SELECT GET_LOCK('{name}', 0)").scalar() == 1
            root = Path(__file__).resolve().parents[1]
            env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "x" * 48,
                   "MIGRATE_LOCK_TIMEOUT": "1", "INSTANCE_PATH": str(tmp_path / "instance"),
                   "PYTHONPATH": str(root)}
            run = subprocess.run([sys.executable, "-m", "flask", "--app", "authserver", "db",
                                  "upgrade"], cwd=root, env=env, capture_output=True,
                                 text=True, timeout=60)
            assert run.returncode != 0
            assert "migration lock" in run.stderr and "MIGRATE_LOCK_TIMEOUT" in run.stderr
            tables = conn.exec_driver_sql("SHOW TABLES").scalars().all()
            assert tables == []
    finally:
        holder.dispose()
        _drop_mysql_database(url)
