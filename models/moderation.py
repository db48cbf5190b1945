"""Reports from members and what moderators do with them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload
from werkzeug.exceptions import Forbidden

from models import N_, DomainError, db
from models.audit import audit
from models.communities import Community
from models.content_filter import ProhibitedWord
from models.engagement import Comment, set_comment_status
from models.loyalty.ledger import award, reverse_earnings
from models.notifications import notify
from models.outbox import enqueue
from models.referrals import qualify_referral
from models.stories import Story
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


# -- rules: reports, the queue, and what moderators do ------------------------------------------
# Every function flushes only; the route commits. Every moderation action goes through `audit`.

NOTE_MAX = 200
REPORT_NOTE_MAX = 300


def _community_id(target) -> int:
    return target.community_id if isinstance(target, Story) else target.story.community_id


def _kind(target) -> str:
    return "story" if isinstance(target, Story) else "comment"


def _title(target) -> str:
    if isinstance(target, Story):
        return target.title
    text = " ".join((target.body or "").split())
    return text[:30] + ("…" if len(text) > 30 else "")


def _state(target) -> dict:
    state = {"status": target.status, "hidden_note": target.hidden_note}
    if hasattr(target, "featured_at"):
        state["featured"] = target.featured_at is not None
    return state


def can_moderate(user, community_id: int) -> bool:
    """Moderators of that community, and admins (who hold every role)."""
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and user.has_role("moderator", community=community_id))


def _require_moderator(moderator, target) -> None:
    if not can_moderate(moderator, _community_id(target)):
        raise Forbidden()


def _link(target) -> str:
    story_id = target.id if isinstance(target, Story) else target.story_id
    return f"/stories/{story_id}"


def reportable(target, viewer) -> bool:
    """Only what the viewer can see, and only published content, can be reported."""
    story = target if isinstance(target, Story) else target.story
    if story is None or not story.visible_to(viewer) or story.status != "published":
        return False
    return isinstance(target, Story) or target.status == "published"


def file_report(reporter, target, reason: str, note: str = "") -> tuple[Report, bool]:
    """A member reports a story or comment. Returns (report, created): a repeat of an open
    report by the same member is harmless and returns the first one."""
    if reason not in REPORT_REASONS:
        raise DomainError(N_("Choose a reason for the report."))
    note = " ".join((note or "").split())
    if len(note) > REPORT_NOTE_MAX:
        raise DomainError(N_("A note has at most %(max)s characters."), max=REPORT_NOTE_MAX)
    if target.author_id == reporter.id:
        raise DomainError(N_("You cannot report your own post."))
    column = Report.story_id if isinstance(target, Story) else Report.comment_id
    existing = db.session.scalar(select(Report).where(
        Report.reporter_id == reporter.id, column == target.id, Report.status == "open"))
    if existing is not None:
        return existing, False
    report = Report(reporter_id=reporter.id, community_id=_community_id(target), reason=reason, note=note,
                    status="open", created_at=utcnow(),
                    **({"story_id": target.id} if isinstance(target, Story) else {"comment_id": target.id}))
    db.session.add(report)
    db.session.flush()
    return report, True


def _set_status(target, status: str) -> None:
    """A comment's status moves its story's comment count; a story's is its own."""
    if isinstance(target, Comment):
        set_comment_status(target, status)
    else:
        target.status = status


def _hide(target, moderator, note: str, action: str) -> None:
    """Hide TARGET for a violation: out of every list, earnings of a story reversed, author told."""
    before = _state(target)
    _set_status(target, "hidden")
    target.hidden_at = utcnow()
    target.hidden_note = note[:NOTE_MAX]
    db.session.flush()
    if isinstance(target, Story):
        reverse_earnings(target.author, target, reason=N_("Story hidden for a violation"), key=f"hide:{target.id}")
        if target.photos:
            # New names once this commits: copies cached under the old (public, immutable) ones
            # match nothing any more, and the old names answer 404.
            enqueue("services.tasks.rename_story_photos", target.id)
    shown_note = {"msgid": note} if note in REPORT_REASONS.values() else target.hidden_note  # translated when shown
    notify(target.author, "content_hidden", {"title": _title(target), "note": shown_note},
           link=_link(target))
    audit(moderator, f"{_kind(target)}.{action}", target, before=before, after=_state(target))


