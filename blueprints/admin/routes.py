"""Site administration: overview, role grants, audit log."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from wtforms import SelectChoice

from blueprints.access import role_required
from blueprints.admin.forms import GrantForm
from blueprints.web import form_page
from models import AuditEntry, Community, Membership, Notification, Partner, User, db
from models.accounts import RoleGrant, grant_role, revoke_role

bp = Blueprint("admin", __name__)


@bp.before_request
@role_required("admin")
def _admins_only():
    """Every page here is for site administrators."""


@bp.get("")
def index():
    """Overview: the figures an operator checks first."""
    count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
    stats = {
        "members": count(User),
        "verified": db.session.scalar(select(func.count()).select_from(User).where(User.phone_verified_at.is_not(None))),
        "memberships": count(Membership),
        "notifications": count(Notification),
    }
    return render_template("admin/index.html", stats=stats, recent=AuditEntry.recent(10))


def _grant_form() -> GrantForm:
    form = GrantForm()
    form.community.choices = [SelectChoice(0, "—")] + [SelectChoice(c.id, c.display_name) for c in Community.all_ordered()]
    return form


def _roles_page(form: GrantForm, status: int = 200):
    grants = db.session.scalars(
        select(RoleGrant).join(User, User.id == RoleGrant.user_id).order_by(RoleGrant.role, User.nickname)
    ).all()
    return render_template("admin/roles.html", form=form, grants=grants), status


def _roles_again(refusal):
    return _roles_page(refusal.on(_grant_form(), "role"))


@bp.route("/roles", methods=["GET", "POST"])
@form_page(_roles_again)
def roles():
    """Grant roles, and list who holds which."""
    form = _grant_form()
    if form.validate_on_submit():
        user = User.find_by_login(form.login.data)
        if user is None:
            form.login.errors.append(_("No member with this login."))
        else:
            community = db.session.get(Community, form.community.data) if form.community.data else None
            partner = Partner.get_or_create(form.partner.data.strip()) if form.partner.data and form.partner.data.strip() else None
            grant_role(user, form.role.data, community=community, partner=partner, by=current_user)
            db.session.commit()
            flash(_("Role granted to %(name)s.", name=user.nickname), "success")
            return redirect(url_for("admin.roles"))
    return _roles_page(form, 422 if request.method == "POST" else 200)


@bp.post("/roles/<int:grant_id>/revoke")
def revoke(grant_id):
    grant = db.get_or_404(RoleGrant, grant_id)
    if grant.user_id == current_user.id and grant.role == "admin":
        abort(400)
    revoke_role(grant, by=current_user)
    db.session.commit()
    flash(_("Role revoked."), "info")
    return redirect(url_for("admin.roles"))


@bp.get("/audit")
def audit_log():
    """The audit log, newest first, keyset-paginated."""
    before = request.args.get("before", type=int)
    entries = AuditEntry.recent(50, before_id=before)
    return render_template("admin/audit.html", entries=entries,
                           next_before=entries[-1].id if len(entries) == 50 else None)

from blueprints.admin import loyalty  # noqa: E402,F401  (registers the loyalty pages on bp)
from blueprints.admin import words  # noqa: E402,F401
from blueprints.admin import recalls  # noqa: E402,F401  (registers the safety-recall pages on bp)
from blueprints.admin import campaigns  # noqa: E402,F401  (registers the campaign pages on bp)
