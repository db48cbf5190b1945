"""Recording that a signed-in member was active today: at most one write per member per day.

The day already recorded travels in the signed session cookie, so nearly every request decides
from the cookie alone, with no query. On the first request served to a member on a new
Shanghai day, after the view's own work is done, the request's transaction is ended and the day
is written in a short transaction of its own, which asks for the write lock from its start
(on SQLite: BEGIN IMMEDIATE), so a read transaction is never upgraded into a write. A failure
(a busy database) is logged and the member's answer goes out as it was; the next request tries
again, since the cookie then still names an older day.
"""
from __future__ import annotations

import logging

from flask import Flask, request, session
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from models import db
from models.activity import record_day, today

log = logging.getLogger("cheyou.activity")

# The session key holding "<Flask-Login's user id>|<Shanghai day>" once that day is recorded:
# the user id part makes another account signing in on the same browser count too.
SESSION_KEY = "active_day"


def _recorded_marker(day) -> str | None:
    user_key = session.get("_user_id")  # Flask-Login's key: set once a member is signed in
    return f"{user_key}|{day.isoformat()}" if user_key else None


def record_activity(response):
    """After-request hook: note the signed-in member's day if the session does not say it is."""
    if request.endpoint == "static" or response.status_code >= 400 or not session:
        return response  # files, refusals and failures, visitors without a session: nothing
    day = today()
    marker = _recorded_marker(day)
    if marker is None or session.get(SESSION_KEY) == marker:
        return response
    if not current_user.is_authenticated:
        return response
    if current_user.last_active_on != day and not _write_day(current_user.id, day):
        return response
    session[SESSION_KEY] = marker
    return response


def _write_day(user_id: int, day) -> bool:
    """Record USER_ID's DAY in a transaction of its own; False if the database refused."""
    # The view has answered: whatever its transaction still holds (reads for the page, or
    # changes it chose not to commit) ends as it would at teardown.
    db.session.rollback()
    token = db.write_intent.set(True)
    try:
        record_day(user_id, day)
        db.session.commit()
        return True
    except SQLAlchemyError as error:
        db.session.rollback()
        log.warning("activity of member %s on %s not recorded: %s", user_id, day, getattr(error, "orig", error))
        return False
    finally:
        db.write_intent.reset(token)


def init_activity(app: Flask) -> None:
    app.after_request(record_activity)
