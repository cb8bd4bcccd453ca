"""The Spark lab: real Spark applications on a standalone cluster on 127.0.0.1, with injected
faults, their executor and driver logs collected, and every task attempt labelled from what was
injected and what Spark reports (see :mod:`logad.lab.corpus`)."""
