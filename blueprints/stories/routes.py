"""Writing, previewing, editing and reading stories."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms import SelectChoice

from extensions import limiter
from blueprints.access import wants_fragment
from blueprints.transactions import begin_write, reads_first
from blueprints.stories.forms import StoryForm
from blueprints.web import form_page, render
from models import Community, Story, User, db
from models.communities import member_community_ids
from models.markup import render_markdown
from models.nonces import NONCE_RE, AlreadySubmitted, new_nonce
from models.stories import (
    MAX_PHOTOS, TAGS, NewPhoto, StoryInput, card_stats, delete_story, feed, require_photo_room, save_story,
)
from services.images import MAX_BYTES, delete_photo, process_upload, removed_unless_saved, store_photo
from services.storage import get_storage

bp = Blueprint("stories", __name__)


def _per_member():
    return f"member:{current_user.id}" if current_user.is_authenticated else request.remote_addr


def _form(story: Story | None) -> StoryForm:
    form = StoryForm(obj=story)
    joined = member_community_ids(current_user)
    communities = sorted(Community.all_ordered(), key=lambda c: c.id not in joined)
    form.community.choices = [SelectChoice(c.id, c.display_name) for c in communities]
    form.tags.choices = [SelectChoice(code, _(label)) for code, label in TAGS.items()]
    form.remove_photos.choices = [SelectChoice(p.id, str(p.position + 1)) for p in (story.photos if story else [])]
    if not form.is_submitted():
        if story is not None:
            form.community.data = story.community_id
        else:
            form.nonce.data = new_nonce()
            wanted = request.args.get("community")
            match = next((c for c in communities if c.slug == wanted), None)
            form.community.data = match.id if match else (communities[0].id if communities else None)
    return form


def _edit(story: Story | None):
    """One form for new and existing stories: preview, keep as draft, or publish."""
    form = _form(story)
    preview = None
    if form.validate_on_submit():
        action = request.form.get("action", "publish")
        if action == "preview":
            preview = render_markdown(form.body.data)
        else:
            saved = _save(form, story, publish=action == "publish")
            if saved is not None:
                if saved.status == "draft":
                    flash(_("Draft saved. Only you can see it."), "success")
                    return _go(url_for("stories.edit", story_id=saved.id))
                if saved.status == "review":
                    flash(_("Thanks! A moderator will check your story before it is shown."), "info")
                else:
                    flash(_("Your story is published."), "success")
                return _go(url_for("stories.show", story_id=saved.id))
    status = 422 if request.method == "POST" and preview is None else 200
    return render("stories/edit.html", "stories/_editor.html", status,
                  form=form, story=story, preview=preview, max_photos=MAX_PHOTOS)


def _go(url: str):
    """Where a saved story leads. The editor's script (HX-Request) gets HX-Redirect and goes there
    itself: a 302 followed inside its XMLHttpRequest would spend the flash message unseen."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)


def _save(form: StoryForm, story: Story | None, publish: bool) -> Story | None:
    """Process the photos, save the story, commit; on any refusal nothing stays behind, files included."""
    storage = get_storage(current_app)
    try:
        with removed_unless_saved(storage) as written:
            uploads = [f for f in request.files.getlist(form.photos.name) if f and f.filename]
            require_photo_room(story, len(uploads), set(form.remove_photos.data or []))  # before resizing any
            photos = []
            for upload in uploads:
                processed = process_upload(upload.read(MAX_BYTES + 1))
                keys = store_photo(processed, storage, prefix=str(current_user.id))
                written.extend(keys)
                photos.append(NewPhoto(keys[0], keys[1], processed.width, processed.height))
            begin_write()  # photos are processed: now take the write lock, and only now
            community = db.session.get(Community, form.community.data)
            dropped = {p for p in (story.photos if story else []) if p.id in set(form.remove_photos.data or [])}
            saved = save_story(current_user, StoryInput(community, form.title.data, form.body.data,
                                                        form.tags.data or []),
                               publish=publish, story=story, new_photos=photos, drop_photo_ids={p.id for p in dropped},
                               nonce=None if story else form.nonce.data or "")
            db.session.commit()
    except AlreadySubmitted as repeat:
        db.session.rollback()  # this submission's photos are gone with it; the first one stands
        return repeat.first
    # A DomainError goes on to `_editor_again` (the photos written are gone with it).
    delete_photo(storage, *[key for p in dropped for key in (p.full_key, p.thumb_key)])
    return saved


@login_required
def _editor_again(refused, story_id=None):
    """The editor again from what was sent, the view's own checks first: the reason above the
    form, and a fresh nonce if the page's was stale, so the form works again."""
    story = Story.get_own_or_403(story_id, current_user) if story_id is not None else None
    if story is None and not current_user.can_post:
        return render_template("stories/verify_first.html"), 403
    form = refused.on(_form(story))
    if story is None and not NONCE_RE.match(form.nonce.data or ""):
        form.nonce.data = new_nonce()
    return render("stories/edit.html", "stories/_editor.html", 422, form=form, story=story, preview=None,
                  max_photos=MAX_PHOTOS)


@bp.route("/new", methods=["GET", "POST"])
@form_page(_editor_again)
@login_required
@limiter.limit("20 per hour", key_func=_per_member, methods=["POST"])
@reads_first  # photos are resized before the write lock is taken (blueprints/transactions.py)
def create():
    """Write a story. Only members with a verified mobile number may post (the page says why)."""
    if not current_user.can_post:
        return render_template("stories/verify_first.html"), 403
    return _edit(None)


@bp.get("/<int:story_id>")
def show(story_id):
    """A story: text, photos, author, likes and the newest comments; drafts only for their
    author. `?after=` with htmx: the next page of comments only (the list's "load more")."""
    story = Story.get_page_or_404(story_id, current_user)
    if request.args.get("after") and wants_fragment():
        return render("stories/show.html", "stories/_comment_page.html", story=story, tag_labels=TAGS)
    return render("stories/show.html", story=story, tag_labels=TAGS)


@bp.route("/<int:story_id>/edit", methods=["GET", "POST"])
@form_page(_editor_again)
@login_required
@limiter.limit("60 per hour", key_func=_per_member, methods=["POST"])
@reads_first
def edit(story_id):
    """Authors edit their own stories (403 for anyone else's)."""
    return _edit(Story.get_own_or_403(story_id, current_user))


@bp.post("/<int:story_id>/delete")
@login_required
def delete(story_id):
    """Authors delete their own stories (kept for moderation history, gone from every list;
    a draft and the photo files go for good)."""
    story = Story.get_own_or_403(story_id, current_user)
    slug = story.community.slug  # a draft's row is gone after the commit
    delete_story(story)
    db.session.commit()
    flash(_("Your story was deleted."), "info")
    return redirect(url_for("communities.show", slug=slug))


@bp.get("/by/<int:user_id>")
def by_member(user_id):
    """A member's published stories, newest first, with infinite scroll."""
    member = db.get_or_404(User, user_id)
    cursor = request.args.get("cursor")
    stories, next_cursor = feed(author_id=member.id, cursor=cursor, viewer=current_user)
    more_url = url_for("stories.by_member", user_id=member.id, cursor=next_cursor) if next_cursor else None
    return render("stories/by_member.html", "stories/_cards.html", member=member, stories=stories,
                  stats=card_stats(stories, current_user), next_cursor=next_cursor, more_url=more_url)

from blueprints.stories import engagement  # noqa: E402,F401
from blueprints.stories import search  # noqa: E402,F401
