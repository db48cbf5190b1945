"""Likes and comments on stories (one level of replies)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, aliased, joinedload, mapped_column, relationship

from models import N_, DomainError, cursors, db
from models.accounts import PhoneNotVerified, User
from models.content_filter import refuse_blocked
from models.loyalty.ledger import award
from models.nonces import AlreadySubmitted, first_submission
from models.notifications import notify
from models.types import UTCDateTime, utcnow

COMMENT_MAX = 1000


class StoryLike(db.Model):
    """One row per (story, member): the primary key settles concurrent likes, not a counter."""

    __tablename__ = "story_likes"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    # Indexed: a later page of the hot feed asks which stories were liked since its first page.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)


class Comment(db.Model):
    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("status IN ('published','review','hidden','deleted')", name="known_status"),
        Index("ix_comments_story_created", "story_id", "created_at"),
        # Replies only: most comments are top-level (parent_id NULL), and SQLite's statistics count
        # those NULLs as one value, so a full index looked useless to its planner and a thread's
        # "has replies" check scanned the table (393 ms on the story page at 200,016 comments).
        Index("ix_comments_replies", "parent_id", "created_at", "id",
              sqlite_where=sql("parent_id IS NOT NULL"), postgresql_where=sql("parent_id IS NOT NULL")),
        # The comment form's one-time nonce: a repeat returns the first comment (models/nonces.py).
        Index("uq_comments_author_id_nonce", "author_id", "nonce", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), nullable=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    # Replies are one level deep: a reply's parent is always a top-level comment.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="published")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hidden_note: Mapped[str | None] = mapped_column(String(200))
    nonce: Mapped[str | None] = mapped_column(String(64))

    author = relationship("User")
    story = relationship("Story")


# -- the counts a story keeps: likes, and published comments (replies included) --------------

def move_counts(story, **changes: int) -> None:
    """Move STORY's kept counts in SQL, in the transaction that adds or removes the row counted
    (two likes at the same moment both count), then read them afresh. This locks the story's
    row until the commit, so callers do it after any member lock (PostgreSQL would otherwise
    deadlock a like waiting for its author against the author commenting on the same story).
    The hot score moves with them: it is ln(likes + 2 × comments + 1) plus a term fixed at
    publication (`models.stories.heat`), so it moves by the change of that logarithm.
    The story's class comes from the story: models/stories.py imports this module."""
    cls = type(story)
    values = {name: getattr(cls, name) + change for name, change in changes.items()}
    before = cls.like_count + 2 * cls.comment_count + 1
    after = values.get("like_count", cls.like_count) + 2 * values.get("comment_count", cls.comment_count) + 1
    values["hot_score"] = cls.hot_score + func.ln(after) - func.ln(before)
    db.session.execute(update(cls).where(cls.id == story.id).values(**values)
                       .execution_options(synchronize_session=False))
    db.session.expire(story, [*changes, "hot_score"])


def set_comment_status(comment: Comment, status: str, story=None) -> None:
    """Every change of a comment's status goes through here, so the story's comment count
    follows it into and out of "published"."""
    was_counted = comment.status == "published"
    comment.status = status
    if was_counted != (status == "published"):
        move_counts(story or comment.story, comment_count=1 if status == "published" else -1)


# -- likes: one row per (story, member) -------------------------------------------------------

def like_count(story) -> int:
    return story.like_count


def has_liked(story, member) -> bool:
    """Whether MEMBER liked STORY: asked with the story when it was loaded for them
    (`Story.liked`, see `Story.get_page_or_404`), else one query."""
    if member is None or not getattr(member, "is_authenticated", False):
        return False
    if getattr(story, "liked", None) is not None:
        return bool(story.liked)
    return db.session.scalar(
        select(func.count()).select_from(StoryLike).where(StoryLike.story_id == story.id, StoryLike.user_id == member.id)
    ) > 0


def like(story, member) -> bool:
    """MEMBER likes STORY (flushes only); True when this call added the like.

    The primary key settles a race: a concurrent second insert fails inside its savepoint.
    The author earns `like_received` once per (story, liker), never for their own story; the
    key keeps unlike + like again from paying twice. Only published stories take likes."""
    if story.status != "published":
        raise DomainError(N_("Only published stories can be liked."))
    try:
        with db.session.begin_nested():
            db.session.add(StoryLike(story_id=story.id, user_id=member.id))
    except IntegrityError:
        return False
    if member.id != story.author_id:
        award(story.author, "like_received", cause=story, key=f"like:{story.id}:{member.id}")
    move_counts(story, like_count=1)  # after the author's lock: members first, then the story row
    return True


def unlike(story, member) -> bool:
    """Remove MEMBER's like (flushes only); earned points stay."""
    result = db.session.execute(
        delete(StoryLike).where(StoryLike.story_id == story.id, StoryLike.user_id == member.id)
    )
    if result.rowcount:
        move_counts(story, like_count=-1)
    return bool(result.rowcount)


# -- comments ---------------------------------------------------------------------------------

