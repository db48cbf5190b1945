"""Events for organizers: create, edit, publish, cancel, complete; their events with fill and
attendance rates; the roster and its CSV export.

Every route needs the organizer role somewhere (admins pass); routes about one event then
narrow it to that event's community with `event_or_404(…, manage=True)` (403 otherwise)."""
from __future__ import annotations

import csv
import io
from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from blueprints.access import event_or_404, role_required
from blueprints.events.forms import EventForm
from blueprints.events.routes import bp
from blueprints.transactions import begin_write, reads_first
from blueprints.web import domain_errors, form_page, render
from models import N_, Community, db
from models.accounts import mask_phone
from models.events import (
    KINDS, Event, EventCard, EventInput, Registration, cancel_event, card_of, complete_event, default_map_url,
    managed_by, publish_event, save_event,
)
from models.events import roster as roster_of
from models.nonces import NONCE_RE, AlreadySubmitted, new_nonce
from models.types import SHANGHAI, utcnow
from services.images import MAX_BYTES, delete_photo, process_upload, removed_unless_saved, store_photo
from services.storage import get_storage

# "Cancelled" alone is already translated for vouchers (已作废): events need their own word.
STATUS_LABELS = {
    "draft": N_("Draft"),
    "published": N_("Published"),
    "cancelled": N_("Event cancelled"),
    "completed": N_("Completed"),
}
# Cells a spreadsheet would run as a formula (CSV injection): prefixed with a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _helpers() -> dict:
    """Labels the templates show in the reader's language."""
    return {"status_label": lambda status: _(STATUS_LABELS.get(status, status)),
            "kind_label": lambda kind: _(KINDS.get(kind, kind))}


def _attendance_percent(card: EventCard) -> int | None:
    """Checked-in seats over confirmed seats, once the event is completed."""
    if card.event.status != "completed" or not card.seats_taken:
        return None
    return card.checked_in * 100 // card.seats_taken


# --- my events -----------------------------------------------------------------------------

@bp.get("/manage")
@role_required("organizer")
def manage():
    """The events of the communities I organize, newest first, with fill and attendance rates."""
    cards = managed_by(current_user)
    return render("events/manage/index.html", cards=cards, attendance=_attendance_percent, **_helpers())


# --- create and edit -----------------------------------------------------------------------

def _organized_communities() -> list[Community]:
    communities = Community.all_ordered()
    if current_user.is_admin:
        return communities
    mine = set(current_user.communities_where("organizer"))
    return [c for c in communities if c.id in mine]


def _form(event: Event | None) -> EventForm:
    form = EventForm(obj=event)
    form.community.choices = [SelectChoice(c.id, c.display_name) for c in _organized_communities()]
    form.kind.choices = [SelectChoice(code, _(label)) for code, label in KINDS.items()]
    if form.is_submitted():
        return form
    if event is not None:
        form.community.data = event.community_id
        # A generated Amap search is shown blank, so it follows a changed address.
        if event.map_url == default_map_url(event.address):
            form.map_url.data = ""
        form.safety_notice.data = event.safety_notice or ""
    else:
        from models.loyalty import EarningRule

        wanted = request.args.get("community", type=int)
        ids = [choice.value for choice in form.community.choices]
        form.community.data = wanted if wanted in ids else (ids[0] if ids else None)
        form.nonce.data = new_nonce()
        form.signup_opens_at.data = utcnow().astimezone(SHANGHAI).replace(second=0, microsecond=0)
        form.attendance_points.data = EarningRule.get("event_attended").points
    return form


def _input(form: EventForm, community: Community, cover: tuple[str, str] | None) -> EventInput:
    # Dates left empty get their defaults from EventInput (counted back from the start).
    return EventInput(
        community=community, kind=form.kind.data, title=form.title.data or "", description=form.description.data or "",
        starts_at=form.starts_at.utc, ends_at=form.ends_at.utc, place=form.place.data or "", address=form.address.data or "",
        map_url=form.map_url.data or "", capacity=form.capacity.data, companions_allowed=form.companions_allowed.data,
        signup_opens_at=form.signup_opens_at.utc, signup_closes_at=form.signup_closes_at.utc,
        cancel_deadline=form.cancel_deadline.utc,
        points_price=form.points_price.data, attendance_points=form.attendance_points.data,
        level_priority=bool(form.level_priority.data), safety_notice=form.safety_notice.data or "",
        cover_key=cover[0] if cover else None, cover_thumb_key=cover[1] if cover else None,
    )


