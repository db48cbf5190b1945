"""members keep a cached points standing (balance, level, expiring points), derived from the ledger

Revision ID: d7e1f2a3b405
Revises: c6d0e1f2a304
Create Date: 2026-12-06 06:00:00

No backfill: deriving a standing is the replay in models/loyalty (a migration must not copy
logic that may change later, nor import it). A member without a row gets one on their first
page view or posting; `flask points recache` builds every row at once.
"""
from alembic import op
import sqlalchemy as sa


revision = 'd7e1f2a3b405'
down_revision = 'c6d0e1f2a304'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('member_points',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('spendable', sa.Integer(), nullable=False),
    sa.Column('growth', sa.Integer(), nullable=False),
    sa.Column('level_number', sa.Integer(), nullable=False),
    sa.Column('ladder', sa.String(length=200), nullable=False),
    sa.Column('expiring', sa.JSON(), nullable=False),
    sa.Column('checkin_day', sa.Date(), nullable=True),
    sa.Column('checkin_streak', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_member_points_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_member_points'))
    )
    op.create_index(op.f('ix_member_points_valid_until'), 'member_points', ['valid_until'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_member_points_valid_until'), table_name='member_points')
    op.drop_table('member_points')
