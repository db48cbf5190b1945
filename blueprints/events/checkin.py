"""Venue check-in for organizers: camera or typed code, and an offline queue synced later.

The check-in page keeps working with no signal: the service worker keeps the page (it is marked
`keep_offline`), the page keeps the confirmed roster in IndexedDB (token hashes, never raw
tokens), queues scans with the device's clock and posts them to `checkin/sync` when back online.
That sync may come hours after the page was loaded, so it does not use the CSRF token (which
expires); it carries `X-Checkin-Key` instead: an HMAC of the event, the organizer and their
session token. Another site cannot read it from the page, and changing the password (which
rotates the session token) revokes it.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

from flask import abort, current_app, jsonify, redirect, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from extensions import csrf
from blueprints.access import event_or_404, json_error
from blueprints.events.routes import bp
from blueprints.web import domain_errors, domain_message, keep_offline, render
from models import DomainError, db
from models.events import Event, Registration, can_manage, check_in, find_ticket, roster
from services.qr import ticket_qr

SYNC_BATCH_MAX = 500  # a phone offline for a whole fair queues a few hundred scans at most
ITEM_TEXT_MAX = 300  # a ticket URL, a token or a typed code; anything longer is not a ticket
ITEM_ID_MAX = 64


# --- helpers ----------------------------------------------------------------------------------

def token_hash(token: str) -> str:
    """sha256 of a ticket token (hex): how the device recognises a scanned ticket offline."""
    return hashlib.sha256(token.encode()).hexdigest()


def checkin_key(event_id: int, user) -> str:
    """The sync credential of USER for EVENT, tied to their session (a password change kills it)."""
    message = f"checkin:{event_id}:{user.id}:{user.session_token}".encode()
    return hmac.new(current_app.config["SECRET_KEY"].encode(), message, hashlib.sha256).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def _parse_scanned_at(value) -> datetime | None:
    """A device's ISO-8601 scan time as an aware UTC datetime, or None when it is unusable."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # the page always sends UTC ("…Z"); a bare time is read as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _counts(event: Event) -> tuple[int, int]:
    """(checked in, confirmed) registrations of EVENT."""
    confirmed, checked = db.session.execute(
        select(func.count(), func.count(Registration.checked_in_at)).where(
            Registration.event_id == event.id, Registration.state == "confirmed")
    ).one()
    return checked, confirmed


# --- the ticket's landing page -----------------------------------------------------------------

@bp.get("/t/<token>")
@login_required
def ticket(token):
    """What a ticket's QR opens: the check-in for organizers, the ticket for its owner, else 404."""
    reg = db.session.scalar(
        select(Registration).where(Registration.ticket_token == token[:40])
        .options(joinedload(Registration.event), joinedload(Registration.user))
    )
    if reg is None or reg.ticket_token != token:
        abort(404)
    if can_manage(current_user, reg.event):
        return redirect(url_for("events.checkin", event_id=reg.event_id, ticket=token))
    if reg.user_id != current_user.id:
        abort(404)  # someone else's ticket: say nothing about it
    qr = ticket_qr(reg) if reg.state == "confirmed" else None
    return keep_offline(render("events/ticket.html", reg=reg, event=reg.event, qr=qr))


# --- the organizer's check-in page --------------------------------------------------------------

def _page(event: Event, status: int = 200, result: dict | None = None, preview: Registration | None = None):
    checked, confirmed = _counts(event)
    response = render(
        "events/checkin.html", status=status, event=event, result=result, preview=preview,
        checked=checked, confirmed=confirmed, key=checkin_key(event.id, current_user),
    )
    return keep_offline(response)


@bp.get("/<int:event_id>/checkin")
@login_required
def checkin(event_id):
    """Scan or type tickets; works offline once loaded (see the module's docstring)."""
    event = event_or_404(event_id, manage=True)
    preview = None
    if request.args.get("ticket"):  # opened from a ticket's QR with the phone's own scanner
        found = find_ticket(event, request.args["ticket"])
        preview = found if found is not None and found.event_id == event.id else None
    return _page(event, preview=preview)


