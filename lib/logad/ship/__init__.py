"""Shipping log files into Kafka (``logad ship``): Filebeat's role for hosts without Filebeat."""

from logad.ship.shipper import ShipConfig, ShipError, Shipper, Stats

__all__ = ["ShipConfig", "Shipper", "ShipError", "Stats"]
