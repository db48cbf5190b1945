"""The prohibited-words filter admins maintain (a platform publishing user content in China
must filter them): a hit either blocks the text or sends it to moderators for review."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column

from models import N_, DomainError, db
from models.types import UTCDateTime, utcnow


class ProhibitedWord(db.Model):
    __tablename__ = "prohibited_words"
    __table_args__ = (CheckConstraint("action IN ('block','review')", name="known_action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    word: Mapped[str] = mapped_column(String(60), unique=True, nullable=False)  # stored lower-case
    action: Mapped[str] = mapped_column(String(10), nullable=False, default="block")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


@dataclass
class Verdict:
    blocked: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return bool(self.review) and not self.blocked


def screen(*texts: str) -> Verdict:
    """Which prohibited words appear in TEXTS (case-insensitive, also inside longer words)."""
    haystack = "\n".join(t or "" for t in texts).casefold()
    verdict = Verdict()
    for word, action in db.session.execute(select(ProhibitedWord.word, ProhibitedWord.action)):
        if word and word.casefold() in haystack:
            (verdict.blocked if action == "block" else verdict.review).append(word)
    return verdict


def refuse_blocked(*texts: str) -> Verdict:
    """Raise DomainError naming the blocked words, else return the verdict (maybe for review)."""
    verdict = screen(*texts)
    if verdict.blocked:
        raise DomainError(N_("Please remove words that are not allowed here: %(words)s"),
                          words="、".join(sorted(set(verdict.blocked))))
    return verdict
