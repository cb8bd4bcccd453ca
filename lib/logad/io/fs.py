"""Files under the warehouse (the model registry, promotion records, checkpoints, the Delta logs
read without Spark) on any Hadoop filesystem: ``file:``, ``hdfs:``, and ``s3a:`` or ``abfss:``
where the cluster's configuration has their connector and credentials.

A path without a scheme, or with ``file:``, is read and written here with Python's own calls:
no JVM is needed for a laptop's ``logad promote``. Any other scheme goes through Hadoop's
``FileSystem`` in the JVM: the active SparkSession's (so ``spark.hadoop.*`` settings apply), or,
with none, a JVM of pyspark's started once for the process (``HADOOP_CONF_DIR`` applies). The rest
of the library never opens a warehouse path itself: it calls these.

Example:
    >>> write_text("hdfs://nn:8020/logad/models/x/promoted.json", "{}")  # doctest: +SKIP
    >>> read_text("hdfs://nn:8020/logad/models/x/promoted.json")  # doctest: +SKIP
    '{}'
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from logad.errors import ConfigError

_GATEWAY: Any = None

PathOrUri = str | os.PathLike[str]


def is_local(uri: PathOrUri) -> bool:
    """True for a plain path or a ``file:`` URI."""
    uri = os.fspath(uri)
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(uri: PathOrUri) -> str:
    """The OS path of a local URI (``file:///a/b`` -> ``/a/b``)."""
    uri = os.fspath(uri)
    return urlparse(uri).path if uri.startswith("file:") else uri


def join(root: PathOrUri, *parts: str) -> str:
    """``root/part/...``: a URI keeps its scheme, a plain path becomes absolute."""
    root = os.fspath(root)
    if "://" in root or root.startswith("file:"):
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(root).absolute().joinpath(*parts))


def parent(uri: PathOrUri) -> str:
    uri = os.fspath(uri)
    return uri.rstrip("/").rsplit("/", 1)[0]


def name(uri: PathOrUri) -> str:
    uri = os.fspath(uri)
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _jvm() -> tuple[Any, Any]:
    """(the JVM view, a Hadoop Configuration): the active SparkSession's, else a gateway of our own."""
    global _GATEWAY
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is not None:
        return sc._jvm, sc._jsc.hadoopConfiguration()
    if _GATEWAY is None:
        from pyspark.java_gateway import launch_gateway

        _GATEWAY = launch_gateway()
    jvm = _GATEWAY.jvm
    return jvm, jvm.org.apache.hadoop.conf.Configuration()


def _fs(uri: str) -> tuple[Any, Any, Any]:
    """(jvm, FileSystem, Path) for a non-local URI."""
    jvm, conf = _jvm()
    path = jvm.org.apache.hadoop.fs.Path(uri)
    try:
        return jvm, path.getFileSystem(conf), path
    except Exception as e:
        raise ConfigError(f"no Hadoop filesystem for {uri}: {_first_line(e)} (is its connector on the "
                          "classpath and HADOOP_CONF_DIR or spark.hadoop.* set?)") from e


def _first_line(e: BaseException) -> str:
    text = str(e)
    for line in text.splitlines():
        if "Exception" in line and ":" in line:
            return line.strip()[:300]
    return text.strip().splitlines()[0][:300] if text.strip() else type(e).__name__


def exists(uri: PathOrUri) -> bool:
    uri = os.fspath(uri)
    if is_local(uri):
        return os.path.exists(local_path(uri))
    _, fs, path = _fs(uri)
    return bool(fs.exists(path))


def size(uri: PathOrUri) -> int:
    """A file's length in bytes."""
    uri = os.fspath(uri)
    if is_local(uri):
        return os.path.getsize(local_path(uri))
    _, fs, path = _fs(uri)
    return int(fs.getFileStatus(path).getLen())


def default_filesystem() -> str:
    """``fs.defaultFS`` of the Hadoop configuration in use (``hdfs://nn:8020``)."""
    _, conf = _jvm()
    return str(conf.get("fs.defaultFS")).rstrip("/")


def is_dir(uri: PathOrUri) -> bool:
    uri = os.fspath(uri)
    if is_local(uri):
        return os.path.isdir(local_path(uri))
    _, fs, path = _fs(uri)
    return bool(fs.exists(path) and fs.getFileStatus(path).isDirectory())


def listdir(uri: PathOrUri) -> list[str]:
    """The names in a folder, sorted; [] when it does not exist."""
    uri = os.fspath(uri)
    if is_local(uri):
        p = local_path(uri)
        return sorted(os.listdir(p)) if os.path.isdir(p) else []
    _, fs, path = _fs(uri)
    if not fs.exists(path):
        return []
    return sorted(str(s.getPath().getName()) for s in fs.listStatus(path))


def mkdirs(uri: PathOrUri) -> None:
    uri = os.fspath(uri)
    if is_local(uri):
        os.makedirs(local_path(uri), exist_ok=True)
        return
    _, fs, path = _fs(uri)
    fs.mkdirs(path)


