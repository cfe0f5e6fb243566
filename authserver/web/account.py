"""/account: who is signed in, how, where else, what happened lately (the last 10 audit
events); sign out here or everywhere."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from werkzeug.wrappers import Response

from authserver import audit, sessions
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import ConfirmForm

AMR_LABELS = {"pwd": "password", "sms": "code texted to your phone",
              "email": "link or code e-mailed to you", "otp": "one-time code", "mfa": "2 factors"}

#: How many of the account's recent events the page lists.
ACTIVITY_SHOWN = 10


@bp.get("/account")
def account() -> Response | str:
    found = web_session.current()
    if found is None:
        return redirect(url_for("web.login"))
    current, user = found
    return render_template("account.html", user=user, current=current,
                           sessions=sessions.active_for(user),
                           amr_labels=AMR_LABELS, form=ConfirmForm(),
                           activity=audit.recent(user.id, ACTIVITY_SHOWN),
                           activity_label=audit.label)


@bp.post("/logout")
@committed
def logout() -> Response:
    form = ConfirmForm()
    form.validate_on_submit()  # CSRFProtect has already refused a forged post
    web_session.logout()
    return redirect(url_for("web.login", signed_out=1), code=303)


@bp.post("/account/sign-out-everywhere")
@committed
def sign_out_everywhere() -> Response:
    found = web_session.current()
    if found is not None:
        sessions.revoke_all(found[1].id, reason="sign_out_everywhere")
    web_session.logout()
    return redirect(url_for("web.login", signed_out=1), code=303)
