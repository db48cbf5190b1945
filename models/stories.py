"""Stories (用户故事): members' car stories with photos, drafts, and the feeds that list them."""
from __future__ import annotations

from dataclasses import dataclass
import math
from datetime import datetime, timedelta, timezone

from flask import abort
from sqlalchemy import (JSON, CheckConstraint, ForeignKey, Index, String, Text, and_, bindparam, event, exists, func,
                        literal, or_, select, union_all, update)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import (Mapped, defer, joinedload, mapped_column, query_expression, relationship, selectinload,
                            with_expression)

from models import N_, DomainError, built_once, cursors, db
from models.accounts import PhoneNotVerified, User
from models.content_filter import refuse_blocked
from models.engagement import Comment, StoryLike
from models.markup import plain_text, render_markdown
from models.nonces import AlreadySubmitted, first_submission
from models.outbox import enqueue
from models.loyalty.ledger import award
from models.referrals import qualify_referral
from models.search_index import reindex_story
from models.types import UTCDateTime, likely, utcnow

TITLE_MIN, TITLE_MAX = 2, 60
BODY_MIN, BODY_MAX = 10, 10_000
MAX_PHOTOS = 9
EXCERPT_LENGTH = 90  # characters of plain text a card shows
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
        Index("ix_stories_hot", "status", "hot_score", "id"),
        Index("ix_stories_community_hot", "community_id", "status", "hot_score", "id"),
        # A community's featured stories, newest feature first: the few featured rows only.
        Index("ix_stories_featured", "community_id", "featured_at", "id",
              sqlite_where=sql_text("featured_at IS NOT NULL"), postgresql_where=sql_text("featured_at IS NOT NULL")),
        # The new-story form's one-time nonce: a repeat returns the first story (models/nonces.py).
        Index("uq_stories_author_id_create_nonce", "author_id", "create_nonce", unique=True),
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
    create_nonce: Mapped[str | None] = mapped_column(String(64))
    # Kept by models/engagement.py in the transaction that adds or removes what they count
    # (likes; published comments, replies included); `flask stories verify` checks them.
    like_count: Mapped[int] = mapped_column(nullable=False, default=0, server_default="0")
    comment_count: Mapped[int] = mapped_column(nullable=False, default=0, server_default="0")
    # The hot feed's order, kept with the counts (see `hot_score`): one indexed, limited query.
    hot_score: Mapped[float] = mapped_column(nullable=False, default=0.0, server_default="0")
    # Whether the viewer liked it, when a feed loaded that with it (`_with_cards`); else None.
    liked: Mapped[bool | None] = query_expression()

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
        """The opening of the story as the reader sees it: plain text, no Markdown marks."""
        text = plain_text(self.body_html, at_least=EXCERPT_LENGTH)
        return text[:EXCERPT_LENGTH] + ("…" if len(text) > EXCERPT_LENGTH else "")

    @property
    def plain_text(self) -> str:
        return plain_text(self.body_html)

    def visible_to(self, viewer) -> bool:
        """Published stories are public; a draft is its author's alone (moderators and admins
        included); a story under review or hidden is seen by its author and the community's
        moderators, who handle it; a deleted one by nobody."""
        if self.status == "published":
            return True
        if viewer is None or not getattr(viewer, "is_authenticated", False) or self.status == "deleted":
            return False
        if viewer.id == self.author_id:
            return True
        return self.status in ("review", "hidden") and viewer.has_role("moderator", community=self.community_id)

    @classmethod
    def with_photo(cls, key: str) -> Story | None:
        """The story whose photo (display copy or thumbnail) is stored under KEY: one query on
        the indexed keys."""
        return db.session.scalar(
            select(cls).join(StoryPhoto, StoryPhoto.story_id == cls.id)
            .where(or_(StoryPhoto.full_key == key, StoryPhoto.thumb_key == key)).limit(1)
        )

    @classmethod
    def get_visible_or_404(cls, story_id: int, viewer) -> Story:
        story = db.session.get(cls, story_id)
        if story is None or not story.visible_to(viewer):
            abort(404)
        return story

    @classmethod
    def get_page_or_404(cls, story_id: int, viewer) -> Story:
        """A story VIEWER may see, for its page: community, author and whether VIEWER liked it in
        the same query, photos in one more (`_with_cards`)."""
        signed_in = viewer is not None and getattr(viewer, "is_authenticated", False)
        params = {"story_id": story_id, "viewer_id": viewer.id} if signed_in else {"story_id": story_id}
        story = db.session.execute(_story_page_query(signed_in), params).unique().scalar_one_or_none()
        if story is None or not story.visible_to(viewer):
            abort(404)
        return story

    @classmethod
    def get_own_or_403(cls, story_id: int, member) -> Story:
        """A story MEMBER wrote, to edit or delete: 404 unless they may see it, 403 for anyone else's."""
        story = cls.get_visible_or_404(story_id, member)
        if story.author_id != member.id:
            abort(403)
        return story

    @classmethod
    def get_published_or_404(cls, story_id: int) -> Story:
        """A published story, the only kind that takes likes: 404 for any other (nothing to reveal)."""
        story = db.session.get(cls, story_id)
        if story is None or story.status != "published":
            abort(404)
        return story


