"""The shipper's registry: which file is which, and how far it has been shipped.

A file is known by its identity (device, inode) and a fingerprint (a hash of its first bytes).
The registry stores, per file, the byte offset up to which every line was acknowledged by Kafka
(or filtered out), and how many records were in flight beyond it when it was saved. It is written
atomically (temporary file + rename) as acknowledgements arrive, so a restart never skips a line
and sends again only the records that were unconfirmed (at-least-once).

Rotation:
- rename + new file: the old inode keeps its entry (and is read to its end if it still matches
  the paths); the new file is a new inode, read from 0.
- rename while the shipper is stopped (``app.log`` -> ``app.log.1`` under a glob ``*.log``): on
  start, a known file that no longer matches the paths is looked up by identity (device, inode,
  fingerprint) in its directory and read to its end; if it is gone, a warning names the byte
  from which lines may be missing.
- copytruncate: the original inode shrinks below its offset, so it is read again from 0; its
  previous state is kept as an orphan, and a new file whose first bytes match the orphan's
  fingerprint (the copy) resumes at the orphan's offset, so lines written just before the
  truncation are not lost.
- compression (``app.log.1`` -> ``app.log.1.gz``, logrotate's ``compress``): a gzip file is read
  decompressed, and known by the fingerprint of its *decompressed* first bytes, offsets counting
  decompressed bytes. A new ``.gz`` whose content starts like a file already shipped (an orphan,
  or a known file gone from disk) resumes at that file's offset: the rotation's compressed copy is
  not shipped twice, and lines the original had not shipped yet are read from the copy. While the
  original is still on disk (``gzip`` writes the copy, then deletes it) the copy waits.

A file is identified once there is something to identify it by. A new empty file waits (it has
nothing to ship), and so does a ``.gz`` whose stream is still being written and holds fewer than
``FINGERPRINT_BYTES`` decompressed bytes. The whole ``.gz`` appears in two steps, empty, then its
bytes. Had the shipper taken it for an empty plain file, it would have read the copy from 0 with
no relation to its original: every line of the rotation twice.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, cast

FINGERPRINT_BYTES = 1024


@dataclass
class FileState:
    """Where one file stands."""

    path: str
    dev: int
    inode: int
    offset: int
    fingerprint: str
    fingerprint_len: int
    unconfirmed: int = 0  # records sent past ``offset`` and not yet confirmed at the last save
    compressed: bool = False  # gzip: read decompressed, offsets in decompressed bytes

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.inode}"


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts with gzip's magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_log(path: str | Path, compressed: bool | None = None) -> IO[bytes]:
    """The file for reading its lines: decompressed when it is gzip (``compressed``; None looks at
    its first bytes)."""
    if compressed is None:
        compressed = is_gzip(path)
    return cast(IO[bytes], gzip.open(path, "rb")) if compressed else open(path, "rb")  # noqa: SIM115


def _head(path: str | Path, length: int) -> tuple[bytes, bool]:
    """The file's first ``length`` bytes (decompressed for gzip; fewer if there are not so many),
    and whether that is final: False only for a gzip stream that ends before ``length`` bytes
    without its end marker (a ``.gz`` still being written; what was written of it is returned)."""
    if not is_gzip(path):
        with open(path, "rb") as f:
            return f.read(length), True
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = b""
    with open(path, "rb") as f:
        while len(out) < length and not d.eof:
            chunk = f.read(64 * 1024)
            if not chunk:
                return out, False
            try:
                out += d.decompress(chunk)
            except zlib.error:  # corrupt: what could be read is all there will be
                return out[:length], True
    return out[:length], True


def fingerprint(path: str | Path, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """SHA-1 of the file's first ``length`` bytes (fewer if it is shorter; decompressed for
    gzip), and how many."""
    head, _ = _head(path, length)
    return hashlib.sha1(head).hexdigest(), len(head)


def prefix_fingerprint(path: str | Path, length: int) -> str:
    """SHA-1 of exactly the first ``length`` bytes (to compare with a stored fingerprint)."""
    return hashlib.sha1(_head(path, length)[0]).hexdigest()


class Registry:
    """Persisted file states, keyed by ``dev:inode``, plus orphans awaiting adoption."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.files: dict[str, FileState] = {}
        self.orphans: list[FileState] = []
        self.shipped: list[FileState] = []  # rotated away and read to their end
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.files = {k: FileState(**v) for k, v in data.get("files", {}).items()}
            self.orphans = [FileState(**v) for v in data.get("orphans", [])]
            self.shipped = [FileState(**v) for v in data.get("shipped", [])]

    def save(self) -> None:
        """Write the registry atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"files": {k: asdict(v) for k, v in self.files.items()},
                                   "orphans": [asdict(o) for o in self.orphans[-100:]],
                                   "shipped": [asdict(o) for o in self.shipped[-100:]]}))
        os.replace(tmp, self.path)

    def state_for(self, path: str) -> FileState | None:
        """The state of the file now at ``path``: known, adopted from an orphan, or new at 0; None
        while it waits (see the module doc): a new empty file, a ``.gz`` still being written, a
        compressed copy whose original is still on disk."""
        st = os.stat(path)
        key = f"{st.st_dev}:{st.st_ino}"
        known = self.files.get(key)
        if known is not None:
            if known.compressed:  # a finished file: its size is not comparable with the offset
                return known if prefix_fingerprint(path, known.fingerprint_len) == known.fingerprint else None
            fp_now = prefix_fingerprint(path, known.fingerprint_len) if st.st_size >= known.fingerprint_len else None
            if fp_now == known.fingerprint and st.st_size >= known.offset:
                known.path = path
                return known
            # Truncated (copytruncate) or the inode was reused: keep the old state for adoption.
            self.orphans.append(FileState(**asdict(known)))
            del self.files[key]
        if st.st_size == 0:
            return None
        if is_gzip(path):
            return self._compressed(path, key, st)
        fp, fp_len = fingerprint(path)
        state = FileState(path, st.st_dev, st.st_ino, 0, fp, fp_len)
        for orphan in reversed(self.orphans):
            if (orphan.key != key and st.st_size >= orphan.offset and st.st_size >= orphan.fingerprint_len
                    and prefix_fingerprint(path, orphan.fingerprint_len) == orphan.fingerprint):
                state.offset = orphan.offset  # the copy of a truncated file: resume where it was
                self.orphans.remove(orphan)
                break
        self.files[key] = state
        return state

    def _compressed(self, path: str, key: str, st: os.stat_result) -> FileState | None:
        """A new gzip file: the compressed copy of a file shipped before (resume where it was),
        or an archive of its own (from 0)."""
        head, final = _head(path, FINGERPRINT_BYTES)
        if not final:
            return None  # still being written: its first bytes are not all there yet
        state = FileState(path, st.st_dev, st.st_ino, 0, hashlib.sha1(head).hexdigest(), len(head), compressed=True)

        def starts_like(other: FileState) -> bool:  # on this one read of the copy (fingerprints <= its head)
            return not other.compressed and hashlib.sha1(head[:other.fingerprint_len]).hexdigest() == other.fingerprint

        for other_key, other in list(self.files.items()):
            if not starts_like(other):
                continue
            if self.locate(other) is not None:
                return None  # the original is still there and still shipped: the copy waits
            state.offset = other.offset  # the original is gone: the copy continues it
            del self.files[other_key]
            break
        else:
            for done in [*reversed(self.shipped), *reversed(self.orphans)]:
                if starts_like(done):
                    state.offset = done.offset
                    (self.shipped if done in self.shipped else self.orphans).remove(done)
                    break
        self.files[key] = state
        return state

    def locate(self, state: FileState) -> str | None:
        """Where the file of ``state`` is now: its path, or another name in the same directory
        with the same device, inode and fingerprint (a rename); None if it is gone."""
        candidates = [state.path]
        try:
            with os.scandir(os.path.dirname(state.path) or ".") as it:
                candidates += [e.path for e in it if e.path != state.path]
        except OSError:
            pass
        for path in candidates:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if ((st.st_dev, st.st_ino) == (state.dev, state.inode) and st.st_size >= state.fingerprint_len
                    and prefix_fingerprint(path, state.fingerprint_len) == state.fingerprint):
                return os.path.abspath(path)
        return None

    def forget(self, key: str, orphan: bool = True) -> None:
        """Drop a file: one that is gone stays as an orphan (``orphan``), for a copy that shows
        up later; one read to its end after a rotation is done (and kept in ``shipped``, so its
        compressed copy is recognised)."""
        state = self.files.pop(key, None)
        if state is not None and orphan:
            self.orphans.append(state)
        elif state is not None:  # remembered only for a compressed copy of it that may show up
            self.shipped.append(state)

    def refresh_fingerprint(self, state: FileState) -> None:
        """Extend a short file's fingerprint as it grows (up to FINGERPRINT_BYTES)."""
        if state.fingerprint_len < FINGERPRINT_BYTES and not state.compressed:
            state.fingerprint, state.fingerprint_len = fingerprint(state.path)
