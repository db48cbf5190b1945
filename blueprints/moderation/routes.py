"""Reports from members, and the moderation queue of each community for its moderators.

The rules live in models/moderation.py; these views find the target, call them and commit."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.access import back_url, role_required
from blueprints.web import domain_errors, domain_message
from models import N_, Comment, Community, DomainError, Report, Story, db
from models import moderation as rules
from models.moderation import REPORT_REASONS

bp = Blueprint("moderation", __name__)


@bp.app_context_processor
def _moderation_helpers():
    """`featured_for(community)` for the community page (its view stays as it is), and what the
    story page's moderation bar needs."""
    def can_moderate(target) -> bool:
        story = target if isinstance(target, Story) else target.story
        return rules.can_moderate(current_user, story.community_id)

    return {"featured_for": lambda community: rules.featured_stories(community.id),
            "can_moderate": can_moderate, "report_reasons": REPORT_REASONS}


def _target_from_form():
    story_id = request.form.get("story_id", type=int)
    comment_id = request.form.get("comment_id", type=int)
    if bool(story_id) == bool(comment_id):
        abort(400)
    return db.session.get(Story, story_id) if story_id else db.session.get(Comment, comment_id)


def _reported_story(target) -> Story:
    return target if isinstance(target, Story) else target.story


def _report_refused(refused):
    """The report was refused (no reason chosen, a note too long): say why, on its own page."""
    story = _reported_story(_target_from_form())
    return render_template("moderation/report_done.html", story=story, message=refused.message, refused=True)


@bp.post("/report")
@domain_errors(_report_refused)
@login_required
def report():
    """A member reports a story or a comment they can see (never their own)."""
    target = _target_from_form()
    if target is None or not rules.reportable(target, current_user):
        abort(404)
    story = _reported_story(target)
    _report, created = rules.file_report(current_user, target, request.form.get("reason", ""),
                                         request.form.get("note", ""))
    db.session.commit()
    message = (_("Thanks. Moderators of this community will look at your report.") if created
               else _("You already reported this. Moderators will look at it."))
    flash(message, "success" if created else "info")
    return redirect(url_for("stories.show", story_id=story.id))


@bp.get("")
@role_required("moderator")
def index():
    """The communities the viewer moderates, with their open reports."""
    communities = rules.moderated_communities(current_user)
    counts = rules.open_report_counts(c.id for c in communities)
    return render_template("moderation/index.html", communities=communities, counts=counts)


@bp.get("/c/<slug>")
@login_required
def queue(slug):
    """One community's open reports and content under review."""
    community = Community.get_by_slug_or_404(slug)
    if not rules.can_moderate(current_user, community.id):
        abort(403)
    stories, comments = rules.under_review(community.id)
    return render_template("moderation/queue.html", community=community, reports=rules.open_reports(community.id),
                           stories=stories, comments=comments, reasons=REPORT_REASONS)


# What each action tells the moderator, said specifically (never a bare "Done").
DONE = {
    "hide": N_("Hidden. The author was told why."),
    "restore": N_("Restored. It is shown again."),
    "approve": N_("Approved. It is shown now."),
    "feature": N_("Featured. The author gets the reward."),
    "unfeature": N_("No longer featured."),
    "confirm": N_("Report confirmed."),
    "dismiss": N_("Report dismissed."),
}


def _act(done: str, action, *args):
    """Run a moderation rule (403 outside one's communities), commit, and go back."""
    try:
        action(*args)
    except DomainError as error:
        db.session.rollback()
        flash(domain_message(error), "error")
    else:
        db.session.commit()
        flash(_(DONE[done]), "success")


def _queue_url(target) -> str:
    story = target if isinstance(target, Story) else target.story
    return url_for("moderation.queue", slug=story.community.slug)


@bp.post("/reports/<int:report_id>/<any(confirm, dismiss):action>")
@login_required
def handle_report(report_id, action):
    report = db.get_or_404(Report, report_id)
    if action == "confirm":
        _act("confirm", rules.confirm_report, report, current_user, request.form.get("note", ""))
    else:
        _act("dismiss", rules.dismiss_report, report, current_user)
    return redirect(back_url(url_for("moderation.queue", slug=db.session.get(Community, report.community_id).slug)))


@bp.post("/<any(stories, comments):kind>/<int:target_id>/<any(hide, restore, approve, feature, unfeature):action>")
@login_required
def moderate(kind, target_id, action):
    target = db.get_or_404(Story if kind == "stories" else Comment, target_id)
    if target.status in ("deleted", "draft"):
        abort(404)
    if kind == "comments" and action in ("feature", "unfeature"):
        abort(404)
    if action == "hide":
        _act("hide", rules.hide, target, current_user, request.form.get("note", ""))
    else:
        _act(action, getattr(rules, action), target, current_user)
    return redirect(back_url(_queue_url(target)))
