"""a member's postings newest first from one index (user_id, id)

Revision ID: b2e6f4a8c013
Revises: a9c4e2f7b310
Create Date: 2026-12-07 12:20:00

"""
from alembic import op


revision = 'b2e6f4a8c013'
down_revision = 'a9c4e2f7b310'
branch_labels = None
depends_on = None


def upgrade():
    # With user_id alone, PostgreSQL read a member's newest postings by walking the primary key
    # backwards and filtering: 650 ms for a member whose postings are among the oldest of 1,001,200.
    op.create_index('ix_points_ledger_user_id_id', 'points_ledger', ['user_id', 'id'])
    op.drop_index('ix_points_ledger_user_id', table_name='points_ledger')


def downgrade():
    op.create_index('ix_points_ledger_user_id', 'points_ledger', ['user_id'])
    op.drop_index('ix_points_ledger_user_id_id', table_name='points_ledger')
