"""Shipping log files into Kafka (``logad ship``): Filebeat's role for hosts without Filebeat."""

from logad.errors import ShipError
from logad.ship.shipper import ShipConfig, Shipper, Stats

__all__ = ["ShipConfig", "Shipper", "ShipError", "Stats"]
