"""A stand-in for the Node AuthService's database: a real MySQL/MariaDB database of its own
(`seed_<random>`) with Sequelize's tables, filled with hashes made by the `bcrypt` package.

`SeedSource.create(...)` makes it, `.drop()` removes it; `.url` is what `flask users
import-seed` is given.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bcrypt
import pymysql
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _mysql_server_url


def bcrypt_hash(password: str, prefix: str = "$2b$") -> str:
    """A bcrypt hash as Node's bcrypt made it: of the password's UTF-8 bytes, cut at 72."""
    made = bcrypt.hashpw(password.encode("utf-8")[:72], bcrypt.gensalt(rounds=4)).decode()
    return prefix + made[len("$2b$"):]


@dataclass
class SeedSource:
    name: str
    url: str
    user_column: str
    role_column: str
    _connect: dict[str, Any]

    @classmethod
    def create(cls, *, user_column: str = "userId", role_column: str = "roleId",
               roles_tables: bool = True) -> SeedSource:
        server = make_url(_mysql_server_url())
        connect = {"host": server.host or "127.0.0.1", "port": server.port or 3306,
                   "user": server.username or "root", "password": server.password or "",
                   "connect_timeout": 3, "autocommit": True}
        name = f"seed_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            conn = pymysql.connect(**connect)
        except pymysql.err.OperationalError as exc:
            message = f"MySQL/MariaDB not reachable at {server.host}:{server.port}: {exc}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
        with conn, conn.cursor() as cur:
            # The node service's database: a case-insensitive collation, like MySQL's default.
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_unicode_ci")
        url = server.set(database=name).render_as_string(hide_password=False)
        source = cls(name, url, user_column, role_column, {**connect, "database": name})
        source._schema(roles_tables)
        return source

    def _schema(self, roles_tables: bool) -> None:
        # What Sequelize's sync() creates for AuthService's models.
        statements = [
            "CREATE TABLE `Users` (`id` INTEGER NOT NULL auto_increment, `email` VARCHAR(255), "
            "`password` VARCHAR(255), `createdAt` DATETIME NOT NULL, "
            "`updatedAt` DATETIME NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB",
        ]
        if roles_tables:
            statements += [
                "CREATE TABLE `Roles` (`id` INTEGER NOT NULL auto_increment, "
                "`name` VARCHAR(255), `createdAt` DATETIME NOT NULL, "
                "`updatedAt` DATETIME NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB",
                f"CREATE TABLE `User_Roles` (`createdAt` DATETIME NOT NULL, "
                f"`updatedAt` DATETIME NOT NULL, `{self.role_column}` INTEGER, "
                f"`{self.user_column}` INTEGER, "
                f"PRIMARY KEY (`{self.role_column}`, `{self.user_column}`), "
                f"FOREIGN KEY (`{self.role_column}`) REFERENCES `Roles` (`id`) "
                f"ON DELETE CASCADE ON UPDATE CASCADE, "
                f"FOREIGN KEY (`{self.user_column}`) REFERENCES `Users` (`id`) "
                f"ON DELETE CASCADE ON UPDATE CASCADE) ENGINE=InnoDB",
            ]
        self.execute(statements)

    def execute(self, statements: Iterable[str | tuple[str, tuple[Any, ...]]]) -> None:
        conn = pymysql.connect(**self._connect)
        with conn, conn.cursor() as cur:
            for statement in statements:
                if isinstance(statement, tuple):
                    cur.execute(*statement)
                else:
                    cur.execute(statement)

    def add_user(self, email: str | None, password_hash: str | None, *,
                 created: datetime = datetime(2021, 3, 4, 5, 6, 7),
                 roles: Iterable[str] = ()) -> int:
        conn = pymysql.connect(**self._connect)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO `Users` (`email`, `password`, `createdAt`, `updatedAt`) "
                        "VALUES (%s, %s, %s, %s)", (email, password_hash, created, created))
            user_id = int(cur.lastrowid)
            for role in roles:
                cur.execute("SELECT `id` FROM `Roles` WHERE `name` = %s", (role,))
                found = cur.fetchone()
                if found is None:
                    cur.execute("INSERT INTO `Roles` (`name`, `createdAt`, `updatedAt`) "
                                "VALUES (%s, NOW(), NOW())", (role,))
                    role_id = int(cur.lastrowid)
                else:
                    role_id = int(found[0])
                cur.execute(f"INSERT INTO `User_Roles` (`createdAt`, `updatedAt`, "
                            f"`{self.role_column}`, `{self.user_column}`) "
                            f"VALUES (NOW(), NOW(), %s, %s)", (role_id, user_id))
        return user_id

    def drop(self) -> None:
        conn = pymysql.connect(**{**self._connect, "database": None})
        with conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
