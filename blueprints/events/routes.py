"""Events for members: the listing, an event's page, signup and cancellation, the calendar file."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, make_response, redirect, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from extensions import limiter
from blueprints.access import event_or_404, wants_fragment
from blueprints.times import format_day
from blueprints.web import domain_errors, render
from models import Community, db
from models.events import (
    Event, SignupInput, can_manage, cancel_registration, card_of, month_bounds, registrations_of,
    signup as signup_member, signup_window, upcoming_page,
)
from models.loyalty import balance_of
from models.types import add_months, shanghai_day
from services.calendar import event_ics
from services.qr import ticket_qr

bp = Blueprint("events", __name__)

PAGE_SIZE = 20
MONTHS_AHEAD = 6


def _per_member():
    return f"member:{current_user.id}" if current_user.is_authenticated else request.remote_addr


# --- helpers shared by the pages ------------------------------------------------------------

def month_choices(today=None) -> list[tuple[str, str]]:
    """("2026-12", "2026年12月") for this Shanghai month and the next few."""
    first = (today or shanghai_day()).replace(day=1)
    months = [add_months(first, n) for n in range(MONTHS_AHEAD)]
    return [(m.strftime("%Y-%m"), format_day(m, "yMMM")) for m in months]


@bp.app_template_filter("event_when")
def event_when(moment: datetime, skeleton: str = "MMMEd") -> str:
    """'12月5日周六 10:00' in Shanghai time (the day as people say it, then the clock)."""
    if moment is None:
        return ""
    local = moment.astimezone(get_timezone())
    return f"{format_day(local.date(), skeleton)} {local:%H:%M}"


@bp.app_template_filter("event_span")
def event_span(event: Event) -> str:
    """'2026年12月5日周六 10:00 – 13:00', the end's date repeated only when it is another day."""
    start, end = event.starts_at.astimezone(get_timezone()), event.ends_at.astimezone(get_timezone())
    if start.date() == end.date():
        return f"{event_when(event.starts_at, 'yMMMEd')} – {end:%H:%M}"
    return f"{event_when(event.starts_at, 'yMMMEd')} – {event_when(event.ends_at)}"


@bp.app_template_filter("shanghai")
def shanghai(moment: datetime) -> datetime:
    return moment.astimezone(get_timezone())


@bp.app_template_filter("local_part")
def local_part(moment: datetime, skeleton: str) -> str:
    """One part of a Shanghai date ('12月', '周六') for the calendar tile of a card."""
    return format_day(moment.astimezone(get_timezone()).date(), skeleton)


def _priority_note(event: Event) -> dict | None:
    """The lowest level with early signup and the most hours any level gets, for the page's note."""
    from models.loyalty import Level

    if not event.level_priority:
        return None
    early = [level for level in Level.ladder() if level.priority_hours > 0]
    if not early:
        return None
    return {"level": early[0].number, "hours": max(level.priority_hours for level in early)}


def panel_context(event: Event, values=None, error: str | None = None, notice: str | None = None) -> dict:
    """Everything the signup panel shows: seats, the member's registration and what they may do
    (the model's `signup_window`, the same answer the signup rule gives)."""
    member = current_user if current_user.is_authenticated else None
    reg = event.registration_of(member) if member else None
    if reg is not None and reg.state == "cancelled":
        reg = None
    window = signup_window(event, member)
    card = card_of(event)
    return {
        "event": event,
        "reg": reg,
        "seats_left": card.seats_left,
        "waitlisted": card.waitlisted,
        "position": reg.waitlist_position() if reg is not None else None,
        "qr": ticket_qr(reg) if reg is not None and reg.state == "confirmed" else None,
        "opens": window.opens,
        "is_open": window.is_open,
        "not_yet": window.not_yet,
        "closed": window.closed,
        "started": window.started,
        "balance": balance_of(member) if member and event.points_price else None,
        "refundable": window.refundable,
        "suspended_until": window.suspended_until,
        "values": values if values is not None else {},
        "error": error,
        "notice": notice,
    }


def _panel(event: Event, status: int = 200, **kwargs):
    """The signup panel alone for htmx, else the whole event page."""
    context = panel_context(event, **kwargs)
    if not wants_fragment():
        context.update(_page_context(event))
    return render("events/show.html", "events/_signup.html", status=status, **context)


def _page_context(event: Event) -> dict:
    return {"can_manage": can_manage(current_user, event), "priority": _priority_note(event)}


