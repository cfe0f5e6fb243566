"""Reading AuthService's database (legacy_users.py); what an import does with it is
tests/flows/test_seed_import.py."""

from __future__ import annotations

from authserver import legacy_users


def test_mysql_scheme_means_pymysql() -> None:
    assert legacy_users.source_url("mysql://u:p@h/db").drivername == "mysql+pymysql"
    assert legacy_users.source_url("mariadb://u:p@h/db").drivername == "mariadb+pymysql"
    assert legacy_users.source_url("mysql+pymysql://u@h/db").drivername == "mysql+pymysql"
