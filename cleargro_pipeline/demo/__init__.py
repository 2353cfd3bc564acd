"""The embedded demo shop (see generator.py)."""

from .catalog import SIZES
from .columns import delivered_schema
from .generator import DemoShop
from .truth import PlantedSituation

__all__ = ["DemoShop", "PlantedSituation", "SIZES", "delivered_schema"]
