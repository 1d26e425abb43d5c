"""Storage: engine tables, per-app SQL tables, migration plans and their application, the records service."""

from __future__ import annotations

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.plan import MigrationPlan
from engine.storage.query import Filter, Query, Sort
from engine.storage.records import Page, RecordService

__all__ = ["AppService", "Database", "Filter", "MigrationPlan", "Page", "Query", "RecordService", "Sort"]
