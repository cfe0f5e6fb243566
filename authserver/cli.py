"""Command line: `flask --app authserver users …`, `keys …`, `prune`, `webhooks …`.

Each command that writes is one unit of work, committed when it ends (`@committed`).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections import defaultdict

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from authserver import accounts, housekeeping, legacy_users, passwords, webhook_delivery
from authserver.config import settings
from authserver.errors import Problem
from authserver.events import Event, EventType, emit
from authserver.extensions import db
from authserver.flows import mfa_settings, seed_import
from authserver.identifiers import lookalike_key, normalize_email
from authserver.keys import keyring
from authserver.models import User
from authserver.transactions import committed

users_cli = AppGroup("users", help="Manage users.")
keys_cli = AppGroup("keys", help="Manage the keys that sign access tokens.")
webhooks_cli = AppGroup("webhooks", help="Send the webhook outbox to WEBHOOK_URL.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", "roles", multiple=True, help="Grant a role (repeatable), e.g. admin.")
@click.option("--password-stdin", is_flag=True,
              help="Read a password from standard input: asked for twice without echo when "
                   "it is a terminal, else its first line.")
@click.option("--name", default=None, help="Display name.")
@committed
def create_user(email: str, roles: tuple[str, ...], password_stdin: bool,
                name: str | None) -> None:
    """Create a user (without --password-stdin, a passwordless one)."""
    try:
        email = normalize_email(email)
        password_hash = None
        if password_stdin:
            password = _read_password()
            reason = passwords.check_policy(password, email)
            if reason:
                raise click.ClickException(f"weak password: {reason}")
            password_hash = passwords.hash_password(password)
        user = accounts.create(email=email, name=name, password_hash=password_hash,
                               roles=list(roles), via="cli")
    except Problem as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"created user {user.id} <{user.email}> roles={','.join(user.role_names) or '-'}")


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _read_password() -> str:
    """A person at a terminal types it twice, unseen; a pipe (a script, a secret store)
    gives its first line."""
    if _stdin_is_terminal():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def _existing_user(email: str) -> User:
    try:
        user = accounts.by_email(normalize_email(email))
    except Problem as exc:
        # An account made before today's rules (one `users check-lookalikes` lists) must
        # still be reachable by its stored address, to disable it.
        user = accounts.by_email(email.strip())
        if user is None:
            raise click.ClickException(exc.detail) from None
    if user is None:
        raise click.ClickException("no such user")
    return user


@users_cli.command("grant")
@click.argument("email")
@click.argument("role")
@committed
def grant(email: str, role: str) -> None:
    """Grant ROLE to the user with EMAIL."""
    user = _existing_user(email)
    accounts.add_role(user, role)
    click.echo(f"{user.email}: {','.join(user.role_names)}")


@users_cli.command("enable")
@click.argument("email")
@committed
def enable(email: str) -> None:
    """Enable a disabled user again (their old sessions stay revoked)."""
    user = _existing_user(email)
    accounts.enable(user)
    click.echo(f"{user.email}: enabled")


@users_cli.command("disable")
@click.argument("email")
@committed
def disable(email: str) -> None:
    """Disable a user and end all their sessions at once."""
    user = _existing_user(email)
    accounts.disable(user)
    click.echo(f"{user.email}: disabled, sessions revoked")


@users_cli.command("reset-mfa")
@click.argument("email")
@committed
def reset_mfa(email: str) -> None:
    """Remove a user's authenticator app and recovery codes (e.g. the last admin lost both)."""
    user = _existing_user(email)
    removed = mfa_settings.reset(user.id)
    click.echo(f"{user.email}: " + ("second factor removed" if removed else
                                    "had no second factor"))


@users_cli.command("check-lookalikes")
def check_lookalikes() -> None:
    """List accounts whose address is now refused or looks like another account's.

    Exit status 0 with "no look-alike addresses", or 1 after listing them.
    """
    rows = db.session.execute(
        select(User.id, User.email).where(User.email.is_not(None)).order_by(User.created_at,
                                                                           User.id))
    findings: list[str] = []
    by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for user_id, email in rows.tuples():
        assert email is not None  # the query's WHERE
        try:
            canonical = normalize_email(email)
        except Problem as exc:
            findings.append(f"refused   {user_id}  {email!r}: {exc.detail}")
        else:
            if canonical != email:
                findings.append(f"changed   {user_id}  {email!r}: now looked up as "
                                f"{canonical!r}")
        by_key[lookalike_key(email)].append((user_id, email))
    for key, users in by_key.items():
        if len(users) > 1:
            listed = ", ".join(f"{user_id} {email!r}" for user_id, email in users)
            findings.append(f"collision {key!r}: {listed}")
    if not findings:
        click.echo("no look-alike addresses")
        return
    for line in findings:
        click.echo(line)
    click.echo(f"{len(findings)} look-alike finding(s)")
    raise click.exceptions.Exit(1)


@users_cli.command("import-seed")
@click.argument("source_database_url")
@click.option("--dry-run", is_flag=True,
              help="Read and check everything and print the counts; write nothing.")
@click.option("--mark-verified", is_flag=True,
              help="Count the imported addresses as proven (only when AuthService confirmed "
                   "every address by e-mail; see docs/security.md).")
@click.option("--batch-size", default=seed_import.BATCH_SIZE, show_default=True,
              type=click.IntRange(min=1), help="Users per transaction.")
