"""sms codes remember the account that asked, for the per-account and site-wide daily caps

Revision ID: 7c3e5a1d9b20
Revises: a41c7e09b2d5
Create Date: 2026-11-27 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '7c3e5a1d9b20'
down_revision = 'a41c7e09b2d5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sms_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_sms_codes_requested_by_id'), ['requested_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_codes_created_at'), ['created_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_sms_codes_requested_by_id_users'), 'users', ['requested_by_id'],
                                    ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('sms_codes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_sms_codes_requested_by_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_sms_codes_created_at'))
        batch_op.drop_index(batch_op.f('ix_sms_codes_requested_by_id'))
        batch_op.drop_column('requested_by_id')
