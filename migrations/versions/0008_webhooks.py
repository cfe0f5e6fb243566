"""webhook_outbox: events waiting for (or done with) delivery to WEBHOOK_URL

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 06:00:00
"""
from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('claimed_by', sa.String(length=32), nullable=True),
    sa.Column('delivered_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('failed_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_webhook_outbox_event_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('webhook_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_outbox_pick', ['delivered_at', 'next_attempt_at'],
                              unique=False)


def downgrade():
    op.drop_table('webhook_outbox')  # its indexes go with it
