"""Partner staff portal: their business and stores (voucher validation lands with loyalty)."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select

from blueprints.access import role_required
from models import Partner, db

bp = Blueprint("partner", __name__)


@bp.get("")
@role_required("partner")
def index():
    """The businesses this account works for, with their stores."""
    if current_user.is_admin:
        partners = db.session.scalars(select(Partner).order_by(Partner.name)).all()
    else:
        partners = db.session.scalars(select(Partner).where(Partner.id.in_(current_user.partner_ids()))).all()
    return render_template("partner/index.html", partners=partners)
