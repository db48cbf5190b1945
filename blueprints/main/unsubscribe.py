"""One-tap unsubscribe from marketing texts: `/u/<token>`, the link at the end of every marketing SMS.

The signed token names the member and is the only credential: no login (the member reads the
text on a phone that may never have signed in). GET only shows what will happen, since link
previewers and security scanners open links; the member's POST (CSRF-protected like every
form) turns marketing off and records it in the consent record (source `unsubscribe`)."""
from __future__ import annotations

from flask import render_template, request

from blueprints.main.routes import bp
from models import User, db
from models.consents import set_marketing
from models.sms_rules import member_id_from_token


def _member(token: str) -> User | None:
    member_id = member_id_from_token(token)
    return db.session.get(User, member_id) if member_id is not None else None


def _invalid():
    return render_template("main/unsubscribe.html", member=None, done=False), 400


@bp.get("/u/<token>")
def unsubscribe(token):
    member = _member(token)
    if member is None:
        return _invalid()
    return render_template("main/unsubscribe.html", member=member, done=not member.marketing_opt_in, token=token)


@bp.post("/u/<token>")
def unsubscribe_confirm(token):
    member = _member(token)
    if member is None:
        return _invalid()
    set_marketing(member, False, source="unsubscribe", ip=request.remote_addr)
    db.session.commit()
    return render_template("main/unsubscribe.html", member=member, done=True, token=token)
