"""Consents (PIPL): what a member agreed to, when and where, kept as an append-only record.

Every signup and every change of the marketing opt-in appends a row: the privacy policy version
in force, the marketing opt-in as it stands after the change, the time, where it was given and
the address it came from. `users.marketing_opt_in` holds the current value, so audiences of many
thousands filter on a column instead of looking up each member's latest row; `set_marketing`
keeps the two together. Members who signed up before this record existed start opted out
(migration a7c1e2d3f401): nothing on file shows they agreed to marketing under these rules.
"""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, mapped_column

from models import db
from models.accounts import User
from models.types import UTCDateTime, utcnow

# Where a consent was given: the signup form, SMS login creating an account, the member's
# notification settings, a campaign's unsubscribe link.
SOURCES = ("signup", "sms_signup", "settings", "unsubscribe")


class Consent(db.Model):
    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint("source IN ('signup','sms_signup','settings','unsubscribe')", name="known_source"),
        Index("ix_consents_user_id_given_at", "user_id", "given_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    policy_version: Mapped[str] = mapped_column(String(20), nullable=False)
    marketing_opt_in: Mapped[bool] = mapped_column(nullable=False)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    ip: Mapped[str | None] = mapped_column(String(45))  # IPv6 at most


def _append(member: User, *, source: str, ip: str | None, now: datetime | None) -> Consent:
    if source not in SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    row = Consent(user_id=member.id, policy_version=current_app.config["PRIVACY_POLICY_VERSION"],
                  marketing_opt_in=bool(member.marketing_opt_in), given_at=now or utcnow(), source=source,
                  ip=(ip or None) and ip[:45])
    db.session.add(row)
    db.session.flush()
    return row


def record_signup(member: User, *, source: str, ip: str | None = None, now: datetime | None = None) -> Consent:
    """MEMBER just accepted the privacy policy by signing up (SOURCE says how), with the
    marketing opt-in they chose there (flushed before: `member.id` is needed). Flushes only."""
    return _append(member, source=source, ip=ip, now=now)


def set_marketing(member: User, opt_in: bool, *, source: str = "settings", ip: str | None = None,
                  now: datetime | None = None) -> Consent | None:
    """Change MEMBER's marketing opt-in and record it; None when it already was OPT_IN (a repeat
    or a double tap records nothing). Flushes only."""
    # Read under the member's row lock (PostgreSQL; SQLite's write transaction already
    # serialises): two taps at once record one change, not two.
    current = db.session.scalar(select(User.marketing_opt_in).where(User.id == member.id).with_for_update())
    if bool(current) == bool(opt_in):
        member.marketing_opt_in = bool(current)
        return None
    member.marketing_opt_in = bool(opt_in)
    return _append(member, source=source, ip=ip, now=now)


def history(member: User) -> list[Consent]:
    """MEMBER's consent record, newest first (for their data export and for support)."""
    return list(db.session.scalars(
        select(Consent).where(Consent.user_id == member.id).order_by(Consent.given_at.desc(), Consent.id.desc())
    ))
