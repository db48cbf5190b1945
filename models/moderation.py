"""Reports from members and what moderators do with them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import N_, db
from models.types import UTCDateTime, utcnow

REPORT_REASONS = {
    "false_info": N_("False vehicle information"),
    "spam": N_("Advertising or spam"),
    "abuse": N_("Abuse or harassment"),
    "other": N_("Something else"),
}


class Report(db.Model):
    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint("reason IN ('false_info','spam','abuse','other')", name="known_reason"),
        CheckConstraint("status IN ('open','confirmed','dismissed')", name="known_status"),
        CheckConstraint("(story_id IS NULL) <> (comment_id IS NULL)", name="one_target"),
        Index("ix_reports_community_status", "community_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), nullable=False)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(20), nullable=False)
    note: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    reporter = relationship("User", foreign_keys=[reporter_id])
    story = relationship("Story")
    comment = relationship("Comment")