@built_once
def _story_page_query(signed_in: bool):
    return _with_cards(select(Story).where(Story.id == bindparam("story_id")), signed_in)


class StoryPhoto(db.Model):
    __tablename__ = "story_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(nullable=False, default=0)
    # Indexed: /media finds the story a file belongs to by its key, on every photo request.
    full_key: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    thumb_key: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
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


def require_photo_room(story: Story | None, adding: int, drop_photo_ids=None) -> None:
    """Refuse ADDING photos to STORY (None: a new one) past MAX_PHOTOS, counting those dropped.
    The form asks before it resizes the uploads; `save_story` asks again."""
    kept = [p for p in (story.photos if story else []) if p.id not in (drop_photo_ids or set())]
    if len(kept) + adding > MAX_PHOTOS:
        raise DomainError(N_("A story has at most %(max)s photos."), max=MAX_PHOTOS)


def save_story(author, data: StoryInput, publish: bool, story: Story | None = None,
               new_photos: list | None = None, drop_photo_ids: set[int] | None = None,
               nonce: str | None = None) -> Story:
    """Create or update a story (flushes only). Publishing screens the words: a blocked word is
    refused, a word under review holds the story for moderators. The first publication pays
    the `story_posted` reward and counts as the referral's qualifying action.

    A new story from a form carries its one-time NONCE (None only for the demo seed and tests):
    a repeat raises `AlreadySubmitted` with the story the first submission made, and creates
    and pays nothing more."""
    if not author.can_post:
        raise PhoneNotVerified(N_("Verify your mobile number before you post."))
    if data.community is None:
        raise DomainError(N_("Choose a community."))
    if story is None and nonce is not None:
        first = first_submission(author, nonce, Story.create_nonce, Story.author_id)
        if first is not None:
            raise AlreadySubmitted(first)
    if story is not None and story.status in ("hidden", "deleted"):
        raise DomainError(N_("This story can no longer be edited."))
    validate(data)
    verdict = refuse_blocked(data.title, data.body)
    now = utcnow()
    with db.session.no_autoflush:  # a new story is complete before anything is flushed
        if story is None:
            story = Story(author_id=author.id, created_at=now, status="draft", create_nonce=nonce)
            db.session.add(story)
        kept = [p for p in story.photos if p.id not in (drop_photo_ids or set())]
        require_photo_room(story, len(new_photos or []), drop_photo_ids)
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
    reindex_story(story)
    if story.status == "published":
        award(author, "story_posted", cause=story, key=f"story:{story.id}")
        first = db.session.scalar(
            select(func.count()).select_from(Story).where(Story.author_id == author.id, Story.status == "published")
        ) == 1
        if first:
            qualify_referral(author, cause=story)
    return story


