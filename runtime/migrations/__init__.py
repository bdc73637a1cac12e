"""Migrations: plan the steps between two schemas, check them against data, compile to SQL."""

from runtime.migrations.checks import DataCheck, DataFacts, check_migration
from runtime.migrations.planner import plan_migration
from runtime.migrations.sql import migration_sql
from runtime.migrations.steps import Step, UpdateSecrets

__all__ = [
    "DataCheck",
    "DataFacts",
    "Step",
    "UpdateSecrets",
    "check_migration",
    "migration_sql",
    "plan_migration",
]
