"""Search over story titles and bodies that works for Chinese (see `StoryTerm`)."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models import db


class StoryTerm(db.Model):
    """An inverted index: the terms of each story (CJK characters and character pairs, latin
    words) with a weight (title terms count more), so a two-character query like 电池 finds its
    stories with an indexed lookup on SQLite and PostgreSQL alike."""

    __tablename__ = "story_terms"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    weight: Mapped[int] = mapped_column(nullable=False, default=1)
