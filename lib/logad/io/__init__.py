"""I/O: Kafka in (Spark's Kafka source), Delta tables out and in (delta-spark), the local broker."""
