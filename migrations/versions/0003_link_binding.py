"""mailed links bound to the browser that asked, an app's state, hand-off codes for links

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:40:00

one_time_codes gets binding_hash (the asking browser's cookie, hashed) and state (an app's
anti-CSRF value, returned on redirect_to). handoff_codes may now stand for a mailed link
that is used only when the app exchanges the code (challenge_id), before the owner is known
(user_id nullable).
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('binding_hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('handoff_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('challenge_id', sa.String(length=36), nullable=True))
        batch_op.alter_column('user_id', existing_type=sa.String(length=36), nullable=True)
        batch_op.create_index(batch_op.f('ix_handoff_codes_challenge_id'), ['challenge_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_handoff_codes_challenge_id_one_time_codes'), 'one_time_codes', ['challenge_id'], ['id'], ondelete='CASCADE')


def downgrade():
    op.execute("DELETE FROM handoff_codes WHERE user_id IS NULL")
    with op.batch_alter_table('handoff_codes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_handoff_codes_challenge_id_one_time_codes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_handoff_codes_challenge_id'))
        batch_op.drop_column('challenge_id')
        batch_op.alter_column('user_id', existing_type=sa.String(length=36), nullable=False)
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.drop_column('binding_hash')
        batch_op.drop_column('state')