def _save(form: EventForm, event: Event | None) -> Event | None:
    """Store the cover, save the event, commit; when refused nothing stays behind, files included."""
    community = db.session.get(Community, form.community.data)
    if community is None or not current_user.has_role("organizer", community=community):
        abort(403)
    storage = get_storage(current_app)
    old_cover = (event.cover_key, event.cover_thumb_key) if event is not None else (None, None)
    try:
        with removed_unless_saved(storage) as written:
            cover = None
            upload = form.cover.data
            if upload is not None and getattr(upload, "filename", None):
                processed = process_upload(upload.read(MAX_BYTES + 1))
                cover = store_photo(processed, storage, "events")
                written.extend(cover)
            begin_write()  # the cover is processed: now take the write lock
            saved = save_event(current_user, _input(form, community, cover), event=event,
                               nonce=None if event else form.nonce.data or "")
            db.session.commit()
    except AlreadySubmitted as repeat:
        db.session.rollback()  # this submission's cover is gone with it; the first draft stands
        return repeat.first
    # A DomainError goes on to `_form_again` (the cover written is gone with it).
    if written:
        delete_photo(storage, *old_cover)  # replaced
    return saved


def _edit(event: Event | None):
    form = _form(event)
    if form.validate_on_submit():
        saved = _save(form, event)
        if saved is not None:
            if event is None:
                flash(_("Draft saved. Members see it once you publish it."), "success")
            else:
                flash(_("Event saved."), "success")
            return redirect(url_for("events.manage_event", event_id=saved.id))
    status = 422 if form.is_submitted() else 200
    return render("events/manage/edit.html", form=form, event=event, **_helpers()), status


@role_required("organizer")
def _form_again(refused, event_id=None):
    """The event form again from what was sent, for those the view lets in only: the reason
    above the form, and a fresh nonce if the page's was stale, so the form works again."""
    event = event_or_404(event_id, manage=True) if event_id is not None else None
    if event is None and not _organized_communities():
        abort(403)
    form = refused.on(_form(event))
    if event is None and not NONCE_RE.match(form.nonce.data or ""):
        form.nonce.data = new_nonce()
    return render("events/manage/edit.html", form=form, event=event, **_helpers())


@bp.route("/new", methods=["GET", "POST"])
@form_page(_form_again)
@role_required("organizer")
@reads_first  # the cover photo is resized before the write lock (blueprints/transactions.py)
def new():
    """A new event (a draft) in a community I organize."""
    if not _organized_communities():
        abort(403)
    return _edit(None)


@bp.route("/<int:event_id>/edit", methods=["GET", "POST"])
@form_page(_form_again)
@role_required("organizer")
@reads_first
def edit(event_id):
    """Change an event; capacity cannot drop below the confirmed seats (the model says so)."""
    return _edit(event_or_404(event_id, manage=True))


# --- the event's dashboard and its actions -------------------------------------------------

def _dashboard(event: Event, status: int = 200, error: str | None = None, cancel_message: str = ""):
    card = card_of(event)
    return render("events/manage/show.html", event=event, card=card, no_shows=card.no_shows,
                  attendance=_attendance_percent(card), started=event.has_started(), error=error,
                  cancel_message=cancel_message, status=status, **_helpers())


@bp.get("/<int:event_id>/manage")
@role_required("organizer")
def manage_event(event_id):
    """An event at a glance for its organizer: counts and what can be done next."""
    return _dashboard(event_or_404(event_id, manage=True))


@role_required("organizer")
def _dashboard_again(refused, event_id):
    """Why an action was refused, on the dashboard (the cancellation message typed kept)."""
    return _dashboard(event_or_404(event_id, manage=True), 422, refused.message, request.form.get("message", ""))