def delete_story(story: Story) -> None:
    """Soft delete: gone from every list; the row stays for moderation history, its photos go.

    A draft, which nobody else ever saw, is removed outright. The photo files are deleted by a
    job once this commits, so a delete that rolls back loses no file."""
    keys = [key for photo in story.photos for key in (photo.full_key, photo.thumb_key)]
    if story.status == "draft":
        db.session.delete(story)
    else:
        story.status = "deleted"
        story.updated_at = utcnow()
        story.photos = []
    db.session.flush()
    if keys:
        enqueue("services.tasks.delete_photo_files", *keys)


# -- feeds: "newest" (keyset on published_at, id) and "hot" (a kept score, see `heat`) --------

FEED_SIZE = 10
SORTS = ("newest", "hot")
HOT_WINDOW_DAYS = 30  # the hot feed ranks the stories of the last 30 days
HOT_HALF_LIFE_HOURS = 12  # a story's heat halves every 12 hours
HOT_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)


def heat(likes: int, comments: int, published_at: datetime) -> float:
    """A story's hot score: ln(likes + 2 × comments + 1) + ln 2 × (hours since HOT_EPOCH at
    publication) / HOT_HALF_LIFE_HOURS.

    It is the logarithm of (engagement halved every HOT_HALF_LIFE_HOURS of age), up to a term
    that every story shares at any moment: as all stories age alike, the order of two stories
    changes only when one of them is liked or commented. So the score is kept on the story,
    moved with its counts, and needs no periodic refresh; the feed is one indexed query."""
    hours = (published_at - HOT_EPOCH).total_seconds() / 3600
    return math.log(likes + 2 * comments + 1) + hours * math.log(2) / HOT_HALF_LIFE_HOURS


@event.listens_for(Story.published_at, "set")
def _heat_on_publication(story, published_at, _old, _initiator):
    """A story's score starts when it is published (its counts are moved in SQL afterwards)."""
    if published_at is not None:
        story.hot_score = heat(story.like_count or 0, story.comment_count or 0, published_at)


def _scoped(query, in_communities: bool, by_author: bool):
    """Published stories, in the communities `:community_ids` and by `:author_id` when asked."""
    query = query.where(Story.status == "published")
    if in_communities:
        query = query.where(Story.community_id.in_(bindparam("community_ids", expanding=True)))
    if by_author:
        query = query.where(Story.author_id == bindparam("author_id"))
    return query


def _with_cards(query, signed_in: bool):
    """Authors and communities joined in, whether the viewer (`:viewer_id`) liked each story
    asked in the same query (`Story.liked`), photos in one more query: two queries a page."""
    # A card shows the author's nickname and the story's opening (from body_html): neither the
    # Markdown source nor the author's account columns travel with twenty rows.
    query = query.options(defer(Story.body), joinedload(Story.author).load_only(User.id, User.nickname),
                          joinedload(Story.community), selectinload(Story.photos))
    if signed_in:
        liked = exists().where(StoryLike.story_id == Story.id, StoryLike.user_id == bindparam("viewer_id"))
        query = query.options(with_expression(Story.liked, liked))
    return query


def _feed_params(community_ids, author_id, viewer) -> tuple[tuple[bool, bool, bool], dict]:
    """Which variant of a feed's statement, and its parameters."""
    viewer_id = viewer.id if viewer is not None and getattr(viewer, "is_authenticated", False) else None
    params = {"community_ids": list(community_ids) if community_ids is not None else None,
              "author_id": author_id, "viewer_id": viewer_id}
    return (community_ids is not None, author_id is not None, viewer_id is not None), \
        {key: value for key, value in params.items() if value is not None}


@built_once
def _newest_query(scope: tuple[bool, bool, bool], paged: bool, limit: int):
    in_communities, by_author, signed_in = scope
    query = _scoped(select(Story), in_communities, by_author)
    if paged:
        at = bindparam("at")
        query = query.where(or_(Story.published_at < at, and_(Story.published_at == at, Story.id < bindparam("after_id"))))
    return _with_cards(query, signed_in).order_by(Story.published_at.desc(), Story.id.desc()).limit(limit)


