"""member activity days and consents

Revision ID: a7c1e2d3f401
Revises: 3f9b2d7c5e61
Create Date: 2026-11-27 18:45:00

Members who exist today start opted out of marketing: no consent on file shows they agreed to
it under the record kept from now on (models/consents.py). Their active days are rebuilt by
`flask --app app activity backfill`, not here (it reads most tables; run it once after).
"""
from alembic import op
import sqlalchemy as sa


revision = 'a7c1e2d3f401'
down_revision = '3f9b2d7c5e61'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_active_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_last_active_on'), ['last_active_on'], unique=False)

    op.create_table(
        'member_days',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_member_days_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'day', name=op.f('pk_member_days')),
    )
    op.create_index('ix_member_days_day_user_id', 'member_days', ['day', 'user_id'], unique=False)

    op.create_table(
        'consents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('policy_version', sa.String(length=20), nullable=False),
        sa.Column('marketing_opt_in', sa.Boolean(), nullable=False),
        sa.Column('given_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('ip', sa.String(length=45), nullable=True),
        sa.CheckConstraint("source IN ('signup','sms_signup','settings','unsubscribe')",
                           name=op.f('ck_consents_known_source')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_consents_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consents')),
    )
    op.create_index('ix_consents_user_id_given_at', 'consents', ['user_id', 'given_at'], unique=False)

    op.execute(sa.text("UPDATE users SET marketing_opt_in = :off").bindparams(off=False))


def downgrade():
    op.drop_index('ix_consents_user_id_given_at', table_name='consents')
    op.drop_table('consents')
    op.drop_index('ix_member_days_day_user_id', table_name='member_days')
    op.drop_table('member_days')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_last_active_on'))
        batch_op.drop_column('last_active_on')
