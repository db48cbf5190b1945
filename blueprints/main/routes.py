"""Home, health, PWA plumbing, language and the pages of capabilities still to come."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import text

from blueprints.i18n import LOCALES
from blueprints.access import back_url, wants_fragment
from blueprints.web import asset_version, render, static_version
from models import Community, Reward, Story, db
from models.communities import member_community_ids
from models.events import Event, next_ticket
from models.referrals import inviter_for
from models.stories import SORTS, card_stats, feed
from services.storage import get_storage

bp = Blueprint("main", __name__)


@bp.get("/")
def home():
    """Members see their communities and the newest stories from them; visitors see everything."""
    communities = Community.all_ordered()
    joined = member_community_ids(current_user)
    cursor = request.args.get("cursor")
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "newest"
    stories, next_cursor = feed(community_ids=joined or None, cursor=cursor, sort=sort, viewer=current_user)
    stats = card_stats(stories, current_user)
    more_url = url_for("main.home", sort=sort, cursor=next_cursor) if next_cursor else None
    if cursor and wants_fragment():
        return render("main/home.html", "stories/_cards.html", stories=stories, stats=stats, next_cursor=next_cursor,
                      more_url=more_url)
    mine = [c for c in communities if c.id in joined]
    others = [c for c in communities if c.id not in joined]
    counts = Community.member_counts(communities)

    return render("main/home.html", mine=mine, others=others, counts=counts, joined=joined, stories=stories,
                  next_ticket=next_ticket(current_user), stats=stats, sort=sort, sort_endpoint=("main.home", {}), next_cursor=next_cursor, more_url=more_url)


@bp.get("/media/<path:key>")
def media(key):
    """Uploaded photos, under the rule of what they belong to (a story, an event cover, a reward).

    What everyone may see (a published story's photos, a published event's cover) is public
    and cached for a year: random, never-reused keys. Anything else (a draft, a story in review
    or hidden) goes only to those who may see it, never stored by a cache; 404 to the others,
    and to files that belong to nothing (a deleted story's, the old names of a hidden one's)."""
    if not key.startswith("photos/") or not key.endswith(".jpg"):
        abort(404)
    owner = Story.with_photo(key) or Event.with_cover(key) or Reward.with_picture(key)
    if owner is None or not owner.visible_to(current_user):
        abort(404)
    storage = get_storage(current_app)
    try:
        data = storage.read(key)
    except (FileNotFoundError, ValueError):
        abort(404)
    response = make_response(data)
    response.mimetype = "image/jpeg"
    if owner.visible_to(None):  # what a visitor may see
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/healthz")
def healthz():
    """200 with JSON when the database answers, 503 otherwise."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:  # any database failure means unhealthy
        db.session.rollback()
        current_app.logger.error("health check failed: %s", error)
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok")


@bp.get("/offline")
def offline():
    """Shown by the service worker when a page cannot be fetched.

    The worker caches this page, so it carries nothing of the member's: no CSRF token, no badge.
    """
    response = make_response(render_template("main/offline.html", shared_page=True))
    response.headers["Cache-Control"] = "public, no-cache"
    return response


@bp.get("/privacy")
def privacy_policy():
    return render_template("main/privacy.html", version=current_app.config["PRIVACY_POLICY_VERSION"])


@bp.get("/manifest.webmanifest")
def manifest():
    """The web app manifest: installable, standalone, Chinese first."""
    icon = lambda name: url_for("static", filename=f"img/{name}", v=static_version(current_app, f"img/{name}"))  # noqa: E731
    data = {
        "id": "/",
        "name": "车友圈 · Cheyou",
        "short_name": "车友圈",
        "description": "二手车车主社区：车友故事、线下活动、积分与保养券",
        "lang": "zh-CN",
        "dir": "ltr",
        "start_url": "/?source=pwa",
        "scope": "/",
        "display": "standalone",
        "orientation": "portrait",
        "theme_color": "#1f6feb",
        "background_color": "#f5f7fb",
        "categories": ["social", "lifestyle", "auto"],
        "icons": [
            {"src": icon("icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {"src": icon("icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
            {"src": icon("icon-maskable-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
        ],
        "shortcuts": [
            {"name": "社区", "short_name": "社区", "url": "/communities", "icons": [{"src": icon("icon-192.png"), "sizes": "192x192"}]},
            {"name": "活动", "short_name": "活动", "url": "/events", "icons": [{"src": icon("icon-192.png"), "sizes": "192x192"}]},
            {"name": "积分", "short_name": "积分", "url": "/rewards", "icons": [{"src": icon("icon-192.png"), "sizes": "192x192"}]},
            {"name": "我的", "short_name": "我的", "url": "/me", "icons": [{"src": icon("icon-192.png"), "sizes": "192x192"}]},
        ],
    }
    response = jsonify(data)
    response.mimetype = "application/manifest+json"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker():
    """The service worker, from the site root so its scope is `/`; its version changes with the assets."""
    version = asset_version(current_app)
    precache = [
        url_for("main.offline"),
        *(
            url_for("static", filename=f, v=static_version(current_app, f))
            for f in ("css/app.css", "js/app.js", "vendor/htmx.min.js", "img/logo.svg", "img/icons.svg", "img/icon-192.png")
        ),
    ]
    body = render_template("sw.js", version=version, precache=precache, offline_url=url_for("main.offline"))
    response = make_response(body)
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.post("/lang")
def set_language():
    """Remember the chosen language (on the account when signed in, in a cookie always)."""
    lang = request.form.get("lang")
    response = redirect(back_url(url_for("main.home")))
    if lang in LOCALES:
        response.set_cookie("lang", lang, max_age=60 * 60 * 24 * 365, samesite="Lax", httponly=True)
        if current_user.is_authenticated:
            current_user.locale = lang
            db.session.commit()
    return response


@bp.get("/i/<code>")
def invite(code):
    """A member's invite link: remember the inviter for the signup form, then show it."""
    response = redirect(url_for("auth.signup", invite=code))
    if inviter_for(code) is not None and not current_user.is_authenticated:
        response.set_cookie("invite", code, max_age=60 * 60 * 24 * 30, samesite="Lax", httponly=True)
    return response


from blueprints.main import campaign_link, unsubscribe  # noqa: E402,F401  (register /r/<token>, /u/<token> on bp)
