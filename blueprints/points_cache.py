"""Storing the points standings a read-only request had to derive, after its view.

A page reads a member's balance and level from their cached standing (models/loyalty/standing.py).
Past its `valid_until` (points reached their expiry date, growth left the window) the page
derives the standing from the ledger instead, without writing: the request's transaction is a
read (on SQLite a plain BEGIN), and turning it into a write fails at once whenever another
request wrote meanwhile. Once the view is done, as for a member's active day
(blueprints/activity.py), the read transaction is ended and the standings are stored in a short
transaction of their own that asks for the write lock from its start, each only if no posting
rewrote the member's row meanwhile. A failure (a busy database) is logged and the page goes out
as it was: the next view derives the standing again and tries once more.
"""
from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from models import db
from models.loyalty import collect_unstored, store_standings, take_unstored

log = logging.getLogger("cheyou.points")


def _collect():
    collect_unstored()


def store_derived_standings(response):
    """After-request hook: store what the view derived past the cache, in a transaction of its own."""
    pending = take_unstored()
    if not pending:
        return response
    db.session.rollback()  # the view has answered: its reads end here, as at teardown
    token = db.write_intent.set(True)
    try:
        store_standings(pending)
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        log.warning("standings of members %s not stored: %s", sorted(pending), getattr(error, "orig", error))
    finally:
        db.write_intent.reset(token)
    return response


def init_points_cache(app: Flask) -> None:
    app.before_request(_collect)
    app.after_request(store_derived_standings)
