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
