"""photo and cover keys indexed: /media finds the story or event a file belongs to

Revision ID: 5b0e7c2a9f41
Revises: d8497d1fa714
Create Date: 2026-11-28 10:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5b0e7c2a9f41'
down_revision = 'd8497d1fa714'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('story_photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_story_photos_full_key'), ['full_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_story_photos_thumb_key'), ['thumb_key'], unique=False)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_cover_key'), ['cover_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_cover_thumb_key'), ['cover_thumb_key'], unique=False)


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_cover_thumb_key'))
        batch_op.drop_index(batch_op.f('ix_events_cover_key'))
    with op.batch_alter_table('story_photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_story_photos_thumb_key'))
        batch_op.drop_index(batch_op.f('ix_story_photos_full_key'))
