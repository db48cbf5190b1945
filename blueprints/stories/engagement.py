"""Likes and comments on a story, in place with htmx (and plain forms without JS)."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from extensions import limiter
from blueprints.access import wants_fragment
from blueprints.stories.routes import _per_member, bp
from blueprints.web import domain_errors, render
from models import Story, db
from models.engagement import (
    COMMENT_MAX, Comment, add_comment, delete_comment, has_liked, like, like_count, threads_for, unlike,
)
from models.nonces import AlreadySubmitted
from models.stories import TAGS


@bp.app_template_global()
def story_engagement(story: Story) -> dict:
    """What `_engagement.html` shows under a story: like state and the comment threads."""
    return {"likes": like_count(story), "liked": has_liked(story, current_user),
            "threads": threads_for(story, current_user), "comment_max": COMMENT_MAX}


def _like_response(story: Story):
    if wants_fragment():
        return render("stories/show.html", "stories/_like.html", story=story,
                      likes=like_count(story), liked=has_liked(story, current_user))
    return redirect(url_for("stories.show", story_id=story.id))


@bp.post("/<int:story_id>/like")
@login_required
def like_story(story_id):
    """Like a published story in place (404 for any other: drafts, stories in review, hidden)."""
    story = Story.get_published_or_404(story_id)
    like(story, current_user)
    db.session.commit()
    return _like_response(story)


@bp.post("/<int:story_id>/unlike")
@login_required
def unlike_story(story_id):
    story = Story.get_published_or_404(story_id)
    unlike(story, current_user)
    db.session.commit()
    return _like_response(story)


def _comments_response(story: Story, status: int = 200, error: str | None = None, typed: str = "",
                       reply_to: int | None = None):
    """The comments section (htmx) or the whole story page, with an error and what was typed."""
    return render("stories/show.html", "stories/_comments.html", status=status, story=story, tag_labels=TAGS,
                  engagement=story_engagement(story), comment_error=error, typed=typed, reply_to=reply_to)


@login_required
def _comment_refused(refused, story_id):
    """Why the comment was refused, under the comment box, with what was typed."""
    return _comments_response(Story.get_published_or_404(story_id), 422, refused.message,
                              request.form.get("body", ""), request.form.get("parent_id", type=int))


@bp.post("/<int:story_id>/comments")
@domain_errors(_comment_refused)
@login_required
@limiter.limit("30 per hour", key_func=_per_member)
def comment(story_id):
    """Comment on a published story, or reply to a comment (verified mobile number required)."""
    story = Story.get_published_or_404(story_id)
    body = request.form.get("body", "")
    parent_id = request.form.get("parent_id", type=int)
    if not current_user.can_post:
        return _comments_response(story, 403, _("Verify your mobile number before you comment."), body, parent_id)
    try:
        created = add_comment(story, current_user, body, parent_id=parent_id, nonce=request.form.get("nonce", ""))
        db.session.commit()
    except AlreadySubmitted as repeat:  # a double tap: the first comment stands, nothing more is posted
        db.session.rollback()
        created = repeat.first
    if not wants_fragment():
        if created.status == "review":
            flash(_("Thanks! A moderator will check your comment before others see it."), "info")
        return redirect(url_for("stories.show", story_id=story.id, _anchor=f"comment-{created.id}"))
    return _comments_response(story)


@bp.post("/comments/<int:comment_id>/delete")
@login_required
def delete_comment_view(comment_id):
    """Authors delete their own comments (403 for anyone else's)."""
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
    return _comments_response(story)
