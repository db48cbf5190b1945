"""The in-app inbox. Every notification is a row here; other channels deliver on top: each kind
declares its category and whether SMS may carry it, `notify()` queues the delivery job
(services/channels.py) and `plan_deliveries` decides the rows it sends (models/push.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from models import db
from models.outbox import enqueue
from models.push import CATEGORIES, Delivery, PushSubscription
from models.types import UTCDateTime, utcnow

# The job that fans a notification out to its channels (services/channels.py, registered by
# services/tasks.py): models queue it by name, they never import services.
DELIVER_JOB = "services.channels.deliver_notification"


@dataclass(frozen=True)
class Kind:
    """A notification kind: its message (English msgid, rendered when shown, in the reader's
    language), its category (the member's per-device push switches), and whether SMS may carry
    it: "fallback" to members with no push device taking the category, "always" for the kinds
    that must reach the phone (safety recalls, return gifts). The inbox and push take every kind."""

    message: object
    category: str
    sms: str | None = None
    # Campaign kinds carry their own headline: the push shows params[title] over params[body].
    own_title: bool = False

    def __post_init__(self):
        assert self.category in CATEGORIES, self.category
        assert self.sms in (None, "fallback", "always"), self.sms

    @property
    def channels(self) -> tuple[str, ...]:
        return ("inbox", "push", "sms") if self.sms else ("inbox", "push")


KINDS = {
    "welcome": Kind(_l("Welcome to Cheyou, %(nickname)s! Join a community to get started."), "account"),
    "role_granted": Kind(_l("You are now %(role)s%(scope)s."), "account"),
    "role_revoked": Kind(_l("You are no longer %(role)s%(scope)s."), "account"),
    "phone_verified": Kind(_l("Your mobile number %(phone)s is verified. You can now post and comment."), "account"),
    "password_changed": Kind(_l("Your password was changed. Other devices have been signed out."), "account"),
    "level_up": Kind(_l("Congratulations! You reached %(level)s. See what your new level gives you."), "loyalty"),
    "level_down": Kind(_l("Your level is now %(level)s: growth older than a year no longer counts."), "loyalty"),
    "points_earned": Kind(_l("You earned %(points)s points: %(reason)s."), "loyalty"),
    "referral_rewarded": Kind(_l("Your invitation paid off: %(points)s points for you."), "loyalty"),
    "voucher_issued": Kind(_l("Your voucher for %(reward)s is ready. Show it at the counter."), "loyalty"),
    "voucher_expiring": Kind(_l("Your voucher for %(reward)s expires on %(date)s. Use it before then."), "loyalty"),
    "voucher_used": Kind(_l("Your voucher for %(reward)s was used at %(store)s."), "loyalty"),
    "voucher_voided": Kind(_l("Your voucher for %(reward)s was cancelled and %(points)s points were refunded."), "loyalty"),
    "points_adjusted": Kind(_l("Your points were adjusted by %(points)s: %(reason)s"), "loyalty"),
    "content_hidden": Kind(_l("A moderator hid “%(title)s”: %(note)s"), "replies"),
    "content_restored": Kind(_l("A moderator restored “%(title)s”. It is shown again."), "replies"),
    "story_featured": Kind(_l("Your story “%(title)s” is featured in its community. Thanks for sharing: points are on the way."), "replies"),
    "comment_received": Kind(_l("%(nickname)s commented on your story “%(title)s”."), "replies"),
    "reply_received": Kind(_l("%(nickname)s replied to your comment on “%(title)s”."), "replies"),
    "event_promoted": Kind(_l("A seat opened up: you are now confirmed for “%(title)s”. Your ticket is ready."), "events", sms="fallback"),
    "event_promotion_skipped": Kind(_l("A seat opened up at “%(title)s”, but you no longer have the %(points)s points it costs, so it went to the next member."), "events"),
    "event_cancelled": Kind(_l("“%(title)s” is cancelled: %(message)s"), "events", sms="fallback"),
    "event_cancelled_refunded": Kind(_l("“%(title)s” is cancelled: %(message)s Your %(points)s points are refunded."), "events", sms="fallback"),
    "event_signed_up": Kind(_l("You're signed up for “%(title)s”. Your ticket is in My tickets."), "events"),
    "event_waitlisted": Kind(_l("“%(title)s” is full: you are number %(position)s on the waitlist. We will tell you if a seat frees up."), "events"),
    "event_reminder": Kind(_l("Tomorrow at %(time)s: “%(title)s” at %(place)s. Your ticket is in My tickets."), "events"),
    # Campaigns (models/campaigns): the admin's words, texted too where the campaign asks for SMS.
    "campaign_winback": Kind("%(title)s：%(body)s", "campaigns", sms="always", own_title=True),
    "campaign_announcement": Kind("%(title)s：%(body)s", "campaigns", sms="always", own_title=True),
    "campaign_recall": Kind(_l("Safety recall: %(title)s. %(body)s"), "account", sms="always", own_title=True),
}
# The kinds SMS may carry (services/sms.py has a template for each).
SMS_KINDS = frozenset(name for name, kind in KINDS.items() if kind.sms)


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
        kind = KINDS.get(self.kind)
        if kind is None:
            return self.kind
        template = kind.message
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
        """USER's unread notifications: the count loaded with them when it is still fresh."""
        loaded = getattr(user, "unread_total", None)
        if loaded is not None:
            return loaded
        return db.session.scalar(
            select(func.count()).select_from(cls).where(cls.user_id == user.id, cls.read_at.is_(None))
        )

    @classmethod
    def unread_of(cls, user_class):
        """The unread count as a subquery correlated to USER_CLASS (models.accounts.User, which
        imports this module), for loading it with the member: `User.unread_total`."""
        return (select(func.count()).select_from(cls).where(cls.user_id == user_class.id, cls.read_at.is_(None))
                .correlate(user_class).scalar_subquery())

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
    """Write an inbox row for MEMBER; a repeated dedupe key is a no-op. Flushes only, never commits.
    When the member has another channel for KIND (a push device, a phone for an SMS kind), the
    delivery job is queued in the same transaction: it runs after the commit, or never."""
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
    if _reachable_beyond_inbox(member, KINDS[kind]):
        # Runs after the commit; the key makes a second queueing of this row a no-op.
        enqueue(DELIVER_JOB, row.id, key=f"deliver:{row.id}")
    return row


def _reachable_beyond_inbox(member, kind: Kind) -> bool:
    """Whether MEMBER has a channel besides the inbox for KIND: a push device, or a verified phone
    for a kind SMS may carry. (One indexed lookup; most members get no job at all.)"""
    if kind.sms and member.phone and member.phone_verified_at is not None:
        return True
    return db.session.scalar(select(exists().where(PushSubscription.user_id == member.id)))


def plan_deliveries(notification: Notification, member) -> list[Delivery]:
    """The delivery rows of NOTIFICATION (flush only), one per device taking its category, and
    one for SMS where the kind allows it; a second call adds only what is missing."""
    kind = KINDS[notification.kind]
    if kind.category == "campaigns" and not member.marketing_opt_in:
        return []  # marketing stays in the inbox of members who did not opt in
    have = {(d.channel, d.subscription_id) for d in db.session.scalars(
        select(Delivery).where(Delivery.notification_id == notification.id))}
    devices = [s for s in PushSubscription.of_member(member) if s.takes(kind.category)]
    wanted = [("push", s.id) for s in devices]
    phone_ok = bool(member.phone and member.phone_verified_at is not None)
    if kind.sms == "always" and phone_ok or kind.sms == "fallback" and phone_ok and not devices:
        wanted.append(("sms", None))
    rows = [Delivery(notification_id=notification.id, channel=channel, subscription_id=sub_id, status="queued")
            for channel, sub_id in wanted if (channel, sub_id) not in have]
    db.session.add_all(rows)
    db.session.flush()
    return rows
