"""indexes for a community's featured stories and its newest members

Revision ID: f3a6b7c8d901
Revises: e1a5c6b7d805
Create Date: 2026-12-05 22:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'f3a6b7c8d901'
down_revision = 'e1a5c6b7d805'
branch_labels = None
depends_on = None


def upgrade():
    # Partial: only featured stories are in it, so it stays a few rows whatever the feed's size.
    op.create_index('ix_stories_featured', 'stories', ['community_id', 'featured_at', 'id'],
                    sqlite_where=sa.text('featured_at IS NOT NULL'),
                    postgresql_where=sa.text('featured_at IS NOT NULL'))
    op.create_index('ix_memberships_community_joined', 'memberships', ['community_id', 'joined_at'])


def downgrade():
    op.drop_index('ix_memberships_community_joined', table_name='memberships')
    op.drop_index('ix_stories_featured', table_name='stories')