def _result(status: str, reg: Registration | None = None, message: str = "") -> dict:
    """A check-in outcome in the shape the page shows (the same for the form and the sync)."""
    data = {"status": status, "message": message, "nickname": None, "companions": 0, "code": None,
            "checked_in_at": None}
    if reg is not None:
        data.update(nickname=reg.user.nickname, companions=reg.companions, code=reg.display_code,
                    checked_in_at=_iso(reg.checked_in_at))
    return data


def _outcome(done) -> dict:
    """A successful check_in(): checked in now, or already, saying when (the earliest scan)."""
    if done.first:
        return _result("ok", done.registration)
    when = format_datetime(done.registration.checked_in_at, "HH:mm")
    return _result("already", done.registration, _("Already checked in at %(time)s", time=when))


@login_required
def _checkin_refused(refused, event_id):
    return _page(event_or_404(event_id, manage=True), status=422, result=_result("refused", message=refused.message))


@bp.post("/<int:event_id>/checkin")
@domain_errors(_checkin_refused)
@login_required
def checkin_form(event_id):
    """Typing a code without JavaScript: a plain CSRF-protected form, the result on the page."""
    event = event_or_404(event_id, manage=True)
    text = (request.form.get("code") or "").strip()[:ITEM_TEXT_MAX]
    done = check_in(event, text, current_user)
    db.session.commit()
    return _page(event, result=_outcome(done))


@bp.get("/<int:event_id>/checkin/roster")
@login_required
def checkin_roster(event_id):
    """The confirmed roster for the device's offline copy: token hashes, never raw tokens.
    (A GET like the pages: visitors are sent to log in, and the page's script notices.)"""
    event = event_or_404(event_id, manage=True)
    entries = [
        {"code": reg.code, "token_sha256": token_hash(reg.ticket_token), "nickname": reg.user.nickname,
         "companions": reg.companions, "checked_in_at": _iso(reg.checked_in_at)}
        for reg in roster(event) if reg.state == "confirmed"
    ]
    checked = sum(1 for e in entries if e["checked_in_at"])
    response = jsonify(event=event.id, registrations=entries, checked_in=checked, confirmed=len(entries))
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _sync_item(event: Event, item) -> dict:
    """Check in one queued scan in its own savepoint: a refusal leaves the others alone."""
    item = item if isinstance(item, dict) else {}
    item_id = item["id"][:ITEM_ID_MAX] if isinstance(item.get("id"), str) else None
    text = item.get("ticket")
    if not isinstance(text, str) or not text.strip() or len(text) > ITEM_TEXT_MAX:
        return _result("refused", message=_("No ticket matches this code. Check it and try again.")) | {"id": item_id}
    savepoint = db.session.begin_nested()
    try:
        done = check_in(event, text, current_user, scanned_at=_parse_scanned_at(item.get("scanned_at")))
    except DomainError as error:
        savepoint.rollback()
        return _result("refused", message=domain_message(error)) | {"id": item_id}
    savepoint.commit()
    return _outcome(done) | {"id": item_id}


@bp.post("/<int:event_id>/checkin/sync")
@csrf.exempt  # a sync may come hours after the page loaded: X-Checkin-Key stands in for the token
def checkin_sync(event_id):
    """Check in a device's queued scans; replays are harmless and the earliest scan is kept."""
    event = event_or_404(event_id, manage=True, as_json=True)  # fetch() must not land on the login page
    sent = request.headers.get("X-Checkin-Key", "").encode()
    if not hmac.compare_digest(sent, checkin_key(event.id, current_user).encode()):
        return json_error(403, _("This check-in page is out of date. Reload it while online."))
    if request.mimetype != "application/json":
        return json_error(415, _("The request could not be understood. Please try again."))
    payload = request.get_json(silent=True)
    items = payload.get("checkins") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return json_error(400, _("The request could not be understood. Please try again."))
    if len(items) > SYNC_BATCH_MAX:
        return json_error(413, _("Too many check-ins at once. Please try again."))
    results = [_sync_item(event, item) for item in items]
    db.session.commit()
    checked, confirmed = _counts(event)
    response = jsonify(results=results, checked_in=checked, confirmed=confirmed)
    response.headers["Cache-Control"] = "private, no-store"
    return response
