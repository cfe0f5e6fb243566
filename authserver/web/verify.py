"""/auth/verify-email (the page a verification or e-mail change mail opens) and
/account/email (change, or add, the signed-in account's address).

The GET of /auth/verify-email changes nothing. What it offers depends on where it is opened
(codes.LinkUse): in the browser that asked, a button that uses the link; anywhere else, a
box for the 6-digit code from the same mail (web/link_pages.py). So a mail scanner that
opens the link and presses what it finds confirms nothing and burns nothing. Under
EMAIL_VERIFICATION_REQUIRED a sign-up's verification signs this browser in.

/account/email needs a sign-in within REAUTH_MAX_AGE (the web session's start); else the
page says to sign in again.
"""

from __future__ import annotations

from flask import make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from authserver import auth, codes, ratelimits
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import channels, email_change, email_confirmation
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.email import link_binding, set_link_binding
from authserver.web.forms import ConfirmForm, EmailLinkForm, LinkCodeForm, required
from authserver.web.link_pages import LinkPage, page
from authserver.web.pages import Page, form_problem, render_form

#: Answers of the flow shown next to the code box rather than as an error page.
SHOWN = {"invalid_link", "otp_attempts_exceeded", "rate_limited", "email_taken"}


def _code_page(form: LinkCodeForm, problem: Problem | None = None) -> Response:
    html, status, headers = render_form("verify_code.html", form, problem)
    return page(html, status, headers)


LINK = LinkPage(peek=email_confirmation.peek_link, code_form=LinkCodeForm,
                code_page=_code_page, invalid_page=lambda: render_template("verify_invalid.html"),
                shown=SHOWN)


def _done(confirmed: email_confirmation.Confirmed) -> Response:
    if confirmed.issued is not None:
        return web_session.after_sign_in(confirmed.issued)
    return page(render_template("email_verified.html", email=confirmed.user.email,
                                changed=confirmed.purpose is email_change.CHANGE))


def _confirm_button(token: str, challenge: codes.Challenge, _use: codes.LinkUse) -> Response:
    return page(render_template(
        "verify_email.html", form=ConfirmForm(formdata=None, token=token),
        email=challenge.subject, change=challenge.purpose == email_change.CHANGE.name))


def _confirm_code(token: str) -> Response:
    return LINK.use_code(lambda form: email_confirmation.confirm_code(
        "", required(form.code), token=token, client="web"), _done)


def _confirm_link(token: str, _challenge: codes.Challenge, _use: codes.LinkUse) -> Response:
    return LINK.use_link(lambda: email_confirmation.confirm_link(
        token, binding=link_binding(), client="web"), _done)


@bp.get("/auth/verify-email")
def verify_email_page() -> Response:
    return LINK.opened(_confirm_button)


@bp.post("/auth/verify-email")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def verify_email_submit() -> Response:
    return LINK.submitted(_confirm_code, _confirm_link)


@bp.route("/account/email", methods=["GET", "POST"])
@committed
def change_email() -> Response | Page | str:
    found = web_session.current()
    if found is None:
        return redirect(url_for("web.login"))
    current, user = found
    if not auth.is_recent(int(current.authenticated_at.timestamp())):
        return render_template("change_email.html", stale=True, user=user, form=ConfirmForm())
    form = EmailLinkForm()
    if request.method == "GET":
        return render_form("change_email.html", form, user=user)
    if not form.validate_on_submit():
        return render_form("change_email.html", form, form_problem(form), user=user)
    binding = link_binding() or codes.new_binding()
    try:
        email_change.request_change(user, required(form.email), binding=binding)
    except Problem as problem:
        return render_form("change_email.html", form, problem, user=user)
    ttl = email_change.CHANGE.setting("ttl")
    response = make_response(render_template(
        "change_email_sent.html", email=required(form.email).strip(),
        expires=channels.lifetime(ttl)))
    set_link_binding(response, binding, max(ttl, settings().magic_link_ttl))
    return response
