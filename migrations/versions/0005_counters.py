"""counters: database-held counts shared by every process (SMS bill stop, sign-in failures)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00

Written beside 0003 and 0004 (other branches of the same security issue). Until those are
merged this revision follows 0002, the newest one present; once a 0004_*.py file sits next
to it, it follows 0004. After the merge the expression can become the plain '0004'.
"""
from pathlib import Path

from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0005'
down_revision = ('0004' if any(Path(__file__).parent.glob('0004_*.py')) else '0002')
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
