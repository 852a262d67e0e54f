"""Service keys name the tenants they may act for, and sign the usage tokens their introspections give.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("acts_for", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("usage_secret", sa.String(64), nullable=False, server_default=""))
    keys = sa.table("api_keys", sa.column("id", sa.Integer), sa.column("usage_secret", sa.String))
    connection = op.get_bind()
    for (key_id,) in connection.execute(sa.select(keys.c.id)).all():  # every existing key gets its own
        connection.execute(keys.update().where(keys.c.id == key_id).values(usage_secret=secrets.token_hex(32)))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("usage_secret")
        batch.drop_column("acts_for")
