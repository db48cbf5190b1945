"""Demo data, migrations and the setup contract."""
from __future__ import annotations

from sqlalchemy import func, select

from demo import DEMO_ACCOUNTS, DEMO_PASSWORD
from models import Community, Membership, User, db


def test_seed_demo_is_idempotent_and_gives_a_login_per_role(app, runner):
    assert runner.invoke(args=["seed-demo"]).output.strip() == "demo data created"
    counts = (db.session.scalar(select(func.count()).select_from(User)),
              db.session.scalar(select(func.count()).select_from(Membership)))
    assert runner.invoke(args=["seed-demo"]).output.strip() == "demo data already present"
    assert counts == (db.session.scalar(select(func.count()).select_from(User)),
                      db.session.scalar(select(func.count()).select_from(Membership)))
    assert counts[0] >= 40 and counts[1] >= 40
    assert {c.slug for c in db.session.scalars(select(Community))} == {"ev", "women", "modding", "newcomers"}

    roles = {}
    for login, _nick, role, _scope in DEMO_ACCOUNTS:
        client = app.test_client()
        response = client.post("/auth/login", data={"login": login, "password": DEMO_PASSWORD})
        assert response.status_code == 302, login
        roles[role or "member"] = client
    assert roles["admin"].get("/admin").status_code == 200
    assert roles["partner"].get("/partner").status_code == 200
    assert roles["member"].get("/partner").status_code == 403


def test_models_and_migrations_agree(app):
    """The schema comes only from migrations: no model change may be left without one."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []
