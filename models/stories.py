"""Stories (用户故事): members' car stories with photos, drafts, and the feeds that list them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, and_, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from models import N_, DomainError, db
from models.markup import render_markdown
from models.types import UTCDateTime, utcnow

TITLE_MIN, TITLE_MAX = 2, 60
BODY_MIN, BODY_MAX = 10, 10_000
MAX_PHOTOS = 9
# Tag code -> English msgid (translated when shown).
TAGS = {
    "purchase": N_("Buying story"),
    "tips": N_("Ownership tips"),
    "build": N_("Build log"),
    "traps": N_("Traps to avoid"),
    "question": N_("Question"),
}
STATES = ("draft", "review", "published", "hidden", "deleted")


class Story(db.Model):
    __tablename__ = "stories"
    __table_args__ = (
        CheckConstraint("status IN ('draft','review','published','hidden','deleted')", name="known_status"),
        CheckConstraint("status IN ('draft') OR published_at IS NOT NULL", name="published_has_time"),
        Index("ix_stories_feed", "status", "published_at", "id"),
        Index("ix_stories_community_feed", "community_id", "status", "published_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="RESTRICT"), nullable=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str] = mapped_column(Text, nullable=False)  # sanitized when saved
    tags: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # 故事激励计划: a moderator features a story; it is pinned in its community.
    featured_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hidden_note: Mapped[str | None] = mapped_column(String(200))

    author = relationship("User")
    community = relationship("Community")
    photos: Mapped[list[StoryPhoto]] = relationship(
        back_populates="story", order_by="StoryPhoto.position", cascade="all, delete-orphan"
    )

    @property
    def is_question(self) -> bool:
        return "question" in (self.tags or [])

    @property
    def excerpt(self) -> str:
        text = " ".join((self.body or "").split())
        return text[:90] + ("…" if len(text) > 90 else "")

    def visible_to(self, viewer) -> bool:
        """Published stories are public; drafts and the rest only to their author and the community's moderators."""
        if self.status == "published":
            return True
        if viewer is None or not getattr(viewer, "is_authenticated", False):
            return False
        if self.status == "deleted":
            return False
        return viewer.id == self.author_id or viewer.has_role("moderator", community=self.community_id)

    @classmethod
    def get_visible_or_404(cls, story_id: int, viewer) -> Story:
        from flask import abort

        story = db.session.get(cls, story_id)
        if story is None or not story.visible_to(viewer):
            abort(404)
        return story


class StoryPhoto(db.Model):
    __tablename__ = "story_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(nullable=False, default=0)
    full_key: Mapped[str] = mapped_column(String(200), nullable=False)
    thumb_key: Mapped[str] = mapped_column(String(200), nullable=False)
    width: Mapped[int] = mapped_column(nullable=False)
    height: Mapped[int] = mapped_column(nullable=False)

    story: Mapped[Story] = relationship(back_populates="photos")


@dataclass
class NewPhoto:
    """A processed photo already in storage, to attach to a story."""
    full_key: str
    thumb_key: str
    width: int
    height: int


@dataclass
class StoryInput:
    community: object
    title: str
    body: str
    tags: list[str]


def validate(data: StoryInput) -> None:
    """Length and tag rules, with messages members understand."""
    title, body = (data.title or "").strip(), (data.body or "").strip()
    if not TITLE_MIN <= len(title) <= TITLE_MAX:
        raise DomainError(N_("A title has %(min)s to %(max)s characters."), min=TITLE_MIN, max=TITLE_MAX)
    if not BODY_MIN <= len(body) <= BODY_MAX:
        raise DomainError(N_("A story has %(min)s to %(max)s characters; yours has %(count)s."),
                          min=BODY_MIN, max=BODY_MAX, count=len(body))
    if any(t not in TAGS for t in data.tags):
        raise DomainError(N_("Choose tags from the list."))


def save_story(author, data: StoryInput, publish: bool, story: Story | None = None,
               new_photos: list | None = None, drop_photo_ids: set[int] | None = None) -> Story:
    """Create or update a story (flushes only). Publishing screens the words: a blocked word is
    refused, a word under review holds the story for moderators. The first publication pays
    the `story_posted` reward and counts as the referral's qualifying action."""
    from models.content_filter import refuse_blocked
    from models.points import award
    from models.referrals import qualify_referral

    if not author.phone_verified:
        raise DomainError(N_("Verify your mobile number before you post."))
    if story is not None and story.status in ("hidden", "deleted"):
        raise DomainError(N_("This story can no longer be edited."))
    validate(data)
    verdict = refuse_blocked(data.title, data.body)
    now = utcnow()
    with db.session.no_autoflush:  # a new story is complete before anything is flushed
        if story is None:
            story = Story(author_id=author.id, created_at=now, status="draft")
            db.session.add(story)
        kept = [p for p in story.photos if p.id not in (drop_photo_ids or set())]
        if len(kept) + len(new_photos or []) > MAX_PHOTOS:
            raise DomainError(N_("A story has at most %(max)s photos."), max=MAX_PHOTOS)
        story.photos = kept + [
            StoryPhoto(position=0, full_key=p.full_key, thumb_key=p.thumb_key, width=p.width, height=p.height)
            for p in new_photos or []
        ]
        for position, photo in enumerate(story.photos):
            photo.position = position
        story.community_id = data.community.id
        story.title = data.title.strip()
        story.body = data.body.strip()
        story.body_html = render_markdown(story.body)
        story.tags = list(dict.fromkeys(data.tags))
        story.updated_at = now
    data.community.join(author)
    if publish or story.status != "draft":
        story.status = "review" if verdict.needs_review else "published"
        story.published_at = story.published_at or now
    db.session.flush()
    if story.status == "published":
        award(author, "story_posted", cause=story, key=f"story:{story.id}")
        first = db.session.scalar(
            select(func.count()).select_from(Story).where(Story.author_id == author.id, Story.status == "published")
        ) == 1
        if first:
            qualify_referral(author, cause=story)
    return story


def delete_story(story: Story) -> None:
    """Soft delete: gone from every list; the row stays for moderation history."""
    story.status = "deleted"
    story.updated_at = utcnow()


# -- feeds: newest first, cursor pagination on (published_at, id), no OFFSET ------------------

FEED_SIZE = 10


def encode_cursor(story: Story) -> str:
    return f"{int(story.published_at.timestamp() * 1_000_000)}-{story.id}"


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    from datetime import timezone

    try:
        micros, story_id = (cursor or "").split("-")
        return datetime.fromtimestamp(int(micros) / 1_000_000, tz=timezone.utc), int(story_id)
    except ValueError:
        return None


def feed(community_ids=None, author_id: int | None = None, cursor: str | None = None,
         size: int = FEED_SIZE) -> tuple[list[Story], str | None]:
    """A page of published stories and the cursor of the next page (None at the end).

    Authors, communities and photos load in bulk, so a page costs the same few queries
    whatever its size."""
    query = select(Story).where(Story.status == "published")
    if community_ids is not None:
        query = query.where(Story.community_id.in_(list(community_ids)))
    if author_id is not None:
        query = query.where(Story.author_id == author_id)
    after = decode_cursor(cursor)
    if after is not None:
        at, story_id = after
        query = query.where(or_(Story.published_at < at, and_(Story.published_at == at, Story.id < story_id)))
    query = query.options(selectinload(Story.author), selectinload(Story.community), selectinload(Story.photos))
    stories = list(db.session.scalars(query.order_by(Story.published_at.desc(), Story.id.desc()).limit(size + 1)))
    more = len(stories) > size
    stories = stories[:size]
    return stories, (encode_cursor(stories[-1]) if more else None)
