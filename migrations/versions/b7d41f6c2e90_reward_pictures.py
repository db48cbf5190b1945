"""reward pictures: the keys of a reward's display copy and thumbnail (indexed for /media)

Revision ID: b7d41f6c2e90
Revises: 7c3e5a1d9b20
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b7d41f6c2e90'
down_revision = '7c3e5a1d9b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('picture_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('picture_thumb_key', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_rewards_picture_key'), ['picture_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_rewards_picture_thumb_key'), ['picture_thumb_key'], unique=False)


def downgrade():
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rewards_picture_thumb_key'))
        batch_op.drop_index(batch_op.f('ix_rewards_picture_key'))
        batch_op.drop_column('picture_thumb_key')
        batch_op.drop_column('picture_key')
