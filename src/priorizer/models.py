"""Every table, imported in one place for Alembic and for schema checks."""

from priorizer.allocation.models import Allocation
from priorizer.catalog.models import Asset, Dataset
from priorizer.db import Base
from priorizer.harvest.models import HarvestRun
from priorizer.maintenance.models import MaintenanceRun
from priorizer.node.models import Node
from priorizer.sources.models import WatchedSource
from priorizer.system.models import SystemValue

metadata = Base.metadata

__all__ = [
    "Allocation",
    "Asset",
    "Dataset",
    "HarvestRun",
    "MaintenanceRun",
    "Node",
    "SystemValue",
    "WatchedSource",
    "metadata",
]
