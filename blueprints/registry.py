"""Blueprint registry: every blueprint of the site and where it is mounted."""
from __future__ import annotations

from flask import Flask

from blueprints.admin.routes import bp as admin_bp
from blueprints.auth.routes import bp as auth_bp
from blueprints.communities.routes import bp as communities_bp
from blueprints.events.routes import bp as events_bp
from blueprints.main.routes import bp as main_bp
from blueprints.me.routes import bp as me_bp
from blueprints.moderation.routes import bp as moderation_bp
from blueprints.partner.routes import bp as partner_bp
from blueprints.rewards.routes import bp as rewards_bp
from blueprints.stories.routes import bp as stories_bp


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(communities_bp)
    app.register_blueprint(me_bp, url_prefix="/me")
    app.register_blueprint(partner_bp, url_prefix="/partner")
    app.register_blueprint(rewards_bp, url_prefix="/rewards")
    app.register_blueprint(stories_bp, url_prefix="/stories")
    app.register_blueprint(events_bp, url_prefix="/events")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(moderation_bp, url_prefix="/moderation")
