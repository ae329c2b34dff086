"""Alembic environment: the URL comes from the caller (hub.db.migrate), metadata from models."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from hub.db import registry

config = context.config
target_metadata = registry.metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
