"""audit_events: the audit trail, one row per security event, kept AUDIT_RETENTION_DAYS

No foreign keys on user_id / actor_id: deleting an account keeps its history.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 06:00:00
"""
from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=True),
    sa.Column('actor_id', sa.String(length=36), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('method', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_type_id', ['type', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_user_id_id', ['user_id', 'id'], unique=False)


def downgrade():
    op.drop_table('audit_events')  # its indexes go with it
