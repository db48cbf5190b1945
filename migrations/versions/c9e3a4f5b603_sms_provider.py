"""sms provider: no table of its own

An SMS notice is a `deliveries` row (channel `sms`, migration b8d2f3e4a502) and its outbox job;
the daily cap counts those rows. This revision keeps the chain in one line.

Revision ID: c9e3a4f5b603
Revises: b8d2f3e4a502
Create Date: 2026-11-27 18:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c9e3a4f5b603'
down_revision = 'b8d2f3e4a502'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
