"""A campaign (召回 win-back, 安全召回 safety recall, announcement) and the members it targets.

One `campaign_targets` row per campaign × member (unique): it is what makes "each member is
targeted exactly once" hold through worker restarts, and it carries what the report counts
(the inbox row it wrote, the first click on the member's link, the return within 7 days).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import N_, db
from models.types import UTCDateTime, utcnow

KINDS = ("winback", "recall", "announcement")
KIND_LABELS = {"winback": N_("Win-back"), "recall": N_("Safety recall"), "announcement": N_("Announcement")}
# The notification kind each campaign kind writes (models/notifications.py KINDS).
NOTIFICATION_KIND = {"winback": "campaign_winback", "recall": "campaign_recall", "announcement": "campaign_announcement"}
MARKETING_KINDS = frozenset({"winback", "announcement"})  # opted-in members only, never 21:00–08:00

STATUSES = ("draft", "scheduled", "sending", "sent")
STATUS_LABELS = {"draft": N_("Draft"), "scheduled": N_("Scheduled"), "sending": N_("Sending"), "sent": N_("Sent")}
CHANNELS = ("push", "sms")  # the inbox always gets it
CHANNEL_LABELS = {"push": N_("Web Push"), "sms": N_("SMS")}

RETURN_WINDOW = timedelta(days=7)  # a return through the link counts (and earns the gift) this long
RECALL_RATE_TARGET = 0.15  # the business plan: 15% of the lapsed members reached come back
MAX_GIFT_POINTS = 5_000
TITLE_MAX, BODY_MAX, LINK_MAX = 40, 300, 300


class Campaign(db.Model):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("kind IN ('winback','recall','announcement')", name="known_kind"),
        CheckConstraint("status IN ('draft','scheduled','sending','sent')", name="known_status"),
        CheckConstraint("gift_points IS NULL OR gift_points > 0", name="gift_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(String(TITLE_MAX), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    link: Mapped[str] = mapped_column(String(LINK_MAX), nullable=False, default="/")
    channels: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    gift_points: Mapped[int | None] = mapped_column(Integer)
    audience: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    recall_id: Mapped[int | None] = mapped_column(ForeignKey("recalls.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft", index=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The fan-out's progress: the last member id targeted (members are taken in id order).
    fanout_after: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    nonce: Mapped[str | None] = mapped_column(String(64), unique=True)

    recall = relationship("Recall", lazy="joined")

    @property
    def is_marketing(self) -> bool:
        return self.kind in MARKETING_KINDS

    @property
    def notification_kind(self) -> str:
        return NOTIFICATION_KIND[self.kind]

    @property
    def dedupe_key(self) -> str:
        """The inbox row's key: one per member and campaign, whatever reruns."""
        return f"campaign:{self.id}"

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def editable(self) -> bool:
        return self.status == "draft"

    def snapshot(self) -> dict:
        """What the audit log keeps of it."""
        return {"kind": self.kind, "title": self.title, "body": self.body, "link": self.link,
                "channels": list(self.channels or ()), "gift_points": self.gift_points,
                "audience": dict(self.audience or {}), "recall_id": self.recall_id, "status": self.status,
                "scheduled_at": self.scheduled_at.isoformat() if self.scheduled_at else None}

    @classmethod
    def newest_first(cls, limit: int = 100) -> list[Campaign]:
        return list(db.session.scalars(select(cls).order_by(cls.created_at.desc(), cls.id.desc()).limit(limit)))


class CampaignTarget(db.Model):
    __tablename__ = "campaign_targets"
    __table_args__ = (UniqueConstraint("campaign_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"),
                                                        index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @classmethod
    def of(cls, campaign_id: int, user_id: int) -> CampaignTarget | None:
        return db.session.scalar(select(cls).where(cls.campaign_id == campaign_id, cls.user_id == user_id))
