"""trace records: finished request traces shipped by replicas

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("mod", sa.String(length=160), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Boolean(), nullable=False),
        sa.Column("erasures", sa.Integer(), nullable=False),
        sa.Column("replica", sa.String(length=128), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_trace_records_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_records")),
        sa.UniqueConstraint("request_id", name=op.f("uq_trace_records_request_id")),
    )
    with op.batch_alter_table("trace_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_records_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_trace_records_tenant_id_id", ["tenant_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trace_records", schema=None) as batch_op:
        batch_op.drop_index("ix_trace_records_tenant_id_id")
        batch_op.drop_index(batch_op.f("ix_trace_records_created_at"))
    op.drop_table("trace_records")
