"""stories keep their like and comment counts (kept with the rows they count)

Revision ID: b5c9d0e1f203
Revises: a4b8c9d0e102
Create Date: 2026-12-05 22:55:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b5c9d0e1f203'
down_revision = 'a4b8c9d0e102'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('stories', sa.Column('like_count', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('stories', sa.Column('comment_count', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE stories SET "
               "like_count = (SELECT count(*) FROM story_likes WHERE story_likes.story_id = stories.id), "
               "comment_count = (SELECT count(*) FROM comments "
               "WHERE comments.story_id = stories.id AND comments.status = 'published')")


def downgrade():
    op.drop_column('stories', 'comment_count')
    op.drop_column('stories', 'like_count')