def _act(event: Event, action, success):
    """Run ACTION on the event; commit and go back to the dashboard (a refusal: `_dashboard_again`)."""
    result = action()
    db.session.commit()
    flash(success(result), "success")
    return redirect(url_for("events.manage_event", event_id=event.id))


@bp.post("/<int:event_id>/publish")
@domain_errors(_dashboard_again)
@role_required("organizer")
def publish(event_id):
    event = event_or_404(event_id, manage=True)
    return _act(event, lambda: publish_event(event, current_user),
                lambda _r: _("Published: members can see the event and sign up when signup opens."))


@bp.post("/<int:event_id>/complete")
@domain_errors(_dashboard_again)
@role_required("organizer")
def complete(event_id):
    event = event_or_404(event_id, manage=True)
    return _act(event, lambda: complete_event(event, current_user),
                lambda r: _("Event completed: %(attended)s attended, %(no_shows)s did not show up.",
                            attended=r[0], no_shows=r[1]))


@bp.post("/<int:event_id>/cancel-event", endpoint="cancel_event")
@domain_errors(_dashboard_again)
@role_required("organizer")
def cancel_whole_event(event_id):
    """Cancel the whole event (a member's own cancellation is POST /events/<id>/cancel)."""
    event = event_or_404(event_id, manage=True)
    message = request.form.get("message", "")
    return _act(event, lambda: cancel_event(event, current_user, message),
                lambda told: (_("Event cancelled. %(count)s members were told and refunded.", count=told)
                              if event.points_price else _("Event cancelled. %(count)s members were told.", count=told)))


# --- roster --------------------------------------------------------------------------------

def _numbered(registrations: list[Registration]) -> list[tuple[Registration, int]]:
    """Each registration with its number: seat order among the confirmed, position on the waitlist."""
    counters = {"confirmed": 0, "waitlisted": 0}
    numbered = []
    for reg in registrations:
        counters[reg.state] += 1
        numbered.append((reg, counters[reg.state]))
    return numbered


def _shanghai(moment, fmt: str) -> str:
    return moment.astimezone(SHANGHAI).strftime(fmt) if moment else ""


@bp.get("/<int:event_id>/roster")
@role_required("organizer")
def roster(event_id):
    """Who comes: confirmed seats in order, then the waitlist; phones masked."""
    event = event_or_404(event_id, manage=True)
    rows = _numbered(roster_of(event))
    return render("events/manage/roster.html", event=event, rows=rows, mask_phone=mask_phone,
                  shanghai=_shanghai, **_helpers())


def _safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def roster_csv_text(event: Event, registrations: list[Registration]) -> str:
    """The roster as CSV text (headers in the viewer's language), with the BOM Excel needs to read
    UTF-8 Chinese."""
    header = [_("Status"), _("No."), _("Nickname"), _("Mobile"), _("Companions"), _("Seats"), _("Ticket code"),
              _("Checked in"), _("No-show")]
    if event.is_road_trip:
        header += [_("Plate"), _("Emergency contact"), _("Emergency phone")]
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(header)
    for reg, number in _numbered(registrations):
        row = [
            _("Confirmed") if reg.state == "confirmed" else _("Waitlist"),
            number, reg.user.nickname, mask_phone(reg.user.phone), reg.companions, reg.seats, reg.display_code,
            _shanghai(reg.checked_in_at, "%Y-%m-%d %H:%M"), _("Yes") if reg.no_show else "",
        ]
        if event.is_road_trip:
            # A file gets forwarded: every phone number in it is masked, the emergency contact's
            # too. The organizer calls it from the roster page, where it is shown whole.
            row += [reg.plate, reg.emergency_name, mask_phone(reg.emergency_phone)]
        writer.writerow([_safe_cell(cell) for cell in row])
    return out.getvalue()


@bp.get("/<int:event_id>/roster.csv")
@role_required("organizer")
def roster_csv(event_id):
    event = event_or_404(event_id, manage=True)
    body = roster_csv_text(event, roster_of(event))
    response = Response(body.encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="event-{event.id}-roster.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
