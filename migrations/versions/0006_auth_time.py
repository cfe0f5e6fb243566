"""auth_time: when a session's holder last proved who they are, kept across hand-offs

A browser already signed in that hands its sign-in over to an app (`/login?redirect_to=…`)
opens the app's session with the browser's sign-in time, not "now": an old browser session
must not mint tokens that pass the recent-sign-in check. Rows from before this revision have
none and count from their `created_at`, as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:40:00
"""
from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_time', authserver.models.base.UTCDateTime(),
                                      nullable=True))
    with op.batch_alter_table('handoff_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_time', authserver.models.base.UTCDateTime(),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('handoff_codes', schema=None) as batch_op:
        batch_op.drop_column('auth_time')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('auth_time')