@committed
def import_seed(source_database_url: str, dry_run: bool, mark_verified: bool,
                batch_size: int) -> None:
    """Copy the users and roles of the Node AuthService's database (SOURCE_DATABASE_URL,
    mysql+pymysql://user:password@host/database) here. Re-runnable: an address that already
    has an account here is left as it is."""
    try:
        report = seed_import.import_users(source_database_url, batch_size=batch_size,
                                          dry_run=dry_run, mark_verified=mark_verified)
    except legacy_users.SourceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported: {report.imported}")
    click.echo(f"already present: {report.already_present}")
    click.echo(f"skipped (invalid): {len(report.skipped)}")
    for skipped in report.skipped:
        click.echo(f"  row {skipped.source_id}: {skipped.reason}")
    created = ", ".join(report.roles_created)
    click.echo(f"roles created: {len(report.roles_created)}" + (f" ({created})" if created else ""))
    click.echo(f"roles attached: {report.roles_attached}")
    for note in report.roles_skipped:
        click.echo(f"  role skipped {note}")
    if report.dry_run:
        click.echo("dry run: nothing was written")
    else:
        emit(Event(EventType.USERS_IMPORTED, detail={
            "imported": report.imported, "already_present": report.already_present,
            "skipped": len(report.skipped), "roles_created": len(report.roles_created),
            "roles_attached": report.roles_attached}))


@keys_cli.command("list")
@committed
def list_keys() -> None:
    """Show the signing keys (never their private halves)."""
    for key in keyring().listing():
        click.echo(f"{key.kid}  {key.algorithm:6} {key.status:8} created {key.created_at:%Y-%m-%d}")


@keys_cli.command("rotate")
@committed
def rotate_keys() -> None:
    """Start signing with a new key; the old one keeps verifying existing tokens."""
    key = keyring().rotate()
    emit(Event(EventType.KEY_ROTATED, detail={"kid": key.kid, "algorithm": key.algorithm}))
    click.echo(f"new active key {key.kid} ({key.algorithm})")


@keys_cli.command("prune")
@committed
def prune_keys() -> None:
    """Delete retired keys older than the longest access-token lifetime."""
    removed = keyring().prune(settings().access_token_ttl * 2)
    click.echo(f"removed {removed} retired key(s)")


@keys_cli.command("reencrypt")
@committed
def reencrypt_keys() -> None:
    """After rotating SECRET_KEY: re-encrypt the signing keys and the authenticator-app
    secrets under the current SECRET_KEY, so the old key can leave SECRET_KEY_FALLBACKS."""
    keys_done, keys_lost = keyring().reencrypt()
    totp_done, totp_lost = mfa_settings.reencrypt()
    click.echo(f"re-encrypted {keys_done} signing key(s), {totp_done} authenticator secret(s)")
    if keys_lost or totp_lost:
        # What could be read is kept under the current key; the exit status tells a script.
        db.session.commit()
        click.echo(f"cannot decrypt {keys_lost} signing key(s) and {totp_lost} authenticator "
                   "secret(s) with SECRET_KEY or SECRET_KEY_FALLBACKS", err=True)
        raise click.exceptions.Exit(1)


@click.command("prune")
@click.option("--keep-days", default=7, show_default=True,
              help="Keep expired rows this many days before deleting them.")
@click.option("--batch-size", default=housekeeping.BATCH_SIZE, show_default=True,
              type=click.IntRange(min=1), help="Rows per DELETE (each batch commits).")
@committed
def prune_command(keep_days: int, batch_size: int) -> None:
    """Delete expired codes, links, hand-off codes, cooldowns and ended sessions, webhook
    events delivered or given up, and refresh tokens rotated longer ago than
    REFRESH_TOKEN_HISTORY."""
    counts = housekeeping.prune(keep_days, batch_size)
    click.echo(", ".join(f"{table}: {count}" for table, count in counts.items()))


def _webhooks_configured() -> None:
    if not settings().webhook_url:
        raise click.ClickException("WEBHOOK_URL is not set")


@webhooks_cli.command("run")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between looks for due events.")
@click.option("--batch-size", default=webhook_delivery.BATCH_SIZE, show_default=True,
              type=click.IntRange(min=1, max=1000), help="Events claimed at a time.")
def webhooks_run(interval: float, batch_size: int) -> None:
    """Deliver webhook events until SIGTERM or SIGINT (then finish the event being sent,
    hand back the rest of the batch and exit 0). Several may run at once."""
    _webhooks_configured()
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    webhook_delivery.run(stop, interval=interval, batch_size=batch_size)


@webhooks_cli.command("deliver")
@click.option("--once", is_flag=True, required=True,
              help="Send every event due now, then exit (for cron).")
@click.option("--batch-size", default=webhook_delivery.BATCH_SIZE, show_default=True,
              type=click.IntRange(min=1, max=1000), help="Events claimed at a time.")
def webhooks_deliver(once: bool, batch_size: int) -> None:
    """Send the events due now and exit: `delivered: N, retrying: N, given up: N`."""
    _webhooks_configured()
    report = webhook_delivery.deliver_due(batch_size)
    click.echo(f"delivered: {report.delivered}, retrying: {report.retrying}, "
               f"given up: {report.given_up}")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(prune_command)
    app.cli.add_command(webhooks_cli)