def hide(target, moderator, note: str) -> None:
    """A moderator hides a story or comment with a note (required: the author sees it)."""
    _require_moderator(moderator, target)
    note = " ".join((note or "").split())
    if not note:
        raise DomainError(N_("Write a note: the author sees why it was hidden."))
    if len(note) > NOTE_MAX:
        raise DomainError(N_("A note has at most %(max)s characters."), max=NOTE_MAX)
    if target.status not in ("published", "review"):
        raise DomainError(N_("Only published content or content under review can be hidden."))
    _hide(target, moderator, note, "hide")


def restore(target, moderator) -> None:
    """Show hidden content again (reversed earnings stay reversed)."""
    _require_moderator(moderator, target)
    if target.status != "hidden":
        raise DomainError(N_("Only hidden content can be restored."))
    before = _state(target)
    _set_status(target, "published")
    target.hidden_at = None
    target.hidden_note = None
    db.session.flush()
    notify(target.author, "content_restored", {"title": _title(target)}, link=_link(target))
    audit(moderator, f"{_kind(target)}.restore", target, before=before, after=_state(target))


def approve(target, moderator) -> None:
    """Publish content a prohibited word sent to review; a story pays its `story_posted` reward."""
    _require_moderator(moderator, target)
    if target.status != "review":
        raise DomainError(N_("Only content under review can be approved."))
    before = _state(target)
    _set_status(target, "published")
    db.session.flush()
    if isinstance(target, Story):
        award(target.author, "story_posted", cause=target, key=f"story:{target.id}")
        published = db.session.scalar(select(func.count()).select_from(Story).where(
            Story.author_id == target.author_id, Story.status == "published"))
        if published == 1:
            qualify_referral(target.author, cause=target)
    audit(moderator, f"{_kind(target)}.approve", target, before=before, after=_state(target))


def feature(story, moderator) -> None:
    """故事激励计划: pin a published story in its community; the author is rewarded and told, once."""
    _require_moderator(moderator, story)
    if story.status != "published":
        raise DomainError(N_("Only published stories can be featured."))
    if story.featured_at is not None:
        return
    before = _state(story)
    story.featured_at = utcnow()
    db.session.flush()
    award(story.author, "story_featured", cause=story, key=f"featured:{story.id}")
    notify(story.author, "story_featured", {"title": story.title}, link=_link(story),
           dedupe_key=f"featured:{story.id}")
    audit(moderator, "story.feature", story, before=before, after=_state(story))


def unfeature(story, moderator) -> None:
    _require_moderator(moderator, story)
    if story.featured_at is None:
        return
    before = _state(story)
    story.featured_at = None
    db.session.flush()
    audit(moderator, "story.unfeature", story, before=before, after=_state(story))


def _report_state(report: Report) -> dict:
    return {"status": report.status, "handled_by": report.handled_by_id}


def confirm_report(report: Report, moderator, note: str = "") -> None:
    """The report is right: its target is hidden (if still shown) with a note, and a confirmed
    report of false vehicle information rewards the reporter (once)."""
    target = _close_report(report, moderator, "confirmed")
    if report.reason == "false_info":  # first: a member's lock comes before a story row's (hiding a comment)
        award(report.reporter, "confirmed_report", cause=report, key=f"report:{report.id}")
    if target.status in ("published", "review"):
        note = " ".join((note or "").split()) or REPORT_REASONS[report.reason]
        _hide(target, moderator, note, "hide")


