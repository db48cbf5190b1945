"""garage: the make/series dictionary (seeded from models/data/car_series.csv), members' cars,
safety recalls and the recalls members marked done

Revision ID: d0f4b5a6c704
Revises: c9e3a4f5b603
Create Date: 2026-11-27 19:00:00

"""
import csv
from pathlib import Path

from alembic import op
import sqlalchemy as sa


revision = 'd0f4b5a6c704'
down_revision = 'c9e3a4f5b603'
branch_labels = None
depends_on = None

DICTIONARY = Path(__file__).resolve().parents[2] / "models" / "data" / "car_series.csv"
ENERGY_CHECK = "energy IN ('fuel','bev','phev','erev','hev')"


def upgrade():
    makes = op.create_table('car_makes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=30), nullable=False),
    sa.Column('name_en', sa.String(length=40), nullable=False),
    sa.Column('aliases', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_car_makes')),
    sa.UniqueConstraint('name', name=op.f('uq_car_makes_name'))
    )
    series = op.create_table('car_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('make_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('name_en', sa.String(length=60), nullable=False),
    sa.Column('aliases', sa.String(length=200), nullable=False),
    sa.Column('energy', sa.String(length=8), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.CheckConstraint(ENERGY_CHECK, name=op.f('ck_car_series_known_energy')),
    sa.ForeignKeyConstraint(['make_id'], ['car_makes.id'], name=op.f('fk_car_series_make_id_car_makes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_car_series')),
    sa.UniqueConstraint('make_id', 'name', name=op.f('uq_car_series_make_id_name'))
    )
    with op.batch_alter_table('car_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_car_series_make_id'), ['make_id'], unique=False)

    op.create_table('cars',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('make_id', sa.Integer(), nullable=True),
    sa.Column('series_id', sa.Integer(), nullable=True),
    sa.Column('other_make', sa.String(length=40), nullable=True),
    sa.Column('other_series', sa.String(length=40), nullable=True),
    sa.Column('energy', sa.String(length=8), nullable=False),
    sa.Column('model_year', sa.Integer(), nullable=False),
    sa.Column('mileage_km', sa.Integer(), nullable=True),
    sa.Column('vin', sa.String(length=17), nullable=True),
    sa.Column('plate', sa.String(length=10), nullable=True),
    sa.Column('create_nonce', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(make_id IS NULL) <> (other_make IS NULL)', name=op.f('ck_cars_one_make')),
    sa.CheckConstraint('(series_id IS NULL AND other_series IS NOT NULL) OR '
                       '(series_id IS NOT NULL AND other_series IS NULL AND make_id IS NOT NULL)',
                       name=op.f('ck_cars_one_series')),
    sa.CheckConstraint(ENERGY_CHECK, name=op.f('ck_cars_known_energy')),
    sa.CheckConstraint('model_year >= 1985 AND model_year <= 2100', name=op.f('ck_cars_model_year_range')),
    sa.CheckConstraint('mileage_km IS NULL OR (mileage_km >= 0 AND mileage_km <= 2000000)',
                       name=op.f('ck_cars_mileage_range')),
    sa.ForeignKeyConstraint(['make_id'], ['car_makes.id'], name=op.f('fk_cars_make_id_car_makes')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_cars_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['series_id'], ['car_series.id'], name=op.f('fk_cars_series_id_car_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cars'))
    )
    with op.batch_alter_table('cars', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cars_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('uq_cars_owner_id_create_nonce', ['owner_id', 'create_nonce'], unique=True)
        batch_op.create_index('ix_cars_make_series_year', ['make_id', 'series_id', 'model_year'], unique=False)

    op.create_table('recalls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('make_id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=True),
    sa.Column('year_from', sa.Integer(), nullable=True),
    sa.Column('year_to', sa.Integer(), nullable=True),
    sa.Column('vin_from', sa.String(length=17), nullable=True),
    sa.Column('vin_to', sa.String(length=17), nullable=True),
    sa.Column('defect', sa.Text(), nullable=False),
    sa.Column('remedy', sa.Text(), nullable=False),
    sa.Column('announced_on', sa.Date(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('year_from IS NULL OR year_to IS NULL OR year_from <= year_to', name=op.f('ck_recalls_year_order')),
    sa.CheckConstraint('(vin_from IS NULL) = (vin_to IS NULL)', name=op.f('ck_recalls_vin_pair')),
    sa.CheckConstraint('year_from IS NOT NULL OR year_to IS NOT NULL OR vin_from IS NOT NULL',
                       name=op.f('ck_recalls_some_range')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_recalls_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['make_id'], ['car_makes.id'], name=op.f('fk_recalls_make_id_car_makes')),
    sa.ForeignKeyConstraint(['series_id'], ['car_series.id'], name=op.f('fk_recalls_series_id_car_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recalls')),
    sa.UniqueConstraint('number', name=op.f('uq_recalls_number'))
    )
    with op.batch_alter_table('recalls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recalls_make_id'), ['make_id'], unique=False)

    op.create_table('recall_completions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('car_id', sa.Integer(), nullable=False),
    sa.Column('recall_id', sa.Integer(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['car_id'], ['cars.id'], name=op.f('fk_recall_completions_car_id_cars'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recall_id'], ['recalls.id'], name=op.f('fk_recall_completions_recall_id_recalls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recall_completions')),
    sa.UniqueConstraint('car_id', 'recall_id', name=op.f('uq_recall_completions_car_id_recall_id'))
    )
    with op.batch_alter_table('recall_completions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recall_completions_recall_id'), ['recall_id'], unique=False)

    seed_dictionary(makes, series)


def seed_dictionary(makes, series):
    """The makes and series of models/data/car_series.csv, in its order (the market's)."""
    with DICTIONARY.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    make_ids, make_rows, series_rows = {}, [], []
    for row in rows:
        if row["make"] not in make_ids:
            make_ids[row["make"]] = len(make_ids) + 1
            make_rows.append({"id": make_ids[row["make"]], "name": row["make"], "name_en": row["make_en"],
                              "aliases": row["make_aliases"], "position": len(make_ids)})
        series_rows.append({"id": len(series_rows) + 1, "make_id": make_ids[row["make"]], "name": row["series"],
                            "name_en": row["series_en"], "aliases": row["series_aliases"], "energy": row["energy"],
                            "position": len(series_rows) + 1})
    op.bulk_insert(makes, make_rows)
    op.bulk_insert(series, series_rows)
    if op.get_bind().dialect.name == "postgresql":  # explicit ids: move the sequences past them
        op.execute("SELECT setval(pg_get_serial_sequence('car_makes', 'id'), (SELECT max(id) FROM car_makes))")
        op.execute("SELECT setval(pg_get_serial_sequence('car_series', 'id'), (SELECT max(id) FROM car_series))")


def downgrade():
    with op.batch_alter_table('recall_completions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recall_completions_recall_id'))
    op.drop_table('recall_completions')
    with op.batch_alter_table('recalls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recalls_make_id'))
    op.drop_table('recalls')
    with op.batch_alter_table('cars', schema=None) as batch_op:
        batch_op.drop_index('ix_cars_make_series_year')
        batch_op.drop_index('uq_cars_owner_id_create_nonce')
        batch_op.drop_index(batch_op.f('ix_cars_owner_id'))
    op.drop_table('cars')
    with op.batch_alter_table('car_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_car_series_make_id'))
    op.drop_table('car_series')
    op.drop_table('car_makes')
