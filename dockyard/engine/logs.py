"""Container logs in docker's ``json-file`` format: the monitor writes them, ``logs`` reads them.

Each line the container writes becomes one JSON object per line in ``<id>-json.log``::

    {"log":"hello\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}

as docker's log copier does: output is cut into lines; a line longer than 16 KiB, or the last
unterminated bytes at end of stream, is written without its trailing newline. With
``--log-opt max-size`` the file is rotated before a write once it has reached that size, keeping
``max-file`` files in all (``<id>-json.log.1`` is the newest rotated one).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

from dockyard.engine.timeutil import rfc3339nano

MAX_LINE = 16 * 1024  # docker's copier buffer: longer lines are split


def encode_entry(line: bytes, stream: str, ts_ns: int) -> bytes:
    """One json-file record, escaped as docker's encoder does (``<``, ``>``, ``&`` as ``\\u00XX``)."""
    text = json.dumps(line.decode("utf-8", "replace"), ensure_ascii=False)
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return b'{"log":' + text.encode() + b',"stream":"' + stream.encode() + b'","time":"' + \
        rfc3339nano(ts_ns).encode() + b'"}\n'


class LineSplitter:
    """Cuts one stream's bytes into log lines as docker's copier does."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        lines: list[bytes] = []
        while True:
            nl = self.buf.find(b"\n")
            if nl == -1 or nl >= MAX_LINE:
                if len(self.buf) >= MAX_LINE:
                    lines.append(self.buf[:MAX_LINE])
                    self.buf = self.buf[MAX_LINE:]
                    continue
                return lines
            lines.append(self.buf[:nl + 1])
            self.buf = self.buf[nl + 1:]

    def flush(self) -> list[bytes]:
        rest, self.buf = self.buf, b""
        return [rest] if rest else []


def parse_size(value: str) -> int:
    """go-units ``RAMInBytes`` (binary multiples): ``10m`` → 10485760. Raises ValueError."""
    s = value.strip()
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    num, suffix = s[:i], s[i:].strip().lower()
    if not num:
        raise ValueError(f"invalid size: '{value}'")
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    key = suffix
    for tail in ("ib", "b", "i"):
        if len(key) > 1 and key.endswith(tail) and key[:-len(tail)] in units:
            key = key[:-len(tail)]
            break
    if key not in units:
        raise ValueError(f"invalid suffix: '{s[i:].strip()}'")
    try:
        return int(float(num) * units[key])
    except ValueError:
        raise ValueError(f"invalid size: '{value}'") from None


class JsonFileWriter:
    """Appends records to the log file, rotating by size. Used only by the monitor."""

    def __init__(self, path: Path, max_size: int = -1, max_file: int = 1) -> None:
        self.path = Path(path)
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

    def write(self, stream: str, data: bytes) -> None:
        """Log a chunk of a stream's output (complete lines now, the rest when it ends); each
        line gets its own time, as docker's copier stamps each message."""
        for line in self.splitters[stream].feed(data):
            self._append(encode_entry(line, stream, time.time_ns()))

    def close_stream(self, stream: str) -> None:
        """The stream ended: log its unterminated tail, if any."""
        ts = time.time_ns()
        for line in self.splitters[stream].flush():
            self._append(encode_entry(line, stream, ts))

    def _append(self, record: bytes) -> None:
        if self.max_size > 0 and self.size >= self.max_size:
            self._rotate()
        os.write(self.fd, record)
        self.size += len(record)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_file > 1:
            for n in range(self.max_file - 1, 0, -1):
                src = Path(f"{self.path}.{n - 1}") if n > 1 else self.path
                if src.exists():
                    os.replace(src, f"{self.path}.{n}")
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(self.path, flags | os.O_APPEND, 0o640)
        self.size = 0

    def close(self) -> None:
        for stream in self.splitters:
            self.close_stream(stream)
        try:
            os.close(self.fd)
        except OSError:
            pass


# ------------------------------------------------------------------------------------ reading
class LogEntry:
    """One record read back: its stream ("stdout" | "stderr"), bytes and time."""

    __slots__ = ("stream", "data", "time_ns", "time_text")

    def __init__(self, stream: str, data: bytes, time_ns: int, time_text: str) -> None:
        self.stream, self.data, self.time_ns, self.time_text = stream, data, time_ns, time_text


def _parse(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None  # a torn last line (the writer was killed mid-write)
    from dockyard.engine.timeutil import parse_rfc3339

    text = obj.get("time", "")
    return LogEntry(obj.get("stream", "stdout"), obj.get("log", "").encode("utf-8", "surrogateescape"),
                    parse_rfc3339(text) or 0, text)


def log_files(path: Path) -> list[Path]:
    """The log files oldest first: ``.N`` ... ``.1``, then the current one."""
    rotated = []
    n = 1
    while Path(f"{path}.{n}").exists():
        rotated.append(Path(f"{path}.{n}"))
        n += 1
    return [*reversed(rotated), path]


def read_entries(path: Path, tail: int = -1) -> tuple[list[LogEntry], int]:
    """Every entry in all files (or only the last ``tail``), in order, and how many bytes of the
    current file were read (where following starts)."""
    lines: list[bytes] = []
    offset = 0
    for f in log_files(path):
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            continue
        if f == path:
            end = data.rfind(b"\n") + 1  # a torn last line is read again when following
            offset, data = end, data[:end]
        lines.extend(data.splitlines())
    if tail >= 0:
        lines = lines[-tail:] if tail else []
    return [e for e in map(_parse, lines) if e is not None], offset


def follow(path: Path, offset: int, still_running, poll: float = 0.05) -> Iterator[LogEntry]:
    """New entries appended after ``offset`` in the current file, until ``still_running()`` is
    false and everything written has been read. Follows rotation (a new file at ``path``)."""
    fd = None
    ino = None
    buf = b""
    try:
        while True:
            if fd is None:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    if not still_running():
                        return
                    time.sleep(poll)
                    continue
                ino = os.fstat(fd).st_ino
                os.lseek(fd, offset, os.SEEK_SET)
            alive = still_running()  # sample before reading: nothing is lost at the end
            chunk = os.read(fd, 1 << 20)
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for line in complete:
                    e = _parse(line)
                    if e is not None:
                        yield e
                continue
            try:
                st = os.stat(path)
                rotated = st.st_ino != ino
            except FileNotFoundError:
                rotated = True
            if rotated:
                while True:  # what was written to the old file before it was renamed
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    buf += chunk
                for line in buf.split(b"\n"):
                    e = _parse(line) if line else None
                    if e is not None:
                        yield e
                os.close(fd)
                fd, offset, buf = None, 0, b""
                continue
            if not alive:
                return
            time.sleep(poll)
    finally:
        if fd is not None:
            os.close(fd)
