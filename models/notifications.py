"""The in-app inbox. Every notification is a row here; other channels deliver on top."""
from __future__ import annotations

from datetime import datetime

from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from models import db
from models.types import UTCDateTime, utcnow

# Kind -> message (English msgid). Rendered when shown, in the reader's language.
KINDS = {
    "welcome": _l("Welcome to Cheyou, %(nickname)s! Join a community to get started."),
    "role_granted": _l("You are now %(role)s%(scope)s."),
    "role_revoked": _l("You are no longer %(role)s%(scope)s."),
    "phone_verified": _l("Your mobile number %(phone)s is verified. You can now post and comment."),
    "password_changed": _l("Your password was changed. Other devices have been signed out."),
    "level_up": _l("Congratulations! You reached %(level)s. See what your new level gives you."),
    "level_down": _l("Your level is now %(level)s: growth older than a year no longer counts."),
    "points_earned": _l("You earned %(points)s points: %(reason)s."),
    "referral_rewarded": _l("Your invitation paid off: %(points)s points for you."),
    "voucher_issued": _l("Your voucher for %(reward)s is ready. Show it at the counter."),
    "voucher_expiring": _l("Your voucher for %(reward)s expires on %(date)s. Use it before then."),
    "voucher_used": _l("Your voucher for %(reward)s was used at %(store)s."),
    "voucher_voided": _l("Your voucher for %(reward)s was cancelled and %(points)s points were refunded."),
    "points_adjusted": _l("Your points were adjusted by %(points)s: %(reason)s"),
    "content_hidden": _l("A moderator hid “%(title)s”: %(note)s"),
    "content_restored": _l("A moderator restored “%(title)s”. It is shown again."),
    "story_featured": _l("Your story “%(title)s” is featured in its community. Thanks for sharing: points are on the way."),
    "comment_received": _l("%(nickname)s commented on your story “%(title)s”."),
    "reply_received": _l("%(nickname)s replied to your comment on “%(title)s”."),
    "event_promoted": _l("A seat opened up: you are now confirmed for “%(title)s”. Your ticket is ready."),
    "event_promotion_skipped": _l("A seat opened up at “%(title)s”, but you no longer have the %(points)s points it costs, so it went to the next member."),
    "event_cancelled": _l("“%(title)s” is cancelled: %(message)s"),
    "event_cancelled_refunded": _l("“%(title)s” is cancelled: %(message)s Your %(points)s points are refunded."),
    "event_signed_up": _l("You're signed up for “%(title)s”. Your ticket is in My tickets."),
    "event_waitlisted": _l("“%(title)s” is full: you are number %(position)s on the waitlist. We will tell you if a seat frees up."),
    "event_reminder": _l("Tomorrow at %(time)s: “%(title)s” at %(place)s. Your ticket is in My tickets."),
}


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("user_id", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    link: Mapped[str | None] = mapped_column(String(300))
    dedupe_key: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def text(self) -> str:
        """The message in the current request's language."""
        template = KINDS.get(self.kind)
        if template is None:
            return self.kind
        params = {k: _translated(v) for k, v in (self.params or {}).items()}
        try:
            return str(template) % params
        except (KeyError, ValueError, TypeError):
            return str(template)

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    def mark_read(self) -> None:
        if self.read_at is None:
            self.read_at = utcnow()

    @classmethod
    def unread_count(cls, user) -> int:
        return db.session.scalar(
            select(func.count()).select_from(cls).where(cls.user_id == user.id, cls.read_at.is_(None))
        )

    @classmethod
    def mark_all_read(cls, user) -> int:
        result = db.session.execute(
            update(cls).where(cls.user_id == user.id, cls.read_at.is_(None)).values(read_at=utcnow())
        )
        return result.rowcount

    @classmethod
    def page_for(cls, user, before_id: int | None = None, size: int = 20) -> list[Notification]:
        """Newest first, keyset-paginated by id."""
        query = select(cls).where(cls.user_id == user.id)
        if before_id:
            query = query.where(cls.id < before_id)
        return list(db.session.scalars(query.order_by(cls.id.desc()).limit(size)))


def _translated(value):
    """Params may carry msgids, as {"msgid": "..."}, to translate at display time."""
    if isinstance(value, dict) and "msgid" in value:
        msgid = value["msgid"]
        return gettext(msgid)
    return value


def notify(member, kind: str, params: dict | None = None, link: str | None = None, dedupe_key: str | None = None):
    """Write an inbox row for MEMBER; a repeated dedupe key is a no-op. Flushes only, never commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if dedupe_key is not None:
        existing = db.session.scalar(
            select(Notification).where(Notification.user_id == member.id, Notification.dedupe_key == dedupe_key)
        )
        if existing is not None:
            return existing
    row = Notification(user_id=member.id, kind=kind, params=params or {}, link=link, dedupe_key=dedupe_key)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        # A concurrent writer used the same dedupe key first: theirs stands.
        return db.session.scalar(
            select(Notification).where(Notification.user_id == member.id, Notification.dedupe_key == dedupe_key)
        )
    # Delivery channels beyond the inbox (Web Push) hook in here with enqueue(), after commit.
    return row
