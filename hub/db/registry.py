"""Import every table module so ``Base.metadata`` is complete (Alembic, schema checks)."""

from hub.db import lab_models, models, order_models, report_models  # noqa: F401

metadata = models.Base.metadata
