"""one-time nonces on the story and comment forms

Revision ID: a41c7e09b2d5
Revises: 5b0e7c2a9f41
Create Date: 2026-11-27 15:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a41c7e09b2d5'
down_revision = '5b0e7c2a9f41'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('stories', sa.Column('create_nonce', sa.String(length=64), nullable=True))
    op.create_index('uq_stories_author_id_create_nonce', 'stories', ['author_id', 'create_nonce'], unique=True)
    op.add_column('comments', sa.Column('nonce', sa.String(length=64), nullable=True))
    op.create_index('uq_comments_author_id_nonce', 'comments', ['author_id', 'nonce'], unique=True)


def downgrade():
    op.drop_index('uq_comments_author_id_nonce', table_name='comments')
    op.drop_column('comments', 'nonce')
    op.drop_index('uq_stories_author_id_create_nonce', table_name='stories')
    op.drop_column('stories', 'create_nonce')
