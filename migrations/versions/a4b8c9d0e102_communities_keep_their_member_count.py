"""communities keep their member count (a counter kept by join and leave)

Revision ID: a4b8c9d0e102
Revises: f3a6b7c8d901
Create Date: 2026-12-05 22:45:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a4b8c9d0e102'
down_revision = 'f3a6b7c8d901'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN (no batch copy: SQLite would drop and rebuild a table others point to).
    op.add_column('communities', sa.Column('member_total', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE communities SET member_total = "
               "(SELECT count(*) FROM memberships WHERE memberships.community_id = communities.id)")


def downgrade():
    op.drop_column('communities', 'member_total')
