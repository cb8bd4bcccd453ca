"""I/O: Kafka in, Delta tables out and in, the local broker. Native or embedded, one interface."""
