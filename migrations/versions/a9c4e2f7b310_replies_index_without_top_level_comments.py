"""replies index without the top-level comments

Revision ID: a9c4e2f7b310
Revises: d7e1f2a3b405
Create Date: 2026-12-06 19:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a9c4e2f7b310'
down_revision = 'd7e1f2a3b405'
branch_labels = None
depends_on = None


def upgrade():
    # Partial: SQLite's ANALYZE counted the top-level comments' NULLs as one value matching every
    # row, so its planner scanned the table for each thread's "has replies" check instead.
    op.create_index('ix_comments_replies', 'comments', ['parent_id', 'created_at', 'id'],
                    sqlite_where=sa.text('parent_id IS NOT NULL'),
                    postgresql_where=sa.text('parent_id IS NOT NULL'))
    op.drop_index('ix_comments_parent_id', table_name='comments')


def downgrade():
    op.create_index('ix_comments_parent_id', 'comments', ['parent_id'])
    op.drop_index('ix_comments_replies', table_name='comments')
