"""Append-only audit log of admin and moderation actions."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, event, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import db
from models.types import UTCDateTime, utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(60), nullable=False, index=True)
    target_type: Mapped[str] = mapped_column(String(40), nullable=False)
    target_id: Mapped[str] = mapped_column(String(40), nullable=False)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)

    actor = relationship("User", lazy="joined")

    @classmethod
    def recent(cls, limit: int = 50, before_id: int | None = None) -> list[AuditEntry]:
        """Newest first, keyset-paginated by id."""
        query = select(cls)
        if before_id:
            query = query.where(cls.id < before_id)
        return list(db.session.scalars(query.order_by(cls.id.desc()).limit(limit)))


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _append_only(_mapper, _conn, _target):
    raise RuntimeError("the audit log is append-only")


def audit(actor, action: str, target, before: dict | None = None, after: dict | None = None) -> AuditEntry:
    """Record that ACTOR did ACTION to TARGET (a model instance or a (type, id) pair); flushes only."""
    if isinstance(target, tuple):
        target_type, target_id = target
    else:
        target_type, target_id = target.__tablename__, target.id
    entry = AuditEntry(
        actor_id=getattr(actor, "id", None),
        action=action,
        target_type=str(target_type),
        target_id=str(target_id),
        before=before,
        after=after,
    )
    db.session.add(entry)
    db.session.flush()
    return entry

