"""Community list, community pages, join and leave in place."""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from blueprints.access import back_url, wants_fragment
from blueprints.web import render
from models import Community, db
from models.communities import member_community_ids
from models.stories import SORTS, card_stats, feed

bp = Blueprint("communities", __name__)


@bp.get("/communities")
def index():
    """All communities with member counts and the viewer's membership."""
    communities = Community.all_ordered()
    counts = Community.member_counts(communities)
    return render_template(
        "communities/index.html", communities=communities, counts=counts, joined=member_community_ids(current_user)
    )


@bp.get("/c/<slug>")
def show(slug):
    """A community's page: what it is about, who runs it, who joined lately."""
    community = Community.get_by_slug_or_404(slug, viewer=current_user)
    cursor = request.args.get("cursor")
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "newest"
    stories, next_cursor = feed(community_ids=[community.id], cursor=cursor, sort=sort, viewer=current_user)
    stats = card_stats(stories, current_user)
    more_url = url_for("communities.show", slug=slug, sort=sort, cursor=next_cursor) if next_cursor else None
    if cursor and wants_fragment():
        return render("communities/show.html", "stories/_cards.html", stories=stories, stats=stats,
                      next_cursor=next_cursor, more_url=more_url)
    from models.events import upcoming

    return render(
        "communities/show.html",
        community=community,
        events=upcoming(community_id=community.id, limit=3),
        is_member=community.has_member(current_user),
        member_count=community.member_count(),
        recent=community.recent_members(),
        staff=community.staff(),
        stories=stories,
        stats=stats,
        sort=sort,
        sort_endpoint=("communities.show", {"slug": slug}),
        next_cursor=next_cursor,
        more_url=more_url,
    )


@bp.post("/c/<slug>/join")
@login_required
def join(slug):
    """Join; an htmx request gets the button back, swapped in place."""
    community = Community.get_by_slug_or_404(slug)
    community.join(current_user)
    db.session.commit()
    return _membership_response(community, True)


@bp.post("/c/<slug>/leave")
@login_required
def leave(slug):
    """Leave; an htmx request gets the button back, swapped in place."""
    community = Community.get_by_slug_or_404(slug)
    community.leave(current_user)
    db.session.commit()
    return _membership_response(community, False)


def _membership_response(community, is_member):
    """The button fragment for htmx; without JavaScript, back to where the form was."""
    if not wants_fragment():
        return redirect(back_url(url_for("communities.show", slug=community.slug), referrer=True))
    response = make_response(
        render_template(
            "communities/_join_button.html",
            community=community,
            is_member=is_member,
            member_count=community.member_count(),
        )
    )
    response.vary.add("HX-Request")
    response.headers["HX-Trigger"] = "membership-changed"
    return response
