"""The second factor on the web pages: the code step of a sign-in (/login/mfa) and setting
an authenticator app up or off (/account/security).

The step: whatever first factor a page checked, `tokens.issue` stopped it with
`mfa_required` and left the mfa_token in `g` (mfa.require_second_factor). `step_up`, an
after_request hook of the blueprint, turns that page's answer into a redirect to /login/mfa
and keeps the token (and the sign-in attempt of a pending app hand-off) in the signed cookie
session; the code page then finishes the sign-in like any other page (web_session.after_sign_in).
"""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import InputRequired, Length

from authserver import auth, mfa
from authserver.errors import ErrorCode, Problem
from authserver.flows import mfa as mfa_flow
from authserver.flows import mfa_settings
from authserver.models import User
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import ConfirmForm
from authserver.web.pages import Page, form_problem, render_form

#: The cookie session's key for a sign-in waiting for its second factor.
STEP_KEY = "mfa_step"
RECENT_NEEDED = ("For your security, changing two-factor authentication needs a recent "
                 "sign-in. Sign out, sign in again, then come back here.")


class TotpCodeForm(FlaskForm):
    code = StringField("6-digit code", validators=[InputRequired(), Length(max=12)])


class RecoveryCodeForm(FlaskForm):
    code = StringField("Recovery code", validators=[InputRequired(), Length(max=64)])


class TurnOffForm(FlaskForm):
    code = StringField("Code from your app, or a recovery code",
                       validators=[InputRequired(), Length(max=64)])


# -- the step of a sign-in -------------------------------------------------------------------
def remember_destination(redirect_to: str | None, code_challenge: str | None,
                         state: str | None) -> None:
    """Where a sign-in that carries its own destination (a mailed link's app hand-off) goes
    once its second factor is in, should tokens.issue stop it for one."""
    g.mfa_destination = {"redirect_to": redirect_to, "code_challenge": code_challenge,
                         "state": state}


def step_up(response: Response) -> Response:
    """after_request: a web sign-in stopped for its second factor goes to the code page."""
    pending: mfa.StepUp | None = g.pop("mfa_step_up", None)
    if pending is None or pending.client != "web":
        return response
    session[STEP_KEY] = {"token": pending.mfa_token, "attempt": g.get("handoff_attempt"),
                         "destination": g.get("mfa_destination")}
    step = redirect(url_for("web.mfa_code"), code=303)
    # Cookies the first factor set stay set (a password sign-in's device token).
    for cookie in response.headers.getlist("Set-Cookie"):
        step.headers.add("Set-Cookie", cookie)
    return step


bp.after_request(step_up)


def _pending_token() -> str | None:
    step: Any = session.get(STEP_KEY)
    token = step.get("token") if isinstance(step, dict) else None
    return token if isinstance(token, str) else None


def _finish(form: FlaskForm, template: str, proof: dict[str, str]) -> Response | Page:
    token = _pending_token()
    if token is None:
        return redirect(url_for("web.login"), code=303)
    if not form.validate_on_submit():
        return render_form(template, form, form_problem(form))
    try:
        issued = mfa_flow.verify(token, client="web", **proof)
    except Problem as problem:
        if problem.code in {ErrorCode.INVALID_GRANT, ErrorCode.OTP_ATTEMPTS_EXCEEDED}:
            # This sign-in is over: start again from the first step.
            session.pop(STEP_KEY, None)
            problem.detail = ("Too many wrong codes, or this sign-in took too long. "
                              "Sign in again.")
            problem.field = None
            return render_form(template, form, problem, restart=True)
        problem.field = "code"
        return render_form(template, form, problem)
    step = session.pop(STEP_KEY, None)
    step = step if isinstance(step, dict) else {}
    attempt = step.get("attempt")
    if isinstance(attempt, str):
        g.handoff_attempt = attempt  # the app hand-off this sign-in belongs to, if any
    destination = step.get("destination")
    if isinstance(destination, dict) and destination.get("redirect_to"):
        return web_session.after_sign_in(issued, redirect_to=destination["redirect_to"],
                                         code_challenge=destination.get("code_challenge"),
                                         state=destination.get("state"))
    return web_session.after_sign_in(issued)


