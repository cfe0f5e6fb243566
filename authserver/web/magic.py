"""/auth/magic: the page a mailed link opens.

The GET changes nothing. What the page offers depends on where it is opened (codes.LinkUse):
in the browser that asked for the link, a "Sign in" button that uses it; for an app's link
(PKCE), a button that hands over to the app without using it; anywhere else, a box for the
6-digit code from the same mail. So a mail scanner that opens the link in a browser of its
own and presses what it finds neither signs in nor burns the link (web/link_pages.py).
"""

from __future__ import annotations

from flask import flash, redirect, render_template, session, url_for
from werkzeug.wrappers import Response

from authserver import codes, ratelimits, tokens
from authserver.errors import Problem
from authserver.events import Method
from authserver.flows import magic_link
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import mfa as web_mfa
from authserver.web import session as web_session
from authserver.web.email import EMAIL_KEY, EMAIL_WRONG_KEY, inbox_context, link_binding
from authserver.web.forms import (
    ConfirmForm,
    EmailCodeForm,
    EmailLinkForm,
    LinkCodeForm,
    required,
)
from authserver.web.link_pages import LinkPage, page
from authserver.web.pages import Page, form_problem, render_form

EVICTED = ("Welcome. This was the first time this address was proven, so a password and any "
           "sign-ins set up on the account before now were removed. Set a new password if "
           "you want one.")
#: Answers of the flow shown next to the code box rather than as an error page.
SHOWN = {"invalid_link", "otp_attempts_exceeded", "rate_limited"}


def _code_page(form: LinkCodeForm, problem: Problem | None = None) -> Response:
    html, status, headers = render_form("magic_code.html", form, problem)
    return page(html, status, headers)


LINK = LinkPage(peek=magic_link.peek_link, code_form=LinkCodeForm, code_page=_code_page,
                invalid_page=lambda: render_template("magic_invalid.html",
                                                     form=EmailLinkForm(formdata=None)),
                shown=SHOWN, usable=(codes.LinkUse.HERE, codes.LinkUse.HANDOFF))


def _signed_in(proof: codes.Proof, method: Method) -> Response:
    challenge = proof.challenge
    # Kept for after the second factor, should the sign-in stop for one (web/mfa.py).
    web_mfa.remember_destination(challenge.redirect_to, challenge.code_challenge,
                                 challenge.state)
    issued = tokens.issue(proof.owner.user, magic_link.AMR, client="web", method=method)
    response = web_session.after_sign_in(issued, redirect_to=challenge.redirect_to,
                                         code_challenge=challenge.code_challenge,
                                         state=challenge.state)
    if proof.owner.evicted:
        flash(EVICTED)  # after the sign-in, which starts a fresh cookie session
    return response


def _sign_in_button(token: str, challenge: codes.Challenge, use: codes.LinkUse) -> Response:
    form = ConfirmForm(formdata=None, token=token)
    return page(render_template("magic.html", form=form, email=challenge.subject,
                                expires_at=challenge.expires_at,
                                handoff=use is codes.LinkUse.HANDOFF))


def _sign_in_code(token: str) -> Response:
    return LINK.use_code(lambda form: _signed_in(magic_link.consume_code(
        "", required(form.code), token=token), Method.EMAIL_CODE), lambda response: response)


def _sign_in_link(token: str, _challenge: codes.Challenge, use: codes.LinkUse) -> Response:
    if use is codes.LinkUse.HANDOFF:
        return redirect(magic_link.hand_off(token), code=303)
    return LINK.use_link(lambda: magic_link.consume_link(token, link_binding()),
                         lambda proof: _signed_in(proof, Method.EMAIL_LINK))


@bp.get("/auth/magic")
def magic_confirm() -> Response:
    return LINK.opened(_sign_in_button)


@bp.post("/auth/magic")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def magic_sign_in() -> Response:
    return LINK.submitted(_sign_in_code, _sign_in_link)


def _inbox_page(form: EmailCodeForm, problem: Problem | None = None,
                status: str | None = None, status_code: int = 200,
                headers: dict[str, str] | None = None) -> Page:
    html, code, problem_headers = render_form("email_sent.html", form, problem,
                                              **inbox_context(), status=status)
    return html, code if problem is not None else status_code, {**problem_headers,
                                                                **(headers or {})}


@bp.get("/login/email/code")
def email_code_page() -> Response | Page:
    """"Check your inbox" again (a reload, or back from a refused code)."""
    email = session.get(EMAIL_KEY)
    if not isinstance(email, str) or not email:
        return redirect(url_for("web.email_request"))
    return _inbox_page(EmailCodeForm(formdata=None))


@bp.post("/login/email/code")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def email_code() -> Response | Page:
    """"Check your inbox": the code from the sign-in mail signs this browser in (the code
    path of a link opened elsewhere), so a laptop sign-in works with the mail open on a phone.
    """
    email = session.get(EMAIL_KEY)
    if not isinstance(email, str) or not email:
        return redirect(url_for("web.email_request"), code=303)
    form = EmailCodeForm()
    if not form.validate_on_submit():
        return _inbox_page(form, form_problem(form))
    if codes.normalize_code(required(form.code)) is None:
        # Not six digits: no try is used.
        form.code.errors = ["Enter the 6 digits from the e-mail."]
        return _inbox_page(form, status_code=400)
    try:
        return _signed_in(magic_link.consume_code(email, required(form.code)),
                          Method.EMAIL_CODE)
    except Problem as problem:
        if problem.code == "rate_limited":
            return _inbox_page(form, problem)
        if problem.code not in {"invalid_link", "otp_attempts_exceeded"}:
            raise
        wrong = session.get(EMAIL_WRONG_KEY)
        session[EMAIL_WRONG_KEY] = (wrong if isinstance(wrong, int) else 0) + 1
        form.code.data = ""
        left = inbox_context()["tries_left"]
        if problem.code == "otp_attempts_exceeded" or not left:
            return _inbox_page(form, status=(
                "That code no longer works: too many wrong tries. Use the link in the e-mail, "
                "or send a new e-mail below."), status_code=429, headers=problem.headers)
        return _inbox_page(form, status=(
            f"That code didn't match. {left} {'try' if left == 1 else 'tries'} left. "
            "Check the newest e-mail."), status_code=401)