def dismiss_report(report: Report, moderator) -> None:
    """The report is wrong: closed, nothing else changes."""
    _close_report(report, moderator, "dismissed")


def _close_report(report: Report, moderator, status: str):
    """Mark an open report confirmed or dismissed by MODERATOR, audited; returns its target."""
    target = report.story or report.comment
    _require_moderator(moderator, target)
    if report.status != "open":
        raise DomainError(N_("This report was already handled."))
    before = _report_state(report)
    report.status = status
    report.handled_at = utcnow()
    report.handled_by_id = moderator.id
    db.session.flush()
    action = {"confirmed": "report.confirm", "dismissed": "report.dismiss"}[status]
    audit(moderator, action, report, before=before, after=_report_state(report))
    return target


# -- what the queue shows --------------------------------------------------------------------

def moderated_communities(user) -> list:
    """The communities USER moderates (all of them for an admin)."""
    communities = Community.all_ordered()
    return [c for c in communities if user.has_role("moderator", community=c.id)]


def open_report_counts(community_ids) -> dict[int, int]:
    ids = list(community_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(Report.community_id, func.count()).where(Report.community_id.in_(ids), Report.status == "open")
        .group_by(Report.community_id))
    return dict(rows.all())


def open_reports(community_id: int, limit: int = 100) -> list[Report]:
    """Oldest first: the queue is worked through in order."""
    return list(db.session.scalars(
        select(Report).where(Report.community_id == community_id, Report.status == "open")
        .options(selectinload(Report.reporter), selectinload(Report.story),
                 selectinload(Report.comment).selectinload(Comment.story))
        .order_by(Report.created_at, Report.id).limit(limit)))


def under_review(community_id: int, limit: int = 100) -> tuple[list, list]:
    """Stories and comments a prohibited word sent to review, oldest first."""
    stories = list(db.session.scalars(
        select(Story).where(Story.community_id == community_id, Story.status == "review")
        .options(selectinload(Story.author)).order_by(Story.published_at, Story.id).limit(limit)))
    comments = list(db.session.scalars(
        select(Comment).join(Story, Story.id == Comment.story_id)
        .where(Story.community_id == community_id, Comment.status == "review")
        .options(selectinload(Comment.author), selectinload(Comment.story))
        .order_by(Comment.created_at, Comment.id).limit(limit)))
    return stories, comments


def featured_stories(community_id: int, limit: int = 3) -> list:
    """Featured stories pinned at the top of their community, newest feature first."""
    return list(db.session.scalars(
        select(Story).where(Story.community_id == community_id, Story.status == "published",
                            Story.featured_at.is_not(None))
        .options(selectinload(Story.author), selectinload(Story.community), selectinload(Story.photos))
        .order_by(Story.featured_at.desc(), Story.id.desc()).limit(limit)))


# -- the prohibited-words list admins maintain ----------------------------------------------

def add_word(word: str, action: str, actor):
    """Add a prohibited word (stored lower-case; a duplicate is refused with a clear message)."""
    word = (word or "").strip().casefold()
    if not word or len(word) > 60:
        raise DomainError(N_("A word has 1 to %(max)s characters."), max=60)
    if action not in ("block", "review"):
        raise DomainError(N_("Choose block or review."))
    if db.session.scalar(select(ProhibitedWord.id).where(func.lower(ProhibitedWord.word) == word)) is not None:
        raise DomainError(N_("“%(word)s” is already on the list."), word=word)
    row = ProhibitedWord(word=word, action=action, created_by_id=getattr(actor, "id", None), created_at=utcnow())
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        raise DomainError(N_("“%(word)s” is already on the list."), word=word) from None
    audit(actor, "word.add", row, before=None, after={"word": word, "action": action})
    return row


def delete_word(row, actor) -> None:
    before = {"word": row.word, "action": row.action}
    target = (row.__tablename__, row.id)
    db.session.delete(row)
    db.session.flush()
    audit(actor, "word.delete", target, before=before, after=None)
