"""Likes and comments on a story, in place with htmx (and plain forms without JS)."""
from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from extensions import limiter
from blueprints.access import wants_fragment
from blueprints.stories.routes import _per_member, bp
from blueprints.web import domain_errors, render
from models import Story, db
from models.engagement import (
    COMMENT_MAX, Comment, add_comment, comment_page, delete_comment, has_liked, like, like_count, page_starting_at,
    thread_of, unlike,
)
from models.nonces import AlreadySubmitted
from models.stories import TAGS


def _context(story: Story, after: str | None = None, **refusal) -> dict:
    """What the comment templates need besides the threads: which form or menu the URL opens
    (pages without JS), and REFUSAL (`error`, `typed`, `refused_form`, `reply_to`) of a comment
    that was refused. No query."""
    arg = lambda name: request.args.get(name, 0, type=int)  # noqa: E731
    return {"after": after, "comment_max": COMMENT_MAX, "story_url": url_for("stories.show", story_id=story.id),
            "can_comment": story.status == "published" and current_user.is_authenticated and current_user.phone_verified,
            "reply_to": arg("reply_to"), "open_menu": arg("menu"), "open_report": arg("report"),
            "can_report": False, "error": None, "typed": "", "refused_form": None} | refusal


@bp.app_template_global()
def story_engagement(story: Story, cursor: str | None = None, **refusal) -> dict:
    """What `_engagement.html` shows under a story: the like state and a page of comment threads
    (CURSOR, else `?after=`, picks a later one): two queries, three when the like state was not
    asked with the story."""
    after = cursor or request.args.get("after") or None
    threads, next_cursor = comment_page(story, current_user, after)
    viewer_id = current_user.id if current_user.is_authenticated else None
    reportable = viewer_id is not None and (next_cursor is not None or any(
        c.author_id != viewer_id and c.status == "published" for t in threads for c in (t.comment, *t.replies)))
    return _context(story, after, **refusal) | {
        "likes": like_count(story), "liked": has_liked(story, current_user), "threads": threads,
        "next_cursor": next_cursor, "can_report": reportable}


def _like_response(story_id: int, likes: int, liked: bool):
    """The like button after the commit, from what the transaction knew (the expired story is
    not read again)."""
    if wants_fragment():
        return render("stories/show.html", "stories/_like.html", story_id=story_id, likes=likes, liked=liked)
    return redirect(url_for("stories.show", story_id=story_id))


@bp.post("/<int:story_id>/like")
@login_required
def like_story(story_id):
    """Like a published story in place (404 for any other: drafts, stories in review, hidden)."""
    story = Story.get_published_or_404(story_id)
    like(story, current_user)
    likes = like_count(story)  # moved in SQL by like(); the row is this transaction's until the commit
    db.session.commit()
    return _like_response(story_id, likes, liked=True)


@bp.post("/<int:story_id>/unlike")
@login_required
def unlike_story(story_id):
    story = Story.get_published_or_404(story_id)
    unlike(story, current_user)
    likes = like_count(story)
    db.session.commit()
    return _like_response(story_id, likes, liked=False)


FORM_IDS = {"new": "comment-form-new", "shared": "reply-form"}


def _form_id(kind: str, parent_id: int | None) -> str:
    """The id of the comment form that was sent (see `_comment_form.html`)."""
    return FORM_IDS.get(kind) or f"reply-form-{parent_id}"


def _refused(story: Story, status: int, error: str):
    """The refusal under the form that was sent, with what was typed: htmx swaps that form
    alone; without JS the story page comes back with the form open on the page holding it."""
    body, parent_id = request.form.get("body", ""), request.form.get("parent_id", type=int)
    kind = request.form.get("form", "new" if parent_id is None else "inplace")
    if kind not in ("new", "shared", "inplace"):
        kind = "new"
    if not wants_fragment() and parent_id is not None:
        kind = "inplace"  # the page without JS opens the reply form in place
    parent = db.session.get(Comment, parent_id) if parent_id else None
    refusal = {"error": error, "typed": body, "reply_to": parent_id or 0, "refused_form": _form_id(kind, parent_id)}
    if wants_fragment():
        engagement = _context(story, **refusal)
    else:
        engagement = story_engagement(story, page_starting_at(parent) if parent is not None else None, **refusal)
    return render("stories/show.html", "stories/_comment_form.html", status=status, story=story, tag_labels=TAGS,
                  engagement=engagement, form_kind=kind, parent=parent if kind == "inplace" else None)


@login_required
def _comment_refused(refused, story_id):
    return _refused(Story.get_published_or_404(story_id), 422, refused.message)


def _placed(response, target: str, swap: str):
    """Tell htmx where the answer goes instead of the form that asked."""
    response.headers["HX-Retarget"] = target
    response.headers["HX-Reswap"] = swap
    return response


@bp.post("/<int:story_id>/comments")
@domain_errors(_comment_refused)
@login_required
@limiter.limit("30 per hour", key_func=_per_member)
def comment(story_id):
    """Comment on a published story, or reply to a comment (verified mobile number required).

    htmx gets only the new comment, on top of the list or at the end of its thread's replies,
    and a fresh form (a new one-time nonce) in place of the one sent."""
    story = Story.get_published_or_404(story_id)
    if not current_user.can_post:
        return _refused(story, 403, _("Verify your mobile number before you comment."))
    try:
        created = add_comment(story, current_user, request.form.get("body", ""),
                              parent_id=request.form.get("parent_id", type=int), nonce=request.form.get("nonce", ""))
        db.session.commit()
    except AlreadySubmitted as repeat:  # a double tap: the first comment stands, nothing more is posted
        db.session.rollback()
        if wants_fragment():
            return "", 204  # the first request's answer put it on the page
        created = repeat.first
    if not wants_fragment():
        if created.status == "review":
            flash(_("Thanks! A moderator will check your comment before others see it."), "info")
        parent = db.session.get(Comment, created.parent_id) if created.parent_id else None
        where = {"after": page_starting_at(parent)} if parent is not None else {}
        return redirect(url_for("stories.show", story_id=story.id, _anchor=f"comment-{created.id}", **where))
    kind = request.form.get("form", "new")
    kind = kind if kind in ("new", "shared", "inplace") else "new"
    response = make_response(render_template(
        "stories/_comment_posted.html", story=story, item=created, replies=[], form_kind=kind,
        parent=db.session.get(Comment, created.parent_id) if kind == "inplace" else None, engagement=_context(story)))
    if created.parent_id is None:
        return _placed(response, "#comment-list", "afterbegin")
    return _placed(response, f"#replies-{created.parent_id}", "beforeend")


@bp.post("/comments/<int:comment_id>/delete")
@login_required
def delete_comment_view(comment_id):
    """Authors delete their own comments (403 for anyone else's). htmx gets the comment as it
    now shows (a placeholder while it has replies), or it goes from the page."""
    found = db.session.get(Comment, comment_id)
    if found is None or found.status == "deleted":
        abort(404)
    story = Story.get_visible_or_404(found.story_id, current_user)
    if found.author_id != current_user.id:
        abort(403)
    delete_comment(found)
    db.session.commit()
    if not wants_fragment():
        return redirect(url_for("stories.show", story_id=story.id, _anchor="comments"))
    shown = thread_of(found, current_user)
    if shown is None:
        return _placed(make_response(""), f"#comment-{found.id}", "delete")
    return render_template("stories/_comment.html", story=story, item=shown.comment, replies=shown.replies,
                           engagement=_context(story))
