"""counters: database-held counts shared by every process (SMS bill stop, sign-in failures)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:45:00
"""
from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('counters',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('started_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_counters')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_counters_started_at'), ['started_at'], unique=False)


def downgrade():
    op.drop_table('counters')  # its index goes with it