def read_bytes(uri: PathOrUri) -> bytes:
    uri = os.fspath(uri)
    if is_local(uri):
        with open(local_path(uri), "rb") as f:
            return f.read()
    jvm, fs, path = _fs(uri)
    stream = fs.open(path)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def read_text(uri: PathOrUri) -> str:
    uri = os.fspath(uri)
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: PathOrUri, data: bytes) -> None:
    """Write a file whole and atomically: readers see the old content or the new, never a part
    (a temporary file beside it, then a rename that replaces)."""
    uri = os.fspath(uri)
    tmp = f"{uri}.tmp-{uuid.uuid4().hex[:8]}"
    if is_local(uri):
        os.makedirs(os.path.dirname(local_path(uri)) or ".", exist_ok=True)
        with open(local_path(tmp), "wb") as f:
            f.write(data)
        os.replace(local_path(tmp), local_path(uri))
        return
    jvm, fs, path = _fs(tmp)
    out = fs.create(path, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()
    rename(tmp, uri, overwrite=True)


def write_text(uri: PathOrUri, text: str) -> None:
    uri = os.fspath(uri)
    write_bytes(uri, text.encode("utf-8"))


def rename(src: PathOrUri, dst: PathOrUri, overwrite: bool = False) -> None:
    """Rename ``src`` to ``dst`` (one atomic step on HDFS and local disks; object stores copy)."""
    src, dst = os.fspath(src), os.fspath(dst)
    if is_local(src):
        if overwrite:
            os.replace(local_path(src), local_path(dst))
        else:
            if os.path.exists(local_path(dst)):
                raise FileExistsError(dst)
            os.rename(local_path(src), local_path(dst))
        return
    jvm, fs, path = _fs(src)
    _, conf = _jvm()
    fsp = jvm.org.apache.hadoop.fs
    src_q, dst_q = fs.makeQualified(path), fs.makeQualified(fsp.Path(dst))
    ctx = fsp.FileContext.getFileContext(src_q.toUri(), conf)
    opts = _array_of_one(fsp.Options.Rename,
                         fsp.Options.Rename.OVERWRITE if overwrite else fsp.Options.Rename.NONE)
    ctx.rename(src_q, dst_q, opts)


def _array_of_one(cls: Any, value: Any) -> Any:
    """A Java array holding ``value`` (a Java varargs parameter, as py4j passes it)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway or _GATEWAY
    arr = gateway.new_array(cls, 1)
    arr[0] = value
    return arr


def delete(uri: PathOrUri, recursive: bool = False) -> bool:
    """Remove a file (or, with ``recursive``, a folder); False when there was nothing."""
    uri = os.fspath(uri)
    if is_local(uri):
        p = local_path(uri)
        if os.path.isdir(p) and recursive:
            shutil.rmtree(p)
            return True
        if os.path.lexists(p):
            os.remove(p) if not os.path.isdir(p) else os.rmdir(p)
            return True
        return False
    _, fs, path = _fs(uri)
    return bool(fs.delete(path, recursive))


def put(local: PathOrUri, uri: PathOrUri) -> None:
    """Copy a local file or folder to ``uri`` (its parent must exist or is made)."""
    uri = os.fspath(uri)
    if is_local(uri):
        src, dst = str(local), local_path(uri)
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
            shutil.copyfile(src, dst)
        return
    jvm, fs, path = _fs(uri)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(os.path.abspath(local)), path)


def get(uri: PathOrUri, local: PathOrUri) -> Path:
    """Copy a file or folder at ``uri`` to the local path ``local``; returns it."""
    uri = os.fspath(uri)
    dst = Path(local)
    if is_local(uri):
        src = local_path(uri)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        return dst
    jvm, fs, path = _fs(uri)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fs.copyToLocalFile(False, path, jvm.org.apache.hadoop.fs.Path(str(dst.absolute())), True)
    return dst


def qualified(uri: PathOrUri) -> str:
    """A URI with its scheme and authority: ``/a`` -> ``file:///a``, ``hdfs:///a`` ->
    ``hdfs://namenode:8020/a`` (the configuration's default authority for that scheme).

    Spark's streaming checkpoints go through Hadoop's ``FileContext``, which refuses a URI
    without an authority (``Uri without authority: hdfs:/a``) where ``FileSystem`` and Delta take it.
    """
    uri = os.fspath(uri)
    if is_local(uri):
        return Path(local_path(uri)).absolute().as_uri()
    if urlparse(uri).netloc:
        return uri
    _, hfs, path = _fs(uri)
    return str(hfs.makeQualified(path).toString())


__all__ = ["default_filesystem", "delete", "exists", "get", "is_dir", "is_local", "join", "listdir", "local_path", "mkdirs",
           "name", "parent", "put", "qualified", "read_bytes", "read_text", "rename", "size", "write_bytes",
           "write_text"]