# --- pages --------------------------------------------------------------------------------

@bp.get("")
def index():
    """Upcoming events, filtered by community and month; more load as the list scrolls."""
    slug = request.args.get("community") or None
    community = db.session.scalar(select(Community).where(Community.slug == slug)) if slug else None
    month = request.args.get("month") or None
    if month and month_bounds(month) is None:
        month = None
    page = upcoming_page(request.args.get("cursor"), PAGE_SIZE, community_id=community.id if community else None,
                         month=month)
    cards, next_cursor = page.cards, page.next_cursor
    filters = {"community": community.slug if community else None, "month": month}
    more_url = url_for("events.index", cursor=next_cursor, **filters) if next_cursor else None
    context = {
        "cards": cards, "mine": registrations_of(current_user, [c.event.id for c in cards]),
        "next_cursor": next_cursor, "more_url": more_url, "community": community, "month": month,
    }
    if page.continued and wants_fragment():  # the next page of an infinite scroll: only the cards
        return render("events/index.html", "events/_cards.html", **context)
    return render("events/index.html", "events/_list.html", communities=Community.all_ordered(),
                  months=month_choices(), **context)


@bp.get("/<int:event_id>")
def show(event_id):
    """An event: what, when, where, who runs it, seats left, and the member's signup or ticket."""
    event = event_or_404(event_id)
    return render("events/show.html", "events/_signup.html", **panel_context(event), **_page_context(event))


def _signup_input() -> SignupInput:
    raw = (request.form.get("companions") or "0").strip()
    try:
        companions = int(raw)
    except ValueError:
        companions = -1  # refused by the model with the event's limit in the message
    return SignupInput(
        companions=companions,
        accept_safety=request.form.get("accept_safety") in ("1", "on", "yes", "true"),
        plate=(request.form.get("plate") or "")[:20],
        emergency_name=(request.form.get("emergency_name") or "")[:40],
        emergency_phone=(request.form.get("emergency_phone") or "")[:20],
    )


@login_required
def _panel_again(refused, event_id):
    """Why the signup or the cancellation was refused, in the panel, with what was typed."""
    return _panel(event_or_404(event_id), status=422, values=request.form, error=refused.message)


@bp.post("/<int:event_id>/signup")
@domain_errors(_panel_again)
@login_required
@limiter.limit("30 per minute", key_func=_per_member)
def signup(event_id):
    """Sign the member up: a seat (and a ticket) while seats remain, else the waitlist."""
    event = event_or_404(event_id)
    reg = signup_member(event, current_user, _signup_input())
    db.session.commit()
    if reg.state == "confirmed":
        notice = _("You're in! Show this ticket at the venue.")
    else:
        notice = _("The event is full: you are number %(position)s on the waitlist. "
                   "We will tell you if a seat frees up.", position=reg.waitlist_position())
    return _done(event, notice, "success", points_moved=bool(reg.points_paid))


@bp.post("/<int:event_id>/cancel")
@domain_errors(_panel_again)
@login_required
@limiter.limit("30 per minute", key_func=_per_member)
def cancel(event_id):
    """Cancel the member's own signup; freed seats go to the waitlist."""
    event = event_or_404(event_id)
    result = cancel_registration(event, current_user)
    db.session.commit()
    if result.refunded:
        notice = _("Your signup is cancelled and %(points)s points are back in your account.", points=result.refunded)
    elif result.late:
        notice = _("Your signup is cancelled. It was after the cancellation deadline, so the points are not refunded.")
    else:
        notice = _("Your signup is cancelled.")
    return _done(event, notice, "info", points_moved=bool(result.refunded))


def _done(event: Event, notice: str, category: str, points_moved: bool):
    """After a signup or cancellation: the panel in place (telling the page when the points
    balance changed), or without JS back to the event page with the notice."""
    if not wants_fragment():
        flash(notice, category)
        return redirect(url_for("events.show", event_id=event.id), 303)
    response = _panel(event, notice=notice)
    if points_moved:
        response.headers["HX-Trigger"] = "points-changed"
    return response


@bp.get("/<int:event_id>/calendar.ics")
def calendar(event_id):
    """The event as an .ics file for the phone's calendar."""
    event = event_or_404(event_id)
    response = make_response(event_ics(event, url_for("events.show", event_id=event.id, _external=True)))
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="cheyou-event-{event.id}.ics"'
    return response


from blueprints.events import checkin  # noqa: E402,F401
from blueprints.events import manage  # noqa: E402,F401