HOT_ORDER = (Story.hot_score.desc(), Story.id.desc())


@built_once
def _hot_window(scope: tuple[bool, bool, bool]):
    """The hot feed's stories: published in the HOT_WINDOW_DAYS before `:ref_time`."""
    in_communities, by_author, signed_in = scope
    return _with_cards(_scoped(select(Story), in_communities, by_author).where(likely(and_(
        Story.published_at <= bindparam("ref_time"), Story.published_at > bindparam("window_start")))), signed_in)


@built_once
def _hot_first_page(scope: tuple[bool, bool, bool], limit: int):
    return _hot_window(scope).order_by(*HOT_ORDER).limit(limit)


def feed(community_ids=None, author_id: int | None = None, cursor: str | None = None,
         size: int = FEED_SIZE, sort: str = "newest", viewer=None) -> tuple[list[Story], str | None]:
    """A page of published stories and the cursor of the next page (None at the end).

    Authors, communities, photos and VIEWER's likes load with them, so a page costs the same
    few queries whatever its size."""
    if sort == "hot":
        return hot_feed(community_ids, author_id, cursor, size, viewer)
    scope, params = _feed_params(community_ids, author_id, viewer)
    after = cursors.decode("stories", cursor, datetime, int)
    if after is not None:
        params["at"], params["after_id"] = after
    stories = list(db.session.scalars(_newest_query(scope, after is not None, size + 1), params))
    more = len(stories) > size
    stories = stories[:size]
    return stories, (cursors.encode("stories", stories[-1].published_at, stories[-1].id) if more else None)


def hot_feed(community_ids=None, author_id: int | None = None, cursor: str | None = None,
             size: int = FEED_SIZE, viewer=None) -> tuple[list[Story], str | None]:
    """The hot feed: stories of the last HOT_WINDOW_DAYS by their kept score, highest first.

    The first page fixes a reference time; the cursor carries it with the last story's
    (score, id), and every page ranks the stories by their score at the reference time: a
    story liked or commented since then is placed by its counts minus what came later (one
    query over the likes and comments made since, a few minutes' worth). So likes and comments
    arriving while a member scrolls change no place: pages neither skip nor repeat. (Removals
    — an unlike, a comment hidden — can still lower a score between pages; they are rare, and
    the member sees a fresh ranking on the next full load.) Stories published after the
    reference time wait for the next load."""
    after = cursors.decode("stories-hot", cursor, datetime, float, int)
    ref_time = after[0] if after else utcnow()
    scope, params = _feed_params(community_ids, author_id, viewer)
    # The window is checked on the rows the score index hands over: it only trims the tail.
    params |= {"ref_time": ref_time, "window_start": ref_time - timedelta(days=HOT_WINDOW_DAYS)}
    if after is None:
        ranked = [(story.hot_score, story.id, story) for story in
                  db.session.scalars(_hot_first_page(scope, size + 1), params).unique()]
    else:
        window = _hot_window(scope)
        score, last_id = after[1], after[2]
        moved = _moved_since(ref_time)
        below = or_(Story.hot_score < score, and_(Story.hot_score == score, Story.id < last_id))
        ranked = [(story.hot_score, story.id, story) for story in db.session.scalars(
            window.where(below).order_by(*HOT_ORDER).limit(size + 1 + len(moved)), params).unique()
            if story.id not in moved]
        if moved:  # placed by their counts at the reference time
            for story in db.session.scalars(window.where(Story.id.in_(list(moved))), params).unique():
                later_likes, later_comments = moved[story.id]
                then = heat(max(story.like_count - later_likes, 0), max(story.comment_count - later_comments, 0),
                            story.published_at)
                if (then, story.id) < (score, last_id):
                    ranked.append((then, story.id, story))
            ranked.sort(key=lambda key: key[:2], reverse=True)
    page, more = ranked[:size], len(ranked) > size
    return [story for *_, story in page], (cursors.encode("stories-hot", ref_time, *page[-1][:2]) if more else None)


