import logging
import os
import time
from contextlib import contextmanager
from logging.config import fileConfig

import sqlalchemy as sa
from flask import current_app

from alembic import context

from authserver.config import settings

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
# Keep the app's loggers alive when migrations run in-process (tests, `flask db upgrade`).
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')


def get_engine():
    try:
        # this works with Flask-SQLAlchemy<3 and Alchemical
        return current_app.extensions['migrate'].db.get_engine()
    except (TypeError, AttributeError):
        # this works with Flask-SQLAlchemy>=3
        return current_app.extensions['migrate'].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace(
            '%', '%%')
    except AttributeError:
        return str(get_engine().url).replace('%', '%%')


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


def _lock_timeout():
    try:
        return settings().migrate_lock_timeout
    except (KeyError, RuntimeError):  # an app without authserver's settings
        return 300


@contextmanager
def migration_lock(connection):
    """One migration run at a time per database, so that N replicas may start together.

    Without it two processes both read "no alembic_version", both CREATE TABLE, and the
    slower one exits on "table already exists". Whoever waits runs after the winner and then
    finds the schema current (Alembic reads the version only after the lock is held).

    MySQL/MariaDB: GET_LOCK, a server-wide named lock held by this connection (it survives
    the commits of the DDL and dies with the connection if the process does). The name
    carries the database's name, so two databases on one server don't wait on each other.
    SQLite: an exclusive flock on "<database file>.migrate-lock" next to the file. Two
    processes can only share an SQLite database through one file system, so a file lock
    reaches every one of them; an in-memory database belongs to one process and needs none.
    """
    dialect = connection.dialect.name
    if dialect in ('mysql', 'mariadb'):
        database = connection.exec_driver_sql('SELECT DATABASE()').scalar() or ''
        name = f'authserver-migrate:{database}'[:64]  # MySQL's limit on lock names
        timeout = _lock_timeout()
        got = connection.execute(sa.text('SELECT GET_LOCK(:name, :timeout)'),
                                 {'name': name, 'timeout': timeout}).scalar()
        # End the transaction GET_LOCK began: Alembic must start (and commit) its own, and
        # must read alembic_version afresh, after the other process's migration committed.
        connection.commit()
        if got != 1:
            raise RuntimeError(f'another process held the migration lock {name!r} for '
                               f'{timeout}s (MIGRATE_LOCK_TIMEOUT); is a migration stuck?')
        logger.info('migration lock %r held', name)
        try:
            yield
        finally:
            try:
                connection.rollback()  # nothing after a good run; a failed one's leftovers
                connection.execute(sa.text('SELECT RELEASE_LOCK(:name)'), {'name': name})
                connection.commit()
            except sa.exc.DBAPIError:
                # The connection is gone, and the server dropped its lock with it.
                logger.warning('could not release the migration lock %r', name)
        return
    database = connection.engine.url.database if dialect == 'sqlite' else None
    if not database or database == ':memory:' or database.startswith('file:'):
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one process there runs migrations by hand
        yield
        return
    timeout = _lock_timeout()
    path = os.path.abspath(database) + '.migrate-lock'
    with open(path, 'a') as handle:
        # The kernel drops a flock when its holder exits, even by kill -9.
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f'another process held the migration lock {path} for '
                                       f'{timeout}s (MIGRATE_LOCK_TIMEOUT)') from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection, migration_lock(connection):
        context.configure(
            connection=connection,
            target_metadata=get_metadata(),
            **conf_args
        )

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
