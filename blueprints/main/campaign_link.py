"""The campaign link, `/r/<token>`: what a member taps in the push, the text or the inbox.

The signed token names the campaign and the member (models/campaigns/returns.py). The member
it was sent to, signed in, comes back: the return is recorded and the gift credited, once.
A visitor is asked to sign in and comes back here; another member, a second visit or a late
one is taken to the page with a word on why there is no gift."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.access import safe_path
from blueprints.main.routes import bp
from blueprints.transactions import begin_write
from models import db
from models.campaigns.model import RETURN_WINDOW, CampaignTarget
from models.campaigns.returns import open_link, read_token
from models.types import shanghai_day


@bp.get("/r/<token>")
def campaign_link(token):
    begin_write()  # a tap writes (the click, the return): take the write lock first, never upgrade a read
    outcome = open_link(token, current_user)
    db.session.commit()
    if outcome.status == "invalid":
        return render_template("main/campaign_link.html"), 404
    destination = safe_path(outcome.destination, "/")
    gift = outcome.campaign.gift_points
    if outcome.status == "sign_in":
        flash(_("Sign in to collect your welcome-back gift of %(points)s points.", points=gift) if gift
              else _("Sign in to continue."), "info")
        return redirect(url_for("auth.login", next=request.path))
    if outcome.status == "other_member":
        flash(_("This link was sent to another member, so its gift is not yours to collect."), "warning")
    elif outcome.status == "expired":
        target = CampaignTarget.of(*read_token(token))
        flash(_("Welcome back! This link's gift ran out on %(date)s.",
                date=format_date(shanghai_day(target.created_at + RETURN_WINDOW))) if gift
              else _("Welcome back!"), "info")
    elif outcome.status == "gift":
        flash(_("Welcome back! %(points)s points were added to your account.", points=outcome.points), "success")
    elif outcome.status == "returned":
        flash(_("Welcome back!"), "success")
    return redirect(destination)