def _moved_since(moment: datetime) -> dict[int, tuple[int, int]]:
    """{story id: (likes, published comments)} made after MOMENT: one query on their times."""
    made = union_all(
        select(StoryLike.story_id.label("story_id"), literal(1).label("likes"), literal(0).label("comments"))
        .where(StoryLike.created_at > moment),
        select(Comment.story_id, literal(0), literal(1)).where(Comment.created_at > moment, Comment.status == "published"),
    ).subquery()
    rows = db.session.execute(select(made.c.story_id, func.sum(made.c.likes), func.sum(made.c.comments))
                              .group_by(made.c.story_id))
    return {story_id: (int(likes), int(comments)) for story_id, likes, comments in rows}


@dataclass
class CardStats:
    likes: int = 0
    comments: int = 0
    liked: bool = False


def card_stats(stories: list[Story], viewer=None) -> dict[int, CardStats]:
    """Like and comment counts of STORIES (kept on each story) and whether VIEWER liked each:
    no query when the feed asked that with the stories, else one for a member, none for a
    visitor."""
    stats = {s.id: CardStats(likes=s.like_count, comments=s.comment_count, liked=bool(s.liked)) for s in stories}
    viewer_id = viewer.id if viewer is not None and getattr(viewer, "is_authenticated", False) else None
    if stats and viewer_id and any(s.liked is None for s in stories):
        for story_id in db.session.scalars(
            select(StoryLike.story_id).where(StoryLike.user_id == viewer_id, StoryLike.story_id.in_(list(stats)))
        ):
            stats[story_id].liked = True
    return stats


def _counted(kind):
    """The number a story's kept count should hold, from the rows (a correlated subquery)."""
    if kind == "likes":
        query = select(func.count()).select_from(StoryLike).where(StoryLike.story_id == Story.id)
    else:
        query = select(func.count()).select_from(Comment).where(Comment.story_id == Story.id,
                                                                Comment.status == "published")
    return query.correlate(Story).scalar_subquery()


def recount_stories() -> None:
    """Set every story's kept counts from the rows, and its hot score from them (after rows
    written in bulk)."""
    db.session.execute(update(Story).values(like_count=_counted("likes"), comment_count=_counted("comments"))
                       .execution_options(synchronize_session=False))
    scores = [{"id": story_id, "hot_score": heat(likes, comments, at)} for story_id, likes, comments, at
              in db.session.execute(_published_counts())]
    if scores:  # an UPDATE by primary key for each
        db.session.execute(update(Story).execution_options(synchronize_session=False), scores)
    db.session.expire_all()


def _published_counts():
    return select(Story.id, Story.like_count, Story.comment_count, Story.published_at).where(
        Story.published_at.is_not(None))


def verify_story_counts(limit: int = 20) -> tuple[int, list[str]]:
    """The number of stories whose kept counts differ from their rows or whose hot score
    differs from their counts, and the first LIMIT of them said in a line each."""
    likes, comments = _counted("likes"), _counted("comments")
    wrong = select(Story.id, Story.like_count, likes, Story.comment_count, comments).where(
        or_(Story.like_count != likes, Story.comment_count != comments)).order_by(Story.id)
    rows = db.session.execute(wrong).all()
    lines = [f"story {sid}: likes kept {kl}, rows {rl}; comments kept {kc}, rows {rc}" for sid, kl, rl, kc, rc in rows]
    for story_id, kept, like_count, comment_count, at in db.session.execute(
            select(Story.id, Story.hot_score, Story.like_count, Story.comment_count, Story.published_at)
            .where(Story.published_at.is_not(None)).order_by(Story.id)):
        expected = heat(like_count, comment_count, at)
        if not math.isclose(kept, expected, rel_tol=0, abs_tol=1e-6):
            lines.append(f"story {story_id}: hot score kept {kept:.6f}, from its counts {expected:.6f}")
    return len(lines), lines[:limit]
