"""logad: log anomaly detection on Apache Spark.

Kafka in, Delta tables at every stage, an ATT-GRU model trained across executors, and scoring of
the live stream. Importing this package does nothing: no SparkSession, no broker client, no I/O.
"""

__version__ = "0.1.0"
