"""sms codes remember the nonce of the form that consumed them (SMS login and reset: a double tap logs in once)

Revision ID: e5c81a7f3d42
Revises: b7d41f6c2e90
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'e5c81a7f3d42'
down_revision = 'b7d41f6c2e90'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sms_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nonce', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('sms_codes', schema=None) as batch_op:
        batch_op.drop_column('nonce')
