"""mfa: an authenticator app's TOTP secret per user, and their recovery codes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:45:00
"""
from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('totp_factors',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('secret_encrypted', sa.String(length=255), nullable=False),
    sa.Column('confirmed_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('last_used_step', sa.BigInteger(), nullable=True),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_totp_factors_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_totp_factors')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    op.create_table('recovery_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('used_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.create_index('ix_recovery_codes_user_id_code_hash', ['user_id', 'code_hash'], unique=False)


def downgrade():
    op.drop_table('recovery_codes')  # its index goes with it
    op.drop_table('totp_factors')
