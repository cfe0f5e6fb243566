"""one table for one-time codes: otp_challenges and magic_links move into one_time_codes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 01:20:00

Mailed links keep their row id, key and salt, so links and codes in inboxes keep working
across the upgrade. A texted code's stored HMAC was bound to the phone and is now bound to
the row, so texted codes still outstanding at the upgrade are marked invalid (the person
asks for a new one; at most OTP_TTL, five minutes by default, of codes are affected).
Downgrading moves the rows back the same way.
"""
import uuid
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

import authserver.models.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

OPTIONS = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_bin', mysql_engine='InnoDB')
COPIED = ('attempts', 'ip', 'created_at', 'expires_at', 'consumed_at', 'invalidated_at')


def _codes_table():
    return sa.table(
        'one_time_codes', sa.column('id'), sa.column('purpose'), sa.column('channel'),
        sa.column('subject'), sa.column('code_hash'), sa.column('redirect_to'),
        sa.column('code_challenge'), *(sa.column(name) for name in COPIED))


def upgrade():
    op.create_table('one_time_codes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=254), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=True),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('redirect_to', sa.String(length=2048), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('consumed_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('invalidated_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_one_time_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_one_time_codes')),
    **OPTIONS
    )
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.create_index('ix_one_time_codes_purpose_subject_created_at', ['purpose', 'subject', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_one_time_codes_user_id'), ['user_id'], unique=False)

    conn = op.get_bind()
    codes = _codes_table()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    links = conn.execute(sa.text(
        'SELECT id, email, code_hash, redirect_to, code_challenge, ' + ', '.join(COPIED)
        + ' FROM magic_links')).mappings().all()
    texts = conn.execute(sa.text(
        'SELECT phone, code_hash, ' + ', '.join(COPIED) + ' FROM otp_challenges')).mappings().all()
    rows = [dict(id=row['id'], purpose='sign_in_email', channel='email', subject=row['email'],
                 code_hash=row['code_hash'], redirect_to=row['redirect_to'],
                 code_challenge=row['code_challenge'], **{n: row[n] for n in COPIED})
            for row in links]
    for row in texts:
        copied = {n: row[n] for n in COPIED}
        # Hashed codes were bound to the phone: they can't be checked any more. Codes held by
        # Twilio Verify (no hash) still can.
        if row['code_hash'] and not copied['consumed_at'] and not copied['invalidated_at']:
            copied['invalidated_at'] = now
        rows.append(dict(id=str(uuid.uuid4()), purpose='sign_in_sms', channel='sms',
                         subject=row['phone'], code_hash=row['code_hash'], redirect_to=None,
                         code_challenge=None, **copied))
    if rows:
        op.bulk_insert(codes, rows)

    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.drop_index('ix_otp_challenges_phone_created_at')
    op.drop_table('otp_challenges')
    with op.batch_alter_table('magic_links', schema=None) as batch_op:
        batch_op.drop_index('ix_magic_links_email_created_at')
    op.drop_table('magic_links')


def downgrade():
    op.create_table('magic_links',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('redirect_to', sa.String(length=2048), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('consumed_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('invalidated_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_magic_links')),
    **OPTIONS
    )
    with op.batch_alter_table('magic_links', schema=None) as batch_op:
        batch_op.create_index('ix_magic_links_email_created_at', ['email', 'created_at'], unique=False)
    op.create_table('otp_challenges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('created_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', authserver.models.base.UTCDateTime(), nullable=False),
    sa.Column('consumed_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.Column('invalidated_at', authserver.models.base.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_otp_challenges')),
    **OPTIONS
    )
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.create_index('ix_otp_challenges_phone_created_at', ['phone', 'created_at'], unique=False)

    conn = op.get_bind()
    copied = ', '.join(COPIED)
    conn.execute(sa.text(
        f'INSERT INTO magic_links (id, email, code_hash, redirect_to, code_challenge, {copied}) '
        f"SELECT id, subject, code_hash, redirect_to, code_challenge, {copied} "
        f"FROM one_time_codes WHERE purpose = 'sign_in_email'"))
    conn.execute(sa.text(
        f'INSERT INTO otp_challenges (phone, code_hash, {copied}) '
        f"SELECT subject, code_hash, {copied} FROM one_time_codes "
        f"WHERE purpose = 'sign_in_sms' ORDER BY created_at"))

    op.drop_table('one_time_codes')  # its indexes and foreign key go with it