@bp.route("/login/mfa", methods=["GET", "POST"])
@committed
def mfa_code() -> Response | Page:
    form = TotpCodeForm()
    if request.method == "GET":
        if _pending_token() is None:
            return redirect(url_for("web.login"))
        return render_form("mfa_code.html", form)
    return _finish(form, "mfa_code.html", {"code": form.code.data or ""})


@bp.route("/login/mfa/recovery", methods=["GET", "POST"])
@committed
def mfa_recovery() -> Response | Page:
    form = RecoveryCodeForm()
    if request.method == "GET":
        if _pending_token() is None:
            return redirect(url_for("web.login"))
        return render_form("mfa_recovery.html", form)
    return _finish(form, "mfa_recovery.html", {"recovery_code": form.code.data or ""})


# -- /account/security -----------------------------------------------------------------------
def _signed_in() -> tuple[Any, User] | None:
    return web_session.current()


def _recent(current: Any) -> bool:
    return auth.is_recent(int(current.authenticated_at.timestamp()))


def _security_page(user: User, current: Any, *, form: FlaskForm | None = None,
                   problem: Problem | None = None, **context: Any) -> Page:
    enrolment = None if mfa.enrolled(user.id) else mfa.pending(user)
    context.setdefault("status", mfa.status(user.id))
    if enrolment is not None:
        context["enrolment"] = enrolment
        context["qr"] = mfa.qr_data_uri(enrolment.otpauth_uri)
    form = form or (TotpCodeForm() if enrolment is not None else TurnOffForm())
    return render_form("security.html", form, problem, user=user, recent=_recent(current),
                       recent_needed=RECENT_NEEDED, button_form=ConfirmForm(), **context)


@bp.get("/account/security")
def security() -> Response | Page:
    found = _signed_in()
    if found is None:
        return redirect(url_for("web.login"))
    current, user = found
    return _security_page(user, current)


def _changing() -> tuple[Any, User] | Response:
    """The signed-in person, when their sign-in is recent enough to change the factor."""
    found = _signed_in()
    if found is None:
        return redirect(url_for("web.login"), code=303)
    if not _recent(found[0]):
        return redirect(url_for("web.security"), code=303)
    return found


@bp.post("/account/security/enroll")
@committed
def security_enroll() -> Response | Page:
    found = _changing()
    if isinstance(found, Response):
        return found
    current, user = found
    ConfirmForm().validate_on_submit()  # CSRFProtect has already refused a forged post
    try:
        mfa_settings.enroll(user)
    except Problem as problem:
        return _security_page(user, current, problem=problem)
    return redirect(url_for("web.security"), code=303)


@bp.post("/account/security/confirm")
@committed
def security_confirm() -> Response | Page:
    found = _changing()
    if isinstance(found, Response):
        return found
    current, user = found
    form = TotpCodeForm()
    if not form.validate_on_submit():
        return _security_page(user, current, form=form, problem=form_problem(form))
    try:
        recovery_codes = mfa_settings.confirm(user, form.code.data)
    except Problem as problem:
        problem.field = "code" if problem.code == ErrorCode.INVALID_OTP else None
        return _security_page(user, current, form=form, problem=problem)
    return render_template("mfa_recovery_codes.html", recovery_codes=recovery_codes,
                           download="\n".join(recovery_codes) + "\n"), 200, {}


@bp.post("/account/security/disable")
@committed
def security_disable() -> Response | Page:
    found = _changing()
    if isinstance(found, Response):
        return found
    current, user = found
    form = TurnOffForm()
    if not form.validate_on_submit():
        return _security_page(user, current, form=form, problem=form_problem(form))
    proof = (form.code.data or "").strip()
    digits = "".join(proof.split())
    try:
        if digits.isdigit() and len(digits) == mfa.DIGITS:
            mfa_settings.disable(user, proof)
        else:
            mfa_settings.disable(user, None, proof)
    except Problem as problem:
        problem.field = "code" if problem.code == ErrorCode.INVALID_OTP else None
        return _security_page(user, current, form=form, problem=problem)
    return _security_page(user, current, form=TotpCodeForm(formdata=None),
                          notice="Two-factor authentication is off.")
