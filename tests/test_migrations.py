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
