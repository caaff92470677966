"""The sorting cell controller: parcel tracking, routing, decisions, divert scheduling and
confirmation, as a pure core (``CellCore``) plus adapters to the real drivers."""

from edge.cell.config import CellConfig
from edge.cell.controller import CellCore

__all__ = ["CellConfig", "CellCore"]
