"""``logad hadoop``: the local single-node Hadoop (HDFS + YARN) for trying the cluster path."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import default


def add(sub: Any) -> None:
    from logad.hadoop import LocalHadoop

    h = sub.add_parser("hadoop", help="start, stop or check a local single-node Apache Hadoop (HDFS + YARN) "
                       "on 127.0.0.1, to run the jobs with --master yarn and a warehouse on hdfs://")
    h.add_argument("action", choices=["start", "stop", "status", "env"],
                   help="env: print the export line for HADOOP_CONF_DIR (eval \"$(logad hadoop env)\")")
    port = default(LocalHadoop, "port")
    h.add_argument("--port", type=int, default=port,
                   help=f"base TCP port: the NameNode on PORT, the other daemons on PORT+1..PORT+12 (default {port})")
    state = default(LocalHadoop, "state_dir")
    h.add_argument("--state-dir", default=state, help=f"configuration, HDFS blocks, logs, pids (default {state})")
    h.add_argument("--memory-mb", type=int, default=default(LocalHadoop, "memory_mb"),
                   help="memory the NodeManager offers to containers")
    h.add_argument("--vcores", type=int, default=default(LocalHadoop, "vcores"),
                   help="vcores the NodeManager offers to containers")
    h.set_defaults(func=cmd_hadoop)


def cmd_hadoop(a: argparse.Namespace) -> int:
    from logad import hadoop

    cfg = hadoop.LocalHadoop(state_dir=a.state_dir, port=a.port, memory_mb=a.memory_mb, vcores=a.vcores)
    if a.action == "start":
        st = hadoop.start(cfg)
        print(f"Hadoop {hadoop.HADOOP_VERSION} running: {st.fs}, YARN {cfg.web['resourcemanager']}, "
              f"HDFS {cfg.web['namenode']}")
        print(f"  export HADOOP_CONF_DIR={cfg.conf_dir}")
    elif a.action == "stop":
        print("Hadoop stopped" if hadoop.stop(cfg) else "no Hadoop daemon was running")
    elif a.action == "env":
        print(f"export HADOOP_CONF_DIR={cfg.conf_dir}")
    else:
        st = hadoop.status(cfg)
        for name, pid in st.running.items():
            print(f"  {name}: {'up, pid ' + str(pid) if pid else 'down'}, log {hadoop.log_file(cfg, name)}")
        print(f"HDFS {st.fs}: {st.live_datanodes} live DataNode(s); YARN: {st.active_nodemanagers} "
              f"active NodeManager(s); HADOOP_CONF_DIR={st.conf_dir}")
        return 0 if st.ready else 1
    return 0
