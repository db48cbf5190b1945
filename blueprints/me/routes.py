"""The member's own pages: profile, inbox, and the tabs of capabilities still to come."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import (Blueprint, Response, abort, current_app, flash, make_response, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.access import back_url, wants_fragment
from blueprints.web import coming_soon, keep_offline, render
from models import Community, EarningRule, Notification, db
from models.communities import member_community_ids
from models.consents import set_marketing
from models.loyalty import Level, check_in, history, points_summary
from models.events import tickets_of, waitlist_positions
from models.referrals import invite_code
from services.poster import PosterFontMissing, PosterText
from services.poster import invite_poster as draw
from services.qr import ticket_qr

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
    return render_template("me/index.html", communities=communities, invite_url=invite_link(current_user),
                           **points_summary(current_user))


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


@bp.post("/notifications/marketing")
def marketing_consent():
    """Turn offers and win-back messages on or off (recorded as a consent); htmx gets the
    setting back in place, a plain form goes back to the notifications page."""
    set_marketing(current_user, request.form.get("opt_in") == "1", source="settings", ip=request.remote_addr)
    db.session.commit()
    if not wants_fragment():
        flash(_("Saved."), "success")
        return redirect(url_for("me.notifications"))
    return render_template("me/_marketing_consent.html", saved=True)


@bp.get("/unread-badge")
def unread_badge():
    """The unread count, refreshed by htmx when notifications change."""
    return render_template("_partials/unread_badge.html")


@bp.get("/points")
def points():
    """积分: balance, level and progress, what expires when, check-in, the ledger, how to earn."""
    before = request.args.get("before", type=int)
    postings = history(current_user, before_id=before, size=20)
    next_before = postings[-1].id if len(postings) == 20 else None
    if before and wants_fragment():  # the next rows of the infinite scroll
        return render("me/points.html", "me/_ledger_page.html", postings=postings, next_before=next_before)
    # Otherwise the whole page, also for `?before=` (a reload or an opened "Older entries" link).
    return render("me/points.html", postings=postings, next_before=next_before, ladder=Level.ladder(),
                  rules=EarningRule.query_active(), invite_url=invite_link(current_user),
                  **points_summary(current_user))


def invite_link(member) -> str:
    """The member's invite link (老带新), absolute: what the share button and the poster carry.
    On the site's public address (SITE_URL) when it is set, like links in e-mails."""
    path = url_for("main.invite", code=invite_code(member))
    site = current_app.config.get("SITE_URL")
    return f"{site}{path}" if site else url_for("main.invite", code=invite_code(member), _external=True)


@bp.get("/invite-poster.png")
def invite_poster():
    """The member's invite poster: a PNG to long-press, save and send in WeChat (drawn once, then cached)."""
    nickname = current_user.nickname if len(current_user.nickname) <= 12 else current_user.nickname[:11] + "…"
    text = PosterText(
        brand=_("Cheyou"),
        tagline=_("The community for used-car owners"),
        headline=_("%(nickname)s invites you to join Cheyou", nickname=nickname),
        pitch=(_("EV, women drivers, modding and newcomers' circles"),
               _("Meetups and road trips; points for car washes and servicing"),
               _("Questions about buying and owning, answered by owners")),
        scan_hint=_("Press and hold the QR code to join Cheyou"),
    )
    try:
        data = draw(text, invite_link(current_user))
    except PosterFontMissing as error:
        current_app.logger.error("invite poster: %s", error)
        return Response(_("The poster cannot be drawn right now. Please try again later."), 503,
                        mimetype="text/plain")
    response = make_response(data)
    response.mimetype = "image/png"
    response.headers["Cache-Control"] = "private, no-store"  # it carries the member's nickname
    response.headers["Content-Disposition"] = 'inline; filename="cheyou-invite.png"'
    return response


@bp.post("/checkin")
def checkin():
    """Today's check-in (签到), in place."""
    result = check_in(current_user)
    db.session.commit()
    response = render("me/points.html", "me/_points_card.html", checkin=result, **points_summary(current_user))
    if not result.already:
        response.headers["HX-Trigger"] = "points-changed"
    if not wants_fragment():
        back = back_url(url_for("me.points"), referrer=True)  # the profile or the points page
        return redirect(back if urlsplit(back).path in (url_for("me.index"), url_for("me.points")) else url_for("me.points"))
    return response


@bp.get("/tickets")
def tickets():
    """My tickets: coming events (QR and code, or waitlist position) and past ones; kept on the
    device by the service worker so the ticket opens at a venue without signal."""
    coming, past = tickets_of(current_user)
    response = render_template("me/tickets.html", coming=coming, past=past,
                               positions=waitlist_positions(coming),
                               qrs={r.id: ticket_qr(r) for r in coming if r.state == "confirmed"})
    return keep_offline(make_response(response))


@bp.get("/privacy")
def privacy():
    return coming_soon(_("Privacy and data"), _("Download all your data or delete your account. Coming soon."))

from blueprints.me import vouchers  # noqa: E402,F401  (registers the voucher pages on bp)
from blueprints.me import garage  # noqa: E402,F401  (registers the garage pages on bp)
from blueprints.me import push  # noqa: E402,F401  (registers the Web Push device routes on bp)
