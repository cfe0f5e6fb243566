"""/account's changes: add or change the phone, change the password, delete the account,
sign out one session.

The sensitive pages (phone, password, deletion) need a recent sign-in, as the API's
`require_recent_auth` does: the browser's session must have been opened within
REAUTH_MAX_AGE; otherwise the page asks the person to sign in again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from authserver import auth, phones
from authserver.errors import Problem
from authserver.flows import account, account_sessions, phone_change
from authserver.models import Session, User
from authserver.transactions import committed
from authserver.user_agents import describe
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import (
    ConfirmForm,
    PasswordChangeForm,
    PhoneForm,
    SmsCodeForm,
    required,
)
from authserver.web.pages import Page, form_problem, render_form

PHONE_KEY = "account_phone"  # the number a code was just texted to, awaiting its code


@bp.app_template_filter("phone")
def phone_filter(e164: str | None) -> str:
    """A stored E.164 number as people write it ("+1 650-253-0000")."""
    return phones.display(e164)


def recent_sign_in(doing: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the view gets the browser's session and user when its sign-in is recent
    (opened within REAUTH_MAX_AGE); otherwise the page asks to sign in again before `doing`
    (not signed in at all: to /login)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found = web_session.current()
            if found is None:
                return redirect(url_for("web.login"))
            current, user = found
            if not auth.is_recent(int(current.authenticated_at.timestamp())):
                return render_template("account_reauth.html", doing=doing, form=ConfirmForm())
            return view(current, user, *args, **kwargs)

        return wrapper

    return decorate


def _unsubmitted(template: str, form: FlaskForm, **context: Any) -> Page | None:
    """The page to show for a GET, or for a post the form itself refuses (a missing field,
    an expired CSRF token); None for a post the view acts on."""
    if request.method == "GET":
        return render_form(template, form, **context)
    if not form.validate_on_submit():
        return render_form(template, form, form_problem(form), **context)
    return None


@bp.app_template_filter("device")
def device_filter(user_agent: str | None) -> str:
    """A session's User-Agent for people ("Chrome on Linux")."""
    return describe(user_agent)


@bp.route("/account/phone", methods=["GET", "POST"])
@committed
@recent_sign_in("change your phone number")
def phone_change_request(_current: Session, user: User) -> Response | Page:
    form = PhoneForm()
    if (shown := _unsubmitted("account_phone.html", form, user=user)) is not None:
        return shown
    try:
        sent = phone_change.request_code(user, required(form.phone))
    except Problem as problem:
        return render_form("account_phone.html", form, problem, user=user)
    session[PHONE_KEY] = sent["phone"]
    return redirect(url_for("web.phone_change_code"), code=303)


@bp.route("/account/phone/code", methods=["GET", "POST"])
@committed
@recent_sign_in("change your phone number")
def phone_change_code(_current: Session, user: User) -> Response | Page:
    phone = session.get(PHONE_KEY)
    if not isinstance(phone, str):
        return redirect(url_for("web.phone_change_request"))
    form = SmsCodeForm()
    if (shown := _unsubmitted("account_phone_code.html", form, phone=phone)) is not None:
        return shown
    try:
        phone_change.verify_code(user, phone, required(form.code).strip())
    except Problem as problem:
        if problem.field is None or problem.field == "phone":
            problem.field = "code"
        return render_form("account_phone_code.html", form, problem, phone=phone)
    session.pop(PHONE_KEY, None)
    flash(f"Your phone number is now {phones.display(phone)}.")
    return redirect(url_for("web.account"), code=303)


@bp.route("/account/password", methods=["GET", "POST"])
@committed
@recent_sign_in("change your password")
def password_change(current: Session, user: User) -> Response | Page:
    form = PasswordChangeForm()
    has_password = user.password_hash is not None
    shown = _unsubmitted("account_password.html", form, has_password=has_password)
    if shown is not None:
        return shown
    try:
        account.change_password(user.id, current.id, form.current_password.data or None,
                                required(form.password))
    except Problem as problem:
        return render_form("account_password.html", form, problem, has_password=has_password)
    flash("Your password was changed. Your other sessions were signed out."
          if has_password else "Your password was set.")
    return redirect(url_for("web.account"), code=303)


@bp.route("/account/delete", methods=["GET", "POST"])
@committed
@recent_sign_in("delete your account")
def delete_account(_current: Session, user: User) -> Page | str:
    form = ConfirmForm()
    if (shown := _unsubmitted("account_delete.html", form, user=user)) is not None:
        return shown
    account.delete_account(user.id)
    session.clear()
    return render_template("account_deleted.html")


@bp.post("/account/sessions/<session_id>/sign-out")
@committed
def sign_out_session(session_id: str) -> Response:
    found = web_session.current()
    if found is None:
        return redirect(url_for("web.login"))
    current, user = found
    form = ConfirmForm()
    form.validate_on_submit()  # CSRFProtect has already refused a forged post
    account_sessions.end_session(user.id, session_id)  # 404 for a session that isn't theirs
    if session_id == current.id:
        session.clear()
        return redirect(url_for("web.login", signed_out=1), code=303)
    flash("That session was signed out.")
    return redirect(url_for("web.account"), code=303)
