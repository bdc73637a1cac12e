"""Migrations: plan the steps between two schemas, check them against data, compile to SQL."""

from runtime.migrations.checks import (
    DatabaseShape,
    DataCheck,
    DataFacts,
    check_migration,
    check_passive,
)
from runtime.migrations.planner import plan_migration
from runtime.migrations.sql import migration_sql
from runtime.migrations.steps import Step, UpdateSecrets

__all__ = [
    "DataCheck",
    "DataFacts",
    "DatabaseShape",
    "Step",
    "UpdateSecrets",
    "check_migration",
    "check_passive",
    "migration_sql",
    "plan_migration",
]