def add_comment(story, author, body: str, parent_id: int | None = None, nonce: str | None = None) -> Comment:
    """A comment or a reply (one level: a reply to a reply attaches to its top-level parent).

    Only verified mobile numbers comment; a blocked word refuses, a word under review keeps
    the comment for its author and moderators. Flushes only. The form's one-time NONCE makes
    a repeat raise `AlreadySubmitted` with the first comment: nothing more is posted or paid."""
    if not author.can_post:
        raise PhoneNotVerified(N_("Verify your mobile number before you comment."))
    if nonce is not None:  # None only for the demo seed and tests
        first = first_submission(author, nonce, Comment.nonce, Comment.author_id)
        if first is not None:
            raise AlreadySubmitted(first)
    text = (body or "").strip()
    if not 1 <= len(text) <= COMMENT_MAX:
        raise DomainError(N_("A comment has 1 to %(max)s characters; yours has %(count)s."),
                          max=COMMENT_MAX, count=len(text))
    verdict = refuse_blocked(text)
    parent = None
    if parent_id:
        parent = db.session.get(Comment, parent_id)
        if parent is not None and parent.parent_id is not None:
            parent = db.session.get(Comment, parent.parent_id)
        if parent is None or parent.story_id != story.id or parent.status != "published":
            raise DomainError(N_("The comment you reply to is no longer there."))
    comment = Comment(story_id=story.id, author_id=author.id, parent_id=parent.id if parent else None, body=text,
                      status="review" if verdict.needs_review else "published", nonce=nonce)
    db.session.add(comment)
    db.session.flush()
    if comment.status == "published":
        award(author, "comment", cause=comment, key=f"comment:{comment.id}")
        link = f"/stories/{story.id}#comment-{comment.id}"
        params = {"nickname": author.nickname, "title": story.title}
        if parent is None:
            if story.author_id != author.id:
                notify(story.author, "comment_received", params, link=link, dedupe_key=f"comment:{comment.id}")
        elif parent.author_id != author.id:
            notify(parent.author, "reply_received", params, link=link, dedupe_key=f"reply:{comment.id}")
        move_counts(story, comment_count=1)  # last: members are locked before the story row
    return comment


def delete_comment(comment: Comment) -> None:
    """Soft delete by its author: a placeholder while it has replies, else gone from the page."""
    set_comment_status(comment, "deleted")


COMMENTS_PAGE = 20  # threads a page of comments shows (each with all its replies)


@dataclass
class Thread:
    comment: Comment
    replies: list[Comment] = field(default_factory=list)


# A comment shows its author's nickname: none of their account's other columns travel with it.
def _author_name():
    return joinedload(Comment.author).load_only(User.id, User.nickname)


def _shown(model, viewer):
    """Comments VIEWER sees: published ones, and their own waiting for a moderator."""
    shown = model.status == "published"
    if viewer is not None and getattr(viewer, "is_authenticated", False):
        shown = or_(shown, and_(model.status == "review", model.author_id == viewer.id))
    return shown


def comment_page(story, viewer, cursor: str | None = None,
                 size: int = COMMENTS_PAGE) -> tuple[list[Thread], str | None]:
    """A page of STORY's threads for VIEWER, newest first (a new comment lands on top, where its
    writer sees it), each with its replies oldest first, and the cursor of the next page.

    A deleted comment stays as a placeholder while it has replies to show. Two queries whatever
    the number of comments (authors are joined in); the page never grows with the story."""
    reply = aliased(Comment)
    answered = exists().where(reply.parent_id == Comment.id, _shown(reply, viewer))
    query = (select(Comment)
             .where(Comment.story_id == story.id, Comment.parent_id.is_(None),
                    or_(_shown(Comment, viewer), and_(Comment.status == "deleted", answered)))
             .options(_author_name())
             .order_by(Comment.created_at.desc(), Comment.id.desc()).limit(size + 1))
    after = cursors.decode("comments", cursor, datetime, int)
    if after is not None:
        query = query.where(or_(Comment.created_at < after[0],
                                and_(Comment.created_at == after[0], Comment.id < after[1])))
    tops = list(db.session.scalars(query))
    more, tops = len(tops) > size, tops[:size]
    threads = {top.id: Thread(top) for top in tops}
    if threads:
        for found in db.session.scalars(
            select(Comment).where(Comment.parent_id.in_(list(threads)), _shown(Comment, viewer))
            .options(_author_name()).order_by(Comment.created_at, Comment.id)
        ):
            threads[found.parent_id].replies.append(found)
    return list(threads.values()), (cursors.encode("comments", tops[-1].created_at, tops[-1].id) if more else None)


def page_starting_at(comment: Comment) -> str:
    """The cursor of the page of comments whose first thread is COMMENT's (a top-level one):
    where a member without JavaScript lands after writing it or replying under it."""
    return cursors.encode("comments", comment.created_at, comment.id + 1)


def thread_of(comment: Comment, viewer) -> Thread | None:
    """COMMENT as its page shows it after a change (a reply: alone; a top-level comment: with its
    replies), or None when it is no longer shown at all (deleted, nothing under it)."""
    if comment.parent_id is not None:
        return Thread(comment) if comment.status != "deleted" else None
    replies = list(db.session.scalars(
        select(Comment).where(Comment.parent_id == comment.id, _shown(Comment, viewer))
        .options(_author_name()).order_by(Comment.created_at, Comment.id)))
    if comment.status == "deleted" and not replies:
        return None
    return Thread(comment, replies)
