"""The lines of a Spark executor log that open and end a Task workflow: one definition, read by
the sessionizer (:mod:`logad.sessions.spark`, Spark SQL on the content) and by the lab's ground
truth (:mod:`logad.lab.corpus`, Python on whole lines). Both regex dialects accept them.

Spark's executor writes ``Running task 4.0 in stage 1.0 (TID 9)`` when an attempt starts,
``Finished task ...`` when it succeeds, ``Exception in task ...`` when it throws and
``Executor killed task ...`` when the driver kills it (a speculative copy won, a job was
cancelled).
"""

from __future__ import annotations

# "task 4.0 in stage 1.0 (TID 9)": group 1 the task index, group 2 the TID
TASK = r"task (\d+)\.\d+ in stage [\d.]+ \(TID (\d+)\)"
# a line naming a TID, "(TID 5)" and "TID 5" alike
TID = r"\bTID (\d+)\b"
# the content of a line that opens an attempt's workflow starts with this, then TASK
START = "Running "
# ... and the words before TASK on the line that ends it, by how it ended
ENDS = {"finish": "Finished ", "exception": "Exception in ", "killed": "Executor killed "}
# other ways a kill shows in older Spark versions' logs (content starts with them)
KILLED_OTHER = (r"Killed task", r"Task \S+ killed")
