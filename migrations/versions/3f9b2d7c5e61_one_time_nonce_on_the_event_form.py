"""one-time nonce on the new-event form

Revision ID: 3f9b2d7c5e61
Revises: ac2dccb7a344
Create Date: 2026-11-27 16:45:00

"""
from alembic import op
import sqlalchemy as sa


revision = '3f9b2d7c5e61'
down_revision = 'ac2dccb7a344'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('events', sa.Column('create_nonce', sa.String(length=64), nullable=True))
    op.create_index('uq_events_organizer_id_create_nonce', 'events', ['organizer_id', 'create_nonce'], unique=True)


def downgrade():
    op.drop_index('uq_events_organizer_id_create_nonce', table_name='events')
    op.drop_column('events', 'create_nonce')
