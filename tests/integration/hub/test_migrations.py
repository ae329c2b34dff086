"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.db import registry
from hub.db.session import get_engine

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_models(db_url):
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), registry.metadata)
    assert diff == []
