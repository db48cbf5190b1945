"""stories keep their hot score (ranked by one indexed, limited query); the search index reads
a term's stories best-weighted first

Revision ID: c6d0e1f2a304
Revises: b5c9d0e1f203
Create Date: 2026-12-06 05:00:00

"""
import math
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = 'c6d0e1f2a304'
down_revision = 'b5c9d0e1f203'
branch_labels = None
depends_on = None

# A copy of models/stories.py's formula at the time of writing: a migration must not change
# meaning when the model's formula does later.
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
HALF_LIFE_HOURS = 12


def _score(likes, comments, published_at):
    if isinstance(published_at, str):
        published_at = datetime.fromisoformat(published_at)
    if published_at.tzinfo is None:
        published_at = published_at.replace(tzinfo=timezone.utc)
    hours = (published_at - EPOCH).total_seconds() / 3600
    return math.log(likes + 2 * comments + 1) + hours * math.log(2) / HALF_LIFE_HOURS


def upgrade():
    op.add_column('stories', sa.Column('hot_score', sa.Float(), nullable=False, server_default='0'))
    op.create_index('ix_stories_hot', 'stories', ['status', 'hot_score', 'id'])
    op.create_index('ix_stories_community_hot', 'stories', ['community_id', 'status', 'hot_score', 'id'])
    # A later hot page ranks by the score at its reference time: the likes and comments since.
    op.create_index('ix_story_likes_created_at', 'story_likes', ['created_at'])
    op.create_index('ix_comments_created_at', 'comments', ['created_at'])
    # A search reads its rarest term's best-weighted stories in order (models/search.py); the
    # index on the term alone becomes redundant.
    op.create_index('ix_story_terms_ranked', 'story_terms', ['term', 'weight', 'story_id'])
    op.drop_index('ix_story_terms_term', table_name='story_terms')
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT id, like_count, comment_count, published_at FROM stories WHERE published_at IS NOT NULL")).all()
    if rows:
        connection.execute(sa.text("UPDATE stories SET hot_score = :score WHERE id = :id"),
                           [{"id": i, "score": _score(l, c, at)} for i, l, c, at in rows])


def downgrade():
    op.create_index('ix_story_terms_term', 'story_terms', ['term'])
    op.drop_index('ix_story_terms_ranked', table_name='story_terms')
    op.drop_index('ix_comments_created_at', table_name='comments')
    op.drop_index('ix_story_likes_created_at', table_name='story_likes')
    op.drop_index('ix_stories_community_hot', table_name='stories')
    op.drop_index('ix_stories_hot', table_name='stories')
    op.drop_column('stories', 'hot_score')
