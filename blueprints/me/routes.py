"""The member's own pages: profile, inbox, and the tabs of capabilities still to come."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.main.routes import coming_soon
from blueprints.web import render
from models import Community, Notification, db
from models.communities import member_community_ids

bp = Blueprint("me", __name__)


@bp.before_request
@login_required
def _signed_in_only():
    """Every page here is the member's own."""


@bp.get("")
def index():
    """Profile: account, verification, communities, roles."""
    joined = member_community_ids(current_user)
    communities = [c for c in Community.all_ordered() if c.id in joined]
    return render_template("me/index.html", communities=communities)


@bp.get("/notifications")
def notifications():
    """The inbox, newest first; more pages load as the list scrolls."""
    before = request.args.get("before", type=int)
    items = Notification.page_for(current_user, before_id=before, size=20)
    next_before = items[-1].id if len(items) == 20 else None
    return render("me/notifications.html", "me/_notification_page.html", items=items, next_before=next_before)


@bp.post("/notifications/<int:notification_id>/read")
def mark_read(notification_id):
    """Mark one notification read, in place."""
    item = db.get_or_404(Notification, notification_id)
    if item.user_id != current_user.id:
        abort(404)
    item.mark_read()
    db.session.commit()
    response = render("me/notifications.html", "me/_notification.html", item=item,
                      items=Notification.page_for(current_user), next_before=None)
    response.headers["HX-Trigger"] = "notifications-changed"
    return response


@bp.post("/notifications/read-all")
def mark_all_read():
    Notification.mark_all_read(current_user)
    db.session.commit()
    items = Notification.page_for(current_user)
    response = render("me/notifications.html", "me/_notification_list.html", items=items,
                      next_before=items[-1].id if len(items) == 20 else None)
    response.headers["HX-Trigger"] = "notifications-changed"
    return response


@bp.get("/unread-badge")
def unread_badge():
    """The unread count, refreshed by htmx when notifications change."""
    return render_template("_partials/unread_badge.html")


@bp.get("/points")
def points():
    return coming_soon(_("My points"), _("Your points history, what expires when, and daily check-in arrive with the loyalty programme."))


@bp.get("/vouchers")
def vouchers():
    return coming_soon(_("My vouchers"), _("Service vouchers you redeem with points will be listed here."))


@bp.get("/tickets")
def tickets():
    return coming_soon(_("My tickets"), _("Tickets for the meetups you sign up for will be here, available offline."))


@bp.get("/garage")
def garage():
    return coming_soon(_("My garage"), _("Add your cars to get recall alerts and community suggestions. Coming soon."))


@bp.get("/privacy")
def privacy():
    return coming_soon(_("Privacy and data"), _("Download all your data or delete your account. Coming soon."))

from blueprints.me import vouchers  # noqa: E402,F401  (registers the voucher pages on bp)
