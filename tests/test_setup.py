"""Migrations and the setup contract (demo data: tests/test_demo_data.py)."""
from __future__ import annotations

from models import db


def test_models_and_migrations_agree(app):
    """The schema comes only from migrations: no model change may be left without one."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []
