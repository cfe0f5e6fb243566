"""Sign up and sign in with an e-mail address and a password."""

from __future__ import annotations

import logging

from authserver import accounts, codes, devices, lockout, passwords, ratelimits, tokens
from authserver.config import settings
from authserver.errors import Problem
from authserver.events import Method
from authserver.extensions import client_ip, db
from authserver.flows import attempts, email_verification
from authserver.identifiers import normalize_email
from authserver.tokens import IssuedTokens

log = logging.getLogger("authserver.flows.password")

AMR = ["pwd"]


def _invalid_credentials() -> Problem:
    # One answer for "no such user", "no password set" and "wrong password".
    return Problem(401, "invalid_credentials", "The e-mail address or password is incorrect.")


def sign_up(email: str, password: str, name: str | None = None, *, client: str = "api",
            binding: str | None = None) -> IssuedTokens | None:
    """Create an account with a password and sign it in (amr: pwd); then mail the address
    its verification link and code (`binding`: the asking browser's cookie).

    With EMAIL_VERIFICATION_REQUIRED nothing signs in (None): a new address gets the
    verification mail, whose link signs in; an address that already has an account gets a
    "someone tried to sign up with your address" mail instead of a 409, with the same
    answer and the same work (the password is hashed either way), so sign-up tells nobody
    which addresses have accounts.
    """
    if not settings().password_signup_enabled:
        raise Problem(403, "forbidden", "Sign-up with a password is turned off on this server.")
    # Every try costs an attempt; only a sign-up that stands counts against
    # SIGNUP_LIMIT_PER_IP (checked now, counted at the end: parallel sign-ups from one
    # address may overshoot it by the few in flight at once).
    ip = client_ip()
    ratelimits.check(ratelimits.SIGNUP_IP, ip)
    ratelimits.hit(ratelimits.SIGNUP_ATTEMPT_IP, ip)
    email = normalize_email(email)
    # Also raises 422 breached_password (and 503 when the breach check is down and set to
    # fail closed): the policy is one function, so every caller refuses the same passwords.
    passwords.require_policy(password, email)
    if name is not None:
        name = name.strip()[:200] or None
    quiet = settings().email_verification_required
    existing = accounts.by_email(email) is not None
    if existing and not quiet:
        raise Problem(409, "email_taken", "An account with this e-mail already exists.",
                      field="email")
    password_hash = passwords.hash_password(password)
    user = None
    try:
        if not existing:
            user = accounts.create(email=email, name=name, password_hash=password_hash,
                                   method=Method.PASSWORD)
    except Problem:
        if not quiet:
            raise
        # Lost a race for the address: answered as for an address that had an account.
    if user is None:
        codes.decoy_write()  # what the new account's INSERT costs
    issued = tokens.issue(user, AMR, client=client) if user is not None and not quiet else None
    user_id = user.id if user is not None else None
    if user_id is not None:
        log.info("sign-up user=%s", user_id)
    # The sign-up stands before its mail goes out, and a mail that fails never undoes it.
    db.session.commit()
    # Also for an address that had an account under EMAIL_VERIFICATION_REQUIRED: its answer
    # is a success's, and so is its cost.
    ratelimits.count(ratelimits.SIGNUP_IP, ip)
    email_verification.after_sign_up(email, user_id, binding=binding)
    return issued


def sign_in(email: str, password: str, *, client: str = "api") -> IssuedTokens:
    """Check an e-mail address and password; sign the user in (amr: pwd).

    Limits: per client IP; then per device for a client that brings this account's device
    token (devices.py), else per account ("untrusted"), so strangers' failures can't lock
    the owner's devices out; and at most SIGNIN_MAX_CONSECUTIVE_FAILURES wrong passwords in
    a row for the address (lockout.py: 403 password_signin_locked until a sign-in by e-mail).

    A refusal is told as SIGNIN_FAILED (flows/attempts.py), naming the account only when
    there is one.
    """
    with attempts.signin(Method.PASSWORD) as attempt:
        return _sign_in(attempt, email, password, client)


def _sign_in(attempt: attempts.Attempt, email: str, password: str,
             client: str) -> IssuedTokens:
    ratelimits.hit(ratelimits.SIGNIN_IP, client_ip())
    try:
        email = normalize_email(email)
    except Problem:
        # A malformed address can't match an account: same answer and cost as a wrong one.
        passwords.verify_password(None, password)
        raise _invalid_credentials() from None

    user = accounts.by_email(email)
    user_id = attempt.user_id = user.id if user else None
    device = devices.device_of(devices.presented(), user_id)
    if device is not None:
        ratelimits.hit(ratelimits.SIGNIN_DEVICE, device)
    else:
        ratelimits.hit(ratelimits.SIGNIN_ACCOUNT, email)
    # Read before the attempt is counted: that commits, and reading the row again after it
    # would cost a query and a commit more (open_session re-checks the disabled flag).
    stored_hash = user.password_hash if user else None
    disabled = user.disabled if user else False
    unverified = user.email_verified_at is None if user else True
    lockout.attempt(email, user_id)
    # An unknown user is checked against a dummy hash so both cases take the same time.
    ok = passwords.verify_password(stored_hash, password)
    if not ok or user is None:
        log.info("sign-in failed")
        raise _invalid_credentials()
    if disabled:
        raise Problem(403, "account_disabled", "This account has been disabled.")
    if settings().email_verification_required and unverified:
        # Told only after the right password: it says nothing about unknown addresses.
        raise Problem(403, "email_not_verified", "Confirm your e-mail address first: open the "
                      "link in the mail we sent, or sign in with a link or code e-mailed to "
                      "you.")
    lockout.succeeded(email)
    devices.remember(user.id)
    # Weaker argon2 parameters, or a bcrypt hash imported from the Node AuthService: the
    # password just checked is stored again as argon2id (passwords.upgraded_hash).
    upgraded = passwords.upgraded_hash(stored_hash, password) if stored_hash else None
    if upgraded is not None:
        user.password_hash = upgraded
        db.session.flush()
    log.info("sign-in user=%s", user.id)
    return tokens.issue(user, AMR, client=client)
